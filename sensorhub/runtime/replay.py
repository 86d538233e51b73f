"""``sensorhub replay``: a recording through exactly the live decode path, with a per-sensor report."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorhub.bus import Bus
from sensorhub.model import KneeAngles
from sensorhub.recording import read_recording
from sensorhub.runtime.live import LiveRunner
from sensorhub.runtime.pipeline import Pipeline
from sensorhub.sources import ReplaySource
from sensorhub.timing import SensorStats


@dataclass(slots=True)
class ReplayResult:
    sensors: dict[str, SensorStats]
    angles: dict[str, list[KneeAngles]] = field(default_factory=dict)
    packets: int = 0
    tail: str = ""

    def angles_digest(self) -> str:
        """SHA-256 over every leg's angle arrays, each joined over the leg's parts: equal digests =
        bit-identical angles (however a loop turn cut them into parts)."""
        h = hashlib.sha256()
        for leg_id in sorted(self.angles):
            h.update(leg_id.encode())
            parts = self.angles[leg_id]
            for name in ("t_s", "flexion_rad", "valgus_rad", "rotation_rad", "quality"):
                for part in parts:
                    h.update(np.ascontiguousarray(getattr(part, name)).tobytes())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "tail": self.tail,
            "sensors": {sid: asdict(s) for sid, s in self.sensors.items()},
            "legs": {
                leg: int(sum(p.t_s.shape[0] for p in parts)) for leg, parts in sorted(self.angles.items())
            },
            "angles_sha256": self.angles_digest(),
        }


async def replay_async(path: Path, speed: float | None) -> ReplayResult:
    """Replay through the live runner (queue, pipeline, bus) — the same code as a live session."""
    source = ReplaySource(path, speed=speed)
    pipeline = Pipeline(source.recording.sensors)
    bus = Bus()
    sub = bus.subscribe(["angles"], maxsize=10_000_000)
    runner = LiveRunner(source, pipeline, bus)
    await runner.run()
    result = ReplayResult(sensors=pipeline.stats(), packets=runner.stats.packets)
    for message in sub.drain():
        result.angles.setdefault(message.key, []).append(message.payload)
    tail = source.recording.tail
    result.tail = (
        "" if tail is None else f"{tail.reason} at byte {tail.offset} ({tail.ignored_bytes} bytes ignored)"
    )
    return result


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_report(result: ReplayResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"replay: {result.packets} packets")
    for col in (
        "sensor",
        "packets",
        "samples",
        "lost",
        "dup",
        "reordered",
        "malformed",
        "clipped",
        "drift ppm",
    ):
        table.add_column(col, justify="right" if col != "sensor" else "left")
    for sid, s in sorted(result.sensors.items()):
        table.add_row(
            sid,
            str(s.packets),
            str(s.samples),
            str(s.lost),
            str(s.duplicates),
            str(s.reordered),
            str(s.malformed),
            str(s.clipped),
            _fmt(s.drift_ppm, 2),
        )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    for leg, parts in sorted(result.angles.items()):
        n = sum(p.t_s.shape[0] for p in parts)
        console.print(f"{leg}: {n} knee-angle samples")
    if result.tail:
        console.print(f"[yellow]recording tail ignored: {result.tail}[/yellow]")


def replay_main(
    path: Path, speed: float | None, csv_dir: Path | None = None, json_out: Path | None = None
) -> int:
    read_recording(path)  # fail fast with a RecordingError before starting the loop
    result = asyncio.run(replay_async(path, speed))
    print_report(result)
    if json_out is not None:
        json_out.write_text(json.dumps(result.summary(), indent=1, default=float))
    if csv_dir is not None:
        from sensorhub.offline import export_recording_csv

        for leg, file in export_recording_csv(path, csv_dir).items():
            print(f"{leg}: {file}")
    return 0
