"""``sensorhub bench capacity``: how many sensors one core carries, packet to dashboard frame.

Packets of 8 simulated athletes (32 sensors, 200 Hz, 8 samples per packet, typical BLE link) are
generated first (not timed) and replicated under other names to reach each step's sensor count. Each
step starts the real service (``serve``: source queue -> pipeline -> cues -> bus -> dashboard hub with
``--clients`` websocket clients in another process -> raw recorder and history), lets every leg
calibrate on a replay of the first ``--warm-s`` seconds (not measured), then releases ``--window-s``
seconds of packets in real time. Steps ramp up until packet -> angle p99 passes 10 ms or a queue drops.
The service's event loop is one thread: the capacity is per core. A table of each stage's cost per
packet (see ``stage_costs``) comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

import websockets

from sensorhub.bench.packets import PacedSource, PacketSet, generate
from sensorhub.bench.stage_costs import ORDER, stage_costs
from sensorhub.config import load_config
from sensorhub.model import SensorRef
from sensorhub.runtime import LatencyRecorder, ServiceHandle, Stage, serve_in_thread
from sensorhub.runtime.warmup import warmup
from sensorhub.web import WS_PATH

POOL_ATHLETES = 8  # 32 sensors, replicated
P99_LIMIT_MS = 10.0
PACKETS_PER_SENSOR_S = 200.0 / 8  # 200 Hz, 8 samples per packet


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", default="32,64,128,256,384,512,768,1024,1280,1536",
                        help="sensor counts to try, rounded to multiples of 32 (comma separated)")
    parser.add_argument("--clients", type=int, default=1, help="dashboard (coach) websocket clients")
    parser.add_argument("--window-s", type=float, default=10.0, help="measured real-time window per step")
    parser.add_argument("--warm-s", type=float, default=13.0,
                        help="recording seconds replayed first, not measured (every leg calibrates by 12 s)")
    parser.add_argument("--cost-sensors", type=int, default=128, help="sensors in the stage-cost replays")
    parser.add_argument("--seed", type=int, default=1)


@dataclass(frozen=True, slots=True)
class StepResult:
    sensors: int
    packets_s: float
    p50_ms: float
    p99_ms: float
    cue_p99_ms: float
    cpu_frac: float  # of the service loop's thread over the window
    queue_dropped: int
    frames_dropped: int

    @property
    def ok(self) -> bool:
        return self.p99_ms <= P99_LIMIT_MS and self.queue_dropped == 0 and self.frames_dropped == 0


async def _clients(url: str, n: int, stop: MpEvent) -> None:
    async def one() -> None:
        async with websockets.connect(url, max_size=None) as ws:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue

    await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)


def _client_process(url: str, n: int, stop: MpEvent) -> None:
    asyncio.run(_clients(url, n, stop))


def run_step(packet_set: PacketSet, warm_s: float, window_s: float, clients: int) -> StepResult:
    handles: list[ServiceHandle] = []

    def on_measure() -> None:
        runner = handles[0].runner
        runner.stats.packet_to_angle = LatencyRecorder()
        if runner.cues is not None:
            runner.cues.latency = LatencyRecorder()

    source = PacedSource(packet_set, measure_from_s=warm_s, window_s=window_s, on_measure=on_measure,
                         settled=lambda: bool(handles) and handles[0].runner.idle())

    async def capture(handle: ServiceHandle) -> None:
        handles.append(handle)
        if handle.runner.cues is not None:
            for athlete, drill in packet_set.drills.items():
                handle.runner.cues.set_drill(athlete, drill)

    def make() -> tuple[PacedSource, list[SensorRef], list[Stage]]:
        return source, packet_set.refs(), [capture]

    with tempfile.TemporaryDirectory(prefix="sensorhub-capacity-") as tmp:
        config = load_config(None, env={"SENSORHUB_SERVICE__DATA_DIR": tmp})
        with serve_in_thread(config, make, store_path=Path(tmp) / "history.sqlite3") as handle:
            ctx = mp.get_context("spawn")
            stop = ctx.Event()
            url = handle.base_url.replace("http", "ws", 1) + WS_PATH
            proc = ctx.Process(target=_client_process, args=(url, clients, stop)) if clients else None
            if proc is not None:
                proc.start()
            source.done.wait()
            stats = handle.runner.stats
            p2a = stats.packet_to_angle.percentiles_ms()
            cues = handle.runner.cues
            cue = cues.latency.percentiles_ms() if cues is not None else {"p99_ms": float("nan")}
            dropped_q, dropped_f = handle.runner.queue.dropped, handle.hub.dropped_frames()
            stop.set()
            if proc is not None:
                proc.join(10.0)
    shift_ms = source.delay_s * 1e3  # host stamps run delay_s behind the wall clock (see PacedSource)
    return StepResult(
        sensors=len(packet_set.sensors),
        packets_s=source.measured_packets / source.window_wall_s,
        p50_ms=p2a["p50_ms"] - shift_ms,
        p99_ms=p2a["p99_ms"] - shift_ms,
        cue_p99_ms=cue["p99_ms"] - shift_ms,
        cpu_frac=source.window_cpu_s / source.window_wall_s,
        queue_dropped=dropped_q,
        frames_dropped=dropped_f,
    )


def run(args: argparse.Namespace) -> int:
    warmup()
    t0 = time.perf_counter()
    pool = generate(POOL_ATHLETES, 3, args.seed)
    print(f"simulated {len(pool.sensors)} sensors, {pool.duration_s:.0f} s, {len(pool)} packets "
          f"in {time.perf_counter() - t0:.0f} s (not timed)")
    if pool.duration_s < args.warm_s + args.window_s:
        raise SystemExit(f"the simulated session lasts {pool.duration_s:.0f} s: lower --warm-s/--window-s")
    per_copy = len(pool.sensors)
    total_us, costs = stage_costs(pool.replicate(max(1, round(args.cost_sensors / per_copy))),
                                  args.warm_s, args.window_s, args.clients)
    print(f"cost per packet by stage ({args.cost_sensors} sensors, {args.clients} clients, replayed as fast "
          "as possible, CPU time of the loop thread;\n"
          "  shares from cProfile, scaled to the plain replay's total)")
    for stage in ORDER:
        print(f"  {stage:<38} {costs[stage]:8.1f} us  {100 * costs[stage] / total_us:5.1f} %")
    print(f"  {'total':<38} {total_us:8.1f} us  = {1e6 / total_us / PACKETS_PER_SENSOR_S:,.0f} sensors "
          "at 200 Hz per core (pipeline path only)")
    capacity = 0
    print("sensors  packets/s  angle p50 ms  angle p99 ms  cue p99 ms  loop CPU  queue drops  frame drops")
    for text in args.steps.split(","):
        copies = max(1, round(int(text) / per_copy))
        r = run_step(pool.replicate(copies), args.warm_s, args.window_s, args.clients)
        print(f"{r.sensors:7d}  {r.packets_s:9,.0f}  {r.p50_ms:12.2f}  {r.p99_ms:12.2f}  {r.cue_p99_ms:10.2f}"
              f"  {100 * r.cpu_frac:6.1f} %  {r.queue_dropped:11d}  {r.frames_dropped:11d}"
              f"  {'ok' if r.ok else 'FAIL'}", flush=True)
        if not r.ok:
            break
        capacity = r.sensors
    print(f"capacity: {capacity} sensors at 200 Hz per core")
    return 0
