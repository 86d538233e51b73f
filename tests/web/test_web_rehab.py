"""The rehab workflow through the dashboard service (real uvicorn on a free port, real SQLite store):
plans, pain contexts, finish session -> recommendation -> decision, home sets, live fatigue, rep curves,
weekly load, the report and CSV routes, access control, and ``sensorhub plan``."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensorhub.cli import main as cli_main
from sensorhub.config import Config, ServiceConfig
from sensorhub.cues import DEFAULT_RULES, parse_rules
from sensorhub.history import HistoryStore
from sensorhub.model import Event, KneeAngles, SensorRef
from sensorhub.rehab.program import find_program
from sensorhub.runtime.service import ServiceHandle, Stage, serve_in_thread
from sensorhub.sources.base import PacketSource
from tests.helpers import IdleSource, leg_refs

ATHLETES = ("ana", "ben")
PROGRAM = find_program("pfp_default")


@contextlib.contextmanager
def service(db: Path, host: str = "127.0.0.1") -> Iterator[ServiceHandle]:
    config = replace(Config(), service=ServiceConfig(host=host), cues=parse_rules(DEFAULT_RULES, "<test>"))

    def make() -> tuple[PacketSource, list[SensorRef], list[Stage]]:
        return IdleSource(), leg_refs(ATHLETES), []

    with serve_in_thread(config, make, host=host, port=0, store_path=db) as handle:
        yield handle


class Client:
    """HTTP to the service, as the coach (its token, if any) or with another token."""

    def __init__(self, handle: ServiceHandle, token: str | None = None) -> None:
        self.handle = handle
        self.token = handle.policy.token or "" if token is None else token

    def call(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.handle.port}{path}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                raw = res.read()
                kind = res.headers.get("content-type", "")
                if kind.startswith("application/json"):
                    return res.status, json.loads(raw)
                return res.status, raw.decode() if kind.startswith("text/") else raw
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read().decode() or "{}")

    def ok(self, path: str, method: str = "GET", body: Any = None) -> Any:
        status, doc = self.call(path, method, body)
        assert status == 200, (path, status, doc)
        return doc


def publish(handle: ServiceHandle, topic: str, key: str, payload: Any) -> None:
    assert handle.loop is not None
    handle.loop.call_soon_threadsafe(handle.bus.publish, topic, key, payload)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def events_seen(handle: ServiceHandle, athlete: str) -> int:
    return sum(handle.sessions.athletes[athlete].reps_by_leg.values())


def run_set(handle: ServiceHandle, coach: Client, athlete: str, drill: str, events: list[Event]) -> str:
    """Start a set, publish its events, wait until the session manager has them, stop it."""
    set_id = coach.ok(f"/api/athletes/{athlete}/set/start", "POST", {"drill": drill})["set_id"]
    for e in events:
        publish(handle, "events", e.leg_id, e)
    wait_for(lambda: events_seen(handle, athlete) == len(events))
    coach.ok(f"/api/athletes/{athlete}/set/stop", "POST")
    return str(set_id)


def reps(leg: str, n: int, valgus_deg: Callable[[int], float] = lambda i: 3.0) -> list[Event]:
    return [
        Event(
            "rep",
            leg,
            10.0 + 3 * i,
            {"depth_deg": 70.0, "eccentric_s": 2.4, "peak_valgus_deg": valgus_deg(i)},
            85.0,
        )
        for i in range(n)
    ]


def state(coach: Client, athlete: str) -> dict[str, Any]:
    return {a["athlete"]: a for a in coach.ok("/api/athletes")["athletes"]}[athlete]


def test_plan_set_from_dashboard_drives_drills_targets_and_cue_rules(tmp_path: Path) -> None:
    with service(tmp_path / "h.sqlite3") as handle:
        coach = Client(handle)
        assert coach.ok("/api/athletes/ana/plan") == {"plan": None}
        assert "pfp_default" in coach.ok("/api/programs")["programs"]
        plan = coach.ok(
            "/api/athletes/ana/plan",
            "PUT",
            {"program": "pfp_default", "phase": 0, "pain_threshold": 4, "side": "right"},
        )["plan"]
        phase0 = PROGRAM.phases[0]
        assert (plan["program"], plan["phase"], plan["pain_threshold"], plan["involved_side"]) == (
            "pfp_default",
            phase0.name,
            4,
            "right",
        )
        assert [c["reason"] for c in plan["phase_history"]] == ["plan assigned"]
        ana = state(coach, "ana")
        assert ana["drills"] == [d.drill for d in phase0.drills] and ana["pain_threshold"] == 4
        # The program's targets for the chosen drill replace the defaults (squat: valgus <= 6, not 8).
        assert ana["drill"] == "squat" and ana["targets"]["peak_valgus_deg"] == {"bound": "max", "value": 6.0}
        assert state(coach, "ben")["drills"] == list(handle.sessions.drills)  # no plan: the service's
        status, err = coach.call("/api/athletes/ana/drill", "POST", {"drill": "drop_jump"})
        assert status == 409 and "squat" in err["error"]  # not a drill of this phase
        # Refused edits name what is wrong.
        status, err = coach.call("/api/athletes/ana/plan", "PUT", {"phase": 9})
        assert status == 400 and "phases 0-3" in err["error"]
        status, err = coach.call("/api/athletes/ana/plan", "PUT", {"program": "nope"})
        assert status == 400 and "pfp_default" in err["error"]
        status, err = coach.call("/api/athletes/ana/plan", "PUT", {"program": "/dev/zero"})
        assert status == 400 and "unknown program '/dev/zero'" in err["error"]
        status, err = coach.call("/api/athletes/ben/plan", "PUT", {"program": "pfp_default"})
        assert status == 400 and "involved side" in err["error"]
        status, err = coach.call("/api/athletes/ana/plan", "PUT", {"pain": 3})
        assert status == 400
        # The cue engine follows the phase's rules: "slower down" at eccentric_s < 1.5 (default: < 0.85).
        cues = handle.runner.cues
        assert cues is not None
        rep = Event("rep", "ana/right", 100.0, {"eccentric_s": 1.2, "peak_valgus_deg": 2.0}, 80)
        fired: list[Any] = []

        def cue_fires() -> bool:
            fired.append(cues.engine.on_event(rep))
            return fired[-1] is not None

        wait_for(cue_fires)
        cue = fired[-1]
        other = cues.engine.on_event(replace(rep, leg_id="ben/right"))
        assert cue is not None and cue.phrase == "slower down" and other is None
        # The phrases of program rules were rendered at start-up: the athlete page can fetch them.
        status, _ = Client(handle).call("/audio/slower-down.wav?athlete=ana")
        assert status == 200
        coach.ok("/api/athletes/ana/plan", "PUT", {"phase": 1})
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        stored = store.plan("ana")
        moves = [(c.from_phase, c.to_phase, c.by) for c in store.phase_history("ana")]
    assert stored is not None and (stored.phase_index, stored.pain_threshold) == (1, 4)
    assert moves == [(None, 0, "coach"), (0, 1, "coach")]
    # A restarted service picks the plan up again.
    with service(tmp_path / "h.sqlite3") as handle:
        ana = state(Client(handle), "ana")
    assert ana["plan"]["phase_index"] == 1 and ana["drills"] == [d.drill for d in PROGRAM.phases[1].drills]


def test_pain_contexts_and_next_morning_from_the_athlete_token(tmp_path: Path) -> None:
    with service(tmp_path / "h.sqlite3", host="0.0.0.0") as handle:
        coach = Client(handle)
        athlete = Client(handle, handle.policy.athlete_token("ana"))
        coach.ok(
            "/api/athletes/ana/plan", "PUT", {"program": "pfp_default", "side": "right", "pain_threshold": 3}
        )
        set_id = coach.ok("/api/athletes/ana/set/start", "POST", {"drill": "squat"})["set_id"]
        during = coach.ok("/api/athletes/ana/pain", "POST", {"pain": 5, "context": "during"})
        assert during["flagged"] and "reduce load" in during["guidance"] and during["set_id"] == set_id
        coach.ok("/api/athletes/ana/set/stop", "POST")
        after = athlete.ok("/api/athletes/ana/pain", "POST", {"pain": 2, "context": "after"})
        assert not after["flagged"] and after["set_id"] == set_id
        session_id = state(coach, "ana")["session_id"]
        coach.ok("/api/athletes/ana/session/finish", "POST")
        morning = athlete.ok("/api/athletes/ana/pain", "POST", {"pain": 6, "context": "next_morning"})
        assert morning["flagged"] and "next session" in morning["guidance"]
        assert morning["session_id"] == session_id and morning["set_id"] is None
        assert athlete.call("/api/athletes/ana/pain", "POST", {"pain": 2, "context": "tomorrow"})[0] == 409
        # The athlete's token: its own pain and home sets only; nothing of another athlete, no coach route.
        refused = [
            ("/api/athletes/ben/pain", "POST", {"pain": 1}),
            ("/api/athletes/ben/set/start", "POST", {}),
            ("/api/athletes/ana/plan", "GET", None),
            ("/api/athletes/ana/plan", "PUT", {"phase": 1}),
            ("/api/athletes/ana/session/finish", "POST", {}),
            ("/api/athletes/ana/decision", "POST", {"recommendation_id": "x", "decision": "hold"}),
            ("/api/athletes/ana/thresholds", "PUT", {"pain_threshold": 9}),
            ("/api/athletes/ana/drill", "POST", {"drill": "squat"}),
            ("/api/athletes/ana/history", "GET", None),
            ("/api/programs", "GET", None),
            ("/report/ana", "GET", None),
            ("/export/ana.csv", "GET", None),
        ]
        for path, method, body in refused:
            assert athlete.call(path, method, body)[0] == 401, path
        assert Client(handle, "").call("/api/athletes/ana/pain", "POST", {"pain": 1})[0] == 401
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        entries = [(p.context, p.pain, p.flagged, p.session_id) for p in store.pain_entries("ana")]
    assert entries == [
        ("during", 5, True, session_id),
        ("after", 2, False, session_id),
        ("next_morning", 6, True, session_id),
    ]


def test_finish_session_recommends_with_reasons_and_the_decision_moves_the_phase(tmp_path: Path) -> None:
    with service(tmp_path / "h.sqlite3") as handle:
        coach = Client(handle)
        coach.ok("/api/athletes/ana/plan", "PUT", {"program": "pfp_default", "phase": 1, "side": "right"})
        status, err = coach.call("/api/athletes/ana/session/finish", "POST")
        assert status == 409 and "no session" in err["error"]
        run_set(handle, coach, "ana", "single_leg_squat", reps("ana/right", 6))
        coach.ok("/api/athletes/ana/pain", "POST", {"pain": 6, "context": "after"})  # above 3: flare-up
        rec = coach.ok("/api/athletes/ana/session/finish", "POST")
        assert (rec["action"], rec["phase_index"], rec["to_phase"]) == ("step_back", 1, 0)
        by_name = {r["criterion"]: r for r in rec["reasons"] if r["kind"] in ("flare_up", "milestone")}
        pain = by_name["pain_in_session"]
        assert (pain["met"], pain["value"], pain["target"]) == (False, 6.0, 3.0)
        target = by_name["target:single_leg_squat.peak_valgus_deg"]
        assert target["met"] and target["value"] == 1.0 and "6/6" in target["detail"]
        assert not by_name["pain_free_sessions"]["met"]
        assert any(r["kind"] == "flagged_set" and r["pain"] == 6 for r in rec["reasons"])
        assert state(coach, "ana")["recommendation"]["id"] == rec["id"]  # on the coach view too
        status, err = coach.call(
            "/api/athletes/ana/decision", "POST", {"recommendation_id": rec["id"], "decision": "sideways"}
        )
        assert status == 409
        decided = coach.ok(
            "/api/athletes/ana/decision",
            "POST",
            {"recommendation_id": rec["id"], "decision": "step_back", "note": "sore after hops"},
        )
        assert not decided["overrides"] and decided["plan"]["phase_index"] == 0
        assert state(coach, "ana")["drills"] == [d.drill for d in PROGRAM.phases[0].drills]
        status, _ = coach.call(
            "/api/athletes/ana/decision", "POST", {"recommendation_id": rec["id"], "decision": "hold"}
        )
        assert status == 409  # decided already
        # The next session: pain-free, but one pain-free session of the two needed -> hold; overridden.
        run_set(handle, coach, "ana", "squat", reps("ana/right", 6))
        coach.ok("/api/athletes/ana/pain", "POST", {"pain": 1})
        second = coach.ok("/api/athletes/ana/session/finish", "POST")
        assert second["action"] == "hold" and second["session_id"] != rec["session_id"]
        coach.ok(
            "/api/athletes/ana/decision",
            "POST",
            {"recommendation_id": second["id"], "decision": "advance", "note": "coach's judgement"},
        )
        # The first, older recommendation was decided already: deciding it again moves nothing.
        status, _ = coach.call(
            "/api/athletes/ana/decision", "POST", {"recommendation_id": rec["id"], "decision": "advance"}
        )
        assert status == 409
        history = coach.ok("/api/athletes/ana/history")["rehab"]
    assert [(r["action"], r["decision"]["decision"]) for r in history["recommendations"]] == [
        ("step_back", "step_back"),
        ("hold", "advance"),
    ]
    assert history["recommendations"][1]["decision"]["note"] == "coach's judgement"
    assert [(c["from_phase"], c["to_phase"]) for c in history["phase_history"]] == [(None, 1), (1, 0), (0, 1)]
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        stored = store.recommendations("ana")
        plan = store.plan("ana")
    assert stored[0].reasons == rec["reasons"] and stored[0].decision is not None
    assert stored[0].decision.note == "sore after hops" and plan is not None and plan.phase_index == 1


def test_home_set_from_the_athlete_view_is_a_home_session(tmp_path: Path) -> None:
    with service(tmp_path / "h.sqlite3", host="0.0.0.0") as handle:
        coach = Client(handle)
        athlete = Client(handle, handle.policy.athlete_token("ana"))
        run_set(handle, coach, "ana", "squat", reps("ana/right", 2))  # a clinic session first
        # kind "clinic" from an athlete's token is ignored: the athlete alone runs home sets.
        set_id = athlete.ok("/api/athletes/ana/set/start", "POST", {"drill": "step_down", "kind": "clinic"})[
            "set_id"
        ]
        assert state(coach, "ana")["session_kind"] == "home"
        for e in reps("ana/right", 3):
            publish(handle, "events", e.leg_id, e)
        wait_for(lambda: events_seen(handle, "ana") == 3)
        athlete.ok("/api/athletes/ana/set/stop", "POST")
        history = coach.ok("/api/athletes/ana/history")
    kinds = history["rehab"]["session_kinds"]
    assert [kinds[s["id"]] for s in history["sessions"]] == ["clinic", "home"]
    home_sets = [s for s in history["sets"] if kinds[s["session_id"]] == "home"]
    assert [(s["id"], s["drill"], s["reps"]) for s in home_sets] == [(set_id, "step_down", 3)]


def test_fatigue_is_flagged_live_and_stored_with_the_set(tmp_path: Path) -> None:
    with service(tmp_path / "h.sqlite3") as handle:
        coach = Client(handle)
        steady = run_set(handle, coach, "ana", "squat", reps("ana/right", 8, lambda i: 3.0 + 0.3 * (i % 2)))
        assert state(coach, "ana")["fatigue"]["flagged"] is False
        coach.ok("/api/athletes/ana/set/start", "POST", {"drill": "squat"})
        for e in reps("ana/right", 8, lambda i: 2.0 + 1.0 * i):  # valgus rising 7 deg over the set
            publish(handle, "events", e.leg_id, e)
        wait_for(lambda: (state(coach, "ana")["fatigue"] or {}).get("flagged") is True)
        live = state(coach, "ana")["fatigue"]
        drifting = coach.ok("/api/athletes/ana/set/stop", "POST")["set_id"]
        stored = coach.ok("/api/athletes/ana/history")["rehab"]["set_fatigue"]
    assert "valgus rising" in live["reasons"][0] and "ana/right" in live["reasons"][0]
    assert stored[drifting]["flagged"] and not stored[steady]["flagged"]


def test_reps_are_stored_with_their_knee_angle_curve(tmp_path: Path) -> None:
    rate_hz = 200.0
    t_s = np.arange(0.0, 4.0, 1.0 / rate_hz)
    flexion_deg = 5.0 + 80.0 * np.sin(np.pi * np.clip(t_s - 1.0, 0.0, 2.0) / 2.0)
    with service(tmp_path / "h.sqlite3") as handle:
        coach = Client(handle)
        coach.ok("/api/athletes/ana/set/start", "POST", {"drill": "squat"})
        for k in range(0, t_s.size, 20):  # 0.1 s chunks, as the pipeline publishes them
            sl = slice(k, k + 20)
            n = t_s[sl].size
            chunk = KneeAngles(
                "ana/right",
                t_s[sl],
                np.radians(flexion_deg[sl]),
                np.radians(np.full(n, 4.0)),
                np.zeros(n),
                np.zeros(n, dtype=np.uint8),
            )
            publish(handle, "angles", "ana/right", chunk)
        rep = Event("rep", "ana/right", 1.0, {"depth_deg": 85.0, "t_bottom_s": 2.0, "t_end_s": 3.0}, 80.0)
        publish(handle, "events", "ana/right", rep)
        wait_for(lambda: events_seen(handle, "ana") == 1)
        coach.ok("/api/athletes/ana/set/stop", "POST")
        assert handle.store is not None
        handle.store.flush()
        (stored,) = handle.store.events("ana")
    assert stored.curve is not None
    curve = np.asarray(stored.curve["flexion_deg"])
    truth = 5.0 + 80.0 * np.sin(np.pi * np.linspace(0.0, 2.0, 101) / 2.0)
    assert curve.shape == (101,) and np.max(np.abs(curve - truth)) < 0.2
    assert np.allclose(np.asarray(stored.curve["valgus_deg"], dtype=float), 4.0)


def test_weekly_load_flag_report_and_csv_export(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    week_ago_s = time.time() - 7 * 86400.0
    with HistoryStore(db) as store:  # last week: two landings of 5 g
        store.upsert_athlete("ana")
        store.start_session("old", "ana", week_ago_s)
        store.start_set("old-set", "old", "ana", "drop_jump", 1, week_ago_s)
        for k in range(2):
            store.record_event(
                "ana", "old-set", "ana/right", "landing", week_ago_s + k, {"peak_shank_accel_g": 5.0}, 70.0
            )
    with service(db) as handle:
        coach = Client(handle)
        landings = [
            Event(
                "landing", "ana/right", 20.0 + k, {"peak_shank_accel_g": 5.0, "peak_flexion_deg": 70.0}, 70.0
            )
            for k in range(4)
        ]
        run_set(handle, coach, "ana", "drop_jump", landings)  # this week: twice the load
        weeks = coach.ok("/api/athletes/ana/history")["rehab"]["weekly_load"]
        report = coach.ok("/report/ana")
        csv_text = coach.ok("/export/ana.csv")
        assert coach.call("/report/nobody")[0] == 404
    assert [(w["landings"], w["impact_load_g"], w["flagged"]) for w in weeks] == [
        (2, 10.0, False),
        (4, 20.0, True),
    ]
    assert weeks[1]["impact_increase_pct"] == 100.0 and "limit 20" in weeks[1]["reasons"][0]
    assert report.lstrip().lower().startswith("<!doctype html") and "<svg" in report and "ana" in report
    header, *rows = csv_text.strip().splitlines()
    assert header.startswith("session_id,") and "peak_shank_accel_g" in header and len(rows) == 6


def test_plan_command_sets_and_shows_a_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.sqlite3"
    args = [
        "plan",
        "ana",
        "--program",
        "pfp_default",
        "--phase",
        "0",
        "--pain-threshold",
        "3",
        "--side",
        "right",
    ]
    assert cli_main([*args, "--db", str(db)]) == 0
    assert cli_main(["plan", "ana", "--phase", "2", "--db", str(db)]) == 0
    capsys.readouterr()
    assert cli_main(["plan", "ana", "--db", str(db)]) == 0
    shown = capsys.readouterr().out
    assert "pfp_default" in shown and PROGRAM.phases[2].title in shown and "pain threshold 3/10" in shown
    assert "involved side  right" in shown and "phase set" in shown
    assert cli_main(["plan", "ana", "--phase", "7", "--db", str(db)]) == 2
    assert "phases 0-3" in capsys.readouterr().err
    assert cli_main(["plan", "ben", "--db", str(db)]) == 1  # no plan yet
    with HistoryStore(db) as store:
        plan = store.plan("ana")
    assert plan is not None and (plan.program, plan.phase_index, plan.involved_side) == (
        "pfp_default",
        2,
        "right",
    )
