"""``sensorhub record``: the configured source through the live pipeline, raw packets to a file."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from sensorhub.config import load_config
from sensorhub.runtime.bus import Bus
from sensorhub.runtime.live import LiveRunner
from sensorhub.runtime.pipeline import Pipeline
from sensorhub.runtime.replay import ReplayResult, print_report
from sensorhub.runtime.sources import make_source
from sensorhub.sinks.recorder import RecordingWriter


async def record_async(config_path: Path | None, out: Path, duration_s: float | None) -> ReplayResult:
    config = load_config(config_path)
    setup = make_source(config)
    pipeline = Pipeline(setup.sensors)
    meta = dict(setup.meta)
    meta["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta["sensors"] = [
        {
            "sensor_id": s.sensor_id,
            "athlete": s.athlete,
            "side": str(s.side),
            "segment": str(s.segment),
            "protocol": setup.protocols.get(s.sensor_id, "sensorhub-v1"),
        }
        for s in setup.sensors
    ]
    with RecordingWriter(out, meta) as writer:
        runner = LiveRunner(setup.source, pipeline, Bus(), recorder=writer)
        task = asyncio.create_task(runner.run())
        try:
            if duration_s is None:
                await task
            else:
                done, _ = await asyncio.wait({task}, timeout=duration_s)
                if not done:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            if not task.done():
                task.cancel()
    return ReplayResult(sensors=pipeline.stats(), packets=runner.stats.packets)


def record_main(config_path: Path | None, out: Path, duration_s: float | None) -> int:
    try:
        result = asyncio.run(record_async(config_path, out, duration_s))
    except KeyboardInterrupt:
        print(f"stopped; everything received so far is in {out}")
        return 0
    print_report(result)
    print(f"recording: {out}")
    return 0
