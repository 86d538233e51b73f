"""The InfluxDB spool on a failing disk: torn appends, a size bound, private files, and a sink that keeps
running when the spool cannot take a batch."""

from __future__ import annotations

import asyncio
import errno
import stat
from pathlib import Path

import pytest
from aiohttp import web

from sensorhub.bus import Bus
from sensorhub.sinks import spool as spool_module
from sensorhub.sinks.influx import InfluxSink
from sensorhub.sinks.spool import Spool, frame
from tests.services import write_endpoint
from tests.sinks.test_influx_sink import angles_chunk, influx_config, wait_until


def batch(i: int) -> bytes:
    return b"".join(b"m v=%di %d\n" % (i, 3 * i + k) for k in range(3))


def read_all(spool: Spool) -> list[bytes]:
    seen: list[bytes] = []
    while (segment := spool.take_oldest()) is not None:
        seen += spool.read(segment)
        spool.remove(segment)
    return seen


def lines_of(*batches: int) -> list[bytes]:
    return [line for i in batches for line in batch(i).splitlines()]


class FullDisk:
    """``_write_all`` that writes ``fraction`` of the data, then fails with ENOSPC (``times`` times)."""

    def __init__(self, times: int, fraction: float = 0.5) -> None:
        self.times = times
        self.fraction = fraction
        self.real = spool_module._write_all

    def __call__(self, fd: int, data: bytes) -> None:
        if self.times <= 0:
            self.real(fd, data)
            return
        self.times -= 1
        self.real(fd, data[: int(len(data) * self.fraction)])
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_append_is_cut_off_and_the_next_batches_are_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path).open()
    spool.append(batch(0))
    monkeypatch.setattr(spool_module, "_write_all", FullDisk(times=1))
    with pytest.raises(OSError, match="No space"):
        spool.append(batch(1))
    spool.append(batch(2))
    spool.append(batch(3))
    assert read_all(spool) == lines_of(0, 2, 3)
    assert spool.torn_records == 0  # the torn part was cut off at once


def test_a_torn_record_mid_segment_is_skipped_and_later_records_read(tmp_path: Path) -> None:
    """A torn record that could not be cut off (the process went on writing behind it)."""
    spool = Spool(tmp_path).open()
    spool.append(batch(0))
    segment = sorted(tmp_path.glob("*.lp"))[0]
    with segment.open("ab") as fh:
        fh.write(frame(batch(1))[:20])  # header and half a line
    spool.append(batch(2))
    spool.append(batch(3))
    assert read_all(spool) == lines_of(0, 2, 3)
    assert spool.torn_records == 1


def test_the_spool_is_bounded_and_drops_the_oldest_counted(tmp_path: Path) -> None:
    record = len(frame(batch(0)))
    spool = Spool(tmp_path, segment_bytes=3 * record, max_bytes=12 * record).open()
    for i in range(100):
        spool.append(batch(i))
        assert spool.size_bytes() <= 12 * record
    assert sum(p.stat().st_size for p in tmp_path.glob("*.lp")) == spool.size_bytes()
    kept = read_all(spool)
    assert kept == lines_of(*range(100 - len(kept) // 3, 100))  # the newest, in order, none torn
    assert len(kept) >= 3 * 6 and spool.dropped_lines == 300 - len(kept)
    assert spool.dropped_segments == spool.dropped_lines // 9


def test_spool_segments_are_private(tmp_path: Path) -> None:
    Spool(tmp_path).open().append(batch(0))
    (segment,) = tmp_path.glob("*.lp")
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600


async def test_the_sink_keeps_running_when_the_spool_cannot_take_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server down (503) and disk full: the batch is dropped and counted, the sink runs on; once the
    disk has room again batches are spooled, and written back when the server returns."""
    mode = {"status": 503}
    received: list[bytes] = []

    async def write(request: web.Request) -> web.Response:
        body = await request.read()
        if body and mode["status"] != 204:
            return web.Response(status=mode["status"], text="down")
        if body:
            received.append(body)
        return web.Response(status=204)

    full = FullDisk(times=1, fraction=0.3)
    monkeypatch.setattr(spool_module, "_write_all", full)
    async with write_endpoint(write) as port:
        bus = Bus()
        sink = InfluxSink(influx_config(f"http://127.0.0.1:{port}", batch_size=1), tmp_path / "s")
        async with sink:
            task = asyncio.create_task(sink.run(bus))
            await asyncio.sleep(0)
            bus.publish("angles", "ana/right", angles_chunk("ana/right", 0))
            await wait_until(lambda: sink.stats.spool_errors == 1)
            for j in range(1, 4):
                bus.publish("angles", "ana/right", angles_chunk("ana/right", j))
            await wait_until(lambda: sink.stats.points_spooled == 3)
            assert not task.done() and sink.stats.points_lost == 1
            assert "No space left" in sink.stats.last_error or sink.stats.write_errors
            mode["status"] = 204
            await wait_until(lambda: sink.idle)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        stats = sink.stats_dict()
        assert stats["points_written"] == 3 and stats["spool_torn"] == 0 and stats["spool_errors"] == 1
        assert len(received) == 3 and not list((tmp_path / "s").glob("*.lp"))


def test_a_segment_from_before_records_is_still_read(tmp_path: Path) -> None:
    """A spool left by an older sensorhub (plain lines, no record headers) is written back as before."""
    (tmp_path / f"{0:016d}.lp").write_bytes(b"#seq 0\n" + batch(0) + b"m v=9i")  # last line torn
    spool = Spool(tmp_path).open()
    spool.append(batch(1))
    assert read_all(spool) == [b"#seq 0", *lines_of(0, 1)] and spool.torn_records == 1
