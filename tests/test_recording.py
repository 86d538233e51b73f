"""Raw recorder and replay: round trip, torn and corrupt tails, bad headers, pacing, CSV export."""

from __future__ import annotations

import asyncio
import math
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from sensorhub.conventions import ANALYZE_CSV_HEADER
from sensorhub.errors import RecordingError, SinkError
from sensorhub.model import RawPacket
from sensorhub.offline.export import concat_legs, export_recording_csv, recording_legs, run_front
from sensorhub.recording import RecordingWriter, read_recording
from sensorhub.sinks.recorder import BackgroundRecorder
from sensorhub.sources.base import PacketQueue
from sensorhub.sources.replay import ReplaySource
from sensorhub.timing import Front
from tests.timing.test_timing import SENSORS, two_sensor_packets

META = {
    "session": "s-001",
    "source": "test",
    "sensors": [
        {
            "sensor_id": "thigh-r",
            "athlete": "ann",
            "side": "right",
            "segment": "thigh",
            "protocol": "sensorhub-v1",
        },
        {
            "sensor_id": "shank-r",
            "athlete": "ann",
            "side": "right",
            "segment": "shank",
            "protocol": "sensorhub-v1",
        },
    ],
}


def record(path: Path, packets: list[RawPacket]) -> Path:
    with RecordingWriter(path, META) as writer:
        for p in packets:
            writer.write(p)
    return path


def test_background_recorder_writes_everything_in_order_off_the_caller(tmp_path: Path) -> None:
    """The live service's recorder: ``write`` only enqueues; close() has written every packet, in order;
    a packet it cannot record (unknown sensor) is counted and the rest are kept."""
    packets = two_sensor_packets(3.0)
    rec = BackgroundRecorder(RecordingWriter(tmp_path / "bg.shrec", META), flush_every_s=0.01)
    for i, p in enumerate(packets):
        rec.write(p)
        if i == 5:
            rec.write(RawPacket("stranger", 0.0, b"x"))
    rec.close()
    assert rec.errors == 1 and "stranger" in rec.last_error
    back = read_recording(tmp_path / "bg.shrec")
    assert [(p.sensor_id, p.t_host_s, p.payload) for p in back.packets()] == [
        (p.sensor_id, p.t_host_s, p.payload) for p in packets
    ]


def test_round_trip(tmp_path: Path) -> None:
    packets = [
        *two_sensor_packets(2.0),
        RawPacket("thigh-r", 1.5, b""),
        RawPacket("shank-r", 2.5, b"\xff" * 300),
    ]
    rec = read_recording(record(tmp_path / "a.shrec", packets))
    assert list(rec.packets()) == packets and list(rec) == packets  # iterable more than once
    assert rec.n_packets == len(packets) and rec.tail is None
    assert rec.meta["session"] == "s-001" and "created_utc" in rec.meta
    assert rec.sensors == SENSORS and rec.protocols == {"thigh-r": "sensorhub-v1", "shank-r": "sensorhub-v1"}


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    packets = two_sensor_packets(1.0)
    path = record(tmp_path / "a.shrec", packets)
    size = path.stat().st_size
    for cut in (1, 5, 20, len(packets[-1].payload) + 17):  # inside the last record: header, payload, crc
        torn = tmp_path / f"torn{cut}.shrec"
        torn.write_bytes(path.read_bytes()[: size - cut])
        rec = read_recording(torn)
        assert list(rec) == packets[:-1]
        assert rec.tail is not None and rec.tail.reason == "torn record"
        assert rec.tail.ignored_bytes == len(packets[-1].payload) + 18 - cut


def test_a_corrupt_record_is_skipped_and_the_rest_replays(tmp_path: Path) -> None:
    packets = two_sensor_packets(1.0)
    path = record(tmp_path / "a.shrec", packets)
    data = bytearray(path.read_bytes())
    offset = len(data) - sum(len(p.payload) + 18 for p in packets[-10:])  # start of the 10th-last record
    data[offset + 20] ^= 0x40  # a bit flip in its payload
    path.write_bytes(bytes(data))
    rec = read_recording(path)
    assert list(rec) == packets[:-10] + packets[-9:] and rec.n_packets == len(packets) - 1
    assert rec.tail is None and len(rec.gaps) == 1
    gap = rec.gaps[0]
    assert (
        gap.reason == "bad crc"
        and gap.offset == offset
        and gap.ignored_bytes == len(packets[-10].payload) + 18
    )


def test_a_torn_record_mid_file_is_skipped_and_the_rest_replays(tmp_path: Path) -> None:
    """A record cut short (the disk filled mid-write) with records written after it."""
    packets = two_sensor_packets(1.0)
    path = record(tmp_path / "a.shrec", packets)
    data = path.read_bytes()
    cut = len(data) - sum(len(p.payload) + 18 for p in packets[-20:])  # the 20th-last record ...
    torn = (
        data[:cut] + data[cut : cut + 25] + data[cut + len(packets[-20].payload) + 18 :]
    )  # ... keeps 25 bytes
    path.write_bytes(torn)
    rec = read_recording(path)
    assert list(rec) == packets[:-20] + packets[-19:]
    assert [(g.offset, g.ignored_bytes) for g in rec.gaps] == [(cut, 25)] and rec.tail is None


def test_garbage_length_is_a_corrupt_tail(tmp_path: Path) -> None:
    path = record(tmp_path / "a.shrec", two_sensor_packets(0.5))
    with path.open("ab") as f:
        f.write(struct.pack("<IdH", 10_000_000, 1.0, 0) + b"x" * 40)
    rec = read_recording(path)
    assert rec.tail is not None and rec.tail.reason == "implausible length" and rec.tail.ignored_bytes == 54


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"NOTAREC!" + b[8:], "bad magic"),
        (lambda b: b[:8] + struct.pack("<H", 9) + b[10:], "version 9"),
        (lambda b: b[:20] + b"\x00" + b[21:], "metadata CRC"),
        (lambda b: b[:5], "not a sensorhub recording"),
        (lambda b: b[:40], "truncated"),
    ],
)
def test_bad_headers_raise_recording_error(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = record(tmp_path / "a.shrec", two_sensor_packets(0.2))
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(RecordingError, match=message):
        read_recording(path)


def test_unreadable_metadata_and_missing_file(tmp_path: Path) -> None:
    import zlib

    meta = b"{not json"
    path = tmp_path / "m.shrec"
    path.write_bytes(
        b"SHRAWREC" + struct.pack("<HI", 1, len(meta)) + meta + struct.pack("<I", zlib.crc32(meta))
    )
    with pytest.raises(RecordingError, match="JSON"):
        read_recording(path)
    with pytest.raises(RecordingError, match="cannot read"):
        read_recording(tmp_path / "missing.shrec")


def test_writer_refuses_unknown_sensors_bad_meta_and_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "a.shrec"
    with RecordingWriter(path, META) as writer, pytest.raises(SinkError, match="not in the recording"):
        writer.write(RawPacket("nobody", 1.0, b"x"))
    with pytest.raises(SinkError, match="cannot create"):
        RecordingWriter(path, META)
    with pytest.raises(SinkError, match="sensors"):
        RecordingWriter(tmp_path / "b.shrec", {"sensors": [{"athlete": "x"}]})


def test_flush_makes_records_readable_while_writing(tmp_path: Path) -> None:
    packets = two_sensor_packets(0.5)
    path = tmp_path / "live.shrec"
    with RecordingWriter(path, META) as writer:
        for p in packets:
            writer.write(p)
        writer.flush()
        assert list(read_recording(path)) == packets


async def test_replay_pacing(tmp_path: Path) -> None:
    packets = [RawPacket("thigh-r", 100.0 + 0.05 * i, bytes([i])) for i in range(11)]  # spans 0.5 s
    path = record(tmp_path / "a.shrec", packets)
    start = time.monotonic()
    got = [p async for p in ReplaySource(path, speed=2.0)]
    elapsed = time.monotonic() - start
    assert got == packets and 0.24 <= elapsed < 0.6
    start = time.monotonic()
    got = [p async for p in ReplaySource(path, speed=None)]
    assert got == packets and time.monotonic() - start < 0.1


async def test_replay_source_as_packet_source(tmp_path: Path) -> None:
    packets = two_sensor_packets(0.5)
    source = ReplaySource(record(tmp_path / "a.shrec", packets), speed=None, batch=8)
    queue = PacketQueue()
    await asyncio.wait_for(source.run(queue), timeout=5.0)
    assert queue.drain() == packets and source.links()["thigh-r"].last_packet_host_s is not None


def test_replay_equals_live_bit_for_bit(tmp_path: Path) -> None:
    packets = two_sensor_packets(4.0)
    live, live_stats = run_front(packets, Front(SENSORS))
    replayed, replay_stats = recording_legs(read_recording(record(tmp_path / "a.shrec", packets)))
    for leg_id, leg in live.items():
        other = replayed[leg_id]
        for name in ("t_s", "thigh_acc_m_s2", "thigh_gyr_rad_s", "shank_acc_m_s2", "shank_gyr_rad_s"):
            assert getattr(leg, name).tobytes() == getattr(other, name).tobytes()
    assert repr(live_stats) == repr(replay_stats)  # repr: NaN-aware and exact


def test_export_csv_per_leg(tmp_path: Path) -> None:
    packets = two_sensor_packets(3.0)
    packets = [p for i, p in enumerate(packets) if not (100 <= i < 106 and p.sensor_id == "shank-r")]
    path = record(tmp_path / "a.shrec", packets)
    files = export_recording_csv(path, tmp_path / "out")
    assert list(files) == ["ann/right"] and files["ann/right"].name == "ann_right.csv"
    lines = files["ann/right"].read_text().splitlines()
    assert lines[0] == ANALYZE_CSV_HEADER
    table = np.loadtxt(files["ann/right"], delimiter=",", skiprows=1)
    legs = concat_legs(run_front(packets, Front(SENSORS))[0].values())["ann/right"]
    assert table.shape == (len(legs), 13)
    assert np.allclose(table[:, 0], legs.t_s - packets[0].t_host_s, atol=2e-6, rtol=0)
    assert np.allclose(table[:, 7:10], legs.shank_acc_m_s2, rtol=1e-8, equal_nan=True)
    nan_rows = np.isnan(table[:, 7:13]).all(axis=1)
    assert 23 <= nan_rows.sum() <= 26  # 3 lost shank packets = 24 samples
    assert not np.isnan(table[:, 1:7]).any()  # the thigh is complete
    assert math.isclose(np.nanmean(table[:, 3]), 9.80665, abs_tol=0.5)
