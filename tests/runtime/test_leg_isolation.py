"""A leg whose processing raises is marked failed (on /health, on the coach page, one log record with the
traceback) while every other athlete keeps streaming: the failure is injected into one leg's knee kernel
(the error a bare install without scipy raised there) in the middle of a live demo."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import websockets

from sensorhub.config import load_config
from sensorhub.demo import background_demo
from sensorhub.kinematics import _kernels
from sensorhub.runtime.service import ServiceHandle
from tests.helpers import ARTIFACTS, ROOT

FAILING_LEG = "athlete2/right"
STREAM_S = 30.0
WINDOW_S = 5.0


@pytest.fixture
def failing_kernel(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """``knee_angles_loop`` raises for FAILING_LEG once armed, as numba did without scipy."""
    armed = threading.Event()
    real = _kernels.knee_angles_loop

    def knee_angles_loop(*args: Any) -> None:
        caller = sys._getframe(1).f_locals.get("self")
        if armed.is_set() and getattr(caller, "leg_id", None) == FAILING_LEG:
            raise ImportError("scipy 0.16+ is required for linear algebra")
        real(*args)

    monkeypatch.setattr(_kernels, "knee_angles_loop", knee_angles_loop)
    return armed


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceHandle]:
    config = load_config(ROOT / "configs" / "demo.toml", env={})
    store = tmp_path_factory.mktemp("iso") / "history.sqlite3"
    with background_demo(config, athletes=3, store_path=store) as handle:
        yield handle


def _health(handle: ServiceHandle) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{handle.port}/health", timeout=5) as resp:
        return dict(json.loads(resp.read()))


async def _angle_rows_per_window(url: str, seconds: float) -> dict[str, list[int]]:
    """Angle rows received per leg in consecutive WINDOW_S windows."""
    rows: dict[str, list[int]] = defaultdict(lambda: [0] * int(seconds / WINDOW_S))
    t0 = time.monotonic()
    async with websockets.connect(url, max_size=None) as ws:
        while (elapsed := time.monotonic() - t0) < seconds:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), seconds - elapsed))
            except TimeoutError:
                break
            if frame.get("type") != "angles":
                continue
            window = min(int((time.monotonic() - t0) / WINDOW_S), int(seconds / WINDOW_S) - 1)
            for athlete, legs in frame["athletes"].items():
                for side, data in legs.items():
                    rows[f"{athlete}/{side}"][window] += len(data["t_s"])
    return dict(rows)


def test_a_failing_leg_is_marked_and_the_others_keep_streaming(
    demo: ServiceHandle, failing_kernel: threading.Event, browser: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="sensorhub.runtime.pipeline")
    deadline = time.monotonic() + 30.0
    while _health(demo)["legs"][FAILING_LEG]["state"] != "tracking":
        assert time.monotonic() < deadline, "the leg never started tracking"
        time.sleep(0.2)
    failing_kernel.set()
    while (leg := _health(demo)["legs"][FAILING_LEG])["state"] != "failed":
        assert time.monotonic() < deadline + 10.0, f"the leg was not marked failed: {leg}"
        time.sleep(0.2)
    assert "ImportError: scipy 0.16+ is required" in leg["error"]

    samples_before = _health(demo)["angle_samples"]
    # in a thread: Playwright's sync API keeps an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        url = f"ws://127.0.0.1:{demo.port}/ws/v1"
        rows = pool.submit(asyncio.run, _angle_rows_per_window(url, STREAM_S)).result()
    health = _health(demo)
    assert health["state"] == "running"
    assert health["angle_samples"] > samples_before
    others = [f"athlete{a}/{side}" for a in (1, 2, 3) for side in ("right", "left")]
    others.remove(FAILING_LEG)
    for leg_id in others:
        assert health["legs"][leg_id]["state"] == "tracking", health["legs"]
        # streaming all along: every 5 s window of the 30 s brought angle rows (the hub decimates to ~50 Hz)
        assert min(rows[leg_id]) > 100, (leg_id, rows[leg_id])
    # nothing new from the failed leg (the first window also carries the 10 s backlog a new client gets)
    assert sum(rows.get(FAILING_LEG, [0, 0])[1:]) == 0

    records = [r for r in caplog.records if FAILING_LEG in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is not None  # one log record, with the traceback

    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{demo.port}/")
        flag = page.locator('section.card[data-athlete="athlete2"] .leg-failed[data-side="right"]')
        flag.wait_for(timeout=10_000)
        assert "scipy" in flag.inner_text()
        ok = page.locator('section.card[data-athlete="athlete2"] .leg-state[data-side="left"]')
        assert "tracking" in ok.inner_text()
        page.screenshot(path=str(ARTIFACTS / "coach_leg_failed.png"), full_page=True)
    finally:
        page.close()
