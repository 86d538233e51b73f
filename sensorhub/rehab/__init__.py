"""The rehab workflow: programs (phases, drills, targets, milestones), pain-guided progression, training
load and within-set fatigue, each athlete's live session (sets, pain, plan, recommendation and the
coach's decision), plan services, the HTML report, CSV export and reassessment battery.

- ``program``: ``load_program(path) -> Program``, ``find_program(name)``, the drill registry ``DRILLS``;
- ``progression``: ``recommend(program, plan, history) -> Recommendation``, ``gather_history(store, ...)``;
- ``load``: ``event_load(events)``, ``weekly_loads(sessions, max_increase_pct)``;
- ``fatigue``: ``FatigueMonitor`` (live, event by event) and ``assess_set(events)``;
- ``session``: ``SessionManager`` (every athlete's session, the single writer of session facts);
- ``plans``: plans, their JSON views, the history page's rehab part, ``sensorhub plan``;
- ``targets``: the coach page's default targets and their grading.

Modules are imported on first use (nothing heavy at ``import sensorhub.rehab``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensorhub.lazy import lazy_exports

if TYPE_CHECKING:
    from sensorhub.rehab.battery import battery_main
    from sensorhub.rehab.export import events_csv
    from sensorhub.rehab.fatigue import FatigueMonitor, assess_set
    from sensorhub.rehab.load import event_load, weekly_loads
    from sensorhub.rehab.plans import (
        plan_edit,
        plan_main,
        program_names,
        program_phrases,
        rehab_history,
        saved_plans,
        write_plan,
    )
    from sensorhub.rehab.program import DRILLS, Program, find_program, load_program
    from sensorhub.rehab.progression import Recommendation, gather_history, recommend
    from sensorhub.rehab.report import render_report, report_main
    from sensorhub.rehab.session import SessionError, SessionManager
    from sensorhub.rehab.targets import DEFAULT_TARGETS

__all__ = [
    "DEFAULT_TARGETS",
    "DRILLS",
    "FatigueMonitor",
    "Program",
    "Recommendation",
    "SessionError",
    "SessionManager",
    "assess_set",
    "battery_main",
    "event_load",
    "events_csv",
    "find_program",
    "gather_history",
    "load_program",
    "plan_edit",
    "plan_main",
    "program_names",
    "program_phrases",
    "recommend",
    "rehab_history",
    "render_report",
    "report_main",
    "saved_plans",
    "weekly_loads",
    "write_plan",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "battery_main": "battery",
        "events_csv": "export",
        "FatigueMonitor": "fatigue",
        "assess_set": "fatigue",
        "event_load": "load",
        "weekly_loads": "load",
        "plan_edit": "plans",
        "plan_main": "plans",
        "program_names": "plans",
        "program_phrases": "plans",
        "rehab_history": "plans",
        "saved_plans": "plans",
        "write_plan": "plans",
        "DRILLS": "program",
        "Program": "program",
        "find_program": "program",
        "load_program": "program",
        "Recommendation": "progression",
        "gather_history": "progression",
        "recommend": "progression",
        "render_report": "report",
        "report_main": "report",
        "SessionError": "session",
        "SessionManager": "session",
        "DEFAULT_TARGETS": "targets",
    },
)
