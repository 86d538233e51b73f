"""Rehab report, CSV export and rep curves, from a store filled by a short simulated history.

The history: three sessions of a simulated athlete (firmware_sim squats and drop jumps on both legs, the
valgus fault fading session by session) through the real knee estimator and event detector, fed in
live-sized chunks with the curve ring buffer beside them; pain entries, a plan and the progression's
recommendations with coach decisions. The report is opened in Chromium (Playwright); its screenshot is
kept under test-artifacts/web/."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_sim.athletes import make_leg_csv_arrays, simulate_motion
from sensorhub.analysis import EventDetector
from sensorhub.errors import InputError
from sensorhub.history import AthletePlan, HistoryStore, PainEntry, PhaseChange
from sensorhub.kinematics import KneeEstimator
from sensorhub.model import Event, KneeAngles, LegSamples
from sensorhub.rehab.curves import CURVE_POINTS, AngleRing, Curve, curve_window, extract_curve
from sensorhub.rehab.export import ID_COLUMNS, METRIC_COLUMNS, events_csv
from sensorhub.rehab.report import render_report, report_main
from tests.helpers import ARTIFACTS

RATE_HZ = 200.0
T0 = 1_767_000_000.0  # 2025-12-29 (a Monday, UTC): sessions fall into two ISO weeks
DAY_S = 86400.0
ATHLETE = "ana"
CHUNK = 40  # samples per push, as a live leg receives them (a few packets)
SIDES = ("right", "left")


@dataclass
class SimLeg:
    events: list[tuple[Event, Curve | None]]
    motion: Any
    offset_s: float


def run_leg(motion: Any, side: str, seed: int, offset_s: float) -> list[tuple[Event, Curve | None]]:
    """One simulated leg through the streaming knee estimator and detector, the angle ring beside them
    (as the live path: push the angles, then ask the ring for each new event's curve)."""
    arr = make_leg_csv_arrays(motion.drill, side, seed=seed, motion=motion, athlete_name=ATHLETE)
    leg_id = f"{ATHLETE}/{side}"
    t_s, d = arr.t_s + offset_s, arr.data
    knee = KneeEstimator(side, RATE_HZ, leg_id)
    det = EventDetector(side, RATE_HZ, leg_id)
    ring = AngleRing(RATE_HZ)
    out: list[tuple[Event, Curve | None]] = []

    def take(angles: KneeAngles, events: list[Event]) -> None:
        ring.push(angles)
        out.extend((e, ring.curve_for(e)) for e in events)

    for i in range(0, t_s.shape[0], CHUNK):
        sl = slice(i, i + CHUNK)
        part = LegSamples(leg_id, t_s[sl], d[sl, 0:3], d[sl, 3:6], d[sl, 6:9], d[sl, 9:12])
        angles, leg_motion = knee.step(part)
        take(angles, det.push(angles, leg_motion))
    tail, tail_motion = knee.finish_step()
    take(tail, det.push(tail, tail_motion) + det.finish())
    # the simulator's calibration bends come before the drill: not part of the set
    bends_end = max((e["t_end_s"] for e in motion.events if e.get("calibration")), default=-1.0)
    return [(e, c) for e, c in out if e.t_s - offset_s > bends_end + 0.2]


def simulate(drill: str, seed: int, valgus: float, offset_s: float, reps: int = 3) -> dict[str, SimLeg]:
    motion = simulate_motion(drill, reps=reps, sides=SIDES, seed=seed, faults={"valgus": valgus})
    return {side: SimLeg(run_leg(motion, side, seed, offset_s), motion, offset_s) for side in SIDES}


# ---- curves ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def squat_legs() -> dict[str, SimLeg]:
    return simulate("squat", seed=2, valgus=0.5, offset_s=T0)


@pytest.fixture(scope="module")
def drop_jump_legs() -> dict[str, SimLeg]:
    return simulate("drop_jump", seed=2, valgus=0.5, offset_s=T0)


CURVE_RMSE_DEG = 2.0  # the knee-angle accuracy target (flexion and valgus RMSE <= 2 deg)


@pytest.mark.parametrize("drill", ["squat", "drop_jump"])
def test_extracted_curves_match_simulator_truth(
    drill: str, squat_legs: dict[str, SimLeg], drop_jump_legs: dict[str, SimLeg]
) -> None:
    legs = squat_legs if drill == "squat" else drop_jump_legs
    checked = 0
    for side, leg in legs.items():
        events = [(e, c) for e, c in leg.events if e.type == ("rep" if drill == "squat" else "landing")]
        assert len(events) >= 3, (side, [e.type for e, _ in leg.events])
        missing = [e for e, c in events if c is None]
        # a curve is refused only when packet loss left a gap in its window (typical BLE link)
        assert len(missing) <= 1, missing
        for e, c in events:
            if c is None:
                continue
            assert len(c.flexion_deg) == len(c.valgus_deg) == CURVE_POINTS
            assert (c.t0_s, c.t1_s) == curve_window(e)
            truth = leg.motion.truth_angles_deg(side, c.times_s() - leg.offset_s)
            err_flex = np.asarray(c.flexion_deg) - truth[:, 0]
            err_valg = np.asarray(c.valgus_deg) - truth[:, 1]
            assert math.sqrt(np.mean(err_flex**2)) <= CURVE_RMSE_DEG, (side, e.t_s, err_flex)
            assert math.sqrt(np.mean(err_valg**2)) <= CURVE_RMSE_DEG, (side, e.t_s, err_valg)
            if e.type == "rep":  # the curve spans the rep: deepest near the detected bottom
                depth = e.metrics["depth_deg"]
                assert abs(max(c.flexion_deg) - depth) <= 2.0, (max(c.flexion_deg), depth)
            checked += 1
    assert checked >= 5


def test_extract_curve_resamples_exactly_and_refuses_gaps() -> None:
    t_s = np.arange(0.0, 5.0, 0.005)
    flex = 10.0 * t_s
    valg = 1.0 + 0.5 * t_s
    rep = Event("rep", "x/right", 1.0, {"t_end_s": 3.0})
    c = extract_curve(t_s, flex, valg, rep)
    assert c is not None
    assert np.allclose(c.flexion_deg, 10.0 * np.linspace(1.0, 3.0, CURVE_POINTS))
    assert np.allclose(c.valgus_deg, 1.0 + 0.5 * np.linspace(1.0, 3.0, CURVE_POINTS))
    landing = Event("landing", "x/right", 2.0)
    c2 = extract_curve(t_s, flex, valg, landing)
    assert c2 is not None and math.isclose(c2.t0_s, 1.9) and math.isclose(c2.t1_s, 2.4)
    # a 0.2 s gap (NaN rows) inside the window: no curve rather than an interpolated guess
    holed = flex.copy()
    holed[(t_s > 2.0) & (t_s < 2.2)] = np.nan
    assert extract_curve(t_s, holed, valg, rep) is None
    # a window not covered by the rows, and a rep without its end
    assert extract_curve(t_s, flex, valg, Event("rep", "x/right", 4.0, {"t_end_s": 6.0})) is None
    assert extract_curve(t_s, flex, valg, Event("rep", "x/right", 1.0)) is None
    # the stored form round-trips
    back = Curve.from_store("rep", c.to_store())
    assert back is not None and np.allclose(back.flexion_deg, c.flexion_deg, atol=0.005)


def test_ring_keeps_only_the_last_seconds() -> None:
    ring = AngleRing(rate_hz=100.0, keep_s=2.0)
    t_s = np.arange(0.0, 6.0, 0.01)
    rad = np.radians(t_s)
    q = np.zeros(t_s.shape[0], dtype=np.uint8)
    for i in range(0, t_s.shape[0], 37):  # chunks that do not divide the capacity
        sl = slice(i, i + 37)
        ring.push(KneeAngles("a/left", t_s[sl], rad[sl], rad[sl], rad[sl], q[sl]))
    recent = ring.curve_for(Event("rep", "a/left", 4.5, {"t_end_s": 5.5}))
    assert recent is not None and np.allclose(recent.flexion_deg, np.linspace(4.5, 5.5, CURVE_POINTS))
    assert ring.curve_for(Event("rep", "a/left", 2.0, {"t_end_s": 3.0})) is None  # fell out of the buffer
    assert ring.curve_for(Event("rep", "a/right", 4.5, {"t_end_s": 5.5})) is None  # another leg
    # rows flagged as missing input are not measurements
    bad = np.ones(t_s.shape[0], dtype=np.uint8)
    ring.push(KneeAngles("a/left", t_s + 6.0, rad, rad, rad, bad))
    assert ring.curve_for(Event("landing", "a/left", 11.0)) is None


# ---- a simulated history in a store ----------------------------------------------------------------


@dataclass
class History:
    path: Path
    n_events: int
    n_curves: int
    sessions: list[str]


def _record_set(
    store: HistoryStore, session_id: str, set_no: int, drill: str, legs: dict[str, SimLeg], curves: bool
) -> tuple[int, int]:
    set_id = f"{session_id}-{set_no}"
    events = sorted((e_c for leg in legs.values() for e_c in leg.events), key=lambda ec: ec[0].t_s)
    store.start_set(set_id, session_id, ATHLETE, drill, set_no, events[0][0].t_s - 1.0)
    n_curves = 0
    for e, c in events:
        curve = c.to_store() if c is not None and curves else None
        n_curves += curve is not None
        store.record_event(ATHLETE, set_id, e.leg_id, e.type, e.t_s, e.metrics, e.control_score, curve=curve)
    store.end_set(set_id, events[-1][0].t_s + 1.0, len(events) // 2)
    return len(events), n_curves


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    from sensorhub.rehab.program import find_program
    from sensorhub.rehab.progression import apply_decision, recommend_for, record_recommendation

    path = tmp_path_factory.mktemp("rehab") / "history.sqlite3"
    program = find_program("pfp_default")
    n_events = n_curves = 0
    sessions: list[str] = []
    with HistoryStore(path) as store:
        store.upsert_athlete(ATHLETE, "Ana", T0)
        plan = AthletePlan(ATHLETE, program.name, 0, "right", 3, T0)
        store.set_plan(plan)
        store.change_phase(PhaseChange(ATHLETE, program.name, None, 0, T0, "coach", "plan assigned"))
        for k, (day, valgus, pain_after) in enumerate(((0, 0.8, 2), (2, 0.4, 5), (9, 0.0, 1))):
            session_id = f"s{k + 1}"
            sessions.append(session_id)
            t_s = T0 + day * DAY_S
            store.start_session(session_id, ATHLETE, t_s)
            squats = simulate("squat", seed=10 + k, valgus=valgus, offset_s=t_s + 60.0)
            jumps = simulate("drop_jump", seed=20 + k, valgus=valgus, offset_s=t_s + 600.0)
            for n, (drill, legs, curves) in enumerate(
                (("squat", squats, True), ("drop_jump", jumps, k > 0))  # session 1's jumps: no curves
            ):
                ne, nc = _record_set(store, session_id, n + 1, drill, legs, curves)
                n_events, n_curves = n_events + ne, n_curves + nc
            store.record_pain(PainEntry(ATHLETE, f"{session_id}-1", t_s + 300.0, 1, 3, False, "during"))
            store.record_pain(
                PainEntry(ATHLETE, f"{session_id}-2", t_s + 1200.0, pain_after, 3, pain_after > 3, "after")
            )
            store.record_pain(
                PainEntry(ATHLETE, None, t_s + DAY_S - 3600.0, max(0, pain_after - 1), 3,
                          pain_after - 1 > 3, "next_morning", session_id)
            )
            store.end_session(session_id, t_s + 1500.0)
            store.flush()
            rec = recommend_for(store, program, ATHLETE)
            rec_id = record_recommendation(store, plan, rec, t_s + 1600.0)
            store.flush()
            plan = apply_decision(store, plan, program, rec_id, "hold", t_s + 1700.0, note=f"review {k + 1}",
                                  by="coach")
        store.flush()
    return History(path, n_events, n_curves, sessions)


def test_csv_export_has_a_row_per_event_and_a_column_per_metric(history: History) -> None:
    with HistoryStore(history.path) as store:
        text = events_csv(store, ATHLETE)
        stored = store.events(ATHLETE)
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",")
    assert header[: len(ID_COLUMNS)] == list(ID_COLUMNS)
    assert header[len(ID_COLUMNS) : len(ID_COLUMNS) + len(METRIC_COLUMNS)] == list(METRIC_COLUMNS)
    assert len(rows) == len(stored) == history.n_events
    assert {r["session_id"] for r in rows} == set(history.sessions)
    assert {r["drill"] for r in rows} == {"squat", "drop_jump"}
    assert {r["leg"] for r in rows} == {"left", "right"}
    for row, ev in zip(rows, stored, strict=True):
        assert row["type"] == ev.type and float(row["t_s"]) == pytest.approx(ev.t_s, abs=1e-3)
        assert int(row["set_no"]) in (1, 2)
        for name, value in ev.metrics.items():
            assert float(row[name]) == pytest.approx(value, rel=1e-5, abs=1e-6), name
        if ev.type == "landing":
            assert row["depth_deg"] == "" and row["flexion_at_contact_deg"] != ""
        else:
            assert row["flexion_at_contact_deg"] == "" and row["depth_deg"] != ""


def test_report_main_writes_html_and_csv_and_filters_by_date(history: History, tmp_path: Path) -> None:
    out, out_csv = tmp_path / "report.html", tmp_path / "events.csv"
    assert report_main(ATHLETE, out, csv=out_csv, db=history.path) == 0
    html = out.read_text(encoding="utf-8")
    assert "S3" in html and "No curve stored for S1" in html
    assert len(out_csv.read_text(encoding="utf-8").splitlines()) == history.n_events + 1
    # --since keeps the last session only
    since = "2026-01-05"
    assert report_main(ATHLETE, out, since=since, csv=out_csv, db=history.path) == 0
    html = out.read_text(encoding="utf-8")
    assert ">S1 " in html and ">S2 " not in html
    with pytest.raises(InputError, match="no athlete 'bob'"):
        report_main("bob", out, db=history.path)
    with pytest.raises(InputError, match="since"):
        report_main(ATHLETE, out, since="last week", db=history.path)


SERIES_JS = """(sel) => Array.from(document.querySelectorAll(sel + ' svg.chart path.series'))
  .map((p) => [Number(p.dataset.n), p.getBoundingClientRect().width])"""


def test_report_opens_in_chromium_with_its_plots(history: History, browser: Any, tmp_path: Path) -> None:
    with HistoryStore(history.path) as store:
        html = render_report(store, ATHLETE)
    out = tmp_path / "report.html"
    out.write_text(html, encoding="utf-8")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(out.as_uri())
    page.screenshot(path=str(ARTIFACTS / "rehab_report.png"), full_page=True)
    # self-contained: the page itself is the only thing loaded
    assert requested == [out.as_uri()]
    for section, min_series in (("#curves", 8), ("#metrics", 8), ("#pain", 2), ("#load", 2)):
        series = page.evaluate(SERIES_JS, section)
        drawn = [n for n, width in series if n > 0 and width > 0]
        assert len(drawn) >= min_series, (section, series)
    # the representative curves have every point; targets and thresholds are drawn
    curve_points = page.evaluate(SERIES_JS, "#curves")
    assert all(n == CURVE_POINTS for n, _ in curve_points)
    assert page.locator("#metrics rect.band").count() >= 4
    assert page.locator("#pain line.ref").count() == 1
    bars = page.locator("#symmetry rect.bar")
    assert bars.count() >= 5
    assert all(0.0 < float(bars.nth(i).get_attribute("data-value")) <= 100.0 for i in range(bars.count()))
    text = page.locator("body").inner_text()
    assert "No curve stored for S1 right, S1 left" in text
    assert "pfp_default" in text and "Milestones" in text and "review 3" in text
    assert text.count("hold") >= 3  # the coach's decisions
    context.close()
