"""Helpers the test modules share: the repository's paths, a silent source for services whose tests
publish on the bus themselves, and the sensors of instrumented legs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from sensorhub.model import Segment, SensorRef, Side
from sensorhub.sources import PacketQueue, SensorLink

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "web"  # screenshots kept by CI as test artefacts
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"  # byte vectors pinning the wire format


class IdleSource:
    """Configured but silent sensors: the tests publish angles, events and cues on the bus themselves."""

    async def run(self, out: PacketQueue) -> None:
        await asyncio.Event().wait()

    def links(self) -> dict[str, SensorLink]:
        return {}


def leg_refs(athletes: Sequence[str], sides: Sequence[str] = ("right", "left")) -> list[SensorRef]:
    """Thigh and shank sensors ``{athlete}-{side}-{segment}`` of each athlete's legs."""
    return [
        SensorRef(f"{a}-{side}-{seg}", a, Side(side), Segment(seg))
        for a in athletes
        for side in sides
        for seg in ("thigh", "shank")
    ]


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported once it has run ``code`` (this test process may have
    imported them already)."""
    probe = f"{code}\nimport json as _j, sys as _s\nprint(_j.dumps(sorted(_s.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))
