"""Plan services for the dashboard and ``sensorhub plan``: per-athlete plans (program, phase, pain
threshold, involved side), their JSON views, and the rehab part of the history page (sessions with their
kind, phase history, recommendations with the coach's decisions, weekly load, set fatigue).

Every function here reads or writes the store and may read program files: blocking, so the dashboard
calls them through ``asyncio.to_thread``. The rules themselves live in ``program`` and ``progression``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sensorhub.errors import ConfigError, InputError
from sensorhub.history import INVOLVED_SIDES, AthletePlan, HistoryStore, PhaseChange
from sensorhub.rehab.load import weekly_loads
from sensorhub.rehab.program import (
    DEFAULT_MAX_WEEKLY_INCREASE_PCT,
    PROGRAMS_DIR,
    Program,
    find_program,
)
from sensorhub.rehab.progression import gather_history, load_side

log = logging.getLogger(__name__)


def program_names(search: Sequence[Path] = (PROGRAMS_DIR,)) -> list[str]:
    """The programs a coach can pick: ``NAME.toml`` files in the search directories."""
    return sorted({p.stem for d in search if Path(d).is_dir() for p in Path(d).glob("*.toml")})


def program_phrases(search: Sequence[Path] = (PROGRAMS_DIR,)) -> list[str]:
    """Every cue phrase of every loadable program (rendered at start-up with the configured ones)."""
    phrases: set[str] = set()
    for name in program_names(search):
        try:
            program = find_program(name, search)
        except ConfigError as exc:
            log.warning("program %s not loaded: %s", name, exc)
            continue
        for i in range(len(program.phases)):
            phrases.update(program.cue_rules(i).phrases)
    return sorted(phrases)


def load_plan(store: HistoryStore, athlete_id: str) -> tuple[AthletePlan, Program] | None:
    """The athlete's stored plan with its program; None without a plan. A plan whose program no longer
    loads is a ``ConfigError`` naming the file and the problem."""
    plan = store.plan(athlete_id)
    if plan is None:
        return None
    program = find_program(plan.program)
    program.phase(plan.phase_index)  # a program that lost phases: say so now
    return plan, program


def saved_plans(
    store: HistoryStore, athletes: Sequence[str]
) -> dict[str, tuple[AthletePlan, Program, list[PhaseChange]]]:
    """The stored plans of these athletes with their programs and phase histories (service start-up).
    A plan whose program no longer loads is logged and left out: the athlete runs without one."""
    out: dict[str, tuple[AthletePlan, Program, list[PhaseChange]]] = {}
    for athlete in athletes:
        try:
            found = load_plan(store, athlete)
        except ConfigError as exc:
            log.warning("%s: rehab plan not loaded: %s", athlete, exc)
            continue
        if found is not None:
            out[athlete] = (*found, store.phase_history(athlete))
    return out


def plan_edit(
    store: HistoryStore,
    athlete_id: str,
    *,
    program: str | None = None,
    phase: int | None = None,
    pain_threshold: int | None = None,
    side: str | None = None,
    by: str = "",
    t_s: float | None = None,
) -> tuple[AthletePlan, Program, PhaseChange | None]:
    """The athlete's plan after an edit, its program and the phase change to record (None: the phase
    stays). Options left None keep the current value; a new plan needs ``program`` and ``side``, its
    phase defaults to 0 and its pain threshold to the program's. Reads only (blocking)."""
    now_s = time.time() if t_s is None else t_s
    current = store.plan(athlete_id)
    name = program if program is not None else (current.program if current else None)
    if name is None:
        known = ", ".join(program_names())
        raise InputError(f"{athlete_id} has no plan yet: give a program (one of {known})")
    prog = _find(name)
    side = side if side is not None else (current.involved_side if current else None)
    if side not in INVOLVED_SIDES:
        raise InputError(f"involved side must be one of {', '.join(INVOLVED_SIDES)}, got {side!r}")
    same_program = current is not None and current.program == prog.name
    phase_index = phase if phase is not None else (current.phase_index if current and same_program else 0)
    if isinstance(phase_index, bool) or not isinstance(phase_index, int):
        raise InputError(f"phase must be an integer, got {phase_index!r}")
    if not 0 <= phase_index < len(prog.phases):
        raise InputError(
            f"program {prog.name!r} has phases 0-{len(prog.phases) - 1} "
            f"({', '.join(p.name for p in prog.phases)}), not {phase_index}"
        )
    if pain_threshold is None:
        pain_threshold = current.pain_threshold if current and same_program else prog.pain_threshold
    if not _int_in(pain_threshold, 0, 10):
        raise InputError(f"pain threshold must be an integer 0-10, got {pain_threshold!r}")
    plan = AthletePlan(athlete_id, prog.name, phase_index, side, pain_threshold, now_s)
    change = None
    if not same_program:
        change = PhaseChange(athlete_id, prog.name, None, phase_index, now_s, by, "plan assigned")
    elif current is not None and current.phase_index != phase_index:
        change = PhaseChange(athlete_id, prog.name, current.phase_index, phase_index, now_s, by, "phase set")
    return plan, prog, change


def _int_in(value: object, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def write_plan(store: HistoryStore, plan: AthletePlan, change: PhaseChange | None) -> None:
    """Store an edited plan and its phase change (non-blocking writes)."""
    store.upsert_athlete(plan.athlete_id)  # the plan refers to the athlete
    store.set_plan(plan)
    if change is not None:
        store.change_phase(change)


def set_plan(
    store: HistoryStore,
    athlete_id: str,
    *,
    program: str | None = None,
    phase: int | None = None,
    pain_threshold: int | None = None,
    side: str | None = None,
    by: str = "",
) -> tuple[AthletePlan, Program]:
    """``plan_edit`` + ``write_plan``, committed before returning (the CLI)."""
    plan, prog, change = plan_edit(
        store, athlete_id, program=program, phase=phase, pain_threshold=pain_threshold, side=side, by=by
    )
    write_plan(store, plan, change)
    store.flush()
    return plan, prog


def _find(name: str) -> Program:
    if name not in program_names():  # a known name only: never a path (/dev/zero, a FIFO) from a request
        raise InputError(f"unknown program {name!r}; programs: {', '.join(program_names()) or 'none'}")
    try:
        return find_program(name)
    except ConfigError as exc:
        raise InputError(str(exc)) from None


def plan_json(plan: AthletePlan, program: Program, phases: Sequence[PhaseChange] = ()) -> dict[str, Any]:
    phase = program.phase(plan.phase_index)
    return {
        "athlete": plan.athlete_id,
        "program": program.name,
        "program_title": program.title,
        "phase_index": plan.phase_index,
        "phase": phase.name,
        "phase_title": phase.title,
        "phase_goal": phase.goal,
        "phases": [{"index": i, "name": p.name, "title": p.title} for i, p in enumerate(program.phases)],
        "pain_threshold": plan.pain_threshold,
        "involved_side": plan.involved_side,
        "max_weekly_load_increase_pct": program.max_weekly_load_increase_pct,
        "drills": [
            {
                "drill": d.drill,
                "sets": d.sets,
                "reps": d.reps,
                "tempo_eccentric_s": d.tempo_eccentric_s,
                "sensed": d.sensed,
                "targets": [t.describe() for t in d.targets],
                "note": d.note,
            }
            for d in phase.drills
        ],
        "phase_history": [phase_change_json(c, program) for c in phases],
        "updated_s": plan.updated_s,
    }


def phase_change_json(change: PhaseChange, program: Program | None = None) -> dict[str, Any]:
    def title(i: int | None) -> str | None:
        if i is None:
            return None
        if program is not None and program.name == change.program and 0 <= i < len(program.phases):
            return program.phases[i].title
        return str(i)

    out = dataclasses.asdict(change)
    out["from_title"], out["to_title"] = title(change.from_phase), title(change.to_phase)
    return out


def rehab_history(store: HistoryStore, athlete_id: str) -> dict[str, Any]:
    """The history page's rehab part: sessions with their kind, plan, phase history, recommendations
    (each with the coach's decision), weekly load with the over-limit flag, each set's fatigue, and pain
    entries with their context (during, after, next morning)."""
    plan = store.plan(athlete_id)
    program: Program | None = None
    problem = ""
    if plan is not None:
        try:
            program = find_program(plan.program)
        except ConfigError as exc:
            problem = str(exc)
    phases = store.phase_history(athlete_id)
    max_pct = program.max_weekly_load_increase_pct if program else DEFAULT_MAX_WEEKLY_INCREASE_PCT
    side = load_side(plan)
    weeks = weekly_loads(gather_history(store, athlete_id), max_pct, side=side)
    return {
        "plan": plan_json(plan, program, phases) if plan and program else None,
        "plan_problem": problem,
        "phase_history": [phase_change_json(c, program) for c in phases],
        "session_kinds": {s.id: s.kind for s in store.sessions(athlete_id)},
        "recommendations": [
            {
                "id": r.id,
                "session_id": r.session_id,
                "program": r.program,
                "phase_index": r.phase_index,
                "action": r.action,
                "reasons": r.reasons,
                "t_s": r.t_s,
                "decision": None if r.decision is None else dataclasses.asdict(r.decision),
            }
            for r in store.recommendations(athlete_id)
        ],
        "weekly_load": [
            {
                "week": w.label,
                "monday": w.monday.isoformat(),
                "sessions": len(w.sessions),
                "reps": w.load.reps,
                "landings": w.load.landings,
                "cuts": w.load.cuts,
                "impact_load_g": round(w.load.impact_load_g, 2),
                "impact_increase_pct": _pct(w.impact_increase_pct),
                "events_increase_pct": _pct(w.events_increase_pct),
                "flagged": w.flagged,
                "reasons": list(w.reasons),
            }
            for w in weeks
        ],
        "max_weekly_load_increase_pct": max_pct,
        "load_side": side or "both",
        "set_fatigue": store.set_fatigue(athlete_id),
        "pain": [dataclasses.asdict(p) for p in store.pain_entries(athlete_id)],
    }


def plan_main(
    athlete: str,
    program: str | None = None,
    phase: int | None = None,
    pain_threshold: int | None = None,
    side: str | None = None,
    db: Path | None = None,
    config: Path | None = None,
) -> int:
    """``sensorhub plan ATHLETE [--program NAME] [--phase N] [--pain-threshold N] [--side S] [--db PATH]``:
    set the given options and print the plan; without options print it. A running service picks up a
    plan edited here at its next start (edits from the dashboard apply at once)."""
    if db is None:
        from sensorhub.config import history_path, load_config

        db = history_path(load_config(config))
    editing = any(v is not None for v in (program, phase, pain_threshold, side))
    if not editing and not Path(db).is_file():
        raise InputError(f"{db}: no history database (give --db PATH or --config with service.data_dir)")
    with HistoryStore(db) as store:
        if editing:
            plan, prog = set_plan(
                store,
                athlete,
                program=program,
                phase=phase,
                pain_threshold=pain_threshold,
                side=side,
                by="cli",
            )
        else:
            found = load_plan(store, athlete)
            if found is None:
                print(f"{athlete}: no plan (set one with --program NAME --side left|right|both)")
                return 1
            plan, prog = found
        print(format_plan(plan_json(plan, prog, store.phase_history(athlete))))
    return 0


def format_plan(p: dict[str, Any]) -> str:
    lines = [
        f"athlete        {p['athlete']}",
        f"program        {p['program']} ({p['program_title']})",
        f"phase          {p['phase_index']} {p['phase']} ({p['phase_title']}) of {len(p['phases'])}",
        f"pain threshold {p['pain_threshold']}/10",
        f"involved side  {p['involved_side']}",
        "drills         " + ", ".join(f"{d['drill']} {d['sets']}x{d['reps']}" for d in p["drills"]),
    ]
    for c in p["phase_history"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c["t_s"]))
        move = f"{c['from_title'] or '-'} -> {c['to_title']}"
        lines.append(f"  {when} {move} ({c['by'] or '?'}: {c['reason']})")
    return "\n".join(lines)
