"""Pain-guided progression: after each session, advance, hold or step back a phase, with every reason.

Rules, in order (pure functions on plain data; ``gather_history`` reads the data from the store):

1. Pain above the athlete's threshold during or after a set of the latest session flags that set:
   reduce intensity or volume and reassess.
2. A flare-up -- pain above the threshold in the latest session (during or after a set), or next-morning
   pain above it after the latest or the previous session -- steps back one phase; in phase 0 it holds
   with reduced volume.
3. Otherwise, when every milestone of the current phase is met (``program.Criteria``: pain-free
   sessions, metric targets on a share of the events, limb symmetry, and no weekly load rise beyond the
   program's limit), advance; in the final phase, hold (maintain).
4. Otherwise hold.

The coach decides: ``record_recommendation`` stores the recommendation, ``apply_decision`` the coach's
decision (and, when it moves the athlete, the phase change).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sensorhub.analysis import limb_symmetry
from sensorhub.errors import ConfigError
from sensorhub.history import AthletePlan, HistoryStore, PainEntry, PhaseChange, StoredEvent
from sensorhub.model import Event, leg_side
from sensorhub.rehab.load import weekly_loads
from sensorhub.rehab.program import Phase, Program

IN_SESSION = ("during", "after")
REDUCE_ADVICE = "pain above threshold: reduce intensity or volume for the next sets and reassess"


@dataclass(frozen=True, slots=True)
class SessionData:
    """One session's facts for the progression: its events (with their drill) and pain entries
    (``next_morning`` entries belong to the session of the day before)."""

    session_id: str
    started_s: float
    kind: str
    events: tuple[StoredEvent, ...]
    pain: tuple[PainEntry, ...]


@dataclass(frozen=True, slots=True)
class Criterion:
    """One reason: what was checked, whether it holds, the value found and the target."""

    name: str
    met: bool
    value: float | None
    target: float | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "criterion": self.name,
            "met": self.met,
            "value": self.value,
            "target": self.target,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class SetFlag:
    set_id: str | None
    pain: int
    context: str
    advice: str


@dataclass(frozen=True, slots=True)
class Recommendation:
    action: str  # advance | hold | step_back
    phase_index: int  # the phase the athlete is in
    to_phase: int  # the phase recommended next
    session_id: str | None
    criteria: tuple[Criterion, ...]  # every milestone checked, met or not
    flare_up: tuple[Criterion, ...]  # the pain checks behind a step back (met = no flare-up)
    flagged_sets: tuple[SetFlag, ...]
    advice: tuple[str, ...]

    def reasons_json(self) -> list[dict[str, Any]]:
        """The stored ``reasons``: flare-up checks, then milestones, then flagged sets and advice."""
        out = [{"kind": "flare_up", **c.to_json()} for c in self.flare_up]
        out += [{"kind": "milestone", **c.to_json()} for c in self.criteria]
        out += [
            {
                "kind": "flagged_set",
                "set_id": f.set_id,
                "pain": f.pain,
                "context": f.context,
                "detail": f.advice,
            }
            for f in self.flagged_sets
        ]
        out += [{"kind": "advice", "detail": a} for a in self.advice]
        return out


# ---- pure rules ----------------------------------------------------------------------------------------


def load_side(plan: AthletePlan | None) -> str | None:
    """The leg whose load is followed: the involved side (None: both legs, or no plan)."""
    return None if plan is None or plan.involved_side == "both" else plan.involved_side


def _legs(involved_side: str) -> tuple[str, ...]:
    return ("left", "right") if involved_side == "both" else (involved_side,)


def _flare_up(history: Sequence[SessionData], threshold: int) -> tuple[list[Criterion], list[SetFlag]]:
    latest = history[-1]
    flags = [
        SetFlag(p.set_id, p.pain, p.context, REDUCE_ADVICE)
        for p in latest.pain
        if p.context in IN_SESSION and p.pain > threshold
    ]
    worst_in = max((p.pain for p in latest.pain if p.context in IN_SESSION), default=None)
    checks = [
        Criterion(
            "pain_in_session",
            worst_in is None or worst_in <= threshold,
            None if worst_in is None else float(worst_in),
            float(threshold),
            "no pain recorded during or after sets"
            if worst_in is None
            else f"highest pain during/after sets {worst_in}/10, threshold {threshold}",
        )
    ]
    for label, session in (("latest", latest), ("previous", history[-2] if len(history) > 1 else None)):
        if session is None:
            continue
        morning = max((p.pain for p in session.pain if p.context == "next_morning"), default=None)
        if morning is not None:
            checks.append(
                Criterion(
                    f"pain_next_morning_{label}",
                    morning <= threshold,
                    float(morning),
                    float(threshold),
                    f"next-morning pain after the {label} session {morning}/10, threshold {threshold}",
                )
            )
    return checks, flags


def _pain_free(history: Sequence[SessionData], n: int, threshold: int) -> Criterion:
    """Consecutive sessions, counted back from the latest, whose every pain entry is <= threshold; a
    session without any pain entry ends the run (pain not recorded is not pain-free)."""
    run = 0
    why = ""
    for s in reversed(history):
        if not s.pain:
            why = f"; session {s.session_id} has no pain recorded"
            break
        worst = max(p.pain for p in s.pain)
        if worst > threshold:
            why = f"; session {s.session_id} had pain {worst}/10"
            break
        run += 1
    return Criterion(
        "pain_free_sessions",
        run >= n,
        float(run),
        float(n),
        f"{run} consecutive session(s) with pain <= {threshold}/10 (need {n}){why if run < n else ''}",
    )


def _targets(
    phase: Phase, latest: SessionData, legs: tuple[str, ...], overrides: Mapping[str, float]
) -> list[Criterion]:
    share = phase.criteria.target_share
    out: list[Criterion] = []
    for d in phase.drills:
        if not d.targets:
            continue
        events = [
            e
            for e in latest.events
            if e.drill == d.drill and e.type == d.event_type and leg_side(e.leg_id) in legs
        ]
        for t in d.targets:
            name = f"target:{d.drill}.{t.metric}"
            values = [_metric(e, t.metric) for e in events]
            n = len(values)
            if n < phase.criteria.min_events:
                out.append(
                    Criterion(
                        name,
                        False,
                        None,
                        share,
                        f"{d.drill}: {n} {d.event_type}(s) on the involved side this session, need "
                        f">= {phase.criteria.min_events} to judge {t.describe()}",
                    )
                )
                continue
            ok = sum(t.met(v, overrides.get(t.metric)) for v in values)
            frac = ok / n
            bound = (
                t.describe()
                if t.metric not in overrides
                else f"{t.describe()} (athlete: {overrides[t.metric]:g})"
            )
            out.append(
                Criterion(
                    name,
                    frac >= share,
                    round(frac, 3),
                    share,
                    f"{d.drill}: {bound} on {ok}/{n} = {100 * frac:.0f} % (need {100 * share:.0f} %)",
                )
            )
    return out


def _metric(e: StoredEvent, name: str) -> float:
    if name == "control_score":
        return math.nan if e.control_score is None else float(e.control_score)
    return float(e.metrics.get(name, math.nan))


def _symmetry(phase: Phase, latest: SessionData) -> list[Criterion]:
    pct = phase.criteria.symmetry_min_pct
    if pct is None:
        return []
    out: list[Criterion] = []
    for d in phase.drills:
        if d.event_type != "landing":
            continue
        events = [
            Event(
                e.type,
                e.leg_id,
                e.t_s,
                dict(e.metrics),
                math.nan if e.control_score is None else e.control_score,
            )
            for e in latest.events
            if e.drill == d.drill and e.type == "landing"
        ]
        lsi = {(s.event_type, s.metric): s for s in limb_symmetry(events)}
        for metric in phase.criteria.symmetry_metrics:
            name = f"symmetry:{d.drill}.{metric}"
            entry = lsi.get(("landing", metric))
            if entry is None:
                out.append(
                    Criterion(name, False, None, pct, f"{d.drill}: {metric} needs landings of both legs")
                )
                continue
            out.append(
                Criterion(
                    name,
                    entry.lsi_pct >= pct,
                    entry.lsi_pct,
                    pct,
                    f"{d.drill}: limb symmetry of {metric} {entry.lsi_pct:.0f} % "
                    f"(left {entry.left_mean:.2f}, right {entry.right_mean:.2f}; need >= {pct:g} %)",
                )
            )
    return out


def _weekly_load(
    program: Program, history: Sequence[SessionData], side: str | None, tz: dt.tzinfo | None
) -> Criterion:
    weeks = weekly_loads(history, program.max_weekly_load_increase_pct, side=side, tz=tz)
    if not weeks:
        return Criterion("weekly_load", True, None, program.max_weekly_load_increase_pct, "no load recorded")
    week = weeks[-1]
    rise = week.impact_increase_pct if week.impact_increase_pct is not None else week.events_increase_pct
    detail = (
        "; ".join(week.reasons)
        or f"{week.label}: within +{program.max_weekly_load_increase_pct:g} % of the previous week"
    )
    return Criterion(
        "weekly_load",
        not week.flagged,
        None if rise is None else round(rise, 1),
        program.max_weekly_load_increase_pct,
        detail,
    )


def recommend(
    program: Program,
    plan: AthletePlan,
    history: Sequence[SessionData],
    overrides: Mapping[str, float] | None = None,
    tz: dt.tzinfo | None = None,
) -> Recommendation:
    """The recommendation after the latest session of ``history`` (oldest first). ``overrides``: the
    athlete's own thresholds (metric -> value) replacing single-bound program targets; ``tz`` the
    calendar for weekly load (local time by default)."""
    phase_index = plan.phase_index
    phase = program.phase(phase_index)
    threshold = plan.pain_threshold
    if not history:
        none = Criterion("sessions", False, 0.0, 1.0, "no session recorded yet")
        return Recommendation("hold", phase_index, phase_index, None, (none,), (), (), ())
    latest = history[-1]
    flare_checks, flags = _flare_up(history, threshold)
    legs = _legs(plan.involved_side)
    criteria = [_pain_free(history, phase.criteria.pain_free_sessions, threshold)]
    criteria += _targets(phase, latest, legs, overrides or {})
    criteria += _symmetry(phase, latest)
    criteria.append(_weekly_load(program, history, load_side(plan), tz))
    advice = [REDUCE_ADVICE] if flags else []
    last = len(program.phases) - 1
    if not all(c.met for c in flare_checks):
        if phase_index > 0:
            action, to = "step_back", phase_index - 1
            advice.append(f"flare-up: step back to {program.phases[to].title} and reassess")
        else:
            action, to = "hold", 0
            advice.append(
                "flare-up in the first phase: hold with reduced volume (fewer sets or reps) and reassess"
            )
    elif all(c.met for c in criteria):
        if phase_index < last:
            action, to = "advance", phase_index + 1
        else:
            action, to = "hold", phase_index
            advice.append("all milestones met in the final phase: maintain")
    else:
        action, to = "hold", phase_index
    return Recommendation(
        action,
        phase_index,
        to,
        latest.session_id,
        tuple(criteria),
        tuple(flare_checks),
        tuple(flags),
        tuple(advice),
    )


# ---- store side (blocking: call through asyncio.to_thread from the loop) ------------------------------


def gather_history(store: HistoryStore, athlete_id: str, since_s: float | None = None) -> list[SessionData]:
    """The athlete's sessions, oldest first, with their events and pain (read from the store)."""
    sessions = store.sessions(athlete_id, since_s)
    events: dict[str | None, list[StoredEvent]] = {}
    for e in store.events(athlete_id, since_s):
        events.setdefault(e.session_id, []).append(e)
    pain: dict[str | None, list[PainEntry]] = {}
    for p in store.pain_entries(athlete_id, since_s):
        pain.setdefault(p.session_id, []).append(p)
    return [
        SessionData(s.id, s.started_s, s.kind, tuple(events.get(s.id, ())), tuple(pain.get(s.id, ())))
        for s in sessions
    ]


def recommend_for(
    store: HistoryStore, program: Program, athlete_id: str, tz: dt.tzinfo | None = None
) -> Recommendation:
    """Read the athlete's plan, thresholds and history and recommend (does not store it)."""
    plan = store.plan(athlete_id)
    if plan is None:
        raise ConfigError(f"athlete {athlete_id!r} has no rehab plan; assign a program first")
    if plan.program != program.name:
        raise ConfigError(f"athlete {athlete_id!r} follows program {plan.program!r}, not {program.name!r}")
    overrides = {k: v for k, v in store.thresholds(athlete_id).items() if k != "pain_threshold"}
    return recommend(program, plan, gather_history(store, athlete_id), overrides, tz)


def record_recommendation(store: HistoryStore, plan: AthletePlan, rec: Recommendation, t_s: float) -> str:
    """Store a recommendation (non-blocking write); returns its id for the coach's decision."""
    return store.record_recommendation(
        plan.athlete_id, rec.session_id, plan.program, rec.phase_index, rec.action, rec.reasons_json(), t_s
    )


def apply_decision(
    store: HistoryStore,
    plan: AthletePlan,
    program: Program,
    recommendation_id: str,
    decision: str,
    t_s: float,
    note: str = "",
    by: str = "",
) -> AthletePlan:
    """Store the coach's decision; advance / step_back also move the plan (phase history). Returns the
    plan as it now is."""
    step = {"advance": 1, "hold": 0, "step_back": -1}.get(decision)
    if step is None:
        raise ConfigError(f"decision must be advance, hold or step_back, got {decision!r}")
    to = plan.phase_index + step
    if not 0 <= to < len(program.phases):
        raise ConfigError(
            f"cannot {decision} from phase {plan.phase_index} of {program.name!r} "
            f"({len(program.phases)} phases)"
        )
    store.record_decision(recommendation_id, plan.athlete_id, decision, t_s, note, by)
    if to == plan.phase_index:
        return plan
    store.change_phase(
        PhaseChange(plan.athlete_id, plan.program, plan.phase_index, to, t_s, by, note or decision)
    )
    return AthletePlan(plan.athlete_id, plan.program, to, plan.involved_side, plan.pain_threshold, t_s)
