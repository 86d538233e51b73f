"""The history store's rehab schema (migration 2): an old database keeps its rows, the new tables
round-trip through the typed write and read methods."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sensorhub.errors import SinkError
from sensorhub.history import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AthletePlan,
    HistoryStore,
    PainEntry,
    PhaseChange,
)


def _version_1_database(path: Path) -> None:
    """A database as sensorhub with only migration 1 wrote it, with a row in every table."""
    conn = sqlite3.connect(path)
    conn.executescript(f"BEGIN; {MIGRATIONS[0]} PRAGMA user_version = 1; COMMIT;")
    conn.executescript(
        """
        INSERT INTO athletes VALUES ('ana', 'Ana', 1.0);
        INSERT INTO sessions VALUES ('s1', 'ana', 10.0, 100.0);
        INSERT INTO sets VALUES ('set1', 's1', 'ana', 'squat', 1, 11.0, 50.0, 2);
        INSERT INTO events (athlete_id, set_id, leg_id, type, t_s, control_score, metrics_json)
            VALUES ('ana', 'set1', 'ana/right', 'rep', 12.0, 75.0, '{"depth_deg": 80.0}');
        INSERT INTO cues (athlete_id, set_id, leg_id, phrase, rule, priority, t_s, latency_s)
            VALUES ('ana', 'set1', 'ana/right', 'knees out', 'r', 1, 13.0, 0.01);
        INSERT INTO pain (athlete_id, set_id, t_s, pain, threshold, flagged)
            VALUES ('ana', 'set1', 51.0, 4, 3, 1);
        INSERT INTO thresholds VALUES ('ana', 'depth_deg', 70.0, 1.0);
        """
    )
    conn.close()


def test_version_1_database_migrates_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    _version_1_database(path)
    with HistoryStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 2
        # old rows, read through the new API, with the new columns' defaults
        [session] = store.sessions("ana")
        assert (session.id, session.started_s, session.ended_s, session.kind) == ("s1", 10.0, 100.0, "clinic")
        [event] = store.events("ana")
        assert (event.session_id, event.drill, event.metrics, event.curve) == (
            "s1",
            "squat",
            {"depth_deg": 80.0},
            None,
        )
        [pain] = store.pain_entries("ana")
        assert (pain.pain, pain.flagged, pain.context, pain.session_id) == (4, True, "after", "s1")
        assert store.thresholds("ana") == {"depth_deg": 70.0}
        h = store.history("ana")
        assert h["recent_cues"][0]["phrase"] == "knees out" and h["sets"][0]["reps"] == 2
        # and the old database takes new rows
        store.record_pain(PainEntry("ana", None, 200.0, 2, 3, False, "next_morning", "s1"))
        store.flush()
        assert [p.context for p in store.pain_entries("ana")] == ["after", "next_morning"]
    conn = sqlite3.connect(path)
    counts = {
        t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("athletes", "cues", "sets")
    }
    conn.close()
    assert counts == {"athletes": 1, "cues": 1, "sets": 1}


def test_rehab_tables_round_trip(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        store.upsert_athlete("ana")
        store.set_plan(AthletePlan("ana", "pfp_default", 0, "right", 3, 1.0))
        store.change_phase(PhaseChange("ana", "pfp_default", None, 0, 1.0, "cli", "plan assigned"))
        store.start_session("s1", "ana", 10.0, kind="home")
        store.start_set("set1", "s1", "ana", "squat", 1, 10.0)
        curve = {"flexion_deg": [0.0, 45.0, float("nan")], "valgus_deg": [0.0, 2.0, 1.0]}
        store.record_event("ana", "set1", "ana/right", "rep", 11.0, {"depth_deg": 90.0}, 80.0, curve=curve)
        store.record_event("ana", None, "ana/right", "landing", 12.0, {"peak_flexion_deg": 60.0}, 70.0)
        store.record_pain(PainEntry("ana", "set1", 12.5, 5, 3, True, "during"))
        rec = store.record_recommendation(
            "ana", "s1", "pfp_default", 0, "advance", [{"criterion": "x"}], 20.0
        )
        store.record_decision(rec, "ana", "hold", 21.0, note="not yet", by="coach")
        store.record_decision(rec, "ana", "advance", 22.0, note="changed my mind", by="coach")
        store.change_phase(PhaseChange("ana", "pfp_default", 0, 1, 22.0, "coach", "milestones met"))
        store.record_calibration("ana", "ana/right", 10.0, {"residual_rms_rad_s": 0.05, "n_bends": 3}, "s1")
        store.flush()
        plan = store.plan("ana")
        assert plan is not None and plan.phase_index == 1 and plan.updated_s == 22.0
        assert [(c.from_phase, c.to_phase, c.by) for c in store.phase_history("ana")] == [
            (None, 0, "cli"),
            (0, 1, "coach"),
        ]
        [r] = store.recommendations("ana")
        assert (r.id, r.action, r.reasons, r.session_id) == (rec, "advance", [{"criterion": "x"}], "s1")
        assert r.decision is not None and (r.decision.decision, r.decision.note) == (
            "advance",
            "changed my mind",
        )
        events = store.events("ana")
        assert [e.type for e in events] == ["rep", "landing"]
        assert events[0].curve == {"flexion_deg": [0.0, 45.0, None], "valgus_deg": [0.0, 2.0, 1.0]}
        assert events[1].session_id is None and [e.type for e in store.events("ana", session_id="s1")] == [
            "rep"
        ]
        assert [e.t_s for e in store.events("ana", since_s=11.5)] == [12.0]
        assert store.sessions("ana")[0].kind == "home"
        assert store.pain_entries("ana")[0].session_id == "s1"
        [cal] = store.calibrations("ana")
        assert cal.quality == {"residual_rms_rad_s": 0.05, "n_bends": 3} and cal.session_id == "s1"
        assert store.plan("nobody") is None


def test_bad_rehab_values_are_refused_before_queueing(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        with pytest.raises(SinkError, match="pain context"):
            store.record_pain(PainEntry("ana", None, 0.0, 2, 3, False, "yesterday"))
        with pytest.raises(SinkError, match="session kind"):
            store.start_session("s", "ana", 0.0, kind="gym")
        with pytest.raises(SinkError, match="recommendation"):
            store.record_recommendation("ana", None, "p", 0, "jump", [], 0.0)
        with pytest.raises(SinkError, match="involved side"):
            store.set_plan(AthletePlan("ana", "p", 0, "middle", 3, 0.0))
