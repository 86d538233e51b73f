"""The rehab workflow: programs (phases, drills, targets, milestones), pain-guided progression, training
load and within-set fatigue; the HTML report, CSV export and reassessment battery.

- ``program``: ``load_program(path) -> Program``, ``find_program(name)``, the drill registry ``DRILLS``;
- ``progression``: ``recommend(program, plan, history) -> Recommendation``, ``gather_history(store, ...)``;
- ``load``: ``event_load(events)``, ``weekly_loads(sessions, max_increase_pct)``;
- ``fatigue``: ``FatigueMonitor`` (live, event by event) and ``assess_set(events)``.

Submodules are imported on use (nothing heavy at ``import sensorhub.rehab``).
"""
