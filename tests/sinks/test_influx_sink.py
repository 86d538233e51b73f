"""The InfluxDB sink against a real server speaking /api/v2/write (VictoriaMetrics, started here).

VictoriaMetrics maps measurement ``m`` + field ``f`` to the metric ``m_f`` and keeps millisecond
timestamps; queries go through /api/v1/export after /internal/force_flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from sensorhub.analysis.metrics import LANDING_KEYS
from sensorhub.bus import Bus
from sensorhub.config import Config, InfluxConfig, ServiceConfig, SinksConfig
from sensorhub.cues.engine import Cue
from sensorhub.errors import SinkError
from sensorhub.model import Event, KneeAngles, SensorRef
from sensorhub.runtime.service import ServiceHandle, Stage, serve_in_thread
from sensorhub.sinks.influx import MAX_QUEUED_BATCHES, OFFLOAD_ROWS, InfluxSink
from sensorhub.sinks.spool import Spool
from sensorhub.sources.base import PacketSource
from tests.helpers import IdleSource, leg_refs
from tests.services import VictoriaMetrics, free_port, write_endpoint

T0_S = 1_767_225_600.0 + 0.0025  # 2026-01-01, half a 200 Hz sample off the 20 Hz slot edges
RATE_HZ = 200.0
CHUNK = 10  # samples per published angles chunk: exactly one 20 Hz slot -> one point per chunk
LEGS = ("ana/right", "ana/left", "ben/right")
WAIT_S = 60.0


# ---- VictoriaMetrics access -----------------------------------------------------------------------


def _get(url: str, auth: tuple[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url)
    if auth is not None:
        req.add_header("Authorization", "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        return bytes(resp.read())


def export(vm: VictoriaMetrics, name_regex: str, auth: tuple[str, str] | None = None) -> dict[str, Any]:
    """{metric name + sorted labels: (timestamps_ms, values)} merged over export blocks, time-sorted."""
    _get(f"{vm.url}/internal/force_flush", auth)
    # An explicit end: without one the export ends at the server's current whole second, so points
    # stamped with the host clock moments ago (sensor_status) are missing for up to a second.
    end_s = time.time() + 3600.0
    query = urllib.parse.urlencode({"match[]": f'{{__name__=~"{name_regex}"}}', "end": f"{end_s:.3f}"})
    out: dict[str, tuple[list[int], list[float]]] = {}
    for line in _get(f"{vm.url}/api/v1/export?{query}", auth).splitlines():
        row = json.loads(line)
        labels = dict(row["metric"])
        key = labels.pop("__name__") + json.dumps(labels, sort_keys=True)
        ts, vs = out.setdefault(key, ([], []))
        ts.extend(row["timestamps"])
        vs.extend(row["values"])
    return {k: tuple(zip(*sorted(zip(ts, vs, strict=True)), strict=True)) for k, (ts, vs) in out.items()}


async def exported(
    vm: VictoriaMetrics, name_regex: str, expect: dict[str, int], auth: tuple[str, str] | None = None
) -> dict[str, Any]:
    """``export`` once every metric in ``expect`` has at least that many samples (VictoriaMetrics shows
    samples near "now" a moment after they are written), or after WAIT_S."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        data = await asyncio.to_thread(export, vm, name_regex, auth)
        if all(count(data, m) >= n for m, n in expect.items()):
            return data
        if asyncio.get_running_loop().time() > deadline:
            return data
        await asyncio.sleep(0.1)


def series(data: dict[str, Any], metric: str, **labels: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    key = metric + json.dumps(labels, sort_keys=True)
    return data.get(key, ((), ()))  # type: ignore[no-any-return]


def count(data: dict[str, Any], metric: str) -> int:
    return sum(len(ts) for key, (ts, _) in data.items() if key.startswith(metric + "{"))


# ---- data -----------------------------------------------------------------------------------------


def angles_chunk(leg_id: str, j: int) -> KneeAngles:
    t_s = T0_S + (j * CHUNK + np.arange(CHUNK)) / RATE_HZ
    return KneeAngles(
        leg_id,
        t_s,
        np.radians(40.0 + 10.0 * np.sin(t_s - T0_S)),
        np.radians(np.full(CHUNK, 3.0 + j % 7)),
        np.radians(np.full(CHUNK, -1.5)),
        np.zeros(CHUNK, dtype=np.uint8),
    )


def landing(leg_id: str, k: int) -> Event:
    metrics = {name: 1.0 + i + 0.01 * k for i, name in enumerate(LANDING_KEYS)}
    return Event("landing", leg_id, T0_S + 0.7 + 0.5 * k, metrics, control_score=50.0 + k % 50)


def rep(leg_id: str, k: int) -> Event:
    t_s = T0_S + 0.9 + 0.5 * k
    metrics = {"depth_deg": 80.0 + k % 10, "eccentric_s": 1.5, "concentric_s": 1.0, "t_bottom_s": t_s + 1.5}
    metrics["peak_valgus_deg"] = float("nan")  # not observed: the field is left out, nothing else is lost
    return Event("rep", leg_id, t_s, metrics, control_score=70.0)


def cue(leg_id: str, k: int) -> Cue:
    athlete = leg_id.split("/")[0]
    return Cue(athlete, leg_id, "knees_out", "knees out", 1, T0_S + 0.8 + 0.5 * k, "landing", 7.5, 0.002)


class StatusReport:
    """Stands in for the service's /health report (two sensors); counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        sensor = {"athlete": "ana", "side": "right", "state": "streaming", "connected": True}
        stats = {"packets": 10 * self.calls, "lost": 1, "rate_hz": 200.0, "battery_pct": None}
        return {
            "sensors": {
                "ana-rt": {
                    **sensor,
                    **stats,
                    "segment": "thigh",
                    "latency_ms": {"p50_ms": 0.4, "p99_ms": 2.0},
                },
                "ana-rs": {**sensor, **stats, "segment": "shank", "latency_ms": {"p50_ms": None}},
            }
        }


def influx_config(url: str, **kw: Any) -> InfluxConfig:
    base = InfluxConfig(
        enabled=True,
        url=url,
        batch_size=200,
        flush_interval_s=0.2,
        status_interval_s=0.0,
        timeout_s=3.0,
        retry_min_s=0.2,
        retry_max_s=1.0,
    )
    return replace(base, **kw)


@contextlib.asynccontextmanager
async def running(sink: InfluxSink, bus: Bus, **kw: Any) -> AsyncIterator[InfluxSink]:
    async with sink:
        task = asyncio.create_task(sink.run(bus, **kw))
        await asyncio.sleep(0)  # run() subscribes to the bus in its first step
        try:
            yield sink
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def one_point_batches(
    write: Callable[[web.Request], Awaitable[web.Response]], tmp_path: Path
) -> AsyncIterator[tuple[Bus, InfluxSink]]:
    """A running sink writing every point as its own batch to the server ``write`` handles."""
    async with write_endpoint(write) as port:
        bus = Bus()
        sink = InfluxSink(
            influx_config(f"http://127.0.0.1:{port}", batch_size=1), tmp_path / "s", track_order=True
        )
        async with running(sink, bus):
            yield bus, sink


async def wait_until(cond: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics() as server:
        yield server


# ---- tests ----------------------------------------------------------------------------------------


async def test_every_point_arrives_with_its_values_tags_and_data_time(
    vm: VictoriaMetrics, tmp_path: Path
) -> None:
    bus = Bus()
    status = StatusReport()
    sink = InfluxSink(influx_config(vm.url, bucket="every", status_interval_s=0.2), tmp_path / "spool")
    n_chunks, n_events = 120, 10

    def tags(athlete: str) -> dict[str, str]:
        return {"drill": "squat", "session": "s1"} if athlete == "ana" else {}

    async with running(sink, bus, tags=tags, status=status):
        for j in range(n_chunks):
            for leg in LEGS:
                bus.publish("angles", leg, angles_chunk(leg, j))
            if j % 12 == 0:
                k = j // 12
                bus.publish("events", "ana/right", landing("ana/right", k))
                bus.publish("events", "ben/right", rep("ben/right", k))
                bus.publish("cues", "ana/right", cue("ana/right", k))
            if j % 40 == 0:
                await asyncio.sleep(0.3)  # let a few status reports in
        await wait_until(lambda: status.calls >= 2 and sink.idle)
    stats = sink.stats_dict()
    n_status = 2 * status.calls
    assert stats["points_written"] == n_chunks * len(LEGS) + 3 * n_events + n_status
    assert stats["points_spooled"] == 0 and stats["points_dropped"] == 0 and stats["write_errors"] == 0

    data = await exported(
        vm,
        "(knee_angles|landing|rep|cue|sensor_status)_.*",
        {"knee_angles_flexion_deg": n_chunks * len(LEGS), "sensor_status_packets": n_status},
    )
    assert count(data, "knee_angles_flexion_deg") == n_chunks * len(LEGS)
    ts, vs = series(data, "knee_angles_flexion_deg", athlete="ana", leg="right", drill="squat", session="s1")
    expected_t = [T0_S + j * CHUNK / RATE_HZ for j in range(n_chunks)]
    assert list(ts) == [math.floor(t * 1000) for t in expected_t]  # ns written, VM keeps ms
    assert vs == pytest.approx([40.0 + 10.0 * math.sin(t - T0_S) for t in expected_t], rel=1e-9)
    _, valgus = series(data, "knee_angles_valgus_deg", athlete="ben", leg="right")  # no set: no drill tag
    assert valgus == pytest.approx([3.0 + j % 7 for j in range(n_chunks)], rel=1e-9)

    for i, name in enumerate(LANDING_KEYS):
        ts, vs = series(data, f"landing_{name}", athlete="ana", leg="right", drill="squat", session="s1")
        assert vs == pytest.approx([1.0 + i + 0.01 * k for k in range(n_events)], rel=1e-9), name
    assert count(data, "landing_control_score") == n_events
    assert count(data, "rep_depth_deg") == n_events and count(data, "rep_peak_valgus_deg") == 0
    assert count(data, "cue_priority") == n_events and count(data, "cue_latency_s") == n_events
    assert series(
        data, "cue_value", athlete="ana", leg="right", drill="squat", session="s1", rule="knees_out"
    )[1] == pytest.approx([7.5] * n_events)
    _, packets = series(
        data, "sensor_status_packets", athlete="ana", leg="right", segment="thigh", sensor="ana-rt"
    )
    assert list(packets) == [10.0 * (c + 1) for c in range(status.calls)]
    assert count(data, "sensor_status_battery_pct") == 0  # None: left out
    assert count(data, "sensor_status_latency_p99_ms") == status.calls  # only the thigh has one


async def test_30_s_outage_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    """Data flows while the server is down for 30 s: batches go to the disk spool, queue behind it, and
    are written back in order once it returns; every point arrives exactly once."""
    bus = Bus()
    with VictoriaMetrics() as server:
        sink = InfluxSink(influx_config(server.url, batch_size=50), tmp_path / "spool", track_order=True)
        published = 0
        stop = asyncio.Event()

        async def publish() -> None:
            nonlocal published
            j = 0
            while not stop.is_set():
                bus.publish("angles", "ana/right", angles_chunk("ana/right", j))
                if j % 10 == 0:
                    bus.publish("events", "ana/right", landing("ana/right", j // 10))
                j += 1
                await asyncio.sleep(CHUNK / RATE_HZ)
            published = j

        async with running(sink, bus):
            producer = asyncio.create_task(publish())
            await wait_until(lambda: sink.stats.points_written > 50)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(30.0)  # the outage itself
            spooled_during_outage = sink.stats.points_spooled
            files_during_outage = sink.stats.spool_files
            await asyncio.to_thread(server.start)
            await asyncio.sleep(2.0)  # data keeps flowing after the restart
            stop.set()
            await producer
            await wait_until(lambda: sink.idle)
        stats = sink.stats_dict()
        data = await exported(server, "(knee_angles|landing)_.*", {"knee_angles_flexion_deg": published})
    n_events = (published + 9) // 10
    assert spooled_during_outage > 500 and files_during_outage >= 1
    assert stats["spool_files"] == 0 and not list((tmp_path / "spool").glob("*.lp"))
    assert stats["points_written"] == published + n_events
    assert sink.stats.written_seqs == sorted(sink.stats.written_seqs)
    assert sink.stats.written_seqs == list(range(len(sink.stats.written_seqs)))  # none missing, none twice
    ts, _ = series(data, "knee_angles_flexion_deg", athlete="ana", leg="right")
    assert list(ts) == [math.floor((T0_S + j * CHUNK / RATE_HZ) * 1000) for j in range(published)]
    assert count(data, "landing_control_score") == n_events


async def test_spool_left_by_a_previous_run_is_written_at_start(tmp_path: Path) -> None:
    bus = Bus()
    spool = tmp_path / "spool"
    with VictoriaMetrics() as server:
        first = InfluxSink(influx_config(server.url), spool)
        async with running(first, bus):
            await asyncio.to_thread(server.stop)
            for j in range(40):
                bus.publish("angles", "ana/left", angles_chunk("ana/left", j))
            await wait_until(lambda: first.stats.points_spooled == 40)
        assert len(list(spool.glob("*.lp"))) >= 1  # the first run ended with its data on disk

        await asyncio.to_thread(server.start)
        second = InfluxSink(influx_config(server.url), spool)
        async with running(second, bus):
            await wait_until(lambda: second.idle)
        assert second.stats.points_written == 40 and not list(spool.glob("*.lp"))
        data = await exported(server, "knee_angles_flexion_deg", {"knee_angles_flexion_deg": 40})
    assert len(series(data, "knee_angles_flexion_deg", athlete="ana", leg="left")[0]) == 40


class AuthVictoriaMetrics(VictoriaMetrics):
    """VictoriaMetrics behind HTTP Basic auth (-httpAuth.*), as InfluxDB 1.8 or a proxy would be."""

    def _command(self) -> list[str]:
        return [*super()._command(), "-httpAuth.username=coach", "-httpAuth.password=s3cret"]


async def test_credentials_are_checked_at_start_up(tmp_path: Path) -> None:
    bus = Bus()
    with AuthVictoriaMetrics() as server:
        bad = InfluxSink(influx_config(server.url, token="coach:wrong", auth_basic=True), tmp_path / "a")
        with pytest.raises(SinkError, match=r"rejected the credentials .*401.*sinks\.influxdb\.token"):
            await bad.start()
        await bad.close()
        none = InfluxSink(influx_config(server.url), tmp_path / "b")
        with pytest.raises(SinkError, match="rejected the credentials"):
            await none.start()
        await none.close()

        good = InfluxSink(influx_config(server.url, token="coach:s3cret", auth_basic=True), tmp_path / "c")
        async with running(good, bus):
            bus.publish("angles", "ana/right", angles_chunk("ana/right", 0))
            await wait_until(lambda: good.idle and good.stats.points_written == 1)
        data = await exported(server, "knee_angles_.*", {"knee_angles_flexion_deg": 1}, ("coach", "s3cret"))
    assert count(data, "knee_angles_flexion_deg") == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:{port}", r"cannot reach InfluxDB at http://127\.0\.0\.1:\d+ .*is it running"),
        ("ftp://127.0.0.1:{port}", r"expected http://HOST:PORT"),
        ("127.0.0.1:{port}", r"expected http://HOST:PORT"),
    ],
)
async def test_bad_url_is_a_clear_error_at_start_up(tmp_path: Path, url: str, message: str) -> None:
    sink = InfluxSink(influx_config(url.format(port=free_port())), tmp_path / "spool")
    with pytest.raises(SinkError, match=message):
        async with sink:
            pass


async def test_a_rejected_batch_is_dropped_and_counted_without_wedging_the_spool(tmp_path: Path) -> None:
    """A server answering 503 (spool), then 400 for one batch (a bad line): that batch is dropped and
    counted, the others are written, in order. A minimal HTTP server: VictoriaMetrics skips bad lines
    with 204 rather than answering 400."""
    bodies: list[bytes] = []
    mode = {"status": 204}
    bad_time = str(round((T0_S + 6 * CHUNK / RATE_HZ) * 1e9)).encode()

    async def write(request: web.Request) -> web.Response:
        body = await request.read()
        if not body:
            return web.Response(status=204)  # the start-up probe
        if mode["status"] == 503:
            return web.Response(status=503, text="down")
        if bad_time in body:  # the line of chunk 6, once the server is back
            return web.json_response({"code": "invalid", "message": "bad line"}, status=400)
        bodies.append(body)
        return web.Response(status=204)

    async with one_point_batches(write, tmp_path) as (bus, sink):
        mode["status"] = 503
        for j in range(6):
            bus.publish("angles", "ana/right", angles_chunk("ana/right", j))
        await wait_until(lambda: sink.stats.points_spooled == 6)
        mode["status"] = 204
        for j in range(6, 9):
            bus.publish("angles", "ana/right", angles_chunk("ana/right", j))
        await wait_until(lambda: sink.idle)
    assert sink.stats.points_dropped == 1 and sink.stats.batches_dropped == 1
    assert sink.stats.points_written == 8 and len(bodies) == 8
    assert sink.stats.written_seqs == [0, 1, 2, 3, 4, 5, 7, 8]
    assert "HTTP 400" in sink.stats.last_error


async def test_a_slow_server_spills_to_the_spool_instead_of_growing_the_queue(tmp_path: Path) -> None:
    """The server answers, slower than the points come in (nothing fails): past MAX_QUEUED_BATCHES waiting
    in memory, batches go through the spool (bounded, on disk) and every one is written, in order. (They
    waited in memory, however many: a slow server grew the process without bound.)"""
    n = 4 * MAX_QUEUED_BATCHES

    async def write(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.02)
        return web.Response(status=204)

    async with one_point_batches(write, tmp_path) as (bus, sink):
        for j in range(n):
            bus.publish("angles", "ana/right", angles_chunk("ana/right", j))
        await wait_until(lambda: sink.stats.points_written == n)
    assert sink.stats.written_seqs == list(range(n))
    # all 64 queue at once: those behind the first MAX_QUEUED_BATCHES (+ the one in flight) are spooled
    assert sink.stats.points_spooled >= n - MAX_QUEUED_BATCHES - 1


# ---- the service wiring ---------------------------------------------------------------------------


def service_config(tmp_path: Path, influx: InfluxConfig) -> Config:
    return replace(
        Config(),
        service=ServiceConfig(data_dir=str(tmp_path)),
        sinks=replace(SinksConfig(), influxdb=influx),
    )


def test_service_writes_with_session_tags_and_reports_counters(vm: VictoriaMetrics, tmp_path: Path) -> None:
    config = service_config(tmp_path, influx_config(vm.url, bucket="svc", status_interval_s=0.2))

    def make() -> tuple[PacketSource, list[SensorRef], list[Stage]]:
        return IdleSource(), leg_refs(["ana"], ("right",)), []

    with serve_in_thread(config, make, port=0, store_path=tmp_path / "h.sqlite3") as handle:
        loop = handle.loop
        assert loop is not None

        def call(fn: Callable[[], Any]) -> Any:
            async def run() -> Any:
                return fn()

            return asyncio.run_coroutine_threadsafe(run(), loop).result(10)

        call(lambda: handle.sessions.start_set("ana", "squat"))
        session_id = handle.sessions.athletes["ana"].session_id
        for j in range(20):
            call(lambda j=j: handle.bus.publish("angles", "ana/right", angles_chunk("ana/right", j)))
        call(lambda: handle.bus.publish("events", "ana/right", landing("ana/right", 0)))
        health = _health(handle)
        deadline = 200
        while deadline and (health["sinks"]["influxdb"]["points_written"] < 21 + 2):
            deadline -= 1
            health = _health(handle, wait_s=0.1)
        assert health["sinks"]["influxdb"]["points_written"] >= 23  # 20 angles + landing + status
        assert health["sinks"]["influxdb"]["spool_files"] == 0
        # The history writer and the recorder report their state too (a failing disk shows here).
        assert health["sinks"]["history"]["state"] == "ok" and health["sinks"]["history"]["written"] >= 1
        assert health["sinks"]["recorder"]["state"] == "recording" and health["sinks"]["recorder"]["ok"]
    data = export(vm, "(knee_angles_flexion_deg|landing_control_score|sensor_status_connected)")
    tags = {"athlete": "ana", "leg": "right", "drill": "squat", "session": session_id}
    assert len(series(data, "knee_angles_flexion_deg", **tags)[0]) == 20
    assert len(series(data, "landing_control_score", **tags)[0]) == 1
    assert count(data, "sensor_status_connected") >= 2


def _health(handle: ServiceHandle, wait_s: float = 0.0) -> dict[str, Any]:
    time.sleep(wait_s)
    with urllib.request.urlopen(f"{handle.base_url}/health", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def test_service_start_up_fails_fast_on_a_bad_url(tmp_path: Path) -> None:
    """The service stops before serving anything: a SinkError, not a silent spool."""
    config = service_config(tmp_path, influx_config(f"http://127.0.0.1:{free_port()}"))

    def make() -> tuple[PacketSource, list[SensorRef], list[Stage]]:
        return IdleSource(), leg_refs(["ana"], ("right",)), []

    with (
        pytest.raises(SinkError, match="cannot reach InfluxDB"),
        serve_in_thread(config, make, port=0, store_path=tmp_path / "h.sqlite3"),
    ):
        pass


def test_spool_keeps_order_across_segments_and_restarts_and_drops_a_torn_record(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=64).open()
    for i in range(10):
        spool.append(f"m v={i}i {i}\n".encode() * 3)  # 3 lines a batch; a segment closes past 64 bytes
    assert spool.n_segments > 2
    reopened = Spool(tmp_path).open()  # a restart: the previous run's segments, oldest first
    reopened.append(b"m v=10i 10\n")
    with (tmp_path / f"{int(sorted(tmp_path.glob('*.lp'))[-1].stem):016d}.lp").open("ab") as fh:
        fh.write(b"m v=11i")  # a crash mid-append: no newline
    seen: list[bytes] = []
    while (segment := reopened.take_oldest()) is not None:
        seen += reopened.read(segment)
        reopened.remove(segment)
    assert seen == [f"m v={i}i {i}".encode() for i in range(10) for _ in range(3)] + [b"m v=10i 10"]
    assert reopened.torn_records == 1 and reopened.empty and not list(tmp_path.glob("*.lp"))


async def test_a_sink_cancelled_mid_conversion_still_writes_what_it_took(tmp_path: Path) -> None:
    """A loop turn large enough to convert in a worker thread (OFFLOAD_ROWS), the sink cancelled while the
    thread runs: the shutdown waits for those lines and writes them with the rest."""
    received: list[bytes] = []

    async def write(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    n_chunks = OFFLOAD_ROWS // CHUNK + 100  # every sample kept (angles_rate_hz above the data rate)
    async with write_endpoint(write) as port:
        bus = Bus()
        sink = InfluxSink(
            influx_config(f"http://127.0.0.1:{port}", angles_rate_hz=2 * RATE_HZ, batch_size=1_000_000),
            tmp_path / "s",
        )
        async with sink:
            task = asyncio.create_task(sink.run(bus))
            await asyncio.sleep(0)
            for j in range(n_chunks):
                bus.publish("angles", "ana/right", angles_chunk("ana/right", j))
            for _ in range(5):
                await asyncio.sleep(0)  # the consumer takes every message and hands them to the thread
            assert not sink.idle and sink.stats.points_written == 0
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert sink.stats.points_written == n_chunks * CHUNK
    assert sum(body.count(b"\n") for body in received) == n_chunks * CHUNK
