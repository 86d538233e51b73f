"""The dashboard in Debian's Chromium (Playwright), against the demo service with a simulated athlete
running through the real pipeline. Screenshots are kept under test-artifacts/web/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from sensorhub.config import load_config
from sensorhub.cues import Cue, audio_id
from sensorhub.demo import background_demo
from sensorhub.runtime.service import ServiceHandle
from tests.helpers import ARTIFACTS, ROOT

ATHLETE = "athlete1"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceHandle]:
    config = load_config(ROOT / "configs" / "demo.toml", env={})
    store = tmp_path_factory.mktemp("web") / "history.sqlite3"
    with background_demo(config, athletes=1, store_path=store) as handle:
        yield handle


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
    t_s = time.time()  # tells this cue from the ones the demo's own landings may fire meanwhile
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
            t_s,
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
    ours = [c for c in audio["log"] if c["t_s"] == t_s]
    assert ours == [{"id": "softer-landing", "t_s": t_s}] and audio["enabled"]  # played once
    # the clip rendered by the service at start-up was fetched and played (not the tone fallback)
    page.wait_for_function("() => window.sensorhubAudio.clips >= 1", timeout=5_000)


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
    flag = card.locator(".pain-flag", has_text="7/10")
    flag.wait_for(timeout=5_000)
    assert "reduce load" in flag.inner_text()
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

    def watch(seconds: float, until_cue: bool = False) -> tuple[int, int]:
        cues = events = 0
        end = time.time() + seconds
        while time.time() < end and not (until_cue and cues and events):
            for m in sub.drain():
                if m.topic == "events":
                    events += 1
                elif getattr(m.payload, "phrase", "") == "knees out":
                    cues += 1
            time.sleep(0.1)
        return cues, events

    set_valgus_limit(0.5)
    strict_cues, strict_events = watch(40.0, until_cue=True)
    athlete_page.screenshot(path=str(ARTIFACTS / "athlete_strict_threshold.png"))
    set_valgus_limit(60.0)
    lax_cues, lax_events = watch(25.0)  # long enough for several reps of any demo drill
    sub.close()
    assert strict_events > 0 and lax_events > 0
    assert strict_cues > 0, "a 0.5 deg valgus limit should produce valgus cues"
    assert lax_cues == 0, "a 60 deg valgus limit should silence valgus cues"


def test_coach_finishes_a_session_and_sees_the_recommendation(demo: ServiceHandle, page: Any) -> None:
    """The coach assigns a plan, runs a set, records pain above the threshold, finishes the session and
    sees the recommendation (step back) with every criterion; accepting it moves the phase."""
    page.goto(url(demo, "/"))
    card = page.locator(f'section.card[data-athlete="{ATHLETE}"]')
    card.wait_for(timeout=10_000)
    card.locator("details.plan-editor summary").click()
    card.locator("select.plan-program option", has_text="pfp_default").wait_for(
        state="attached", timeout=5_000
    )
    card.locator("select.plan-program").select_option("pfp_default")
    card.locator("input.plan-phase").fill("1")
    card.locator("input.plan-pain").fill("3")
    card.locator("select.plan-side").select_option("right")
    card.locator("button.plan-save").click()
    card.locator(".plan-phase-title", has_text="Neuromuscular control").wait_for(timeout=5_000)
    assert card.locator("select.drill option").all_inner_texts()[0] == "single_leg_squat"

    toggle = card.locator("button.set-toggle")
    toggle.click()
    card.locator("button.set-toggle", has_text="Stop set").wait_for(timeout=5_000)
    toggle.click()
    card.locator("button.set-toggle", has_text="Start set").wait_for(timeout=5_000)
    card.locator("select.pain-context").select_option("after")
    # 8: above the threshold and above what earlier tests of this module recorded in the session
    card.locator("input.pain-input").fill("8")
    card.locator("button.pain-submit").click()
    card.locator(".pain-flag", has_text="8/10").wait_for(timeout=5_000)

    card.locator("button.finish-session").click()
    action = card.locator(".rec-action")
    action.wait_for(timeout=30_000)
    assert action.inner_text().lower() == "step_back"
    pain_row = card.locator("tr.criterion", has_text="pain_in_session")
    assert "not met" in pain_row.inner_text() and "8/10" in pain_row.inner_text()
    assert card.locator("tr.criterion").count() >= 4  # flare-up checks and every milestone
    assert card.locator("tr.criterion", has_text="pain_free_sessions").count() == 1
    page.screenshot(path=str(ARTIFACTS / "coach_recommendation.png"), full_page=True)

    card.locator("input.decision-note").fill("sore knee after the set")
    card.locator("button.decision-accept").click()
    status = card.locator(".decision-status")
    status.locator("span").wait_for(timeout=5_000)
    assert "step_back (accepted)" in status.inner_text()
    card.locator(".plan-phase-title", has_text="Foundation strength").wait_for(timeout=5_000)
    page.screenshot(path=str(ARTIFACTS / "coach_decision.png"), full_page=True)
    assert demo.store is not None
    demo.store.flush()
    (rec, *_) = demo.store.recommendations(ATHLETE)[::-1]
    assert rec.action == "step_back" and rec.decision is not None
    assert (rec.decision.decision, rec.decision.note) == ("step_back", "sore knee after the set")
    plan = demo.store.plan(ATHLETE)
    assert plan is not None and plan.phase_index == 0


def test_athlete_page_records_next_morning_pain_and_runs_a_home_set(demo: ServiceHandle, page: Any) -> None:
    page.goto(url(demo, f"/athlete?athlete={ATHLETE}"))
    page.wait_for_function(
        "() => document.getElementById('status').textContent === 'connected'", timeout=10_000
    )
    page.locator("#pain-context").select_option("next_morning")
    page.locator("#pain-value").fill("6")
    page.locator("#pain-submit").click()
    # the status may still show the previous entry's flag: wait for this entry's text, not any flag
    flag = page.locator("#pain-status .pain-flag", has_text="next morning: 6/10")
    flag.wait_for(timeout=5_000)
    assert "reduce load" in flag.inner_text()
    page.screenshot(path=str(ARTIFACTS / "athlete_next_morning_pain.png"), full_page=True)
    assert demo.store is not None
    demo.store.flush()
    sessions = demo.store.sessions(ATHLETE)
    last = demo.store.pain_entries(ATHLETE)[-1]
    assert (last.context, last.pain, last.flagged) == ("next_morning", 6, True)
    assert last.session_id == sessions[-1].id and last.set_id is None

    button = page.locator("#home-set")
    button.click()
    page.locator("#home-set", has_text="Stop set").wait_for(timeout=5_000)
    assert page.locator("#set-status").inner_text() == "home session"
    button.click()
    page.locator("#home-set", has_text="Start home set").wait_for(timeout=5_000)
    page.goto(url(demo, f"/history?athlete={ATHLETE}"))
    page.locator("tr.session-home").first.wait_for(timeout=10_000)
    page.locator("tr.load-row").first.wait_for(timeout=10_000)
    assert page.locator("tr.rec-row", has_text="step_back").count() >= 1
    assert page.locator("td.pain-context", has_text="next morning").count() >= 1
    assert page.locator("#report-link").get_attribute("href") == f"/report/{ATHLETE}"
    page.screenshot(path=str(ARTIFACTS / "history_rehab.png"), full_page=True)
    report = page.context.new_page()
    report.goto(url(demo, f"/report/{ATHLETE}"))
    assert report.locator("svg").count() > 0
    report.close()
