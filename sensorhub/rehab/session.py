"""Coach session state per athlete: drill, sets (an explicit state machine), reps, last event, cues, pain,
and the rehab workflow: the athlete's plan (program phase -> drills, targets, cue rules), live fatigue,
home sessions, the recommendation at the end of a session and the coach's decision.

A bus subscriber (``events``, ``cues``, ``calibration``, ``angles``) keeps it current and writes the
history store (each rep or landing with its knee-angle curve); the coach's and the athlete's HTTP
commands change it. Every change notifies listeners (the websocket hub) with the athlete's id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sensorhub.analysis import Target, limb_symmetry
from sensorhub.bus import Bus, Message
from sensorhub.cues import CueRuleSet
from sensorhub.errors import SensorhubError
from sensorhub.history import (
    PAIN_CONTEXTS,
    PHASE_ACTIONS,
    SESSION_KINDS,
    AthletePlan,
    HistoryStore,
    PainEntry,
    PhaseChange,
)
from sensorhub.model import Event, KneeAngles, LegCalibration
from sensorhub.rehab.curves import AngleRing
from sensorhub.rehab.fatigue import FatigueMonitor, FatigueStatus
from sensorhub.rehab.plans import plan_json
from sensorhub.rehab.program import Program
from sensorhub.rehab.progression import (
    apply_decision,
    recommend_for,
    record_recommendation,
)
from sensorhub.rehab.targets import DEFAULT_PAIN_THRESHOLD, DEFAULT_TARGETS, grade, targets_with

LAST_CUES = 5
PAIN_GUIDANCE = "Pain above threshold: reduce load and reassess before the next set."
MORNING_GUIDANCE = "Next-morning pain above threshold: reduce load in the next session and reassess."
CURVE_EVENTS = ("rep", "landing")  # events stored with their knee-angle curve
# Angles kept per leg for the curves: enough for the longest rep at the fastest stream rate.
CURVE_KEEP_S = 10.0
CURVE_RATE_HZ = 400.0
# A session with no set running for this long is over (a clinic visit has rests of minutes, not half an
# hour); it is closed at the time of its last activity, not at the moment the timeout is noticed.
SESSION_IDLE_TIMEOUT_S = 30 * 60.0
IDLE_CHECK_S = 30.0  # how often open sessions are checked for the idle timeout
NO_PLAN_FINISHED = "Session finished. Assign a rehab plan to get a recommendation after each session."


class SessionError(SensorhubError):
    """An illegal coach command (unknown athlete, stopping a set that is not running, bad value)."""


class SetState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"


def _uid() -> str:
    return uuid.uuid4().hex[:16]


def cue_fields(payload: Any) -> dict[str, Any]:
    """A cue payload (the cue engine's dataclass, or a mapping) as JSON-ready fields."""
    if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
        raw = dataclasses.asdict(payload)
    elif isinstance(payload, dict):
        raw = dict(payload)
    else:
        raise SessionError(f"cannot read a cue of type {type(payload).__name__}")
    leg = str(raw.get("leg", raw.get("leg_id", "")))
    athlete = str(raw.get("athlete", leg.split("/")[0]))
    audio = raw.get("audio_id", raw.get("audio", raw.get("sound", "")))
    out = {
        "athlete": athlete,
        "leg": leg,
        "phrase": str(raw.get("phrase", "")),
        "rule": str(raw.get("rule", "")),
        "priority": int(raw.get("priority", 0)),
        "t_s": float(raw.get("t_s", time.time())),
        "latency_s": _num(raw.get("latency_s")),
        "audio_id": str(audio) if audio is not None else "",
    }
    return out


def fatigue_fields(status: FatigueStatus) -> dict[str, Any]:
    """A fatigue status as JSON (live on the coach view, stored with the set)."""
    return {
        "flagged": status.flagged,
        "reasons": list(status.reasons),
        "findings": [
            {
                "leg": f.leg_id,
                "type": f.event_type,
                "metric": f.metric,
                "n": f.n,
                "trend_change": round(f.trend_change, 3),
                "first_third_mean": round(f.first_third_mean, 3),
                "last_third_mean": round(f.last_third_mean, 3),
                "flagged": f.flagged,
            }
            for f in status.findings
        ],
    }


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def event_fields(event: Event, targets: dict[str, Target]) -> dict[str, Any]:
    metrics = dict(event.metrics)
    if math.isfinite(event.control_score):
        metrics["control_score"] = event.control_score
    graded = []
    for name, value in metrics.items():
        target = targets.get(name)
        graded.append(
            {
                "name": name,
                "value": _num(value),
                "target": None if target is None else target.value,
                "bound": None if target is None else target.bound,
                "grade": "none" if target is None else grade(float(value), target),
            }
        )
    return {"type": event.type, "leg": event.leg_id, "t_s": event.t_s, "metrics": graded}


@dataclass(slots=True)
class AthleteSession:
    athlete_id: str
    name: str = ""
    drill: str = ""
    state: SetState = SetState.IDLE
    session_id: str = ""
    set_id: str | None = None
    set_no: int = 0
    set_started_s: float | None = None
    reps_by_leg: dict[str, int] = field(default_factory=dict)
    last_event: dict[str, Any] | None = None
    last_cues: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LAST_CUES))
    thresholds: dict[str, float] = field(default_factory=dict)
    last_pain: dict[str, Any] | None = None
    last_set_id: str | None = None
    muted: bool = False  # cues silenced for this athlete (the coach's choice)
    set_events: list[Event] = field(default_factory=list)  # the running set's, for limb symmetry
    last_set_symmetry: list[dict[str, Any]] = field(default_factory=list)
    drills: tuple[str, ...] = ()  # the set chooser's drills: the plan's phase's, else the service's
    session_kind: str = "clinic"  # of the open session: clinic (with the coach) or home
    last_activity_s: float = 0.0  # the open session's latest set start or stop (idle timeout)
    last_session_id: str | None = None  # the latest finished session
    plan: AthletePlan | None = None
    program: Program | None = None
    plan_view: dict[str, Any] | None = None  # plan_json, with the phase history
    phases: list[PhaseChange] = field(default_factory=list)  # the phase history
    fatigue: FatigueMonitor = field(default_factory=FatigueMonitor)
    fatigue_status: dict[str, Any] | None = None  # the running (or last) set's
    recommendation: dict[str, Any] | None = None  # the latest, with the coach's decision once made

    @property
    def reps(self) -> int:
        # Bilateral drills give one event per leg: count the busiest leg.
        return max(self.reps_by_leg.values(), default=0)

    @property
    def pain_threshold(self) -> int:
        if self.plan is not None:
            return self.plan.pain_threshold
        return int(self.thresholds.get("pain_threshold", DEFAULT_PAIN_THRESHOLD))

    def targets(self) -> dict[str, Target]:
        """Defaults, replaced by the plan's targets for the chosen drill, replaced by the coach's edits."""
        base = dict(DEFAULT_TARGETS)
        if self.program is not None and self.plan is not None:
            drill = self.program.phase(self.plan.phase_index).drill(self.drill)
            for t in drill.targets if drill is not None else ():
                base[t.metric] = t
        return targets_with(self.thresholds, base)

    def snapshot(self) -> dict[str, Any]:
        targets = self.targets()
        return {
            "athlete": self.athlete_id,
            "name": self.name,
            "drill": self.drill,
            "set_state": str(self.state),
            "set_no": self.set_no,
            "set_id": self.set_id,
            "set_started_s": self.set_started_s,
            "reps": self.reps,
            "last_event": self.last_event,
            "last_cues": list(self.last_cues),
            "pain_threshold": self.pain_threshold,
            "targets": {k: {"bound": t.bound, "value": t.value} for k, t in targets.items()},
            "last_pain": self.last_pain,
            "set_symmetry": self.last_set_symmetry,
            "muted": self.muted,
            "drills": list(self.drills),
            "session_id": self.session_id or None,
            "session_kind": self.session_kind if self.session_id else None,
            "last_session_id": self.last_session_id,
            "plan": self.plan_view,
            "fatigue": self.fatigue_status,
            "recommendation": self.recommendation,
        }


class SessionManager:
    """All athletes' sessions; the single writer of session facts to the history store."""

    def __init__(
        self,
        bus: Bus,
        store: HistoryStore | None,
        athletes: Iterable[tuple[str, str]],
        drills: Iterable[str],
        thresholds: dict[str, dict[str, float]] | None = None,
        clock: Callable[[], float] = time.time,
        plans: dict[str, tuple[AthletePlan, Program, list[PhaseChange]]] | None = None,
        idle_timeout_s: float = SESSION_IDLE_TIMEOUT_S,
    ) -> None:
        self.bus = bus
        self.store = store
        self.drills = tuple(drills)
        self._clock = clock
        self.idle_timeout_s = idle_timeout_s
        self.athletes: dict[str, AthleteSession] = {}
        self._listeners: list[Callable[[str, str, dict[str, Any]], None]] = []
        self._curves = AngleRing(CURVE_RATE_HZ, CURVE_KEEP_S)
        for athlete_id, name in athletes:
            s = AthleteSession(athlete_id, name=name, drill=self.drills[0] if self.drills else "")
            s.drills = self.drills
            s.thresholds = dict((thresholds or {}).get(athlete_id, {}))
            self.athletes[athlete_id] = s
            if store is not None:
                store.upsert_athlete(athlete_id, name)
        for athlete_id, (plan, program, phases) in (plans or {}).items():
            if athlete_id in self.athletes:
                self.apply_plan(plan, program, phases)

    def add_listener(self, listener: Callable[[str, str, dict[str, Any]], None]) -> None:
        """``listener(kind, athlete_id, frame_fields)``; kind is ``state``, ``event`` or ``cue``."""
        self._listeners.append(listener)

    def _notify(self, kind: str, athlete_id: str, fields: dict[str, Any]) -> None:
        for listener in self._listeners:
            listener(kind, athlete_id, fields)

    def _changed(self, s: AthleteSession) -> None:
        self._notify("state", s.athlete_id, s.snapshot())

    def get(self, athlete_id: str) -> AthleteSession:
        s = self.athletes.get(athlete_id)
        if s is None:
            raise SessionError(f"unknown athlete {athlete_id!r}; known: {', '.join(sorted(self.athletes))}")
        return s

    # ---- coach commands --------------------------------------------------------------------------

    def choose_drill(self, athlete_id: str, drill: str) -> None:
        s = self.get(athlete_id)
        if s.drills and drill not in s.drills:
            raise SessionError(f"unknown drill {drill!r}; choose one of {', '.join(s.drills)}")
        if s.state is SetState.RUNNING:
            raise SessionError("stop the running set before choosing another drill")
        s.drill = drill
        self._changed(s)

    def start_set(self, athlete_id: str, drill: str | None = None, kind: str = "clinic") -> str:
        """Start a set; ``kind`` ``home``: the athlete alone (the athlete view). A set of another kind
        than the open session's closes that session and opens one of its kind."""
        s = self.get(athlete_id)
        if kind not in SESSION_KINDS:
            raise SessionError(f"session kind must be one of {', '.join(SESSION_KINDS)}, got {kind!r}")
        if s.state is SetState.RUNNING:
            raise SessionError(f"a set is already running for {athlete_id}; stop it first")
        if drill is not None:
            self.choose_drill(athlete_id, drill)
        now_s = self._clock()
        if s.session_id and s.session_kind != kind:
            self._end_session(s, now_s)
        if not s.session_id:
            s.session_id = _uid()
            s.session_kind = kind
            s.set_no = 0
            if self.store is not None:
                self.store.start_session(s.session_id, athlete_id, now_s, kind)
        s.set_no += 1
        s.set_id = _uid()
        s.set_started_s = now_s
        s.reps_by_leg = {}
        s.set_events = []
        s.fatigue.reset()
        s.fatigue_status = None
        s.state = SetState.RUNNING
        s.last_activity_s = now_s
        if self.store is not None:
            self.store.start_set(s.set_id, s.session_id, athlete_id, s.drill, s.set_no, now_s)
        self._changed(s)
        return s.set_id

    def stop_set(self, athlete_id: str) -> str:
        s = self.get(athlete_id)
        if s.state is not SetState.RUNNING or s.set_id is None:
            raise SessionError(f"no set is running for {athlete_id}")
        s.last_activity_s = self._clock()
        if self.store is not None:
            self.store.end_set(s.set_id, s.last_activity_s, s.reps)
        s.last_set_id = s.set_id
        # With both legs instrumented: the limb symmetry index of each metric over the set.
        s.last_set_symmetry = [
            {
                "type": e.event_type,
                "metric": e.metric,
                "left_mean": round(e.left_mean, 3),
                "right_mean": round(e.right_mean, 3),
                "n_left": e.n_left,
                "n_right": e.n_right,
                "lsi_pct": e.lsi_pct,
            }
            for e in limb_symmetry(s.set_events)
        ]
        if self.store is not None and s.fatigue_status is not None:
            self.store.record_set_fatigue(s.set_id, s.fatigue_status)
        s.set_events = []
        s.state = SetState.IDLE
        s.set_id = None
        self._changed(s)
        return s.last_set_id

    def set_muted(self, athlete_id: str, muted: bool) -> bool:
        """Silence (or un-silence) an athlete's cues; the cue stage follows the bus topic ``mute``."""
        s = self.get(athlete_id)
        s.muted = muted
        self.bus.publish("mute", athlete_id, {"athlete": athlete_id, "muted": muted})
        self._changed(s)
        return muted

    def all_thresholds(self) -> dict[str, dict[str, float]]:
        """Every athlete's edited thresholds (saved ones included), for the cue stage at start-up."""
        return {athlete_id: dict(s.thresholds) for athlete_id, s in self.athletes.items()}

    def set_thresholds(self, athlete_id: str, values: dict[str, float]) -> dict[str, float]:
        s = self.get(athlete_id)
        clean: dict[str, float] = {}
        for name, value in values.items():
            if name != "pain_threshold" and name not in DEFAULT_TARGETS:
                raise SessionError(
                    f"unknown threshold {name!r}; editable: pain_threshold, {', '.join(DEFAULT_TARGETS)}"
                )
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise SessionError(f"threshold {name} must be a finite number, got {value!r}")
            if name == "pain_threshold" and not 0 <= value <= 10:
                raise SessionError("pain_threshold must be 0-10")
            clean[name] = float(value)
        s.thresholds.update(clean)
        if self.store is not None:
            self.store.set_thresholds(athlete_id, clean, self._clock())
        if s.plan is not None and "pain_threshold" in clean:
            # With a plan its pain threshold rules: an edit here edits the plan.
            plan = dataclasses.replace(
                s.plan, pain_threshold=int(clean["pain_threshold"]), updated_s=self._clock()
            )
            if self.store is not None:
                self.store.set_plan(plan)
            assert s.program is not None
            self.apply_plan(plan, s.program, s.phases)
        self.bus.publish("thresholds", athlete_id, {"athlete": athlete_id, "values": dict(s.thresholds)})
        self._changed(s)
        return dict(s.thresholds)

    def record_pain(
        self, athlete_id: str, pain: int, context: str = "after", session_id: str | None = None
    ) -> dict[str, Any]:
        """Pain (0-10). ``during`` / ``after`` a set: attached to the running set, else to the last
        finished one. ``next_morning``: to ``session_id`` (the athlete's latest session; the caller
        looks it up in the store), no set. Above the threshold the entry is flagged, with guidance."""
        s = self.get(athlete_id)
        if isinstance(pain, bool) or not isinstance(pain, int) or not 0 <= pain <= 10:
            raise SessionError(f"pain must be an integer 0-10, got {pain!r}")
        if context not in PAIN_CONTEXTS:
            raise SessionError(f"pain context must be one of {', '.join(PAIN_CONTEXTS)}, got {context!r}")
        if context == "next_morning":
            if session_id is None:
                raise SessionError(f"{athlete_id} has no session yet to attach next-morning pain to")
            set_id = None
        else:
            set_id = s.set_id or s.last_set_id
            session_id = s.session_id or s.last_session_id or None
        flagged = pain > s.pain_threshold
        entry = PainEntry(
            athlete_id, set_id, self._clock(), pain, s.pain_threshold, flagged, context, session_id
        )
        if self.store is not None:
            self.store.record_pain(entry)
        guidance = MORNING_GUIDANCE if context == "next_morning" else PAIN_GUIDANCE
        s.last_pain = {
            "pain": pain,
            "threshold": s.pain_threshold,
            "flagged": flagged,
            "context": context,
            "set_id": set_id,
            "session_id": session_id,
            "t_s": entry.t_s,
            "guidance": guidance if flagged else "",
        }
        self._changed(s)
        return s.last_pain

    # ---- rehab plan, end of session, decision ----------------------------------------------------

    def apply_plan(self, plan: AthletePlan, program: Program, phases: Iterable[PhaseChange] = ()) -> None:
        """Follow an athlete's (new or edited) plan: the phase's drills for the set chooser, its targets,
        its pain threshold; its cue rules go to the cue stage (bus topic ``plan``)."""
        s = self.get(plan.athlete_id)
        phase = program.phase(plan.phase_index)
        s.plan, s.program, s.phases = plan, program, list(phases)
        s.plan_view = plan_json(plan, program, s.phases)
        s.drills = tuple(d.drill for d in phase.drills)
        if s.state is not SetState.RUNNING and s.drill not in s.drills:
            s.drill = s.drills[0]
        rules = program.cue_rules(plan.phase_index)
        self.bus.publish("plan", plan.athlete_id, {"athlete": plan.athlete_id, "rules": rules})
        self._changed(s)

    def all_rules(self) -> dict[str, CueRuleSet]:
        """The cue rules of every athlete with a plan (their phase's), for the cue stage at start-up."""
        return {
            a: s.program.cue_rules(s.plan.phase_index)
            for a, s in self.athletes.items()
            if s.program is not None and s.plan is not None
        }

    async def finish_session(self, athlete_id: str) -> dict[str, Any]:
        """End the open session (stopping a running set) and recommend advance / hold / step back from
        the program's milestones, with every reason; the recommendation is stored for the coach's
        decision. Without an open session: the recommendation after the latest finished one. Without a
        plan (or a history store) the session is closed all the same, with no recommendation."""
        s = self.get(athlete_id)
        if s.state is SetState.RUNNING:
            self.stop_set(athlete_id)
        now_s = self._clock()
        if s.session_id:
            self._end_session(s, now_s)
        elif s.last_session_id is None:
            raise SessionError(f"{athlete_id} has no session to finish: record a set first")
        if s.plan is None or s.program is None or self.store is None:
            # The session is closed all the same; a recommendation needs a plan and the history.
            self._changed(s)
            return {"athlete": athlete_id, "session_id": s.last_session_id, "action": None,
                    "message": NO_PLAN_FINISHED}
        plan, program, store = s.plan, s.program, self.store

        # The store reads its own writes: the session's last ones are part of its history.
        rec = await asyncio.to_thread(recommend_for, store, program, athlete_id)
        rec_id = record_recommendation(store, plan, rec, now_s)
        s.recommendation = {
            "id": rec_id,
            "athlete": athlete_id,
            "session_id": rec.session_id,
            "action": rec.action,
            "phase_index": rec.phase_index,
            "to_phase": rec.to_phase,
            "phase_title": program.phase(rec.phase_index).title,
            "to_phase_title": program.phase(rec.to_phase).title,
            "reasons": rec.reasons_json(),
            "t_s": now_s,
            "decision": None,
        }
        self._changed(s)
        return s.recommendation

    async def decide(
        self, athlete_id: str, recommendation_id: str, decision: str, note: str = "", by: str = "coach"
    ) -> dict[str, Any]:
        """The coach's decision on a recommendation (accept it, or override it with a note); advance and
        step back move the plan's phase (phase history)."""
        s = self.get(athlete_id)
        if decision not in PHASE_ACTIONS:
            raise SessionError(f"decision must be one of {', '.join(PHASE_ACTIONS)}, got {decision!r}")
        if not isinstance(note, str):
            raise SessionError("note must be text")
        if s.plan is None or s.program is None or self.store is None:
            raise SessionError(f"{athlete_id} has no rehab plan: assign a program first")
        rec = s.recommendation if s.recommendation and s.recommendation["id"] == recommendation_id else None
        decided = "this recommendation is already decided; finish the next session first"
        if rec is None:  # an older one (or from before a restart): only while still undecided and current
            known = await asyncio.to_thread(self.store.recommendations, athlete_id)
            found = next((r for r in known if r.id == recommendation_id), None)
            if found is None:
                raise SessionError(f"no recommendation {recommendation_id!r} for {athlete_id}")
            if found.decision is not None or found.phase_index != s.plan.phase_index:
                raise SessionError(decided)
        elif rec["decision"] is not None:
            raise SessionError(decided)
        now_s = self._clock()
        try:
            plan = apply_decision(self.store, s.plan, s.program, recommendation_id, decision, now_s, note, by)
        except SensorhubError as exc:
            raise SessionError(str(exc)) from None
        result = {"decision": decision, "note": note, "by": by, "t_s": now_s, "overrides": False}
        if rec is not None:  # decided before the await below: a second click is refused
            result["overrides"] = decision != rec["action"]
            rec["decision"] = result
        phases = await asyncio.to_thread(self.store.phase_history, athlete_id)
        self.apply_plan(plan, s.program, phases)
        return {"recommendation_id": recommendation_id, **result, "plan": s.plan_view}

    def _end_session(self, s: AthleteSession, now_s: float) -> None:
        if self.store is not None:
            self.store.end_session(s.session_id, now_s)
        s.last_session_id = s.session_id
        s.session_id = ""
        s.set_no = 0

    def close_idle_sessions(self) -> list[str]:
        """End every open session without a running set whose last set ended ``idle_timeout_s`` ago
        (stored as ended at that last activity). Returns the athletes whose session closed."""
        now_s = self._clock()
        closed = []
        for s in self.athletes.values():
            idle = s.session_id and s.state is SetState.IDLE
            if idle and now_s - s.last_activity_s >= self.idle_timeout_s:
                self._end_session(s, s.last_activity_s)
                self._changed(s)
                closed.append(s.athlete_id)
        return closed

    def close_all(self) -> None:
        """Shutdown: stop running sets and end every open session now (nothing stays open in the
        history because the service stopped)."""
        for s in self.athletes.values():
            if s.state is SetState.RUNNING:
                self.stop_set(s.athlete_id)
            if s.session_id:
                self._end_session(s, self._clock())

    # ---- bus side --------------------------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        if message.topic == "angles":
            self._on_angles(message.payload)
        elif message.topic == "events" and isinstance(message.payload, Event):
            self._on_event(message.payload)
        elif message.topic == "cues":
            self._on_cue(cue_fields(message.payload))
        elif message.topic == "calibration" and isinstance(message.payload, LegCalibration):
            self._on_calibration(message.payload)

    def _on_calibration(self, cal: LegCalibration) -> None:
        athlete_id = cal.leg_id.split("/")[0]
        s = self.athletes.get(athlete_id)
        if s is not None and self.store is not None:
            self.store.record_calibration(athlete_id, cal.leg_id, cal.t_s, cal.quality, s.session_id or None)

    def _on_angles(self, angles: Any) -> None:
        # Kept only while a set runs (what the curves are for): idle athletes cost one lookup.
        if not isinstance(angles, KneeAngles):
            return
        s = self.athletes.get(angles.leg_id.split("/")[0])
        if s is not None and s.state is SetState.RUNNING:
            self._curves.push(angles)

    def _on_event(self, event: Event) -> None:
        athlete_id = event.leg_id.split("/")[0]
        s = self.athletes.get(athlete_id)
        if s is None:
            return
        s.reps_by_leg[event.leg_id] = s.reps_by_leg.get(event.leg_id, 0) + 1
        if s.state is SetState.RUNNING:
            s.set_events.append(event)
            s.fatigue_status = fatigue_fields(s.fatigue.push(event))
        s.last_event = event_fields(event, s.targets())
        if self.store is not None:
            curve = self._curves.curve_for(event) if event.type in CURVE_EVENTS and s.set_id else None
            self.store.record_event(
                athlete_id,
                s.set_id,
                event.leg_id,
                event.type,
                event.t_s,
                event.metrics,
                event.control_score,
                curve=None if curve is None else curve.to_store(),
            )
        self._notify("event", athlete_id, s.last_event)
        self._changed(s)

    def _on_cue(self, cue: dict[str, Any]) -> None:
        s = self.athletes.get(cue["athlete"])
        if s is None:
            return
        s.last_cues.appendleft(cue)
        if self.store is not None:
            self.store.record_cue(
                s.athlete_id,
                s.set_id,
                cue["leg"],
                cue["phrase"],
                cue["rule"],
                cue["priority"],
                cue["t_s"],
                cue["latency_s"],
            )
        self._notify("cue", s.athlete_id, cue)
        self._changed(s)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._consume(), name="sessions-bus")
            tg.create_task(self._close_idle(), name="sessions-idle")

    async def _consume(self) -> None:
        # One subscription: a leg's angles arrive before the event they close (the curve is in the ring).
        sub = self.bus.subscribe(["events", "cues", "calibration", "angles"], maxsize=20_000)
        try:
            async for message in sub:
                self.on_message(message)
        finally:
            # Cancelled at shutdown: what the pipeline published last (its final flush) is still in the
            # mailbox; it belongs to the running sets, which close_all ends afterwards.
            sub.close()
            for message in sub.drain():
                self.on_message(message)

    async def _close_idle(self) -> None:
        while True:
            await asyncio.sleep(min(IDLE_CHECK_S, self.idle_timeout_s / 4.0))
            self.close_idle_sessions()
