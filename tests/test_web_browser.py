"""The dashboard in Debian's Chromium (Playwright), against the demo service with a simulated athlete
running through the real pipeline. Screenshots are kept under test-artifacts/web/."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensorhub.config import load_config
from sensorhub.cues import Cue, audio_id
from sensorhub.runtime.demo import background_demo
from sensorhub.runtime.service import ServiceHandle

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
if shutil.which(CHROMIUM) is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "web"
ATHLETE = "athlete1"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceHandle]:
    config = load_config(ROOT / "configs" / "demo.toml", env={})
    store = tmp_path_factory.mktemp("web") / "history.sqlite3"
    with background_demo(config, athletes=1, store_path=store) as handle:
        yield handle


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
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


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def url(handle: ServiceHandle, path: str) -> str:
    return f"http://127.0.0.1:{handle.port}{path}"


def publish(handle: ServiceHandle, topic: str, key: str, payload: Any) -> None:
    assert handle.loop is not None
    handle.loop.call_soon_threadsafe(handle.bus.publish, topic, key, payload)


TRACE_PIXELS_JS = """(canvas) => {
  const g = canvas.getContext('2d');
  const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
  let right = 0, left = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i] < 120 && d[i + 1] > 130 && d[i + 2] > 220) right++;          // #58a6ff
    if (d[i] > 200 && d[i + 1] > 100 && d[i + 1] < 170 && d[i + 2] < 100) left++;  // #f0883e
  }
  return [right, left];
}"""


def test_coach_page_shows_live_traces(demo: ServiceHandle, page: Any) -> None:
    page.goto(url(demo, "/"))
    card = page.locator(f'section.card[data-athlete="{ATHLETE}"]')
    card.wait_for(timeout=10_000)
    canvas = card.locator("canvas.trace")
    # Both legs' traces are drawn once angles flow (the demo starts with calibration already behind).
    page.wait_for_function(
        f"() => {{ const c = document.querySelector('section[data-athlete=\"{ATHLETE}\"] canvas.trace');"
        f" return ({TRACE_PIXELS_JS})(c).every((n) => n > 200); }}",
        timeout=30_000,
    )
    first = canvas.screenshot(path=str(ARTIFACTS / "coach_trace_1.png"))
    time.sleep(1.0)
    second = canvas.screenshot(path=str(ARTIFACTS / "coach_trace_2.png"))
    page.screenshot(path=str(ARTIFACTS / "coach_page.png"), full_page=True)
    assert first != second, "the traces did not move in 1 s"
    # Sensor health from /health frames: four connected sensors.
    card.locator("details", has_text="sensor health").locator("summary").click()
    page.wait_for_function(
        f"() => document.querySelectorAll('section[data-athlete=\"{ATHLETE}\"] table.health tr')"
        ".length === 5",
        timeout=5_000,
    )
    assert "connected" in card.locator("table.health").inner_text()


def test_cue_reaches_the_athlete_page(demo: ServiceHandle, page: Any) -> None:
    page.goto(url(demo, f"/athlete?athlete={ATHLETE}"))
    page.locator("#sound").click()
    page.wait_for_function(
        "() => document.getElementById('status').textContent === 'connected'", timeout=10_000
    )
    publish(
        demo,
        "cues",
        f"{ATHLETE}/right",
        Cue(
            ATHLETE,
            f"{ATHLETE}/right",
            "softer_landing",
            "softer landing",
            1,
            time.time(),
            "landing",
            40.0,
            0.006,
            audio_id("softer landing"),
        ),
    )
    page.wait_for_function(
        "() => document.getElementById('cue').textContent === 'softer landing'", timeout=5_000
    )
    audio = page.evaluate("() => window.sensorhubAudio")
    page.screenshot(path=str(ARTIFACTS / "athlete_cue.png"))
    assert audio["played"] == 1 and audio["last"] == "softer-landing" and audio["enabled"]
    # the clip rendered by the service at start-up was fetched and played (not the tone fallback)
    page.wait_for_function("() => window.sensorhubAudio.clips === 1", timeout=5_000)


def test_pain_entry_is_stored_and_shown_in_history(demo: ServiceHandle, page: Any) -> None:
    page.goto(url(demo, "/"))
    card = page.locator(f'section.card[data-athlete="{ATHLETE}"]')
    card.wait_for(timeout=10_000)
    toggle = card.locator("button.set-toggle")
    toggle.click()
    page.wait_for_function(
        f"() => document.querySelector('section[data-athlete=\"{ATHLETE}\"] button.set-toggle').textContent"
        " === 'Stop set'",
        timeout=5_000,
    )
    toggle.click()
    page.wait_for_function(
        f"() => document.querySelector('section[data-athlete=\"{ATHLETE}\"] button.set-toggle').textContent"
        " === 'Start set'",
        timeout=5_000,
    )
    card.locator("input.pain-input").fill("7")
    card.locator("button.pain-submit").click()
    flag = card.locator(".pain-flag")
    flag.wait_for(timeout=5_000)
    assert "reduce load" in flag.inner_text() and "7/10" in flag.inner_text()
    page.screenshot(path=str(ARTIFACTS / "coach_pain_flag.png"), full_page=True)

    page.goto(url(demo, f"/history?athlete={ATHLETE}"))
    row = page.locator("tr.pain-row", has_text="reduce load")
    row.first.wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "history.png"), full_page=True)
    assert row.first.locator("td.pain-value").inner_text() == "7"
    assert demo.store is not None
    stored = demo.store.history(ATHLETE)["pain"]
    assert [(p["pain"], p["flagged"]) for p in stored][-1] == (7, True)


def test_threshold_edit_reaches_the_cue_rules(demo: ServiceHandle, page: Any) -> None:
    """The edit is stored and published on the bus topic the cue rules follow."""
    sub = demo.bus.subscribe(["thresholds"])
    page.goto(url(demo, "/"))
    card = page.locator(f'section.card[data-athlete="{ATHLETE}"]')
    card.wait_for(timeout=10_000)
    card.locator("details.threshold-editor summary").click()
    card.locator('input[name="peak_valgus_deg"]').fill("4.5")
    card.locator("button.thresholds-save").click()
    deadline = time.time() + 5.0
    message = None
    while message is None and time.time() < deadline:
        message = sub.get_nowait()
        time.sleep(0.05)
    sub.close()
    assert message is not None and message.payload["values"]["peak_valgus_deg"] == 4.5
    assert demo.store is not None
    demo.store.flush()
    assert demo.store.thresholds(ATHLETE)["peak_valgus_deg"] == 4.5


@pytest.mark.slow
def test_threshold_edit_changes_the_next_cue(demo: ServiceHandle, page: Any) -> None:
    """With the cue engine on the bus: a strict valgus limit makes valgus cues appear on the athlete
    page; a lax one stops them, while the athlete keeps moving (events continue)."""
    athlete_page = page.context.new_page()
    athlete_page.goto(url(demo, f"/athlete?athlete={ATHLETE}"))
    sub = demo.bus.subscribe(["cues", "events"])

    def set_valgus_limit(value: float) -> None:
        page.goto(url(demo, "/"))
        card = page.locator(f'section.card[data-athlete="{ATHLETE}"]')
        card.locator("details.threshold-editor summary").click()
        card.locator('input[name="peak_valgus_deg"]').fill(str(value))
        card.locator("button.thresholds-save").click()
        time.sleep(0.5)
        sub.drain()

    def watch(seconds: float) -> tuple[int, int]:
        cues = events = 0
        end = time.time() + seconds
        while time.time() < end:
            for m in sub.drain():
                if m.topic == "events":
                    events += 1
                elif getattr(m.payload, "phrase", "") == "knees out":
                    cues += 1
            time.sleep(0.1)
        return cues, events

    set_valgus_limit(0.5)
    strict_cues, strict_events = watch(40.0)
    athlete_page.screenshot(path=str(ARTIFACTS / "athlete_strict_threshold.png"))
    set_valgus_limit(60.0)
    lax_cues, lax_events = watch(40.0)
    sub.close()
    assert strict_events > 0 and lax_events > 0
    assert strict_cues > 0, "a 0.5 deg valgus limit should produce valgus cues"
    assert lax_cues == 0, "a 60 deg valgus limit should silence valgus cues"
