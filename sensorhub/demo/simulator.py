"""The simulator adapter: firmware_sim's simulated athletes as packet sources for the real pipeline.

Outside the pipeline: only the faces (``sensorhub demo``, the CLI's ``run``/``record``/``gateway`` with
``[source] kind = "simulator"``, the benches and the tests) compose it with the runtime. Two sources:

- ``SimulatorSource``: ``sensorhub demo``'s. Each simulated athlete loops a plan of drills with
  occasional faults; every lap is a fresh sensor session (the sensors restart, as after a power cycle).
  The first lap starts ``WARMUP_S`` in the past, so the calibration (quiet standing + the first knee
  bends) is already behind when the page opens: those packets carry their true (past) receive times and
  are processed at once, then the stream runs in real time.
- ``simulated_source(config)``: the configured athletes (their sensor ids) over the in-process transport,
  for ``sensorhub run``/``record``/``gateway`` and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from sensorhub.config import Config, SimulatorConfig, StreamConfig
from sensorhub.errors import ConfigError, SourceError
from sensorhub.model import RawPacket, Segment, SensorRef, Side
from sensorhub.sources import IteratorSource, LinkState, PacketQueue, SensorLink, SourceSetup

if TYPE_CHECKING:
    from firmware_sim.device import StreamSettings

log = logging.getLogger(__name__)

WARMUP_S = 16.0  # > quiet standing + the three bends the knee calibration counts, each back down (angles
# from ~14 s)
REPS_PER_DRILL = 5
MAX_DISTINCT_MOTIONS = 2  # building a motion costs ~0.6 s: more athletes share motions (own sensors)
# Simulation step and device look-ahead: arrival times stay exact; coarser steps halve the simulator's CPU.
SIM_STEP_S = 0.05
SIM_PREFETCH_S = 2.0
SIM_LEAD_S = 0.3  # the simulation thread computes packets this far ahead of their arrival time
# Behind the wall clock (the warm-up), the simulation takes steps this long: the devices then compute
# each call's packets in one vectorised batch (the same packets, bit for bit; the warm-up in 2/3 the CPU).
CATCH_UP_STEP_S = 1.0
RELEASE_TICK_S = 0.004  # packets are released to the pipeline in ticks (BLE connection intervals are 7.5+ ms)
LATE_S = 0.05  # a packet released later than this after its arrival time is warm-up catch-up
MAX_RELEASE_PER_TICK = 4000  # keep the loop responsive while the warm-up floods in
IN_THREAD_MAX_ATHLETES = 4  # more athletes: the simulator runs in a worker process
STANDING_S = 3.0


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


def check_drills(config: Config) -> None:
    """``simulator.drills`` must be drills the body model has: a ConfigError naming the key otherwise."""
    from firmware_sim.body import DRILLS

    unknown = [d for d in config.simulator.drills if d not in DRILLS]
    if unknown:
        raise ConfigError(
            f"{config.source_file}: simulator.drills: unknown drill {unknown[0]!r}; "
            f"allowed: {', '.join(DRILLS)}"
        )


def drill_plan(drills: Sequence[str]) -> list[tuple[str, int]]:
    """The plan every simulated athlete loops: ``REPS_PER_DRILL`` of each drill, in order."""
    return [(drill, REPS_PER_DRILL) for drill in drills]


def fault_rates(rate: float) -> dict[str, float]:
    """Every fault the body model can show (valgus, stiff landing, fast eccentric), each at ``rate``."""
    from firmware_sim.body.drills import FAULTS

    return dict.fromkeys(FAULTS, rate)


def stream_settings(stream: StreamConfig) -> StreamSettings:
    """The configured ``[stream]`` as the simulated devices' ``StreamSettings``."""
    from firmware_sim.device import StreamSettings

    return StreamSettings(
        rate_hz=stream.rate_hz,
        acc_range_g=stream.acc_range_g,
        gyr_range_dps=stream.gyr_range_dps,
        samples_per_packet=stream.samples_per_packet,
    )


@dataclass(frozen=True, slots=True)
class SimSpec:
    """Everything needed to rebuild the same simulated athletes anywhere (thread or worker process)."""

    athletes: int
    simulator: SimulatorConfig
    stream: StreamConfig

    def build(self) -> list[Any]:
        """The simulated athletes (``firmware_sim.athletes.SimulatedAthlete``), deterministic."""
        from firmware_sim.athletes import SimulatedAthlete
        from firmware_sim.body import session

        sim = self.simulator
        faults = fault_rates(sim.fault_rate)
        plan = drill_plan(sim.drills)
        motions = [
            session(
                plan=plan, sides=("right", "left"), seed=sim.seed + k, faults=faults, standing_s=STANDING_S
            )
            for k in range(min(self.athletes, MAX_DISTINCT_MOTIONS))
        ]
        return [
            SimulatedAthlete(
                f"athlete{i + 1}", motions[i % len(motions)], errors=sim.errors, seed=sim.seed + i
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
    from firmware_sim.transports.inprocess import SimSession

    settings = stream_settings(spec.stream)
    lap = 0
    epoch_s = first_epoch_s
    while not should_stop(0.0):
        emit("lap", epoch_s)
        session = SimSession(
            athletes,
            settings=settings,
            seed=spec.simulator.seed + lap,
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
            t_sim_s += session.step_s if ahead_s > -CATCH_UP_STEP_S else CATCH_UP_STEP_S
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
        check_drills(config)
        self.spec = SimSpec(athletes, config.simulator, config.stream)
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


def simulated_source(config: Config, athletes: int | None = None, realtime: bool = True) -> SourceSetup:
    """Simulated athletes looping the configured drills with faults: the configured ``[[athletes]]``
    (their sensors) unless ``athletes`` is given, else ``athletes`` (default ``simulator.athletes``)
    athletes with both legs instrumented."""
    from firmware_sim.athletes import SimulatedAthlete
    from firmware_sim.body import session
    from firmware_sim.transports.inprocess import InProcessTransport

    check_drills(config)
    sim = config.simulator
    # The configured athletes when there are any (their ids, sides and sensor ids), else `athletes`
    # anonymous ones with both legs. The simulator names a sensor "{athlete}-{side}-{segment}".
    configured = [a for a in config.athletes if a.sensors] if athletes is None else []
    cast = [(a.id, tuple(sorted({s.side for s in a.sensors}))) for a in configured]
    rename = {f"{a.id}-{s.side}-{s.segment}": s.id for a in configured for s in a.sensors}
    if not configured:
        n = athletes if athletes is not None else sim.athletes
        cast = [(f"athlete{i + 1}", ("right", "left")) for i in range(n)]
    faults = fault_rates(sim.fault_rate)
    plan = drill_plan(sim.drills)
    sim_athletes = []
    for i, (name, sides) in enumerate(cast):
        motion = session(plan=plan, sides=sides, seed=sim.seed + i, faults=faults, min_duration_s=600.0)
        sim_athletes.append(SimulatedAthlete(name, motion, errors=sim.errors, seed=sim.seed + i))
    settings = stream_settings(config.stream)
    transport = InProcessTransport(sim_athletes, realtime=realtime, settings=settings, seed=sim.seed)
    refs = transport.sensor_refs()
    packets: AsyncIterator[RawPacket] = aiter(transport)
    identity = set(rename) == {r["sensor_id"] for r in refs} and all(k == v for k, v in rename.items())
    if rename and not identity:
        refs = [{**r, "sensor_id": rename[r["sensor_id"]]} for r in refs if r["sensor_id"] in rename]
        packets = _renamed(packets, rename)
    sensors = [SensorRef.from_meta(r) for r in refs]
    source = IteratorSource(packets, [s.sensor_id for s in sensors])
    meta: dict[str, object] = {"source": "simulator", "sensors": refs, "rate_hz": config.stream.rate_hz}
    return SourceSetup(source, sensors, {r["sensor_id"]: r["protocol"] for r in refs}, meta)


async def _renamed(packets: AsyncIterator[RawPacket], ids: dict[str, str]) -> AsyncIterator[RawPacket]:
    """Simulated sensor names -> the configured ids; sensors the configuration lacks are left out."""
    async for packet in packets:
        sensor_id = ids.get(packet.sensor_id)
        if sensor_id is not None:
            yield RawPacket(sensor_id, packet.t_host_s, packet.payload)
