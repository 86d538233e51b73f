"""``sensorhub analyze``'s HTML report: one self-contained page per analysed leg (inline SVG, no script,
no external file, like ``sensorhub report``), for a clinician who wants to see the recording.

Sections: the recording (source, leg, rate, duration, how the time column was read); the three knee
angles over time with every event marked (landing, cut, rep: a line at its ``t_s``); the calibration
report (standing, bends, axis spread, hinge residual: why the angles can be trusted, or not); per event
type, a table of every event with its metrics and control score.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from sensorhub.conventions import DEG_PER_RAD, EVENT_METRIC_KEYS
from sensorhub.errors import InputError
from sensorhub.model import FloatArray, KneeAngles
from sensorhub.svg_charts import REPORT_CSS, Mark, Series, color, html_table, line_chart

# Angle series are drawn as a min/max envelope of this many buckets: peaks survive, a 10-minute
# recording at 800 Hz stays a page of a few hundred kB.
MAX_BUCKETS = 1500
EVENT_COLORS = {"landing": "#d62728", "cut": "#ff7f0e", "rep": "#2ca02c"}
ANGLES = (("flexion", "flexion_deg", "+ = bent"), ("valgus", "valgus_deg", "+ = knee toward the midline"),
          ("rotation", "rotation_deg", "+ = shank internal rotation"))
# What each calibration figure means, with its unit (the keys of CalibrationReport.as_dict()).
CALIBRATION_FIELDS = {
    "standing_s": ("quiet standing used", "s"),
    "motion_s": ("movement used for the flexion axis", "s"),
    "n_flexion_cycles": ("knee bends (flexion cycles) seen", ""),
    "flexion_range_deg": ("flexion range during calibration", "deg"),
    "axis_spread_deg": ("spread of the flexion axis between bends", "deg"),
    "residual_rms_rad_s": ("hinge residual (RMS)", "rad/s"),
    "relative_residual": ("hinge residual relative to the flexion rate", ""),
    "n_fit_samples": ("samples in the axis fit", ""),
    "refinement_deg": ("axis refinement from the shank's rotation", "deg"),
    "axis_disagreement_deg": ("gyroscope vs inclination axis (worse segment)", "deg"),
    "refinement_used": ("refinement kept", ""),
}


@dataclass(frozen=True, slots=True)
class LegAnalysis:
    """One analysed leg, as the report shows it."""

    source: str
    leg_id: str
    side: str
    rate_hz: float
    angles: KneeAngles
    calibration: Mapping[str, float | int]
    events: Sequence[Mapping[str, Any]]
    time_summary: str = ""  # how a CSV's time column was read (empty for a recording)


def envelope(t_s: FloatArray, y: FloatArray, n_buckets: int = MAX_BUCKETS) -> tuple[FloatArray, FloatArray]:
    """At most ``2 n_buckets`` points keeping each bucket's minimum and maximum in time order (a plot
    of it looks like the full series); NaN buckets stay NaN so the line breaks at gaps."""
    n = len(t_s)
    if n <= 2 * n_buckets:
        return t_s, y
    edges = np.linspace(0, n, n_buckets + 1).astype(np.int64)
    ts: list[float] = []
    ys: list[float] = []
    for a, b in pairwise(edges):
        chunk = y[a:b]
        if not np.any(np.isfinite(chunk)):
            ts.append(float(t_s[a]))
            ys.append(math.nan)
            continue
        i, j = sorted((int(np.nanargmin(chunk)), int(np.nanargmax(chunk))))
        ts += [float(t_s[a + i]), float(t_s[a + j])]
        ys += [float(chunk[i]), float(chunk[j])]
    return np.asarray(ts), np.asarray(ys)


def _num(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, int):
        return str(v)
    return f"{float(v):.{digits}f}"


def _event_label(ev: Mapping[str, Any], t_origin_s: float) -> str:
    return f"{ev['type']} at {float(ev['t_s']) - t_origin_s:.2f} s"


def section_recording(leg: LegAnalysis) -> str:
    t = leg.angles.t_s
    counts = {k: sum(1 for e in leg.events if e["type"] == k) for k in EVENT_METRIC_KEYS}
    rows = [
        ("source", escape(leg.source)),
        ("leg", escape(f"{leg.leg_id} ({leg.side})")),
        ("samples", f"{len(t)} at {leg.rate_hz:.2f} Hz"),
        ("duration", f"{float(t[-1] - t[0]) if len(t) else 0.0:.1f} s"),
        ("events", escape(", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in counts.items()))),
    ]
    if leg.time_summary:
        rows.append(("time column", escape(leg.time_summary)))
    return '<section id="recording"><h2>Recording</h2>' + html_table(("", ""), rows, "kv") + "</section>"


def section_angles(leg: LegAnalysis) -> str:
    a = leg.angles
    t0 = float(a.t_s[0]) if len(a.t_s) else 0.0
    rel = a.t_s - t0
    marks = [Mark(float(e["t_s"]) - t0, str(e["type"]), _event_label(e, t0),
                  EVENT_COLORS.get(str(e["type"]), "#555")) for e in leg.events]
    charts = []
    for i, (name, key, sign) in enumerate(ANGLES):
        values = getattr(a, f"{name}_rad") * DEG_PER_RAD
        xs, ys = envelope(rel, values)
        series = [Series(key, xs.tolist(), ys.tolist(), color(i), markers=False)]
        charts.append(line_chart(series, title=f"knee {name} (deg, {sign})", y_label=f"{name} (deg)",
                                 x_label="time since start (s)", marks=marks, width=1100, height=230))
    legend = " ".join(f'<span class="key" style="border-color:{c}">{escape(k)}</span>'
                      for k, c in EVENT_COLORS.items())
    note = ('<p class="note">Vertical lines mark the events (landing: initial contact; cut: foot plant; '
            f"rep: start of descent). {legend}</p>")
    return '<section id="angles"><h2>Knee angles over time</h2>' + note + "\n".join(charts) + "</section>"


def section_calibration(leg: LegAnalysis) -> str:
    rows = []
    for key, value in leg.calibration.items():
        what, unit = CALIBRATION_FIELDS.get(key, (key, ""))
        shown = ("yes" if value else "no") if key == "refinement_used" else _num(value, 3)
        rows.append((escape(what), f"{shown} {escape(unit)}".strip(), f"<code>{escape(key)}</code>"))
    note = ('<p class="note">The sensor mounting was calibrated from the quiet standing at the start and the '
            "knee bends after it; a large axis spread or hinge residual means the angles are less reliable "
            "(see docs/kinematics.md).</p>")
    return ('<section id="calibration"><h2>Calibration</h2>' + note
            + html_table(("figure", "value", "key"), rows, "kv") + "</section>")


def section_events(leg: LegAnalysis) -> str:
    t0 = float(leg.angles.t_s[0]) if len(leg.angles.t_s) else 0.0
    parts = []
    for kind, keys in EVENT_METRIC_KEYS.items():
        events = [e for e in leg.events if e["type"] == kind]
        if not events:
            continue
        metrics = [k for k in keys if any(k in e for e in events)]
        header = ("#", "time (s)", *map(escape, metrics), "control_score")
        rows = [(str(i + 1), _num(float(e["t_s"]) - t0), *(_num(e.get(m)) for m in metrics),
                 _num(e.get("control_score"), 0)) for i, e in enumerate(events)]
        parts.append(f'<h3 class="event-type" data-type="{kind}">{escape(kind)}s ({len(events)})</h3>'
                     + html_table(header, rows, "small events"))
    if not parts:
        parts.append('<p class="note">No landing, cut or rep was found in this recording.</p>')
    return '<section id="events"><h2>Events and their metrics</h2>' + "\n".join(parts) + "</section>"


CSS = REPORT_CSS + """
svg.chart{display:block;margin:6px 0} .key{border-left:4px solid;padding-left:4px;margin-right:10px}
"""


def render_analysis(legs: Sequence[LegAnalysis], generated_s: float | None = None) -> str:
    """The report page (every analysed leg, one after the other)."""
    if not legs:
        raise InputError("nothing to report: no leg was analysed")
    when = dt.datetime.fromtimestamp(dt.datetime.now().timestamp() if generated_s is None else generated_s)
    title = f"Knee analysis: {Path(legs[0].source).name}"
    body = []
    for leg in legs:
        body.append(f'<article class="leg" data-leg="{escape(leg.leg_id)}"><h1>{escape(title)} '
                    f"[{escape(leg.leg_id)}]</h1>")
        body += [section_recording(leg), section_angles(leg), section_calibration(leg), section_events(leg)]
        body.append("</article>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            f'<p class="note">generated {escape(when.astimezone().strftime("%Y-%m-%d %H:%M"))} by sensorhub '
            "analyze</p>\n" + "\n".join(body) + "\n</body></html>\n")
