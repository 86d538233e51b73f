"""Pain-guided progression end to end: a simulated athlete (firmware_sim drills, realistic IMU errors)
goes through the real analysis into the history store over three sessions in one week; after each
session the recommendation is hold (mechanics not there yet), step back (pain flare-up), advance (the
foundation milestones met), each with its reasons. Plus the pure rules on plain data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_sim.athletes import make_leg_csv_arrays, simulate_motion
from sensorhub.analysis import detect_events
from sensorhub.cli import main
from sensorhub.history import AthletePlan, HistoryStore, PainEntry, PhaseChange, StoredEvent
from sensorhub.kinematics import estimate_knee
from sensorhub.model import Event, LegSamples
from sensorhub.rehab.curves import Curve, extract_curve
from sensorhub.rehab.program import parse_program
from sensorhub.rehab.progression import (
    Recommendation,
    SessionData,
    apply_decision,
    gather_history,
    recommend,
    recommend_for,
    record_recommendation,
)
from tests.helpers import ARTIFACTS

UTC = dt.UTC
MONDAY_S = dt.datetime(2024, 1, 1, 9, 0, tzinfo=UTC).timestamp()  # 2024-01-01 is a Monday
DAY_S = 86400.0
RATE_HZ = 200.0

# A compact program in the real format: the athlete starts in phase 1 (step-downs and drop jumps).
PROGRAM = {
    "name": "pfp_test",
    "max_weekly_load_increase_pct": 20.0,
    "phases": [
        {
            "name": "foundation",
            "drills": [
                {
                    "drill": "squat",
                    "sets": 1,
                    "reps": 6,
                    "targets": {"peak_valgus_deg": {"max": 6.0}, "eccentric_s": {"min": 1.0}},
                },
                {"drill": "side_lying_hip_abduction", "sets": 3, "reps": 15},
            ],
            "criteria": {"pain_free_sessions": 1, "target_share": 0.8, "min_events": 4},
        },
        {
            "name": "control",
            "drills": [
                {"drill": "step_down", "sets": 1, "reps": 6, "targets": {"peak_valgus_deg": {"max": 6.0}}},
                {"drill": "drop_jump", "sets": 1, "reps": 4, "targets": {"peak_flexion_deg": {"min": 50.0}}},
            ],
            "criteria": {
                "pain_free_sessions": 2,
                "target_share": 0.8,
                "min_events": 4,
                "symmetry_min_pct": 90.0,
                "symmetry_metrics": ["peak_flexion_deg"],
            },
        },
        {
            "name": "sport",
            "drills": [{"drill": "cut_45", "sets": 1, "reps": 5}],
            "criteria": {"pain_free_sessions": 2},
        },
    ],
}


def _analysed_events(
    drill: str, sides: tuple[str, ...], reps: int, seed: int, faults: dict[str, float]
) -> list[tuple[Event, Curve | None]]:
    """One simulated set through the offline analysis (the live path's estimator and detector), each
    event with its knee-angle curve (as the live path stores them)."""
    motion = simulate_motion(drill, reps=reps, sides=sides, seed=seed, faults=faults)
    events: list[tuple[Event, Curve | None]] = []
    for side in sides:
        leg = make_leg_csv_arrays(drill, side, seed=seed, errors="realistic", motion=motion)
        d = leg.data
        samples = LegSamples(
            f"ana/{side}",
            leg.t_s,
            np.ascontiguousarray(d[:, 0:3]),
            np.ascontiguousarray(d[:, 3:6]),
            np.ascontiguousarray(d[:, 6:9]),
            np.ascontiguousarray(d[:, 9:12]),
        )
        run = estimate_knee(samples, side, RATE_HZ)
        angles = run.angles
        flexion_deg, valgus_deg = np.degrees(angles.flexion_rad), np.degrees(angles.valgus_rad)
        events += [
            (e, extract_curve(angles.t_s, flexion_deg, valgus_deg, e))
            for e in detect_events(angles, run.motion, side, RATE_HZ)
        ]
    # the drill's set starts after the calibration bends (their reps are not part of it)
    first_s = min(e["t_s"] for e in motion.events if not e.get("calibration"))
    return [(e, c) for e, c in events if e.t_s >= first_s - 0.5]


def _record_session(
    store: HistoryStore,
    session_id: str,
    start_s: float,
    sets: list[tuple[str, list[tuple[Event, Curve | None]]]],
    pain: list[tuple[int, str, int]],
) -> None:
    """``pain``: (set index, context, value)."""
    store.start_session(session_id, "ana", start_s)
    set_ids = []
    t_s = start_s
    for k, (drill, events) in enumerate(sets):
        set_id = f"{session_id}-{k + 1}"
        set_ids.append(set_id)
        store.start_set(set_id, session_id, "ana", drill, k + 1, t_s)
        for e, curve in events:
            stored = None
            if curve is not None:  # the set's data times start at 0: shift them as the event's
                stored = {**curve.to_store(), "window_s": [t_s + curve.t0_s, t_s + curve.t1_s]}
            store.record_event(
                "ana", set_id, e.leg_id, e.type, t_s + e.t_s, e.metrics, e.control_score, curve=stored
            )
        t_s += 120.0
        store.end_set(set_id, t_s, sum(e.leg_id.endswith("right") for e, _ in events))
    for index, context, value in pain:
        store.record_pain(PainEntry("ana", set_ids[index], t_s + index, value, 3, value > 3, context))
    store.end_session(session_id, t_s + 60.0)


def _criteria(rec: Recommendation) -> dict[str, Any]:
    return {c.name: c for c in rec.criteria}


def test_simulated_athlete_goes_hold_then_step_back_then_advance(tmp_path: Path, browser: Any) -> None:
    program = parse_program(PROGRAM, "pfp_test.toml")
    with HistoryStore(tmp_path / "history.sqlite3") as store:
        store.upsert_athlete("ana", "Ana")
        plan = AthletePlan("ana", "pfp_test", 1, "right", 3, MONDAY_S - DAY_S)
        store.set_plan(plan)
        store.change_phase(PhaseChange("ana", "pfp_test", None, 1, MONDAY_S - DAY_S, "test", "assigned"))
        actions = []

        def after_session(t_s: float) -> tuple[Recommendation, str]:
            store.flush()
            rec = recommend_for(store, program, "ana", tz=UTC)
            actions.append(rec.action)
            return rec, record_recommendation(store, plan, rec, t_s)

        # Session 1 (Monday, phase 1): step-downs with valgus on every rep, drop jumps fine; pain 2.
        _record_session(
            store,
            "s1",
            MONDAY_S,
            [
                ("step_down", _analysed_events("step_down", ("right",), 6, 11, {"valgus": 1.0})),
                ("drop_jump", _analysed_events("drop_jump", ("right", "left"), 4, 12, {})),
            ],
            [(0, "after", 2), (1, "after", 2)],
        )
        rec1, rec1_id = after_session(MONDAY_S + 3600.0)
        c1 = _criteria(rec1)
        assert rec1.action == "hold" and rec1.to_phase == 1
        assert (
            not c1["target:step_down.peak_valgus_deg"].met
            and c1["target:step_down.peak_valgus_deg"].value < 0.8
        )
        assert c1["target:drop_jump.peak_flexion_deg"].met
        assert (
            c1["symmetry:drop_jump.peak_flexion_deg"].met
            and c1["symmetry:drop_jump.peak_flexion_deg"].value >= 90
        )
        assert not c1["pain_free_sessions"].met and c1["pain_free_sessions"].value == 1.0  # one of two
        assert all(c.met for c in rec1.flare_up) and not rec1.flagged_sets
        plan = apply_decision(store, plan, program, rec1_id, "hold", MONDAY_S + 3700.0, by="coach")

        # Session 2 (Wednesday, phase 1): mechanics improving (valgus on some reps), pain 6 during set 2.
        wednesday = MONDAY_S + 2 * DAY_S
        _record_session(
            store,
            "s2",
            wednesday,
            [
                ("step_down", _analysed_events("step_down", ("right",), 6, 21, {"valgus": 0.3})),
                ("drop_jump", _analysed_events("drop_jump", ("right", "left"), 4, 22, {})),
            ],
            [(0, "after", 2), (1, "during", 6), (1, "after", 5)],
        )
        rec2, rec2_id = after_session(wednesday + 3600.0)
        assert rec2.action == "step_back" and rec2.to_phase == 0
        [in_session] = [c for c in rec2.flare_up if c.name == "pain_in_session"]
        assert not in_session.met and in_session.value == 6.0 and in_session.target == 3.0
        assert {(f.set_id, f.pain, f.context) for f in rec2.flagged_sets} == {
            ("s2-2", 6, "during"),
            ("s2-2", 5, "after"),
        }
        assert any("reduce intensity or volume" in a for a in rec2.advice)
        plan = apply_decision(
            store, plan, program, rec2_id, "step_back", wednesday + 3700.0, "flare-up", "coach"
        )
        assert plan.phase_index == 0
        # the next morning the pain has settled
        store.record_pain(
            PainEntry("ana", None, wednesday + DAY_S - 7200.0, 2, 3, False, "next_morning", "s2")
        )

        # Session 3 (Friday, phase 0): clean squats; pain 1 -> the foundation milestones are met.
        friday = MONDAY_S + 4 * DAY_S
        _record_session(
            store,
            "s3",
            friday,
            [("squat", _analysed_events("squat", ("right",), 6, 31, {}))],
            [(0, "after", 1)],
        )
        rec3, rec3_id = after_session(friday + 3600.0)
        c3 = _criteria(rec3)
        assert rec3.action == "advance" and (rec3.phase_index, rec3.to_phase) == (0, 1)
        assert all(c.met for c in rec3.criteria) and all(c.met for c in rec3.flare_up)
        assert c3["target:squat.peak_valgus_deg"].value >= 0.8 and c3["target:squat.eccentric_s"].value >= 0.8
        assert c3["pain_free_sessions"].value == 1.0
        assert "pain_next_morning_previous" in {c.name for c in rec3.flare_up}
        assert c3["weekly_load"].met
        plan = apply_decision(
            store, plan, program, rec3_id, "advance", friday + 3700.0, "milestones met", "coach"
        )
        store.flush()

        assert actions == ["hold", "step_back", "advance"]
        # stored: recommendations with reasons and the coach's decisions, and the phase history
        stored = store.recommendations("ana")
        assert [r.action for r in stored] == actions
        assert [r.decision.decision if r.decision else None for r in stored] == [
            "hold",
            "step_back",
            "advance",
        ]
        kinds = {reason["kind"] for reason in stored[1].reasons}
        assert {"flare_up", "milestone", "flagged_set", "advice"} <= kinds
        assert any(
            r["criterion"] == "target:step_down.peak_valgus_deg" and r["met"] is False
            for r in stored[0].reasons
        )
        assert [(c.from_phase, c.to_phase) for c in store.phase_history("ana")] == [(None, 1), (1, 0), (0, 1)]
        final = store.plan("ana")
        assert final is not None and final.phase_index == 1

    # The report of these sessions, as a clinician makes it, opened in Chromium with its plots drawn.
    out = tmp_path / "report.html"
    assert main(["report", "ana", "--out", str(out), "--db", str(tmp_path / "history.sqlite3")]) == 0
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(out.as_uri())
    page.screenshot(path=str(ARTIFACTS / "rehab_progression_report.png"), full_page=True)
    series = {
        section: page.evaluate(
            "(sel) => Array.from(document.querySelectorAll(sel + ' svg.chart path.series'))"
            ".map((p) => [Number(p.dataset.n), p.getBoundingClientRect().width])",
            section,
        )
        for section in ("#curves", "#metrics", "#pain")
    }
    # curves: a representative event per drill, session and leg (step-down, drop jump x2, squat, ...)
    for section, least in (("#curves", 4), ("#metrics", 4), ("#pain", 1)):
        drawn = [n for n, width in series[section] if n > 0 and width > 0]
        assert len(drawn) >= least, (section, series[section])
    assert all(n == 101 for n, _ in series["#curves"])
    text = page.locator("body").inner_text()
    for phrase in ("step_back", "advance", "milestones met", "flare-up"):
        assert phrase in text, phrase
    page.close()


def _stored(
    drill: str, type_: str, metrics: dict[str, float], session_id: str = "s", leg: str = "ana/right"
) -> StoredEvent:
    return StoredEvent(0, "ana", session_id, "set", drill, leg, type_, 0.0, 80.0, metrics, None)


def _session(
    session_id: str, day: int, events: list[StoredEvent], pain: list[tuple[str, int]]
) -> SessionData:
    return SessionData(
        session_id,
        MONDAY_S + day * DAY_S,
        "clinic",
        tuple(events),
        tuple(
            PainEntry("ana", None, MONDAY_S + day * DAY_S, v, 3, v > 3, ctx, session_id) for ctx, v in pain
        ),
    )


def _good_squats(session_id: str, n: int = 5) -> list[StoredEvent]:
    return [
        _stored("squat", "rep", {"peak_valgus_deg": 2.0, "eccentric_s": 1.5}, session_id) for _ in range(n)
    ]


def test_next_morning_flare_up_steps_back_and_phase_0_holds_with_reduced_volume() -> None:
    program = parse_program(PROGRAM, "pfp_test.toml")
    history = [
        _session("a", 0, _good_squats("a"), [("after", 2), ("next_morning", 5)]),
        _session("b", 2, _good_squats("b"), [("after", 1)]),
    ]
    in_phase_1 = recommend(program, AthletePlan("ana", "pfp_test", 1, "right", 3, 0.0), history, tz=UTC)
    assert in_phase_1.action == "step_back"
    [morning] = [c for c in in_phase_1.flare_up if c.name == "pain_next_morning_previous"]
    assert not morning.met and morning.value == 5.0
    in_phase_0 = recommend(program, AthletePlan("ana", "pfp_test", 0, "right", 3, 0.0), history, tz=UTC)
    assert in_phase_0.action == "hold" and in_phase_0.to_phase == 0
    assert any("reduced volume" in a for a in in_phase_0.advice)
    # a higher personal threshold: the same pain is no flare-up, and the milestones are met
    tolerant = recommend(program, AthletePlan("ana", "pfp_test", 0, "right", 5, 0.0), history, tz=UTC)
    assert tolerant.action == "advance"


def test_milestones_not_met_hold_with_reasons_and_athlete_overrides_apply() -> None:
    program = parse_program(PROGRAM, "pfp_test.toml")
    plan = AthletePlan("ana", "pfp_test", 0, "right", 3, 0.0)
    few = [_session("a", 0, _good_squats("a", 3), [("after", 1)])]
    rec = recommend(program, plan, few, tz=UTC)
    crit = _criteria(rec)
    assert rec.action == "hold" and not crit["target:squat.peak_valgus_deg"].met
    assert "3 rep(s)" in crit["target:squat.peak_valgus_deg"].detail  # not enough reps to judge
    # valgus 7 deg on every rep: not met with the program's 6, met with the athlete's own 8
    valgus = [_stored("squat", "rep", {"peak_valgus_deg": 7.0, "eccentric_s": 1.5}, "a") for _ in range(5)]
    history = [_session("a", 0, valgus, [("after", 1)])]
    assert recommend(program, plan, history, tz=UTC).action == "hold"
    assert recommend(program, plan, history, overrides={"peak_valgus_deg": 8.0}, tz=UTC).action == "advance"
    # the left leg's reps do not count for a right-involved athlete
    left = [
        _stored("squat", "rep", {"peak_valgus_deg": 2.0, "eccentric_s": 1.5}, "a", "ana/left")
        for _ in range(5)
    ]
    assert recommend(program, plan, [_session("a", 0, left, [("after", 1)])], tz=UTC).action == "hold"
    # a session without pain recorded is not counted as pain-free
    assert recommend(program, plan, [_session("a", 0, _good_squats("a"), [])], tz=UTC).action == "hold"


def test_final_phase_holds_and_weekly_load_rise_blocks_advancing() -> None:
    program = parse_program(PROGRAM, "pfp_test.toml")
    last = AthletePlan("ana", "pfp_test", 2, "right", 3, 0.0)
    history = [_session(s, d, [], [("after", 1)]) for s, d in (("a", 0), ("b", 2))]
    rec = recommend(program, last, history, tz=UTC)
    assert rec.action == "hold" and any("final phase" in a for a in rec.advice)
    # week 1: 5 squats; week 2: 10 squats (+100 % > 20 %): the load milestone is not met
    plan = AthletePlan("ana", "pfp_test", 0, "right", 3, 0.0)
    weeks = [
        _session("w1", 0, _good_squats("w1"), [("after", 1)]),
        _session("w2", 7, _good_squats("w2", 10), [("after", 1)]),
    ]
    rec = recommend(program, plan, weeks, tz=UTC)
    load = _criteria(rec)["weekly_load"]
    assert rec.action == "hold" and not load.met and load.value == pytest.approx(100.0)


def test_gather_history_groups_events_and_pain_by_session(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        store.upsert_athlete("ana")
        store.start_session("s1", "ana", 100.0)
        store.start_set("x", "s1", "ana", "squat", 1, 100.0)
        store.record_event("ana", "x", "ana/right", "rep", 101.0, {"peak_valgus_deg": 2.0}, 90.0)
        store.record_event("ana", None, "ana/right", "rep", 99.0, {"peak_valgus_deg": 2.0}, 90.0)  # no set
        store.record_pain(PainEntry("ana", "x", 102.0, 2, 3, False))
        store.record_pain(PainEntry("ana", None, 200.0, 1, 3, False, "next_morning", "s1"))
        store.flush()
        [s1] = gather_history(store, "ana")
    assert len(s1.events) == 1 and [p.context for p in s1.pain] == ["after", "next_morning"]
