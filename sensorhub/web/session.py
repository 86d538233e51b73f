"""Coach session state per athlete: drill, sets (an explicit state machine), reps, last event, cues, pain.

A bus subscriber (``events``, ``cues``) keeps it current and writes the history store; the coach's
HTTP commands change it. Every change notifies listeners (the websocket hub) with the athlete's id.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sensorhub.analysis.symmetry import limb_symmetry
from sensorhub.errors import SensorhubError
from sensorhub.model import Event
from sensorhub.runtime.bus import Bus, Message
from sensorhub.sinks.store import HistoryStore, PainEntry
from sensorhub.web.targets import DEFAULT_PAIN_THRESHOLD, DEFAULT_TARGETS, grade, targets_with

LAST_CUES = 5
PAIN_GUIDANCE = "Pain above threshold: reduce load and reassess before the next set."


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


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def event_fields(event: Event, overrides: dict[str, float]) -> dict[str, Any]:
    targets = targets_with(overrides)
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

    @property
    def reps(self) -> int:
        # Bilateral drills give one event per leg: count the busiest leg.
        return max(self.reps_by_leg.values(), default=0)

    @property
    def pain_threshold(self) -> int:
        return int(self.thresholds.get("pain_threshold", DEFAULT_PAIN_THRESHOLD))

    def snapshot(self) -> dict[str, Any]:
        targets = targets_with(self.thresholds)
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
    ) -> None:
        self.bus = bus
        self.store = store
        self.drills = tuple(drills)
        self._clock = clock
        self.athletes: dict[str, AthleteSession] = {}
        self._listeners: list[Callable[[str, str, dict[str, Any]], None]] = []
        for athlete_id, name in athletes:
            s = AthleteSession(athlete_id, name=name, drill=self.drills[0] if self.drills else "")
            s.thresholds = dict((thresholds or {}).get(athlete_id, {}))
            self.athletes[athlete_id] = s
            if store is not None:
                store.upsert_athlete(athlete_id, name)

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
        if self.drills and drill not in self.drills:
            raise SessionError(f"unknown drill {drill!r}; choose one of {', '.join(self.drills)}")
        if s.state is SetState.RUNNING:
            raise SessionError("stop the running set before choosing another drill")
        s.drill = drill
        self._changed(s)

    def start_set(self, athlete_id: str, drill: str | None = None) -> str:
        s = self.get(athlete_id)
        if s.state is SetState.RUNNING:
            raise SessionError(f"a set is already running for {athlete_id}; stop it first")
        if drill is not None:
            self.choose_drill(athlete_id, drill)
        now_s = self._clock()
        if not s.session_id:
            s.session_id = _uid()
            if self.store is not None:
                self.store.start_session(s.session_id, athlete_id, now_s)
        s.set_no += 1
        s.set_id = _uid()
        s.set_started_s = now_s
        s.reps_by_leg = {}
        s.set_events = []
        s.state = SetState.RUNNING
        if self.store is not None:
            self.store.start_set(s.set_id, s.session_id, athlete_id, s.drill, s.set_no, now_s)
        self._changed(s)
        return s.set_id

    def stop_set(self, athlete_id: str) -> str:
        s = self.get(athlete_id)
        if s.state is not SetState.RUNNING or s.set_id is None:
            raise SessionError(f"no set is running for {athlete_id}")
        if self.store is not None:
            self.store.end_set(s.set_id, self._clock(), s.reps)
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
        self.bus.publish("thresholds", athlete_id, {"athlete": athlete_id, "values": dict(s.thresholds)})
        self._changed(s)
        return dict(s.thresholds)

    def record_pain(self, athlete_id: str, pain: int) -> dict[str, Any]:
        """Pain (0-10) after a set: attached to the running set, else to the last finished one."""
        s = self.get(athlete_id)
        if isinstance(pain, bool) or not isinstance(pain, int) or not 0 <= pain <= 10:
            raise SessionError(f"pain must be an integer 0-10, got {pain!r}")
        set_id = s.set_id or s.last_set_id
        flagged = pain > s.pain_threshold
        entry = PainEntry(athlete_id, set_id, self._clock(), pain, s.pain_threshold, flagged)
        if self.store is not None:
            self.store.record_pain(entry)
        s.last_pain = {
            "pain": pain,
            "threshold": s.pain_threshold,
            "flagged": flagged,
            "set_id": set_id,
            "t_s": entry.t_s,
            "guidance": PAIN_GUIDANCE if flagged else "",
        }
        self._changed(s)
        return s.last_pain

    # ---- bus side --------------------------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        if message.topic == "events" and isinstance(message.payload, Event):
            self._on_event(message.payload)
        elif message.topic == "cues":
            self._on_cue(cue_fields(message.payload))

    def _on_event(self, event: Event) -> None:
        athlete_id = event.leg_id.split("/")[0]
        s = self.athletes.get(athlete_id)
        if s is None:
            return
        s.reps_by_leg[event.leg_id] = s.reps_by_leg.get(event.leg_id, 0) + 1
        if s.state is SetState.RUNNING:
            s.set_events.append(event)
        s.last_event = event_fields(event, s.thresholds)
        if self.store is not None:
            self.store.record_event(
                athlete_id, s.set_id, event.leg_id, event.type, event.t_s, event.metrics, event.control_score
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
        sub = self.bus.subscribe(["events", "cues"], maxsize=10_000)
        try:
            async for message in sub:
                self.on_message(message)
        finally:
            sub.close()
