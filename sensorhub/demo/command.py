"""``sensorhub demo``: simulated athletes (firmware_sim) through the real pipeline, with the dashboard.

The coach's sets follow the simulated plan (a set per drill block) unless the coach takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sensorhub.config import Config, load_config
from sensorhub.demo.simulator import SimulatorSource
from sensorhub.errors import ConfigError
from sensorhub.model import SensorRef
from sensorhub.rehab import SessionError
from sensorhub.runtime import LatencyRecorder, ServiceHandle, Stage, serve, serve_in_thread
from sensorhub.sources import PacketSource

log = logging.getLogger(__name__)

SET_MARGIN_S = 1.0  # an automatic set opens this long before a drill block and closes after it


def auto_sets(source: SimulatorSource) -> Stage:
    """A stage opening and closing a set around each simulated drill block; a set the coach opened by
    hand is left alone."""

    async def run_auto_sets(handle: ServiceHandle) -> None:
        opened: dict[str, tuple[float, float]] = {}  # athlete -> (lap epoch, block start) of its auto set
        done: set[tuple[str, float, float]] = set()
        while True:
            now_s = time.time()
            epoch_s = source.lap_epochs_s[-1] if source.lap_epochs_s else now_s
            t_lap_s = now_s - epoch_s
            for athlete, blocks in source.blocks.items():
                s = handle.sessions.athletes.get(athlete)
                if s is None:
                    continue
                current = next(
                    (b for b in blocks if b.start_s - SET_MARGIN_S <= t_lap_s <= b.end_s + SET_MARGIN_S), None
                )
                try:
                    if (
                        current is not None
                        and s.set_id is None
                        and (athlete, epoch_s, current.start_s) not in done
                    ):
                        handle.sessions.start_set(athlete, current.drill)
                        opened[athlete] = (epoch_s, current.start_s)
                        done.add((athlete, epoch_s, current.start_s))
                    elif current is None and s.set_id is not None and athlete in opened:
                        handle.sessions.stop_set(athlete)
                        del opened[athlete]
                    elif s.set_id is None:
                        opened.pop(athlete, None)  # the coach stopped it
                except SessionError as exc:
                    log.debug("auto set skipped for %s: %s", athlete, exc)
            await asyncio.sleep(0.25)

    return run_auto_sets


def reset_latency_after_warmup(source: SimulatorSource) -> Stage:
    """Warm-up packets carry past receive times (seconds old by design); latency statistics start once
    the stream runs in real time, so /health and the figures report live latency only."""

    async def reset(handle: ServiceHandle) -> None:
        await source.live.wait()
        while len(handle.runner.queue):  # the catch-up backlog is still being processed
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        handle.runner.stats.packet_to_angle = LatencyRecorder()
        handle.pipeline.latency_by_sensor.reset()

    return reset


def _print_urls(handle: ServiceHandle, t0_s: float, athletes: int) -> None:
    handle.print_urls(
        f"sensorhub demo: {athletes} simulated athlete(s), dashboard ready in {time.time() - t0_s:.1f} s"
    )


async def run_demo(
    config: Config,
    athletes: int,
    port: int,
    host: str | None = None,
    store_path: Path | None = None,
    stop: asyncio.Event | None = None,
    t0_s: float | None = None,
    quiet: bool = False,
) -> ServiceHandle:
    t0_s = time.time() if t0_s is None else t0_s
    source = SimulatorSource(config, athletes)
    stop = stop if stop is not None else asyncio.Event()

    def ready(handle: ServiceHandle) -> None:
        if not quiet:
            _print_urls(handle, t0_s, athletes)

    return await serve(
        config,
        source,
        source.sensors,
        host=host,
        port=port,
        store_path=store_path,
        drills=config.simulator.drills,
        stop=stop,
        on_ready=ready,
        stages=[auto_sets(source), reset_latency_after_warmup(source)],
    )


def demo_main(config_path: str | Path | None, athletes: int | None = None, port: int | None = None) -> int:
    t0_s = time.time()
    config = load_config(config_path)
    n = athletes if athletes is not None else config.simulator.athletes
    if not 1 <= n <= 2000:
        raise ConfigError(f"--athletes: {n} is out of range; allowed: 1 to 2000")
    chosen_port = port if port is not None else config.service.port

    async def main() -> ServiceHandle:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await run_demo(config, n, chosen_port, stop=stop, t0_s=t0_s)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    handle = asyncio.run(main())
    stats = handle.runner.stats
    p = stats.packet_to_angle.percentiles_ms((50.0, 99.0))
    p50, p99 = p["p50_ms"], p["p99_ms"]
    lat = f"p50 {p50:.2f} ms, p99 {p99:.2f} ms" if math.isfinite(p99) else "no angles yet"
    print(f"sensorhub demo: stopped cleanly; {stats.packets} packets, packet->angle {lat}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def background_demo(
    config: Config,
    athletes: int = 1,
    host: str = "127.0.0.1",
    port: int = 0,
    store_path: Path | None = None,
    timeout_s: float = 60.0,
) -> Iterator[ServiceHandle]:
    """The demo service on its own event loop in a thread (tests, notebooks); stopped in order on exit.
    Sets are left to the caller (no automatic sets)."""

    def make() -> tuple[PacketSource, list[SensorRef], list[Stage]]:
        source = SimulatorSource(config, athletes)
        return source, source.sensors, [reset_latency_after_warmup(source)]

    with serve_in_thread(config, make, host=host, port=port, store_path=store_path, timeout_s=timeout_s) as h:
        yield h
