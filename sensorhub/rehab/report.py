"""``sensorhub report ATHLETE``: a self-contained HTML report of an athlete's rehab history.

One HTML file, no external resources and no JavaScript: the plots are inline SVG drawn here
(``sensorhub.svg_charts``). Sections: plan and phase history; knee-angle curves of representative events (per
session and drill the rep with the median depth, the landing with the median peak flexion, the cut with
the median flexion at plant, from the curves stored with the events); metrics per session against their
targets; pain over time (during / after / next morning) against the threshold; limb symmetry per metric;
milestones reached, recommendations and the coach's decisions; load per week; reassessment batteries.

``render_report(store, athlete, since)`` returns the page (blocking reads: from the event loop call it
through ``asyncio.to_thread``); ``report_main(...)`` is the command.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from sensorhub.analysis import Target, limb_symmetry
from sensorhub.conventions import REP_TIME_KEYS
from sensorhub.errors import ConfigError, InputError, SinkError
from sensorhub.files import make_private
from sensorhub.history import (
    AthletePlan,
    HistoryStore,
    PainEntry,
    PhaseChange,
    StoredEvent,
    StoredRecommendation,
    StoredSession,
    StoredSet,
    parse_since,
)
from sensorhub.model import Event
from sensorhub.rehab.battery import BATTERY, LSI_GOOD_PCT, BatteryResult, Change, compare, stored_batteries
from sensorhub.rehab.curves import CURVE_POINTS, Curve
from sensorhub.rehab.export import leg_side, write_events_csv
from sensorhub.rehab.load import weekly_loads
from sensorhub.rehab.program import DEFAULT_MAX_WEEKLY_INCREASE_PCT, Program, find_program
from sensorhub.rehab.progression import load_side
from sensorhub.rehab.targets import DEFAULT_PAIN_THRESHOLD, DEFAULT_TARGETS
from sensorhub.svg_charts import REPORT_CSS, Band, RefLine, Series, bar_chart, color, html_table, line_chart

# The metric that picks an event type's representative curve (the event with its median value).
REPRESENTATIVE_METRIC = {"rep": "depth_deg", "landing": "peak_flexion_deg", "cut": "flexion_at_plant_deg"}
# Metrics plotted per session (all of them are in the table below the plots).
KEY_METRICS = {
    "rep": ("depth_deg", "eccentric_s", "peak_valgus_deg", "control_score"),
    "landing": (
        "flexion_at_contact_deg",
        "peak_flexion_deg",
        "peak_valgus_deg",
        "peak_shank_accel_g",
        "time_to_stabilization_s",
        "control_score",
    ),
    "cut": ("flexion_at_plant_deg", "peak_valgus_deg", "braking_time_s", "control_score"),
}
PAIN_CONTEXT_COLORS = {"during": "#d62728", "after": "#1f77b4", "next_morning": "#9467bd"}
SIDES = ("right", "left")
# Without a program: flag weeks rising > 20 % (the default program's value; clinician to adjust).


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything the report shows, read once from the store."""

    athlete_id: str
    name: str
    since_s: float | None
    generated_s: float
    plan: AthletePlan | None
    phases: list[PhaseChange]
    recommendations: list[StoredRecommendation]
    sessions: list[StoredSession]
    sets: list[StoredSet]
    events: list[StoredEvent]
    pain: list[PainEntry]
    thresholds: dict[str, float]
    batteries: list[BatteryResult] = field(default_factory=list)
    program: Program | None = None  # the plan's program, when it loads
    program_problem: str = ""  # why the plan's program could not be loaded


def gather(store: HistoryStore, athlete_id: str, since_s: float | None = None) -> ReportData:
    """Read the athlete's history (blocking). Unknown athletes are an ``InputError``."""
    names = {a["id"]: a["name"] for a in store.athletes()}
    if athlete_id not in names:
        known = ", ".join(sorted(names)) or "none"
        raise InputError(f"no athlete {athlete_id!r} in {store.path} (athletes: {known})")
    sessions = store.sessions(athlete_id, since_s)
    session_ids = {s.id for s in sessions}
    plan = store.plan(athlete_id)
    program, problem = None, ""
    if plan is not None:
        try:
            program = find_program(plan.program)
        except ConfigError as exc:
            problem = str(exc)
    return ReportData(
        athlete_id=athlete_id,
        name=names[athlete_id],
        since_s=since_s,
        generated_s=time.time(),
        plan=plan,
        phases=[p for p in store.phase_history(athlete_id) if since_s is None or p.t_s >= since_s],
        recommendations=store.recommendations(athlete_id, since_s),
        sessions=sessions,
        sets=[s for s in store.sets(athlete_id) if s.session_id in session_ids],
        events=store.events(athlete_id, since_s),
        pain=store.pain_entries(athlete_id, since_s),
        thresholds=store.thresholds(athlete_id),
        batteries=_batteries(store, athlete_id, since_s),
        program=program,
        program_problem=problem,
    )


def _batteries(store: HistoryStore, athlete_id: str, since_s: float | None) -> list[BatteryResult]:
    return stored_batteries(store, athlete_id, since_s)


# ---- small helpers ---------------------------------------------------------------------------------


def _date(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s).astimezone().strftime("%Y-%m-%d")


def _datetime(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s).astimezone().strftime("%Y-%m-%d %H:%M")


def _num(v: float | None, digits: int = 1) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.{digits}f}"


def _group_label(e: StoredEvent) -> str:
    return f"{e.drill} · {e.type}" if e.drill else e.type


# Times carried with the metrics (a rep's bottom and end): not metrics to average or compare.


def _metric_values(e: StoredEvent) -> dict[str, float]:
    values = {k: float(v) for k, v in e.metrics.items() if k not in REP_TIME_KEYS and math.isfinite(v)}
    if e.control_score is not None and math.isfinite(e.control_score):
        values["control_score"] = float(e.control_score)
    return values


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


@dataclass(frozen=True, slots=True)
class _Ctx:
    data: ReportData
    session_index: dict[str, int]  # session id -> 1-based number in the report
    session_ticks: list[tuple[float, str]]


def _ctx(data: ReportData) -> _Ctx:
    index = {s.id: i + 1 for i, s in enumerate(data.sessions)}
    ticks = [(float(i + 1), f"S{i + 1} {_date(s.started_s)[5:]}") for i, s in enumerate(data.sessions)]
    return _Ctx(data, index, ticks)


# ---- targets ---------------------------------------------------------------------------------------


def target_band(metric: str, drill: str | None, d: ReportData) -> Band | None:
    """A metric's target as a band: the program's for the drill (the current phase's first, else the
    first phase that has the drill; a coach-edited threshold replaces its single bound, as the
    progression judges it), else the coach-edited threshold or the dashboard default."""
    program = d.program
    if program is not None and drill:
        current = d.plan.phase_index if d.plan is not None else 0
        phases = sorted(range(len(program.phases)), key=lambda i: (i != current, i))
        for i in phases:
            for plan in program.phases[i].drills:
                if plan.drill != drill:
                    continue
                for t in plan.targets:
                    if t.metric == metric:
                        return _band(t, d.thresholds.get(metric), f" ({program.name}, phase {i + 1})")
    target = DEFAULT_TARGETS.get(metric)
    return None if target is None else _band(target, d.thresholds.get(metric))


def _band(target: Target, override: float | None, source: str = "") -> Band:
    lo, hi = target.bounds(override)
    sides = (f">= {lo:g}" if lo is not None else "", f"<= {hi:g}" if hi is not None else "")
    label = " and ".join(x for x in sides if x)
    return Band(lo, hi, f"target {label}{source}")


def pain_threshold(data: ReportData) -> int:
    if data.plan is not None:
        return data.plan.pain_threshold
    if "pain_threshold" in data.thresholds:
        return int(data.thresholds["pain_threshold"])
    return data.pain[-1].threshold if data.pain else DEFAULT_PAIN_THRESHOLD


# ---- sections --------------------------------------------------------------------------------------


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{body}\n</section>'


def section_overview(c: _Ctx) -> str:
    d = c.data
    plan = d.plan
    rows = [
        ("Athlete", escape(f"{d.name} ({d.athlete_id})" if d.name else d.athlete_id)),
        ("Period", escape(f"since {_date(d.since_s)}" if d.since_s is not None else "all sessions")),
        ("Sessions", str(len(d.sessions))),
        ("Events", str(len(d.events))),
    ]
    if plan is not None:
        rows += [
            ("Program", escape(plan.program)),
            ("Current phase", str(plan.phase_index + 1)),
            ("Involved side", escape(plan.involved_side)),
            ("Pain threshold", f"{plan.pain_threshold}/10"),
        ]
    else:
        rows.append(("Program", "no plan assigned"))
    if d.program_problem:
        rows.append(("Program problem", escape(d.program_problem)))
    body = html_table(("", ""), rows, "kv")
    if d.sessions:
        body += html_table(
            ("#", "date", "kind", "sets (drill × reps)", "events"),
            [
                (
                    f"S{i}",
                    _datetime(s.started_s),
                    escape(s.kind),
                    escape(", ".join(f"{st.drill} × {st.reps}" for st in d.sets if st.session_id == s.id)),
                    str(sum(1 for e in d.events if e.session_id == s.id)),
                )
                for s, i in ((s, c.session_index[s.id]) for s in d.sessions)
            ],
        )
    return _section("overview", "Overview", body)


def _representative(events: list[StoredEvent]) -> StoredEvent | None:
    """The event with the median value of its type's representative metric, among those with a curve."""
    metric = REPRESENTATIVE_METRIC.get(events[0].type, "control_score") if events else ""
    scored = [(_metric_values(e).get(metric, math.nan), e) for e in events if e.curve]
    scored = [(v, e) for v, e in scored if math.isfinite(v)] or [(0.0, e) for _, e in scored]
    if not scored:
        return None
    scored.sort(key=lambda ve: ve[0])
    return scored[(len(scored) - 1) // 2][1]


def _groups(events: list[StoredEvent]) -> dict[str, list[StoredEvent]]:
    """Events within sessions, by drill and event type (the sections' plot groups)."""
    groups: dict[str, list[StoredEvent]] = {}
    for e in events:
        if e.session_id is not None:
            groups.setdefault(_group_label(e), []).append(e)
    return groups


def section_curves(c: _Ctx) -> str:
    d = c.data
    groups = _groups(d.events)
    if not groups:
        return _section("curves", "Knee-angle curves", _note("No events recorded in this period."))
    parts: list[str] = [
        _note(
            "Per session and leg, the event with the median depth (reps), peak flexion (landings) or "
            "flexion at plant (cuts); right leg solid, left dashed."
        )
    ]
    for label, events in sorted(groups.items()):
        flex: list[Series] = []
        valg: list[Series] = []
        missing: list[str] = []
        etype = events[0].type
        for s in d.sessions:
            k = c.session_index[s.id]
            for side in SIDES:
                chosen = [e for e in events if e.session_id == s.id and leg_side(e.leg_id) == side]
                if not chosen:
                    continue
                rep = _representative(chosen)
                curve = None if rep is None or rep.curve is None else Curve.from_store(rep.type, rep.curve)
                if rep is None or curve is None:
                    missing.append(f"S{k} {side}")
                    continue
                xs = _curve_axis(curve, rep)
                name = f"S{k} {side[0].upper()}"
                flex.append(Series(name, xs, list(curve.flexion_deg), color(k - 1), side == "left", False))
                valg.append(Series(name, xs, list(curve.valgus_deg), color(k - 1), side == "left", False))
        x_label = "% of the rep (start of descent → end)" if etype == "rep" else "ms from initial contact"
        parts.append(f"<h3>{escape(label)}</h3>")
        if flex:
            parts.append('<div class="row">')
            parts.append(line_chart(flex, title=f"{label}: knee flexion", y_label="flexion (deg)",
                                    x_label=x_label))
            parts.append(line_chart(valg, title=f"{label}: knee valgus", y_label="valgus (deg)",
                                    x_label=x_label))
            parts.append("</div>")
        if missing:
            parts.append(_note(f"No curve stored for {', '.join(missing)} (events recorded without "
                               "their knee-angle curve)."))
    return _section("curves", "Knee-angle curves of representative events", "\n".join(parts))


def _curve_axis(curve: Curve, event: StoredEvent) -> list[float]:
    n = len(curve.flexion_deg)
    if event.type == "rep":
        return [100.0 * i / (n - 1) for i in range(n)]
    t0, t1 = curve.t0_s - event.t_s, curve.t1_s - event.t_s
    return [1000.0 * (t0 + (t1 - t0) * i / (n - 1)) for i in range(n)]


def _session_means(events: list[StoredEvent]) -> dict[tuple[str, str, str], list[float]]:
    """(session id, side, metric) -> values."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for e in events:
        if e.session_id is None:
            continue
        for m, v in _metric_values(e).items():
            out.setdefault((e.session_id, leg_side(e.leg_id), m), []).append(v)
    return out


def section_metrics(c: _Ctx) -> str:
    d = c.data
    groups = _groups(d.events)
    if not groups:
        return _section("metrics", "Metrics per session", _note("No events recorded in this period."))
    parts = [_note("Mean per session and leg; the shaded band is the target: the program's for the drill, "
                   "else the coach-edited threshold or the dashboard default.")]
    for label, events in sorted(groups.items()):
        values = _session_means(events)
        metrics_present = sorted({m for (_, _, m) in values})
        parts.append(f"<h3>{escape(label)}</h3>")
        charts: list[str] = []
        for metric in KEY_METRICS.get(events[0].type, ()):
            if metric not in metrics_present:
                continue
            series = []
            for j, side in enumerate(SIDES):
                xs, ys = [], []
                for s in d.sessions:
                    v = values.get((s.id, side, metric))
                    xs.append(float(c.session_index[s.id]))
                    ys.append(statistics.fmean(v) if v else None)
                if any(y is not None for y in ys):
                    series.append(Series(side, xs, ys, color(j)))
            band = target_band(metric, events[0].drill, d)
            charts.append(line_chart(series, title=f"{label}: {metric}", y_label=metric,
                                     x_ticks=c.session_ticks, bands=[band] if band else []))
        parts.append('<div class="row">' + "\n".join(charts) + "</div>")
        rows = []
        for s in d.sessions:
            for side in SIDES:
                cells = [statistics.fmean(v) if (v := values.get((s.id, side, m))) else None
                         for m in metrics_present]
                if any(x is not None for x in cells):
                    n = max(len(values.get((s.id, side, m), [])) for m in metrics_present)
                    rows.append([f"S{c.session_index[s.id]}", side, str(n), *(_num(x, 2) for x in cells)])
        parts.append(
            "<details><summary>all metrics (session means)</summary>"
            + html_table(["session", "leg", "n", *map(escape, metrics_present)], rows, "small")
            + "</details>"
        )
    return _section("metrics", "Metrics per session with targets", "\n".join(parts))


def section_pain(c: _Ctx) -> str:
    d = c.data
    threshold = pain_threshold(d)
    if not d.pain:
        return _section("pain", "Pain", _note("No pain entries in this period."))
    t_first = min([p.t_s for p in d.pain] + [s.started_s for s in d.sessions])
    day0 = _date(t_first)
    series = []
    for context, col in PAIN_CONTEXT_COLORS.items():
        entries = [p for p in d.pain if p.context == context]
        if entries:
            series.append(
                Series(context.replace("_", " "), [(p.t_s - t_first) / 86400.0 for p in entries],
                       [float(p.pain) for p in entries], col)
            )
    chart = line_chart(series, title="Pain (0-10) over time", y_label="pain (0-10)",
                       x_label=f"days since {day0}", y_range=(0.0, 10.0),
                       ref_lines=[RefLine(float(threshold), f"threshold {threshold}")])
    flagged = [p for p in d.pain if p.pain > p.threshold]
    body = chart
    if flagged:
        body += "<h3>Entries above the threshold (reduce load and reassess)</h3>" + html_table(
            ("date", "context", "session", "pain", "threshold"),
            [
                (
                    _datetime(p.t_s),
                    escape(p.context),
                    f"S{c.session_index[p.session_id]}" if p.session_id in c.session_index else "–",
                    str(p.pain),
                    str(p.threshold),
                )
                for p in flagged
            ],
        )
    else:
        body += _note(f"No entry above the threshold ({threshold}).")
    return _section("pain", "Pain over time", body)


def section_symmetry(c: _Ctx) -> str:
    d = c.data
    per_session: dict[str, dict[tuple[str, str], float]] = {}
    for s in d.sessions:
        events = []
        for e in d.events:
            if e.session_id == s.id:
                values = _metric_values(e)
                score = values.get("control_score", math.nan)
                events.append(Event(_group_label(e), e.leg_id, e.t_s, values, score))
        per_session[s.id] = {(x.event_type, x.metric): x.lsi_pct for x in limb_symmetry(events)}
    keys = sorted({k for v in per_session.values() for k in v})
    if not keys:
        return _section("symmetry", "Limb symmetry",
                        _note("No session with both legs instrumented in this period."))
    last = next(s for s in reversed(d.sessions) if per_session[s.id])
    latest = per_session[last.id]
    labels = [f"{g}: {m}" for g, m in sorted(latest)]
    chart = bar_chart(labels, [latest[k] for k in sorted(latest)],
                      title=f"Limb symmetry index, S{c.session_index[last.id]} ({_date(last.started_s)})",
                      y_label="LSI (%) = 100 · min(|mean L|, |mean R|) / max(...)",
                      ref_line=RefLine(LSI_GOOD_PCT, f"{LSI_GOOD_PCT:.0f} %"), y_max=100.0, good=LSI_GOOD_PCT)
    sessions = [s for s in d.sessions if per_session[s.id]]
    rows = [
        [escape(g), escape(m),
         *(_lsi_cell(per_session[s.id].get((g, m))) for s in sessions)]
        for g, m in keys
    ]
    header = ["drill · type", "metric", *(f"S{c.session_index[s.id]}" for s in sessions)]
    table = html_table(header, rows, "small")
    return _section("symmetry", "Limb symmetry per metric", chart + "<details open><summary>LSI (%) per "
                    "session</summary>" + table + "</details>")


def _lsi_cell(v: float | None) -> str:
    if v is None:
        return "–"
    cls = "good" if v >= LSI_GOOD_PCT else "warn"
    return f'<span class="{cls}">{v:.1f}</span>'


def _reason_name(r: dict[str, Any]) -> str:
    for key in ("criterion", "name", "id", "label"):
        if r.get(key):
            return str(r[key])
    return "criterion"


def _is_check(r: dict[str, Any]) -> bool:
    """A checked criterion (milestone or flare-up check), not a flagged set or a piece of advice."""
    return r.get("kind", "milestone") in ("milestone", "flare_up")


def _reason_html(r: dict[str, Any]) -> str:
    """One stored reason (``sensorhub.rehab.progression.Recommendation.reasons_json``) as a line."""
    detail = str(r.get("detail") or "")
    if not _is_check(r):
        prefix = "flagged set" if r.get("kind") == "flagged_set" else "advice"
        return f"<i>{escape(prefix)}:</i> {escape(detail)}"
    mark = '<span class="good">✓</span>' if r.get("met") else '<span class="warn">✗</span>'
    figures = ""
    if r.get("value") is not None or r.get("target") is not None:
        figures = f" ({_fmt_any(r.get('value'))} vs {_fmt_any(r.get('target'))})"
    text = f"{_reason_name(r)}{figures}" + (f": {detail}" if detail else "")
    return f"{mark} {escape(text)}"


def _fmt_any(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return _num(v, 2)
    return str(v)


def section_progress(c: _Ctx) -> str:
    d = c.data
    parts: list[str] = []
    # milestones: the criteria checked at each review, with the first time each was met
    first_met: dict[str, StoredRecommendation] = {}
    latest: dict[str, bool] = {}
    for rec in d.recommendations:
        for r in rec.reasons:
            if r.get("kind", "milestone") != "milestone":
                continue
            name = _reason_name(r)
            met = bool(r.get("met"))
            latest[name] = met
            if met and name not in first_met:
                first_met[name] = rec
    if latest:
        rows = [
            (
                escape(name),
                escape(_datetime(first_met[name].t_s)) if name in first_met else "not yet",
                '<span class="good">met</span>' if met else '<span class="warn">not met</span>',
            )
            for name, met in latest.items()
        ]
        reached = sum(1 for name in latest if name in first_met)
        parts.append(f"<h3>Milestones ({reached} of {len(latest)} reached at least once)</h3>"
                     + html_table(("criterion", "first met", "at the latest review"), rows))
    else:
        parts.append(_note("No progression review recorded yet (milestones appear with the first "
                           "recommendation)."))
    if d.phases:
        names = [p.name for p in d.program.phases] if d.program is not None else []

        def phase(i: int | None) -> str:
            if i is None:
                return "start"
            return escape(f"{i + 1} {names[i]}" if i < len(names) else str(i + 1))

        parts.append("<h3>Phase history</h3>" + html_table(
            ("date", "program", "from", "to", "by", "reason"),
            [
                (_datetime(p.t_s), escape(p.program), phase(p.from_phase), phase(p.to_phase), escape(p.by),
                 escape(p.reason))
                for p in d.phases
            ],
        ))
    if d.recommendations:
        rows2 = []
        for rec in d.recommendations:
            checks = [r for r in rec.reasons if r.get("kind", "milestone") == "milestone"]
            n_met = sum(1 for r in checks if r.get("met"))
            decision = rec.decision
            rows2.append(
                (
                    _datetime(rec.t_s),
                    f"S{c.session_index[rec.session_id]}" if rec.session_id in c.session_index else "–",
                    str(rec.phase_index + 1),
                    f'<b class="action-{escape(rec.action)}">{escape(rec.action)}</b>',
                    f"{n_met}/{len(checks)} milestones met<br>" + "<br>".join(map(_reason_html, rec.reasons)),
                    "undecided" if decision is None else escape(decision.decision),
                    "" if decision is None else escape(decision.note),
                )
            )
        parts.append("<h3>Recommendations and decisions</h3>" + html_table(
            ("date", "session", "phase", "recommended", "reasons", "coach decision", "note"), rows2, "small"
        ))
    return _section("progress", "Milestones, phases, recommendations", "\n".join(parts))


@dataclass(frozen=True, slots=True)
class _LoadSession:
    """A stored session with its events, as ``rehab.load.weekly_loads`` reads sessions."""

    session_id: str
    started_s: float
    events: list[StoredEvent]


def section_load(c: _Ctx) -> str:
    d = c.data
    program = d.program
    limit_pct = DEFAULT_MAX_WEEKLY_INCREASE_PCT if program is None else program.max_weekly_load_increase_pct
    sessions = [
        _LoadSession(s.id, s.started_s, [e for e in d.events if e.session_id == s.id]) for s in d.sessions
    ]
    weeks = weekly_loads(sessions, limit_pct, side=load_side(d.plan))  # as the progression judges it
    if not weeks:
        return _section("load", "Load per week", _note("No sessions in this period."))
    xs = [float(i) for i in range(len(weeks))]
    ticks = [(float(i), w.label) for i, w in enumerate(weeks)]
    impact = line_chart(
        [Series("impact load (g)", xs, [w.load.impact_load_g for w in weeks], color(0))],
        title="Impact load per week (landing shank peaks + cut braking peaks)",
        y_label="impact load (g)", x_ticks=ticks,
    )
    counts = line_chart(
        [
            Series("reps", xs, [float(w.load.reps) for w in weeks], color(0)),
            Series("landings", xs, [float(w.load.landings) for w in weeks], color(1)),
            Series("cuts", xs, [float(w.load.cuts) for w in weeks], color(2)),
        ],
        title="Events per week (both legs)", y_label="count", x_ticks=ticks,
    )
    source = "the program's" if program is not None else "a default (no program assigned)"
    rows = [
        (
            escape(w.label), str(len(w.sessions)), str(w.load.reps), str(w.load.landings), str(w.load.cuts),
            _num(w.load.impact_load_g, 0),
            '<span class="bad">flagged</span>' if w.flagged else "",
            escape("; ".join(w.reasons)),
        )
        for w in weeks
    ]
    body = (
        _note(f"A week is flagged when its impact load or event count rises more than {limit_pct:g} % over "
              f"the previous week ({source} limit).")
        + '<div class="row">' + impact + counts + "</div>"
        + html_table(("week", "sessions", "reps", "landings", "cuts", "impact (g)", "", "why"), rows, "small")
    )
    return _section("load", "Load per week", body)


def section_fatigue(c: _Ctx) -> str:
    from sensorhub.rehab.fatigue import MIN_REPS, assess_set

    d = c.data
    rows = []
    n_checked = 0
    for st in d.sets:
        events = [e for e in d.events if e.set_id == st.id]
        status = assess_set(events)
        if not status.findings:
            continue
        n_checked += 1
        verdict = (
            "<br>".join(f'<span class="bad">fatigue</span> {escape(r)}' for r in status.reasons)
            if status.flagged
            else "no drift"
        )
        session = f"S{c.session_index[st.session_id]}" if st.session_id in c.session_index else "–"
        rows.append((session, str(st.set_no), escape(st.drill), str(len(events)), verdict))
    if not rows:
        return _section("fatigue", "Fatigue within sets",
                        _note(f"No set with the {MIN_REPS} events per leg a fatigue check needs."))
    flagged = sum(1 for r in rows if r[-1] != "no drift")
    body = _note(f"{flagged} of {n_checked} checked sets flagged (control metrics drifting the bad way "
                 "over the set: valgus rising, flexion at contact or eccentric time falling).")
    body += html_table(("session", "set", "drill", "events", "finding"), rows, "small")
    return _section("fatigue", "Fatigue within sets", body)


def section_battery(c: _Ctx) -> str:
    d = c.data
    if not d.batteries:
        return _section("battery", "Reassessment battery", _note("No reassessment battery in this period."))
    current = d.batteries[-1]
    titles = {t.name: t.title for t in BATTERY}
    parts = [_note(f"Latest battery: {_datetime(current.t_s)}. The hop distance is a proxy (g·T²/2 from the "
                   "flight time T, a 45° take-off); compare it between legs and batteries only.")]
    rows = []
    for name, res in current.tests.items():
        for metric in {m for legs in res.legs.values() for m in legs}:
            left = res.legs.get("left", {}).get(metric)
            right = res.legs.get("right", {}).get(metric)
            rows.append((
                escape(titles.get(name, name)), escape(metric),
                _num(right.mean, 2) if right else "–", _num(left.mean, 2) if left else "–",
                _lsi_cell(res.lsi_pct.get(metric)),
            ))
    parts.append(html_table(("test", "metric", "right", "left", "LSI %"), sorted(rows), "small"))
    if len(d.batteries) >= 2:
        previous = d.batteries[-2]
        changes = compare(current, previous)
        parts.append(f"<h3>Change since {_datetime(previous.t_s)}</h3>" + _changeshtml_table(changes, titles))
    return _section("battery", "Reassessment battery", "\n".join(parts))


def _changeshtml_table(changes: list[Change], titles: dict[str, str]) -> str:
    css = {"better": "good", "worse": "bad", "unchanged": "", "not judged": ""}
    return html_table(
        ("test", "leg", "metric", "before", "after", "change", ""),
        [
            (
                escape(titles.get(ch.test, ch.test)), ch.leg, escape(ch.metric), _num(ch.before, 2),
                _num(ch.after, 2), f"{ch.delta:+.2f}", f'<span class="{css[ch.verdict]}">{ch.verdict}</span>',
            )
            for ch in changes
        ],
        "small",
    )


CSS = REPORT_CSS + """
.row{display:flex;flex-wrap:wrap;gap:8px}
.good{color:#137333;font-weight:600} .warn{color:#b06000;font-weight:600} .bad{color:#c5221f;font-weight:600}
.action-advance{color:#137333} .action-hold{color:#b06000} .action-step_back{color:#c5221f}
@media print{.row{display:block} details{display:block}}
"""


def render(data: ReportData) -> str:
    c = _ctx(data)
    title = f"Rehab report: {data.name or data.athlete_id}"
    sections = [
        section_overview(c),
        section_progress(c),
        section_curves(c),
        section_metrics(c),
        section_pain(c),
        section_symmetry(c),
        section_load(c),
        section_fatigue(c),
        section_battery(c),
    ]
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        f"<h1>{escape(title)}</h1><p class=\"note\">generated {escape(_datetime(data.generated_s))} by "
        f"sensorhub · knee-angle curves: {CURVE_POINTS} points per event</p>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def render_report(store: HistoryStore, athlete: str, since: str | dt.date | float | None = None) -> str:
    """The report page of one athlete (blocking: reads the store)."""
    return render(gather(store, athlete, parse_since(since)))


def report_main(
    athlete: str,
    out: Path,
    since: str | None = None,
    csv: Path | None = None,
    db: Path | None = None,
    config: Path | None = None,
) -> int:
    """``sensorhub report ATHLETE [--since DATE] --out report.html [--csv events.csv] [--db PATH|--config]``.

    The history database is ``db`` if given, else ``service.data_dir/history.sqlite3`` of the
    configuration (``config``, ``SENSORHUB_CONFIG`` or the defaults)."""
    from sensorhub.config import existing_history
    from sensorhub.progress import progress

    db = existing_history(db, config)
    since_s = parse_since(since)
    with HistoryStore(db) as store, progress(f"report {athlete}", total=3 + (csv is not None)) as bar:
        bar.update("reading the history")
        data = gather(store, athlete, since_s)
        bar.advance()
        bar.update("plots")
        html = render(data)
        bar.advance()
        try:
            make_private(Path(out)).write_text(html, encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"{out}: cannot write the report: {exc.strerror or exc}") from exc
        bar.advance()
        bar.print(f"wrote {out} ({len(html) // 1024} kB)")
        if csv is not None:
            bar.update("CSV")
            n = write_events_csv(store, athlete, Path(csv), since_s)
            bar.advance()
            bar.print(f"wrote {csv} ({n} events)")
    return 0
