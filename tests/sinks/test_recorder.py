"""The service's raw recorder on a failing disk, its sync cadence and its rotation into parts."""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sensorhub.config import Config, RecorderConfig, ServiceConfig, SinksConfig
from sensorhub.errors import RecordingError, SinkError
from sensorhub.recording import RecordingWriter, read_recording
from sensorhub.runtime.service import _recorder
from sensorhub.sinks.recorder import BackgroundRecorder
from tests.test_recording import META
from tests.timing.test_timing import SENSORS, two_sensor_packets


class FillingFile:
    """Stands in for the recording's file: takes ``room`` bytes, then writes what fits and fails with
    ENOSPC, as a full disk does; counts what reached it after the failure."""

    def __init__(self, real: Any, room: int) -> None:
        self.real = real
        self.room = room
        self.after_failure = 0
        self.failed = False

    def write(self, data: bytes) -> int:
        if self.failed:
            self.after_failure += len(data)
        fits = max(0, min(len(data), self.room))
        self.real.write(data[:fits])
        self.room -= fits
        if fits < len(data):
            self.failed = True
            raise OSError(errno.ENOSPC, "No space left on device")
        return fits

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_disk_error_stops_the_recording_cleanly_and_is_reported(tmp_path: Path) -> None:
    packets = two_sensor_packets(4.0)
    writer = RecordingWriter(tmp_path / "r.shrec", META)
    header = writer.bytes
    sizes = [len(p.payload) + 18 for p in packets]
    room = sum(sizes[:100]) + 7  # the disk fills 7 bytes into the 101st record
    disk = FillingFile(writer._file, room)
    writer._file = disk  # type: ignore[assignment]
    rec = BackgroundRecorder(writer, flush_every_s=0.01)
    for p in packets:
        rec.write(p)
    rec.close()
    status = rec.status()
    assert status["state"] == "failed" and not status["ok"] and "No space left" in status["last_error"]
    assert status["packets"] == 100 and status["dropped"] == len(packets) - 101
    assert disk.after_failure == 0  # nothing written behind the torn record
    back = read_recording(tmp_path / "r.shrec")
    assert list(back) == packets[:100]
    assert back.tail is not None and back.tail.offset == header + sum(sizes[:100])


def test_after_a_disk_error_recording_resumes_in_a_new_part_when_there_is_room(tmp_path: Path) -> None:
    """The disk fills mid-part; once it has room again the recorder goes on in the next part: the
    recording replays as one with only the packets of the failure missing (counted as dropped)."""
    packets = two_sensor_packets(4.0)
    writer = RecordingWriter(tmp_path / "r.shrec", META)
    sizes = [len(p.payload) + 18 for p in packets]
    writer._file = FillingFile(writer._file, sum(sizes[:100]) + 7)  # type: ignore[assignment]
    rec = BackgroundRecorder(writer, flush_every_s=0.01, resume_every_s=0.2)
    for p in packets[:150]:  # the 101st fails; the next 49 come while the disk is full
        rec.write(p)
    deadline_s = time.monotonic() + 5.0
    while rec.status()["dropped"] < 49 and time.monotonic() < deadline_s:
        time.sleep(0.01)
    while rec.failed and time.monotonic() < deadline_s:  # the next part opens after resume_every_s
        time.sleep(0.01)
    status = rec.status()
    assert status["state"] == "recording" and status["parts"] == 2 and status["dropped"] == 49
    for p in packets[150:]:
        rec.write(p)
    rec.close()
    assert list(read_recording(tmp_path / "r.shrec")) == packets[:100] + packets[150:]
    assert rec.status()["packets"] == 100 + len(packets) - 150


def test_packets_of_unknown_sensors_are_skipped_counted_and_logged_sparingly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Packets from 150 sensor ids nobody configured (a fuzzer, a misconfigured gateway): each skipped and
    counted, the known ones recorded, and the log gets 3 lines (1st, 10th, 100th), not one per id."""
    packets = two_sensor_packets(4.0)
    rec = BackgroundRecorder(RecordingWriter(tmp_path / "r.shrec", META), flush_every_s=0.01)
    for k, p in enumerate(packets):
        rec.write(p)
        if k < 150:
            rec.write(replace(p, sensor_id=f"stranger-{k}"))
    rec.close()
    status = rec.status()
    assert status["errors"] == 150 and status["packets"] == len(packets)
    assert list(read_recording(tmp_path / "r.shrec")) == packets
    lines = [r for r in caplog.records if r.name == "sensorhub.sinks.recorder"]
    assert len(lines) == 3 and "stranger-99" in lines[-1].getMessage()


def _thread_cpu_s(native_id: int) -> float:
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_failed_recorder_waits_for_packets_instead_of_spinning(tmp_path: Path) -> None:
    """After a disk error the thread has nothing to flush: it must block on its queue. (It polled with a
    zero timeout, spinning a core and starving the event loop: the disk_full fault blocked the service
    for minutes.)"""
    writer = RecordingWriter(tmp_path / "r.shrec", META)
    writer._file = FillingFile(writer._file, 0)  # type: ignore[assignment]
    rec = BackgroundRecorder(writer, flush_every_s=0.01)
    packets = two_sensor_packets(0.1)
    rec.write(packets[0])
    while not rec.failed:
        time.sleep(0.01)
    native_id = rec._thread.native_id
    assert native_id is not None
    cpu_before_s = _thread_cpu_s(native_id)
    time.sleep(1.0)
    rec.write(packets[1])  # still counted as dropped
    spent_s = _thread_cpu_s(native_id) - cpu_before_s
    rec.close()
    assert spent_s < 0.1, f"the failed recorder's thread used {spent_s:.2f} s of CPU in 1 s"
    assert rec.status()["dropped"] == 1


def service_config(tmp_path: Path, **recorder: Any) -> Config:
    return replace(
        Config(),
        service=ServiceConfig(data_dir=str(tmp_path)),
        sinks=replace(SinksConfig(), recorder=RecorderConfig(**recorder)),
    )


def test_the_service_recorder_rotates_into_parts_that_replay_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    packets = two_sensor_packets(6.0)
    rec = _recorder(service_config(tmp_path, max_file_mb=0.01, sync_interval_s=3600.0), SENSORS)
    for p in packets:
        rec.write(p)
    rec.close()
    files = sorted((tmp_path / "recordings").iterdir())
    parts = rec.status()["parts"]
    assert parts >= 3 and len(files) == parts and rec.status()["state"] == "closed"
    assert all(f.stat().st_size <= 0.01 * 1024 * 1024 + 200 for f in files)
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert len(fsyncs) >= 2 * parts - 1  # each part at its close, and the directory for each new one
    back = read_recording(rec.path)
    assert list(back) == packets and back.n_packets == len(packets) and not back.gaps
    assert [p.path.name for p in back.parts][1] == rec.path.stem + ".part002.shrec"


def test_the_service_recorder_rotates_by_time(tmp_path: Path) -> None:
    packets = two_sensor_packets(0.1)
    rec = _recorder(service_config(tmp_path, max_file_minutes=0.01), SENSORS)
    rec._max_s = 0.0  # every packet past the limit (the configured minimum is 0.6 s)
    for p in packets:
        rec.write(p)
    rec.close()
    assert rec.status()["parts"] == len(packets) + 1
    assert list(read_recording(rec.path)) == packets


def _raw_recording(path: Path, meta: bytes) -> Path:
    path.write_bytes(
        b"SHRAWREC" + struct.pack("<HI", 1, len(meta)) + meta + struct.pack("<I", zlib.crc32(meta))
    )
    return path


@pytest.mark.parametrize("depth", [17, 100_000])
def test_deeply_nested_metadata_is_refused_clearly(tmp_path: Path, depth: int) -> None:
    sensors = '"sensors": [{"sensor_id": "a"}]'
    meta = ("{" + sensors + ', "x": ' + "[" * depth + "]" * depth + "}").encode()
    with pytest.raises(RecordingError, match="nested deeper than 16 levels"):
        read_recording(_raw_recording(tmp_path / "deep.shrec", meta))
    nested: Any = []
    for _ in range(20):
        nested = [nested]
    with pytest.raises(SinkError, match="nested deeper"):
        RecordingWriter(tmp_path / "w.shrec", {**META, "x": nested})


def test_oversized_metadata_is_refused(tmp_path: Path) -> None:
    meta = json.dumps({"sensors": [{"sensor_id": "a"}], "note": "x" * (1024 * 1024)}).encode()
    with pytest.raises(RecordingError, match="exceeds the limit"):
        read_recording(_raw_recording(tmp_path / "big.shrec", meta))
