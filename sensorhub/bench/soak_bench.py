"""``sensorhub bench soak``: the whole service for a long run at a steady load, watched for slow leaks.

200 simulated sensors (50 athletes x 4, the demo's ``SimulatorSource``) through ``serve`` with every sink
on (recorder and history in a temp data_dir, the MQTT sink on a bench-started Mosquitto, the InfluxDB sink
on a bench-started VictoriaMetrics) and dashboard websocket clients connected throughout (in a second
process, as browsers would be). Every row period (a minute) one row: RSS, open file descriptors, threads
of the service's process, the depth of every queue the service keeps, packet -> angle p50/p99 over the
period (LiveRunner's own measures, the loop's and the calibration worker's outputs together), angle
frames each client got and events so far. At the end: the RSS slope after warm-up (least squares), p99
and queue depths of the first third against the last, a verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import re
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from sensorhub.bench.dashboard_bench import angle_frame_client, client_urls
from sensorhub.bench.fault_ledger import Row, poll_health
from sensorhub.bench.services import Mosquitto, VictoriaMetrics
from sensorhub.config import BrokerConfig, Config, InfluxConfig, MqttConfig, SinksConfig, load_config
from sensorhub.demo.command import auto_sets
from sensorhub.demo.simulator import SimulatorSource
from sensorhub.runtime import LatencyRecorder, ServiceHandle, Stage, serve
from sensorhub.web import FRAME_PERIOD_S

SENSORS_PER_ATHLETE = 4
PACKETS_PER_SENSOR_S = 25  # 200 Hz, 8 samples a packet
CLIENT_REPORT_S = 1.0  # how often the client process reports its frame counts
# A queue grows when its deepest in the last third is past twice its deepest in the first third plus this:
# depths near zero jitter by a few hundred (a turn's batch, a frame period's fan-out).
QUEUE_SLACK = 100
LIVE_TIMEOUT_S = 240.0
DRAIN_TIMEOUT_S = 30.0
QUEUES = ("source", "offload", "bus", "hub", "recorder", "history", "influx", "spool_kB", "mqtt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=60.0, help="how long the soak runs")
    parser.add_argument("--sensors", type=int, default=200, help="simulated sensors (4 an athlete)")
    parser.add_argument("--clients", type=int, default=20, help="dashboard websocket clients")
    parser.add_argument("--row-s", type=float, default=60.0, help="seconds per row")
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="N",
        help="trace allocations (slow): the N lines whose memory grew most, first row to last",
    )
    parser.add_argument(
        "--warmup-min", type=float, default=2.0, help="minutes left out of trends (at least 10 %% of the run)"
    )


# ---- one row --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    minute: float  # since the stream went live
    rss_mb: float
    fds: int
    threads: int
    queues: dict[str, int]
    p50_ms: float
    p99_ms: float
    frames_min: int  # angle frames a client got in this row (least and most served client)
    frames_max: int
    clients: int  # still connected
    events: int  # since the start


def _proc_status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def _process_figures() -> tuple[float, int, int]:
    """RSS (MB), open file descriptors and threads (native ones too) of this process."""
    return _proc_status("VmRSS") * 1024 / 1e6, len(os.listdir("/proc/self/fd")), _proc_status("Threads")


def queue_depths(handle: ServiceHandle) -> dict[str, int]:
    """Every queue the service keeps, at its deepest: the source's packet queue, the calibration worker's
    chunks and outputs, the deepest bus mailbox,
    the deepest dashboard client's outbox, the recorder's and history writer's queues, the InfluxDB sink's
    batches (queued or in flight) and its disk spool, the MQTT sink's outbox."""
    sinks = {name: stats() for name, stats in handle.sink_stats.items()}
    influx = sinks.get("influxdb", {})
    return {
        "source": len(handle.runner.queue),
        "offload": handle.runner.offload.depth() if handle.runner.offload is not None else 0,
        "bus": max((len(s) for s in handle.bus.subscriptions), default=0),
        "hub": max((len(c) for c in handle.hub.clients), default=0),
        "recorder": int(sinks.get("recorder", {}).get("queued", 0)),
        "history": int(sinks.get("history", {}).get("queued", 0)),
        "influx": int(influx.get("batches_queued", 0)),
        "spool_kB": int(influx.get("spool_bytes", 0)) // 1000,
        "mqtt": int(sinks.get("mqtt", {}).get("outbox", 0)),
    }


HEADER = (
    f"{'min':>5} {'RSS_MB':>7} {'fds':>4} {'thr':>4} "
    + " ".join(f"{q:>8}" for q in QUEUES)
    + f" {'p50_ms':>7} {'p99_ms':>7} {'frames/client':>13} {'clients':>7} {'events':>7}"
)


def format_sample(s: Sample) -> str:
    return (
        f"{s.minute:5.1f} {s.rss_mb:7.1f} {s.fds:4d} {s.threads:4d} "
        + " ".join(f"{s.queues[q]:8d}" for q in QUEUES)
        + f" {s.p50_ms:7.2f} {s.p99_ms:7.2f} {f'{s.frames_min}-{s.frames_max}':>13}"
        + f" {s.clients:7d} {s.events:7d}"
    )


# ---- the summary ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Summary:
    warmup_min: float
    used: int  # rows after the warm-up
    rss_slope_mb_per_10min: float
    p99_first_ms: float  # median of the per-row p99s in the first third of the rows after the warm-up
    p99_last_ms: float
    queue_first: dict[str, int] = field(default_factory=dict)  # deepest in the first third
    queue_last: dict[str, int] = field(default_factory=dict)

    @property
    def growing(self) -> list[str]:
        return [q for q in QUEUES if self.queue_last[q] > 2 * self.queue_first[q] + QUEUE_SLACK]

    def verdict(self) -> str:
        queues = "growing (" + ", ".join(self.growing) + ")" if self.growing else "flat"
        return (
            f"soak: RSS slope {self.rss_slope_mb_per_10min:.2f} MB/10 min, "
            f"p99 {self.p99_first_ms:.2f}->{self.p99_last_ms:.2f} ms, queues {queues}"
        )


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope; nan with fewer than two points."""
    if len(xs) < 2:
        return math.nan
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else math.nan


def _median(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def summarize(samples: Sequence[Sample], minutes: float, warmup_min: float) -> Summary:
    """Trends over the rows after the warm-up (the first 10 % of the run, at least ``warmup_min``)."""
    warm = max(0.1 * minutes, warmup_min)
    used = [s for s in samples if s.minute > warm] or list(samples[-2:])
    third = max(1, len(used) // 3)
    first, last = used[:third], used[-third:]
    return Summary(
        warmup_min=warm,
        used=len(used),
        rss_slope_mb_per_10min=10.0 * _slope([s.minute for s in used], [s.rss_mb for s in used]),
        p99_first_ms=_median([s.p99_ms for s in first]),
        p99_last_ms=_median([s.p99_ms for s in last]),
        queue_first={q: max(s.queues[q] for s in first) for q in QUEUES},
        queue_last={q: max(s.queues[q] for s in last) for q in QUEUES},
    )


def print_summary(summary: Summary, samples: Sequence[Sample], health: Row) -> None:
    used = [s for s in samples if s.minute > summary.warmup_min]
    if used:
        print(
            f"RSS after the warm-up ({summary.warmup_min:g} min, {summary.used} rows): "
            f"{used[0].rss_mb:.1f} -> {used[-1].rss_mb:.1f} MB, "
            f"slope {summary.rss_slope_mb_per_10min:.2f} MB per 10 min (least squares)"
        )
    print(
        f"packet -> angle p99 (median of the rows' p99), first third {summary.p99_first_ms:.2f} ms, "
        f"last third {summary.p99_last_ms:.2f} ms"
    )
    print(
        "deepest queue, first third -> last third: "
        + ", ".join(f"{q} {summary.queue_first[q]}->{summary.queue_last[q]}" for q in QUEUES)
    )
    print(
        f"serving: {health.health_ok} /health ok, {health.health_failed} failed, "
        f"longest gap {health.longest_gap_s:.2f} s"
    )
    print(summary.verdict(), flush=True)


# ---- the dashboard clients (another process) ------------------------------------------------------


async def _clients(urls: list[str], out: mp.Queue[tuple[list[int], int]], stop: MpEvent) -> None:
    frames = [0] * len(urls)
    done = asyncio.Event()
    tasks = [asyncio.create_task(angle_frame_client(u, frames, i, done)) for i, u in enumerate(urls)]
    while not stop.is_set():
        await asyncio.sleep(CLIENT_REPORT_S)
        out.put((list(frames), sum(not t.done() for t in tasks)))
    done.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def _client_process(urls: list[str], out: mp.Queue[tuple[list[int], int]], stop: MpEvent) -> None:
    asyncio.run(_clients(urls, out, stop))


class Dashboards:
    """``n`` websocket clients in a spawned process; ``latest()``: cumulative frames per client, connected."""

    def __init__(self, urls: list[str]) -> None:
        ctx = mp.get_context("spawn")
        self._out: mp.Queue[tuple[list[int], int]] = ctx.Queue()
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_client_process, args=(urls, self._out, self._stop), daemon=True)
        self._last: tuple[list[int], int] = ([0] * len(urls), 0)

    def start(self) -> None:
        self._proc.start()

    def latest(self) -> tuple[list[int], int]:
        with contextlib.suppress(Exception):  # queue.Empty
            while True:
                self._last = self._out.get_nowait()
        return self._last

    def stop(self) -> None:
        self._stop.set()
        self._proc.join(15.0)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5.0)


def _print_growth(first: tracemalloc.Snapshot, last: tracemalloc.Snapshot, n: int) -> None:
    print(f"tracemalloc: the {n} lines whose allocations grew most from the first row to the last")
    for stat in last.compare_to(first, "lineno")[:n]:
        print(f"  {stat.size_diff / 1e6:+8.2f} MB {stat.count_diff:+8d} blocks  {stat.traceback}")


# ---- the run --------------------------------------------------------------------------------------


def _soak_stage(
    args: argparse.Namespace, source: SimulatorSource, samples: list[Sample], health: Row, stop: asyncio.Event
) -> Stage:
    async def soak(handle: ServiceHandle) -> None:
        events = 0

        async def count_events() -> None:
            nonlocal events
            sub = handle.bus.subscribe(["events"], maxsize=10_000)
            try:
                async for _ in sub:
                    events += 1
            finally:
                sub.close()

        t_wait = time.monotonic()
        # The simulator catches up its warm-up (WARMUP_S in the past) until packets come in real time.
        while not source.live.is_set():
            if time.monotonic() - t_wait > LIVE_TIMEOUT_S:
                print(
                    f"NOT REAL TIME: the simulated stream still catches up after {LIVE_TIMEOUT_S:g} s (the "
                    "machine is too busy for this many sensors); the rows start anyway, their latency "
                    "includes the backlog",
                    flush=True,
                )
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(source.live.wait(), 10.0)
            print(
                f"  catching up: {handle.runner.stats.packets} packets processed, "
                f"queues {queue_depths(handle)}, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        drained = time.monotonic() + DRAIN_TIMEOUT_S
        while len(handle.runner.queue) and time.monotonic() < drained:  # the warm-up backlog
            await asyncio.sleep(0.05)
        live_s = time.monotonic() - t_wait
        print(f"stream live after {live_s:.0f} s; load {os.getloadavg()[0]:.2f}", flush=True)
        counter = asyncio.create_task(count_events())
        dashboards = Dashboards(client_urls(handle, args.clients))
        await asyncio.to_thread(dashboards.start)
        health_stop = asyncio.Event()
        poller = asyncio.create_task(poll_health(handle.base_url, health, health_stop))
        capacity = round(args.sensors * PACKETS_PER_SENSOR_S * args.row_s * 1.5)
        n_rows = max(1, round(args.minutes * 60.0 / args.row_s))
        print(HEADER, flush=True)
        t0 = time.monotonic()
        frames_before = [0] * args.clients
        stats = handle.runner.stats
        # One recorder for both paths: the loop's (tracking legs) and the calibration worker's (legs that
        # calibrate or still catch up; under overload every leg stays there, and the loop's alone is empty).
        stats.packet_to_angle = stats.calibrating_to_angle = LatencyRecorder(capacity)
        first: tracemalloc.Snapshot | None = None
        if args.tracemalloc:
            tracemalloc.start(1)
        try:
            for k in range(n_rows):
                await asyncio.sleep(max(0.0, t0 + (k + 1) * args.row_s - time.monotonic()))
                recorder = stats.packet_to_angle
                stats.packet_to_angle = stats.calibrating_to_angle = LatencyRecorder(capacity)
                latency = await asyncio.to_thread(recorder.percentiles_ms)
                del recorder
                frames, connected = dashboards.latest()
                got = [n - b for n, b in zip(frames, frames_before, strict=True)]
                frames_before = frames
                rss_mb, fds, threads = _process_figures()
                sample = Sample(
                    minute=(time.monotonic() - t0) / 60.0,
                    rss_mb=rss_mb,
                    fds=fds,
                    threads=threads,
                    queues=queue_depths(handle),
                    p50_ms=latency["p50_ms"],
                    p99_ms=latency["p99_ms"],
                    frames_min=min(got, default=0),
                    frames_max=max(got, default=0),
                    clients=connected,
                    events=events,
                )
                samples.append(sample)
                print(format_sample(sample), flush=True)
                if args.tracemalloc and first is None:
                    first = tracemalloc.take_snapshot()
            if first is not None:
                _print_growth(first, tracemalloc.take_snapshot(), args.tracemalloc)
        finally:
            tracemalloc.stop()
            health_stop.set()
            await poller
            await asyncio.to_thread(dashboards.stop)
            counter.cancel()
            stop.set()  # the ordered shutdown cancels this stage

    return soak


async def _soak(args: argparse.Namespace, base: Config) -> tuple[list[Sample], Row]:
    samples: list[Sample] = []
    health = Row("soak")
    with contextlib.ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sensorhub-soak-"))) / "data"
        data.mkdir()
        broker = stack.enter_context(Mosquitto())
        influx = stack.enter_context(VictoriaMetrics())
        config = replace(
            base,
            service=replace(base.service, data_dir=str(data), port=0),
            mqtt=BrokerConfig(port=broker.port, client_id="soak-bench"),
            sinks=SinksConfig(
                mqtt=MqttConfig(enabled=True), influxdb=InfluxConfig(enabled=True, url=influx.url)
            ),
        )
        source = SimulatorSource(config, max(1, args.sensors // SENSORS_PER_ATHLETE))
        stop = asyncio.Event()
        await serve(
            config,
            source,
            source.sensors,
            port=0,
            stop=stop,
            stages=[auto_sets(source), _soak_stage(args, source, samples, health, stop)],
        )
    return samples, health


def run(args: argparse.Namespace) -> int:
    athletes = max(1, args.sensors // SENSORS_PER_ATHLETE)
    print(
        f"soak: {athletes * SENSORS_PER_ATHLETE} simulated sensors ({athletes} athletes), {args.clients} "
        f"dashboard clients, sinks: recorder, history, InfluxDB (VictoriaMetrics), MQTT (Mosquitto); "
        f"{args.minutes:g} min, a row every {args.row_s:g} s ({round(args.row_s / FRAME_PERIOD_S)} hub "
        f"periods); load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    samples, health = asyncio.run(_soak(args, load_config(None)))
    print_summary(summarize(samples, args.minutes, args.warmup_min), samples, health)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def parse_verdict(line: str) -> dict[str, Any]:
    """The verdict line's figures (tests, scripts reading a soak log)."""
    m = re.fullmatch(
        r"soak: RSS slope (?P<slope>-?[\d.]+|nan) MB/10 min, p99 (?P<a>[\d.]+|nan)->(?P<b>[\d.]+|nan) ms, "
        r"queues (?P<queues>flat|growing \(.*\))",
        line.strip(),
    )
    if m is None:
        raise ValueError(f"not a soak verdict: {line!r}")
    return {
        "slope": float(m["slope"]),
        "p99_first_ms": float(m["a"]),
        "p99_last_ms": float(m["b"]),
        "queues": m["queues"],
    }
