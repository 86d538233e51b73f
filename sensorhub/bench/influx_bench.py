"""``influx_bench``: InfluxDB sink throughput in points/s against a local VictoriaMetrics (started here on a
free loopback port, Debian package ``victoria-metrics``) or any server given by ``--url``.

Phases, each on N knee-angle points (every sample kept: ``angles_rate_hz`` above the data rate):
line protocol only (conversion cost), bus -> sink -> server (end to end), the same with the server
stopped (into the fsync'd disk spool), and the spool's write-back when the server returns (launched
server only). Every point is then counted on the server (``count_over_time`` back to the data). Each
phase prints the CPU time per point of this process (bus, sink, client) and of the launched server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sensorhub.bench.services import VictoriaMetrics
from sensorhub.bus import Bus
from sensorhub.config import InfluxConfig
from sensorhub.errors import SensorhubError
from sensorhub.model import KneeAngles
from sensorhub.sinks import InfluxSink, KneeAngleLines
from sensorhub.sinks.influx_schema import warm_up
from sensorhub.timing import Decimator

T0_S = 1_767_225_600.0  # 2026-01-01: synthetic data time
RATE_HZ = 200.0
CHUNK = 100  # samples per published angles message
TURN = 50  # messages published per loop turn
WAIT_S = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=200_000, help="points per phase")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--legs", type=int, default=8)
    parser.add_argument(
        "--url", default="", help="an existing server (no outage phases); default: launch one"
    )


def _chunks(n_points: int, n_legs: int, first: int) -> list[KneeAngles]:
    out = []
    for j in range(n_points // CHUNK):
        t_s = T0_S + ((first + j // n_legs) * CHUNK + np.arange(CHUNK)) / RATE_HZ
        out.append(
            KneeAngles(
                f"bench{j % n_legs}/right",
                t_s,
                np.radians(40.0 + 10.0 * np.sin(t_s)),
                np.radians(3.0 + np.cos(t_s)),
                np.radians(np.full(CHUNK, -1.5)),
                np.zeros(CHUNK, dtype=np.uint8),
            )
        )
    return out


def _count_on_server(url: str, expected: int) -> int:
    days = int((time.time() - T0_S) // 86400) + 2  # a window back to the data (VictoriaMetrics refuses 100y)
    query = urllib.parse.urlencode({"query": f"sum(count_over_time(knee_angles_flexion_deg[{days}d]))"})
    deadline = time.monotonic() + 30.0
    n = 0
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10):
            pass
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=30) as resp:
            result = json.loads(resp.read())["data"]["result"]
        n = int(float(result[0]["value"][1])) if result else 0
        if n >= expected:
            break
        time.sleep(0.5)
    return n


async def _until(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not cond():
        if time.monotonic() > deadline:
            raise SensorhubError(f"bench influx: the sink did not finish within {WAIT_S} s")
        await asyncio.sleep(0.005)


async def _publish(bus: Bus, chunks: list[KneeAngles]) -> None:
    for i, chunk in enumerate(chunks):
        bus.publish("angles", chunk.leg_id, chunk)
        if i % TURN == TURN - 1:
            await asyncio.sleep(0)  # let the sink consume; the bus mailbox is bounded


Row = tuple[str, int, float, float, float]  # phase, points, wall s, this process's CPU s, the server's CPU s


class _Clock:
    """Wall time and the CPU time of this process (bus, sink, client) and of the launched server."""

    def __init__(self, server: VictoriaMetrics | None) -> None:
        self.server = server
        self._start = self._now()

    def _now(self) -> tuple[float, float, float]:
        server_s = self.server.cpu_s() if self.server is not None else 0.0
        return time.perf_counter(), time.process_time(), server_s

    def row(self, name: str, points: int) -> Row:
        wall_s, cpu_s, server_s = (b - a for a, b in zip(self._start, self._now(), strict=True))
        return name, points, wall_s, cpu_s, server_s


async def _run(args: argparse.Namespace, url: str, server: VictoriaMetrics | None) -> list[Row]:
    rows: list[Row] = []
    n = args.points - args.points % CHUNK
    chunks = _chunks(n, args.legs, 0)

    warm_up()
    to_lines = KneeAngleLines()
    decimator = Decimator(2 * RATE_HZ)
    clock = _Clock(None)
    lines = 0
    for i in range(0, len(chunks), TURN):  # as the sink converts: every block of a loop turn at once
        blocks = [(c, decimator.keep(c.leg_id, c.t_s), {"athlete": "b"}) for c in chunks[i : i + TURN]]
        lines += len(to_lines(blocks))
    rows.append(clock.row("line protocol only (no I/O)", lines))

    config = InfluxConfig(
        enabled=True, url=url, batch_size=args.batch_size, angles_rate_hz=2 * RATE_HZ, status_interval_s=0.0
    )
    bus = Bus()
    with tempfile.TemporaryDirectory(prefix="sensorhub-influx-spool-") as spool:
        async with InfluxSink(config, Path(spool)) as sink:
            task = asyncio.create_task(sink.run(bus))
            await asyncio.sleep(0)
            clock = _Clock(server)
            await _publish(bus, chunks)
            await _until(lambda: sink.idle)
            rows.append(clock.row("bus -> sink -> server", sink.stats.points_written))
            if server is not None:
                await asyncio.to_thread(server.stop)
                later = _chunks(n, args.legs, n // CHUNK)
                clock = _Clock(None)
                await _publish(bus, later)
                await _until(lambda: sink.stats.points_spooled >= n)
                rows.append(clock.row("server down: into the disk spool", sink.stats.points_spooled))
                await asyncio.to_thread(server.start)
                written = sink.stats.points_written
                clock = _Clock(server)
                await _until(lambda: sink.idle)
                rows.append(clock.row("spool write-back", sink.stats.points_written - written))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if sink.stats_dict()["bus_dropped"] or sink.stats.points_dropped:
            raise SensorhubError(f"bench influx: points lost ({sink.stats_dict()})")
    return rows


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        server = None if args.url else stack.enter_context(VictoriaMetrics())
        url = args.url or (server.url if server is not None else "")
        rows = asyncio.run(_run(args, url, server))
        expected = rows[1][1] + (rows[2][1] if server is not None else 0)
        arrived = _count_on_server(url, expected) if server is not None else -1
    print(f"InfluxDB sink -> {'VictoriaMetrics (launched)' if server else args.url}, batch {args.batch_size}")
    print("phase                                   points        s    points/s   CPU us/point: sink  server")
    for name, points, wall_s, cpu_s, server_cpu_s in rows:
        server_us = f"{server_cpu_s / points * 1e6:7.2f}" if server_cpu_s else "      -"
        print(
            f"{name:<36} {points:>9d} {wall_s:>8.2f} {points / wall_s:>11,.0f}"
            f"                {cpu_s / points * 1e6:5.2f} {server_us}"
        )
    if arrived >= 0:
        print(f"counted on the server: {arrived} of {expected} points")
    return 0 if arrived in (-1, expected) else 1
