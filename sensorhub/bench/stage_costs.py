"""Cost per packet of each stage of the live path, for ``sensorhub bench capacity``.

Two replays of the same packets through the same path (runner -> pipeline -> cues -> bus -> hub, raw
recorder): one plain, timed in CPU time of the loop's thread (the total per packet; other processes
on the machine do not inflate it, the recorder's writer thread is not counted), one under cProfile,
whose own time per function is charged to the stage of the sensorhub module it belongs to (time in
numpy, the standard library and builtins goes to the sensorhub function that called it). The profiled
shares are then scaled to the plain total, since a profiler inflates Python-heavy stages more than
numba-heavy ones.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sensorhub.bench.packets import PacketSet, fast_source
from sensorhub.bus import Bus
from sensorhub.cues import DEFAULT_RULES, CueEngine, parse_rules
from sensorhub.recording import RecordingWriter, recording_meta
from sensorhub.runtime import CueStage, LiveRunner, MeasuredPipeline
from sensorhub.sinks import BackgroundRecorder
from sensorhub.web import Hub
from sensorhub.web.hub import ClientChannel

# (path fragment, stage): the first match wins.
STAGES: tuple[tuple[str, str], ...] = (
    ("sensorhub/protocol/", "decode"),
    ("sensorhub/timing/", "clock mapping + timing"),
    ("sensorhub/orientation/", "orientation"),
    ("sensorhub/kinematics/_orientation_adapter", "orientation"),
    ("sensorhub/kinematics/", "knee"),
    ("sensorhub/analysis/", "events"),
    ("sensorhub/cues/", "cues"),
    ("sensorhub/runtime/cueing", "cues"),
    ("sensorhub/bus", "bus + hub"),
    ("sensorhub/web/", "bus + hub"),
    ("sensorhub/sinks/", "sinks (recorder)"),
    ("sensorhub/recording", "sinks (recorder)"),
    ("sensorhub/", "runtime (queue, loop, pipeline glue)"),
)
ORDER = ("decode", "clock mapping + timing", "orientation", "knee", "events", "cues", "bus + hub",
         "sinks (recorder)", "runtime (queue, loop, pipeline glue)", "other (event loop, threads)")
Func = tuple[str, int, str]


def _stage_of(filename: str) -> str | None:
    path = filename.replace("\\", "/")
    if "/sensorhub/" not in path and not path.startswith("sensorhub/"):
        return None
    for fragment, stage in STAGES:
        if fragment in path:
            return stage
    return None


def attribute(stats: dict[Func, Any]) -> dict[str, float]:
    """Own time per stage (seconds): a function outside sensorhub is charged to its callers, in
    proportion to the time each caller spent in it, up to the first sensorhub frame."""
    out: dict[str, float] = dict.fromkeys(ORDER, 0.0)

    def charge(func: Func, seconds: float, depth: int) -> None:
        stage = _stage_of(func[0])
        if stage is not None:
            out[stage] += seconds
            return
        entry = stats.get(func)
        callers: dict[Func, Any] = entry[4] if entry is not None else {}
        total = sum(c[2] for c in callers.values())
        if depth > 20 or not callers or total <= 0.0:
            out["other (event loop, threads)"] += seconds
            return
        for caller, c in callers.items():
            charge(caller, seconds * c[2] / total, depth + 1)

    for func, (_cc, _nc, tt, _ct, _callers) in stats.items():
        if tt > 0.0:
            charge(func, tt, 0)
    return out


async def _replay(packet_set: PacketSet, warm_s: float, window_s: float, clients: int,
                  profile: cProfile.Profile | None) -> tuple[float, int]:
    """Warm (calibrate every leg, not timed), then the window as fast as possible; (CPU s, packets)."""
    refs = packet_set.refs()
    packets = packet_set.packets(time.time() - packet_set.duration_s)
    warm = [p for p in packets if p.t_host_s - packets[0].t_host_s < warm_s]
    window = [p for p in packets[len(warm):] if p.t_host_s - packets[0].t_host_s < warm_s + window_s]
    bus = Bus()
    cues = CueStage(bus, CueEngine(parse_rules(DEFAULT_RULES, "<defaults>")))
    for athlete, drill in packet_set.drills.items():
        cues.set_drill(athlete, drill)
    with tempfile.TemporaryDirectory(prefix="sensorhub-capacity-") as tmp:
        recorder = BackgroundRecorder(RecordingWriter(Path(tmp) / "bench.shrec", recording_meta(refs, {})))
        pipeline = MeasuredPipeline(refs)
        runner = LiveRunner(fast_source(window, [r.sensor_id for r in refs]), pipeline, bus, recorder,
                            cues=cues)
        hub = Hub(bus)
        channels = [hub.connect(None) for _ in range(clients)]
        hub_task = asyncio.create_task(hub.run())

        async def drain(channel: ClientChannel) -> None:  # a websocket writer: takes each frame
            while True:
                await channel.get()

        drain_tasks = [asyncio.create_task(drain(c)) for c in channels]
        for k in range(0, len(warm), 2000):
            runner.process_batch(warm[k:k + 2000])
            await asyncio.sleep(0)
        await asyncio.sleep(0.2)
        t0 = time.thread_time()
        if profile is not None:
            profile.enable()
        await runner.run()
        await asyncio.sleep(0.1)  # the hub's next flush
        if profile is not None:
            profile.disable()
        cpu_s = time.thread_time() - t0
        hub_task.cancel()
        for task in drain_tasks:
            task.cancel()
        recorder.close()
    return cpu_s, len(window)


def stage_costs(packet_set: PacketSet, warm_s: float, window_s: float, clients: int,
                progress: Callable[[str], None] = print) -> tuple[float, dict[str, float]]:
    """(total us per packet, stage -> us per packet)."""
    progress(f"stage costs: {len(packet_set.sensors)} sensors, plain replay")
    cpu_s, n = asyncio.run(_replay(packet_set, warm_s, window_s, clients, None))
    total_us = cpu_s / n * 1e6
    progress("stage costs: profiled replay")
    profile = cProfile.Profile()
    asyncio.run(_replay(packet_set, warm_s, window_s, clients, profile))
    own = attribute(pstats.Stats(profile).stats)  # type: ignore[attr-defined]
    profiled_total = sum(own.values())
    return total_us, {stage: total_us * s / profiled_total for stage, s in own.items()}
