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
import multiprocessing
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sensorhub.config import Config, load_config
from sensorhub.errors import ConfigError, SourceError
from sensorhub.model import RawPacket, Segment, SensorRef, Side
from sensorhub.rehab.session import SessionError
from sensorhub.runtime.pipeline import LatencyRecorder
from sensorhub.runtime.service import ServiceHandle, Stage, serve, serve_in_thread
from sensorhub.sources.base import LinkState, PacketQueue, PacketSource, SensorLink

log = logging.getLogger(__name__)

WARMUP_S = 12.0  # > quiet standing + the first squats the knee calibration needs (angles from ~11 s)
REPS_PER_DRILL = 5
MAX_DISTINCT_MOTIONS = 2  # building a motion costs ~0.6 s: more athletes share motions (own sensors)
# Simulation step and device look-ahead: arrival times stay exact; coarser steps halve the simulator's CPU.
SIM_STEP_S = 0.05
SIM_PREFETCH_S = 2.0
SIM_LEAD_S = 0.3  # the simulation thread computes packets this far ahead of their arrival time
RELEASE_TICK_S = 0.004  # packets are released to the pipeline in ticks (BLE connection intervals are 7.5+ ms)
LATE_S = 0.05  # a packet released later than this after its arrival time is warm-up catch-up
MAX_RELEASE_PER_TICK = 4000  # keep the loop responsive while the warm-up floods in
IN_THREAD_MAX_ATHLETES = 4  # more athletes: the simulator runs in a worker process
STANDING_S = 3.0
SET_MARGIN_S = 1.0  # an automatic set opens this long before a drill block and closes after it


_Arrival = tuple[float, str, float, bytes]  # wall-clock arrival, sensor id, host stamp, payload


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


@dataclass(frozen=True, slots=True)
class SimSpec:
    """Everything needed to rebuild the same simulated athletes anywhere (thread or worker process)."""

    athletes: int
    drills: tuple[str, ...]
    fault_rate: float
    errors: str
    seed: int
    rate_hz: int
    acc_range_g: int
    gyr_range_dps: int
    samples_per_packet: int

    @classmethod
    def from_config(cls, config: Config, athletes: int) -> SimSpec:
        sim, stream = config.simulator, config.stream
        return cls(
            athletes,
            tuple(sim.drills),
            sim.fault_rate,
            sim.errors,
            sim.seed,
            stream.rate_hz,
            stream.acc_range_g,
            stream.gyr_range_dps,
            stream.samples_per_packet,
        )

    def build(self) -> list[Any]:
        """The simulated athletes (``firmware_sim.athletes.SimulatedAthlete``), deterministic."""
        from firmware_sim.athletes import SimulatedAthlete
        from firmware_sim.body import session

        faults = {
            "valgus": self.fault_rate,
            "stiff_landing": self.fault_rate,
            "fast_eccentric": self.fault_rate,
        }
        plan = [(drill, REPS_PER_DRILL) for drill in self.drills]
        motions = [
            session(
                plan=plan, sides=("right", "left"), seed=self.seed + k, faults=faults, standing_s=STANDING_S
            )
            for k in range(min(self.athletes, MAX_DISTINCT_MOTIONS))
        ]
        return [
            SimulatedAthlete(
                f"athlete{i + 1}", motions[i % len(motions)], errors=self.errors, seed=self.seed + i
            )
            for i in range(self.athletes)
        ]


def simulate_laps(
    spec: SimSpec,
    athletes: list[Any],
    first_epoch_s: float,
    should_stop: Callable[[float], bool],
    emit: Callable[[str, Any], None],
) -> None:
    """Laps of simulated sessions, computed at most ``SIM_LEAD_S`` ahead of the wall clock.
    ``emit(kind, data)``: ``("lap", epoch_s)``, ``("packets", [_Arrival, ...])`` per step,
    ``("battery", {sensor_id: pct})``. ``should_stop(wait_s)`` waits up to ``wait_s``, True to stop."""
    from firmware_sim.device import StreamSettings
    from firmware_sim.transports.inprocess import SimSession

    settings = StreamSettings(
        rate_hz=spec.rate_hz,
        acc_range_g=spec.acc_range_g,
        gyr_range_dps=spec.gyr_range_dps,
        samples_per_packet=spec.samples_per_packet,
    )
    lap = 0
    epoch_s = first_epoch_s
    while not should_stop(0.0):
        emit("lap", epoch_s)
        session = SimSession(
            athletes,
            settings=settings,
            seed=spec.seed + lap,
            host_epoch_s=epoch_s,
            step_s=SIM_STEP_S,
            prefetch_s=SIM_PREFETCH_S,
        )
        t_sim_s = 0.0
        next_battery_s = 0.0
        while not session.finished:
            ahead_s = epoch_s + t_sim_s - time.time()
            if ahead_s > SIM_LEAD_S:
                if should_stop(ahead_s - SIM_LEAD_S):
                    return
                continue
            t_sim_s += session.step_s
            arrivals = [
                (epoch_s + d.t_arrive_true_s, d.packet.sensor_id, d.t_host_s, d.packet.payload)
                for d in session.step_until(t_sim_s)
            ]
            if arrivals:
                emit("packets", arrivals)
            if t_sim_s >= next_battery_s:
                next_battery_s = t_sim_s + 10.0
                emit("battery", {sid: dev.battery_pct(t_sim_s) for sid, dev in session.devices.items()})
        lap += 1
        epoch_s += t_sim_s  # the next lap follows on without a gap


def _worker_main(spec: SimSpec, first_epoch_s: float, conn: Connection) -> None:
    """Worker process: the simulator apart from the service, as real sensors are (own CPU, own GIL)."""

    def should_stop(wait_s: float) -> bool:
        return bool(conn.poll(wait_s))  # any message from the service means stop

    def emit(kind: str, data: Any) -> None:
        conn.send((kind, data))

    try:
        simulate_laps(spec, spec.build(), first_epoch_s, should_stop, emit)
    except (BrokenPipeError, EOFError):
        return  # the service went away
    except Exception as exc:  # reported to the service, which raises SourceError
        conn.send(("error", repr(exc)))


class SimulatorSource:
    """A ``PacketSource`` looping simulated sessions in real time (after the warm-up catch-up).

    Up to ``IN_THREAD_MAX_ATHLETES`` athletes are simulated in a thread of this process (fast start);
    more in a worker process, so the simulator's CPU does not compete with ingestion for the GIL."""

    def __init__(
        self, config: Config, athletes: int, warmup_s: float = WARMUP_S, worker: bool | None = None
    ) -> None:
        from firmware_sim.body import DRILLS

        unknown = [d for d in config.simulator.drills if d not in DRILLS]
        if unknown:
            raise ConfigError(
                f"{config.source_file}: simulator.drills: unknown drill {unknown[0]!r}; "
                f"allowed: {', '.join(DRILLS)}"
            )
        self.spec = SimSpec.from_config(config, athletes)
        self.worker = athletes > IN_THREAD_MAX_ATHLETES if worker is None else worker
        self.athletes = self.spec.build()
        self.blocks = {a.name: drill_blocks(a.motion.events) for a in self.athletes}
        self.warmup_s = warmup_s
        self.sensors = [
            SensorRef(s.sensor_id, a.name, Side(s.side), Segment(s.segment))
            for a in self.athletes
            for s in a.sensors
        ]
        self._links = {s.sensor_id: SensorLink(s.sensor_id) for s in self.sensors}
        self.lap_epochs_s: list[float] = []  # wall-clock time of simulated t = 0 of each lap
        self.live = asyncio.Event()  # set once the warm-up is caught up and packets come in real time
        self._error: str | None = None

    def links(self) -> dict[str, SensorLink]:
        return self._links

    def _on_sim(self, ready: deque[_Arrival]) -> Callable[[str, Any], None]:
        def emit(kind: str, data: Any) -> None:
            if kind == "packets":
                ready.extend(data)
            elif kind == "lap":
                self.lap_epochs_s.append(float(data))
            elif kind == "battery":
                for sensor_id, pct in data.items():
                    self._links[sensor_id].battery_pct = pct
            elif kind == "error":
                self._error = str(data)

        return emit

    def _feed(self, first_epoch_s: float, stop: threading.Event, ready: deque[_Arrival]) -> None:
        """Thread: runs the simulation here, or relays a worker process's packets."""
        emit = self._on_sim(ready)
        try:
            if not self.worker:
                simulate_laps(self.spec, self.athletes, first_epoch_s, stop.wait, emit)
                return
            ctx = multiprocessing.get_context("spawn")
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(self.spec, first_epoch_s, theirs),
                name="firmware-sim-worker",
                daemon=True,
            )
            proc.start()
            theirs.close()
            try:
                while not stop.is_set():
                    if ours.poll(0.05):
                        emit(*ours.recv())
            finally:
                with contextlib.suppress(BrokenPipeError, OSError):
                    ours.send("stop")
                proc.join(5.0)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(5.0)
                ours.close()
        except (EOFError, OSError) as exc:
            if not stop.is_set():
                self._error = f"the simulator worker ended: {exc!r}"
        except Exception as exc:  # handed to run() on the loop, which raises SourceError
            self._error = repr(exc)

    async def run(self, out: PacketQueue) -> None:
        for link in self._links.values():
            link.set_state(LinkState.STREAMING)
        stop = threading.Event()
        ready: deque[_Arrival] = deque()
        thread = threading.Thread(
            target=self._feed,
            args=(time.time() - self.warmup_s, stop, ready),
            name="firmware-sim",
            daemon=True,
        )
        thread.start()
        try:
            while True:
                if self._error is not None:
                    raise SourceError(f"the simulator failed: {self._error}")
                now_s = time.time()
                released = 0
                while ready and ready[0][0] <= now_s and released < MAX_RELEASE_PER_TICK:
                    t_release_s, sensor_id, t_host_s, payload = ready.popleft()
                    if t_release_s < now_s - LATE_S:
                        stamp_s = (
                            t_host_s  # warm-up catch-up: it arrived in the past, at its simulated host time
                        )
                    else:
                        stamp_s = now_s  # stamped at reception, as a BLE source does
                        self.live.set()
                    self._links[sensor_id].last_packet_host_s = stamp_s
                    out.put_nowait(RawPacket(sensor_id, stamp_s, payload))
                    released += 1
                await asyncio.sleep(0.0 if released >= MAX_RELEASE_PER_TICK else RELEASE_TICK_S)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 10.0)
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
        while len(handle.runner.queue):  # the catch-up backlog is still being processed
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        handle.runner.stats.packet_to_angle = LatencyRecorder()
        handle.pipeline.latency_by_sensor.reset()

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
