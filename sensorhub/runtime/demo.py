"""``sensorhub demo``: simulated athletes (firmware_sim) through the real pipeline, with the dashboard.

Composition only: firmware_sim is imported lazily here, never by the pipeline. Each simulated athlete
loops a plan of drills with occasional faults; every lap is a fresh sensor session (the sensors
restart, as after a power cycle). The first lap starts ``WARMUP_S`` in the past, so the calibration
(quiet standing + the first knee bends) is already behind when the page opens: those packets carry
their true (past) receive times and are processed at once, then the stream runs in real time.
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
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorhub.config import Config, load_config
from sensorhub.errors import ConfigError
from sensorhub.model import RawPacket, Segment, SensorRef, Side
from sensorhub.runtime.pipeline import LatencyRecorder
from sensorhub.runtime.service import ServiceHandle, Stage, serve, serve_in_thread
from sensorhub.sources.base import LinkState, PacketQueue, PacketSource, SensorLink
from sensorhub.web.health import PER_SENSOR_LATENCY_SAMPLES
from sensorhub.web.session import SessionError

log = logging.getLogger(__name__)

WARMUP_S = 12.0  # > quiet standing + the first squats the knee calibration needs (angles from ~11 s)
REPS_PER_DRILL = 5
MAX_DISTINCT_MOTIONS = 2  # building a motion costs ~0.6 s: more athletes share motions (own sensors)
# Simulation step and device look-ahead: arrival times stay exact; coarser steps halve the simulator's CPU.
SIM_STEP_S = 0.05
SIM_PREFETCH_S = 2.0
STANDING_S = 3.0
SET_MARGIN_S = 1.0  # an automatic set opens this long before a drill block and closes after it


@dataclass(frozen=True, slots=True)
class DrillBlock:
    drill: str
    start_s: float  # simulated time from the start of a lap
    end_s: float


def drill_blocks(events: Sequence[dict[str, Any]]) -> list[DrillBlock]:
    """Consecutive runs of one drill in a motion's ground-truth events."""
    blocks: list[DrillBlock] = []
    for e in sorted(events, key=lambda e: float(e["t_s"])):
        drill = str(e.get("drill", ""))
        start = float(e["t_s"])
        end = float(e.get("t_end_s", e.get("t_stable_s", start + 1.0)) or start + 1.0)
        if blocks and blocks[-1].drill == drill and start - blocks[-1].end_s < 4.0:
            blocks[-1] = DrillBlock(drill, blocks[-1].start_s, max(end, blocks[-1].end_s))
        else:
            blocks.append(DrillBlock(drill, start, end))
    return blocks


class SimulatorSource:
    """A ``PacketSource`` looping simulated sessions in real time (after the warm-up catch-up)."""

    def __init__(self, config: Config, athletes: int, warmup_s: float = WARMUP_S) -> None:
        from firmware_sim.athletes import SimulatedAthlete
        from firmware_sim.body import DRILLS, session
        from firmware_sim.device import StreamSettings

        sim = config.simulator
        unknown = [d for d in sim.drills if d not in DRILLS]
        if unknown:
            raise ConfigError(
                f"{config.source_file}: simulator.drills: unknown drill {unknown[0]!r}; "
                f"allowed: {', '.join(DRILLS)}"
            )
        faults = {"valgus": sim.fault_rate, "stiff_landing": sim.fault_rate, "fast_eccentric": sim.fault_rate}
        plan = [(drill, REPS_PER_DRILL) for drill in sim.drills]
        motions = [
            session(
                plan=plan, sides=("right", "left"), seed=sim.seed + k, faults=faults, standing_s=STANDING_S
            )
            for k in range(min(athletes, MAX_DISTINCT_MOTIONS))
        ]
        self.athletes = [
            SimulatedAthlete(
                f"athlete{i + 1}", motions[i % len(motions)], errors=sim.errors, seed=sim.seed + i
            )
            for i in range(athletes)
        ]
        self.blocks = {a.name: drill_blocks(a.motion.events) for a in self.athletes}
        self.settings = StreamSettings(
            rate_hz=config.stream.rate_hz,
            acc_range_g=config.stream.acc_range_g,
            gyr_range_dps=config.stream.gyr_range_dps,
            samples_per_packet=config.stream.samples_per_packet,
        )
        self.seed = sim.seed
        self.warmup_s = warmup_s
        self.sensors = [
            SensorRef(s.sensor_id, a.name, Side(s.side), Segment(s.segment))
            for a in self.athletes
            for s in a.sensors
        ]
        self._links = {s.sensor_id: SensorLink(s.sensor_id) for s in self.sensors}
        self.lap_epochs_s: list[float] = []  # wall-clock time of simulated t = 0 of each lap
        self.live = asyncio.Event()  # set once the warm-up is caught up and packets come in real time

    def links(self) -> dict[str, SensorLink]:
        return self._links

    async def _lap(self, lap: int, epoch_s: float) -> AsyncIterator[RawPacket]:
        from firmware_sim.transports.inprocess import SimSession

        session = SimSession(
            self.athletes,
            settings=self.settings,
            seed=self.seed + lap,
            host_epoch_s=epoch_s,
            step_s=SIM_STEP_S,
            prefetch_s=SIM_PREFETCH_S,
        )
        loop = asyncio.get_running_loop()
        # Loop clock of simulated t = 0 (time.time() and loop.time() differ by a constant).
        t_loop0 = loop.time() - (time.time() - epoch_s)
        t_sim_s = 0.0
        next_battery_s = 0.0
        while not session.finished:
            t_sim_s += session.step_s
            for delivery in session.step_until(t_sim_s):
                wait_s = t_loop0 + delivery.t_arrive_true_s - loop.time()
                if wait_s > 0.0:
                    await asyncio.sleep(wait_s)
                    self.live.set()
                    yield RawPacket(delivery.packet.sensor_id, time.time(), delivery.packet.payload)
                else:
                    # Catching up (warm-up): the packet arrived in the past, at its simulated host time.
                    yield RawPacket(delivery.packet.sensor_id, delivery.t_host_s, delivery.packet.payload)
            if t_sim_s >= next_battery_s:
                next_battery_s = t_sim_s + 10.0
                for sensor_id, device in session.devices.items():
                    self._links[sensor_id].battery_pct = device.battery_pct(t_sim_s)
            wait_s = t_loop0 + t_sim_s - loop.time()
            # Always yield to the loop, also while catching up, so the pipeline and the web stay served.
            await asyncio.sleep(max(wait_s, 0.0))

    async def run(self, out: PacketQueue) -> None:
        for link in self._links.values():
            link.set_state(LinkState.STREAMING)
        lap = 0
        epoch_s = time.time() - self.warmup_s
        try:
            while True:
                self.lap_epochs_s.append(epoch_s)
                async for packet in self._lap(lap, epoch_s):
                    link = self._links[packet.sensor_id]
                    link.last_packet_host_s = packet.t_host_s
                    out.put_nowait(packet)
                lap += 1
                epoch_s = time.time()
        finally:
            for link in self._links.values():
                link.set_state(LinkState.IDLE)


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
        handle.runner.stats.packet_to_angle = LatencyRecorder()
        for sensor_id in handle.pipeline.latency_by_sensor:
            handle.pipeline.latency_by_sensor[sensor_id] = LatencyRecorder(PER_SENSOR_LATENCY_SAMPLES)

    return reset


def _print_urls(handle: ServiceHandle, t0_s: float, athletes: int) -> None:
    urls = handle.urls()
    print(f"sensorhub demo: {athletes} simulated athlete(s), dashboard ready in {time.time() - t0_s:.1f} s")
    for name, url in urls.items():
        print(f"  {name:<18} {url}")
    if handle.policy.required:
        print("  access token required (non-loopback bind): keep these links private")
    print("Ctrl-C stops (ordered shutdown).", flush=True)


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
