"""Shared by the test modules: Debian's Chromium driven by Playwright (pages and reports), and a silent
source for services whose tests publish on the bus themselves."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sensorhub.model import Segment, SensorRef, Side
from sensorhub.sources.base import PacketQueue, SensorLink

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "web"  # screenshots kept by CI as test artefacts


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module (one sync Playwright at a time per thread)."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian's chromium is missing (scripts/test.sh installs it: apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield b
        b.close()


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
