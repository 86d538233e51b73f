"""``sensorhub record``: the configured source through the live pipeline, raw packets to a file."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from sensorhub.bus import Bus
from sensorhub.config import load_config
from sensorhub.recording import RecordingWriter, recording_meta
from sensorhub.runtime.live import LiveRunner
from sensorhub.runtime.pipeline import Pipeline
from sensorhub.runtime.replay import ReplayResult, print_report
from sensorhub.runtime.sources import make_source
from sensorhub.sources import SourceFactory


def new_recording_path(directory: Path) -> Path:
    """``DIR/session-YYYYmmdd-HHMMSS.shrec`` (a suffix keeps two starts in one second apart)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = time.strftime("session-%Y%m%d-%H%M%S", time.localtime())
    path = directory / f"{stem}.shrec"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}.shrec"
    return path


async def record_async(
    config_path: Path | None, out: Path, duration_s: float | None, simulator: SourceFactory | None = None
) -> ReplayResult:
    config = load_config(config_path)
    setup = make_source(config, simulator)
    pipeline = Pipeline(setup.sensors)
    with RecordingWriter(out, recording_meta(setup.sensors, setup.protocols, setup.meta)) as writer:
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


def record_main(
    config_path: Path | None, out: Path, duration_s: float | None, simulator: SourceFactory | None = None
) -> int:
    try:
        result = asyncio.run(record_async(config_path, out, duration_s, simulator))
    except KeyboardInterrupt:
        print(f"stopped; everything received so far is in {out}")
        return 0
    print_report(result)
    print(f"recording: {out}")
    return 0
