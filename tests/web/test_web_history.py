"""The history page in Chromium (trends of true metrics only, dates on x, units on y, no failed request)
and sessions that close: on finish (with or without a rehab plan), after the idle timeout, at shutdown.
Screenshot: test-artifacts/web/history_trends.png."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sensorhub.bus import Bus
from sensorhub.conventions import REP_TIME_KEYS
from sensorhub.history import HistoryStore, PainEntry
from sensorhub.rehab import SessionManager
from tests.helpers import ARTIFACTS
from tests.web.test_web_rehab import Client, service

DAY_S = 86_400.0
T0 = 1_790_000_000.0  # the last session's start (Unix s)


def _history(db: Path) -> None:
    """Three weekly sessions of squats and drop jumps, ended, with pain entries."""
    with HistoryStore(db) as store:
        store.upsert_athlete("ana", "Ana")
        for k, day in enumerate((-14, -7, 0)):
            start = T0 + day * DAY_S
            sid, set_id = f"s{k}", f"set{k}"
            store.start_session(sid, "ana", start)
            store.start_set(set_id, sid, "ana", "squat", 1, start + 60)
            for r in range(3):
                t = start + 100 + 10 * r
                metrics = {"depth_deg": 60.0 + 5 * k, "eccentric_s": 1.0 + 0.2 * k,
                           "peak_valgus_deg": 4.0 - k, "t_bottom_s": t + 1.0, "t_end_s": t + 2.0}
                store.record_event("ana", set_id, "ana/right", "rep", t, metrics, 70.0 + 5 * k)
            store.record_event("ana", set_id, "ana/right", "landing", start + 200,
                               {"peak_flexion_deg": 70.0, "peak_shank_accel_g": 6.5}, 80.0)
            store.end_set(set_id, start + 300, 3)
            store.record_pain(PainEntry("ana", set_id, start + 310, 4 - k, 3, 4 - k > 3, "after", sid))
            store.end_session(sid, start + 900)


def test_history_page_plots_true_metrics_over_dates_with_units(tmp_path: Path, browser: Any) -> None:
    db = tmp_path / "h.sqlite3"
    _history(db)
    with service(db) as handle:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on("requestfailed", lambda req: problems.append(f"failed {req.url}"))
        page.on("response",
                lambda res: problems.append(f"{res.status} {res.url}") if res.status >= 400 else None)
        page.goto(f"http://127.0.0.1:{handle.port}/history?athlete=ana")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.trend')].length > 0 && "
            "[...document.querySelectorAll('.trend')].every((c) => c.dataset.xTicks)", timeout=10_000)
        trends = page.eval_on_selector_all(
            ".trend", "(cs) => cs.map((c) => ({metric: c.dataset.metric, unit: c.dataset.unit, "
            "n: +c.dataset.points, x: c.dataset.xTicks.split('|'), y: c.dataset.yTicks.split('|')}))")
        page.wait_for_timeout(500)  # late requests (the icon) would show up as problems
        page.screenshot(path=str(ARTIFACTS / "history_trends.png"), full_page=True)
        ended = page.locator("td.session-ended").all_inner_texts()
        page.close()
    metrics = {t["metric"] for t in trends}
    assert not metrics & set(REP_TIME_KEYS), "a rep's bottom and end are times, not metrics"
    assert {"depth_deg", "eccentric_s", "peak_valgus_deg", "control_score", "peak_flexion_deg",
            "peak_shank_accel_g", "pain"} <= metrics
    units = {t["metric"]: t["unit"] for t in trends}
    assert units["depth_deg"] == "deg" and units["eccentric_s"] == "s" and units["peak_shank_accel_g"] == "g"
    assert units["control_score"] == "score 0-100" and units["pain"] == "pain 0-10"
    depth = next(t for t in trends if t["metric"] == "depth_deg")
    assert depth["n"] == 3  # one point per session
    # x: calendar dates over the two weeks (not epoch seconds); y: plain numbers of the metric
    assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", label) for label in depth["x"]), depth["x"]
    assert len(depth["x"]) >= 2 and all(float(v) < 1000 for v in depth["y"])
    assert len(ended) == 3 and "open" not in ended and "-" not in ended
    assert not problems, problems


def test_finish_without_a_plan_closes_the_session(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    with service(db) as handle:
        coach = Client(handle)
        coach.ok("/api/athletes/ben/set/start", "POST", {"drill": "squat"})
        result = coach.ok("/api/athletes/ben/session/finish", "POST")  # the set is stopped too
        assert result["action"] is None and "rehab plan" in result["message"]
        assert handle.store is not None
        handle.store.flush()
        (session,) = handle.store.sessions("ben")
        assert session.ended_s is not None and session.id == result["session_id"]


def test_shutdown_closes_open_sessions(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    with service(db) as handle:
        coach = Client(handle)
        coach.ok("/api/athletes/ana/set/start", "POST", {"drill": "squat"})  # left running
        coach.ok("/api/athletes/ben/set/start", "POST", {"drill": "squat"})
        coach.ok("/api/athletes/ben/set/stop", "POST")
    with HistoryStore(db) as store:
        sessions = store.sessions("ana") + store.sessions("ben")
        sets = store.sets("ana")
    assert len(sessions) == 2 and all(s.ended_s is not None for s in sessions)
    assert sets[0].ended_s is not None


def test_an_idle_session_closes_at_its_last_activity(tmp_path: Path) -> None:
    now = [1000.0]
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        sessions = SessionManager(Bus(), store, [("ana", "Ana")], ["squat"], clock=lambda: now[0],
                                  idle_timeout_s=600.0)
        sessions.start_set("ana", "squat")
        now[0] = 1060.0
        sessions.stop_set("ana")
        now[0] = 1500.0
        assert sessions.close_idle_sessions() == []  # 440 s idle: still open
        now[0] = 1700.0
        assert sessions.close_idle_sessions() == ["ana"]
        (stored,) = store.sessions("ana")
        assert stored.ended_s == pytest.approx(1060.0)  # when the last set stopped
        assert sessions.get("ana").snapshot()["session_id"] is None
