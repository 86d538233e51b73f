"""Inline SVG charts, the shared style and tables of the self-contained HTML reports (``sensorhub
report``, ``sensorhub analyze``): no JavaScript, no external files.

Every drawn data series is a ``<path class="series" data-series=NAME data-n=POINTS>`` (plus its
markers), target bands are ``<rect class="band">``, reference lines ``<line class="ref">`` and marked
moments ``<line class="mark" data-kind=KIND>``, so a test (or a curious reader of the source) can tell
a plot with data from an empty frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 52, 12, 26, 40
_TICK_END = 'class="tick" text-anchor="end"'
_TICK_MID = 'class="tick" text-anchor="middle"'


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]  # None / NaN: no value (the line breaks there)
    color: str = PALETTE[0]
    dashed: bool = False
    markers: bool = True
    line: bool = True


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded target range; an open side (None) extends to the plot's edge."""

    lo: float | None
    hi: float | None
    label: str = "target"
    color: str = "#2ca02c"


@dataclass(frozen=True, slots=True)
class Mark:
    """A moment on the x axis (e.g. an event): a vertical line with its label as the tooltip."""

    x: float
    kind: str
    label: str
    color: str = "#555"


@dataclass(frozen=True, slots=True)
class RefLine:
    y: float
    label: str
    color: str = "#d62728"


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2g}"


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    x_label: str = "",
    x_ticks: Sequence[tuple[float, str]] | None = None,
    bands: Sequence[Band] = (),
    ref_lines: Sequence[RefLine] = (),
    marks: Sequence[Mark] = (),
    y_range: tuple[float, float] | None = None,
    width: int = 560,
    height: int = 250,
) -> str:
    """A line/marker chart with optional target bands, horizontal reference lines and marked moments."""
    xs = [float(x) for s in series for x, y in zip(s.xs, s.ys, strict=True) if _finite(y)]
    ys = [y for s in series for y in s.ys if y is not None and _finite(y)]
    if y_range is None:
        extra = [b for band in bands for b in (band.lo, band.hi) if b is not None]
        extra += [r.y for r in ref_lines]
        lo, hi = min(ys + extra, default=0.0), max(ys + extra, default=1.0)
        pad = 0.08 * (hi - lo) if hi > lo else 1.0
        y_lo, y_hi = lo - pad, hi + pad
    else:
        y_lo, y_hi = y_range
    if x_ticks:
        xs += [t for t, _ in x_ticks]
    x_lo, x_hi = min(xs, default=0.0), max(xs, default=1.0)
    if x_ticks:  # categories (sessions, weeks): half a step of room so the end labels fit
        pos = sorted({t for t, _ in x_ticks})
        half = 0.5 * min((b - a for a, b in pairwise(pos)), default=1.0)
        x_lo, x_hi = x_lo - half, x_hi + half
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    pw, ph = width - MARGIN_L - MARGIN_R, height - MARGIN_T - MARGIN_B

    def px(x: float) -> float:
        return MARGIN_L + (x - x_lo) / (x_hi - x_lo) * pw

    def py(y: float) -> float:
        return MARGIN_T + (1.0 - (y - y_lo) / (y_hi - y_lo)) * ph

    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{MARGIN_L}" y="16" class="title">{escape(title)}</text>',
    ]
    for band in bands:
        top = py(min(y_hi, band.hi)) if band.hi is not None else MARGIN_T
        bottom = py(max(y_lo, band.lo)) if band.lo is not None else MARGIN_T + ph
        if bottom > top:
            out.append(
                f'<rect class="band" x="{MARGIN_L}" y="{top:.1f}" width="{pw}" height="{bottom - top:.1f}" '
                f'fill="{band.color}" fill-opacity="0.13"><title>{escape(band.label)}</title></rect>'
            )
    for t in _nice_ticks(y_lo, y_hi):
        y = py(t)
        out.append(f'<line x1="{MARGIN_L}" x2="{MARGIN_L + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{MARGIN_L - 4}" y="{y + 4:.1f}" {_TICK_END}>{_fmt(t)}</text>')
    ticks = list(x_ticks) if x_ticks is not None else [(t, _fmt(t)) for t in _nice_ticks(x_lo, x_hi)]
    for t, label in ticks:
        x = px(t)
        out.append(
            f'<text x="{x:.1f}" y="{MARGIN_T + ph + 14}" {_TICK_MID}>{escape(label)}</text>'
        )
    out.append(f'<rect x="{MARGIN_L}" y="{MARGIN_T}" width="{pw}" height="{ph}" class="frame"/>')
    for ref in ref_lines:
        y = py(ref.y)
        out.append(
            f'<line class="ref" x1="{MARGIN_L}" x2="{MARGIN_L + pw}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{ref.color}" stroke-dasharray="5 3"><title>{escape(ref.label)}</title></line>'
        )
        out.append(
            f'<text x="{MARGIN_L + pw - 2}" y="{y - 3:.1f}" class="tick" text-anchor="end" '
            f'fill="{ref.color}">{escape(ref.label)}</text>'
        )
    for mark in marks:
        x = px(mark.x)
        out.append(
            f'<line class="mark" data-kind="{escape(mark.kind)}" x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN_T}" '
            f'y2="{MARGIN_T + ph}" stroke="{mark.color}" stroke-width="1.2" stroke-opacity="0.75">'
            f"<title>{escape(mark.label)}</title></line>"
        )
    for s in series:
        pts = [(px(float(x)), py(v)) for x, v in zip(s.xs, s.ys, strict=True) if v is not None and _finite(v)]
        d: list[str] = []
        pen_up = True
        for x, v in zip(s.xs, s.ys, strict=True):
            if v is None or not _finite(v):
                pen_up = True
                continue
            d.append(f"{'M' if pen_up else 'L'}{px(float(x)):.1f},{py(v):.1f}")
            pen_up = False
        dash = ' stroke-dasharray="6 3"' if s.dashed else ""
        stroke = s.color if s.line else "none"
        out.append(
            f'<path class="series" data-series="{escape(s.name)}" data-n="{len(pts)}" d="{" ".join(d)}" '
            f'fill="none" stroke="{stroke}" stroke-width="1.8"{dash}/>'
        )
        if s.markers:
            out += [f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{s.color}"/>' for cx, cy in pts]
    # legend and axis labels
    lx = MARGIN_L
    for s in series:
        out.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{s.color}"/>')
        out.append(f'<text x="{lx + 13}" y="{height - 5}" class="legend">{escape(s.name)}</text>')
        lx += 22 + 6 * len(s.name)
    out.append(
        f'<text x="12" y="{MARGIN_T + ph / 2:.0f}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 12 {MARGIN_T + ph / 2:.0f})">{escape(y_label)}</text>'
    )
    if x_label:
        out.append(
            f'<text x="{MARGIN_L + pw}" y="{MARGIN_T + ph + 27}" class="axis" text-anchor="end">'
            f"{escape(x_label)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    y_label: str,
    ref_line: RefLine | None = None,
    y_max: float | None = None,
    good: float | None = None,
    width: int = 560,
    row_h: int = 18,
) -> str:
    """Horizontal bars (one per label), e.g. LSI per metric; bars >= ``good`` are green, else amber."""
    height = MARGIN_T + row_h * len(labels) + 30
    label_w = 230
    pw = width - label_w - MARGIN_R
    top = max([*values, y_max or 0.0, ref_line.y if ref_line else 0.0, 1.0])

    def px(v: float) -> float:
        return label_w + max(0.0, v) / top * pw

    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{label_w}" y="16" class="title">{escape(title)}</text>',
    ]
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = MARGIN_T + i * row_h
        fill = "#2ca02c" if good is None or v >= good else "#ff9f1c"
        out.append(
            f'<text x="{label_w - 4}" y="{y + row_h - 5}" {_TICK_END}>{escape(label)}</text>'
        )
        out.append(
            f'<rect class="bar" data-value="{v:.1f}" x="{label_w}" y="{y + 2}" width="{px(v) - label_w:.1f}" '
            f'height="{row_h - 4}" fill="{fill}"><title>{escape(label)}: {v:.1f}</title></rect>'
        )
        out.append(f'<text x="{px(v) + 3:.1f}" y="{y + row_h - 5}" class="tick">{v:.1f}</text>')
    bottom = MARGIN_T + row_h * len(labels)
    if ref_line is not None:
        x = px(ref_line.y)
        out.append(
            f'<line class="ref" x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN_T}" y2="{bottom}" '
            f'stroke="{ref_line.color}" stroke-dasharray="5 3"><title>{escape(ref_line.label)}</title></line>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" class="tick" text-anchor="middle" fill="{ref_line.color}">'
            f"{escape(ref_line.label)}</text>"
        )
    out.append(f'<text x="{width - MARGIN_R}" y="{bottom + 26}" class="axis" text-anchor="end">'
               f"{escape(y_label)}</text>")
    out.append("</svg>")
    return "\n".join(out)


REPORT_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;border-bottom:1px solid #ccd;padding-bottom:3px;margin-top:28px}
h3{font-size:15px;margin:16px 0 6px}
.note{color:#555;font-size:13px}
table{border-collapse:collapse;margin:6px 0 10px}
td,th{border:1px solid #dde;padding:3px 7px;text-align:left;vertical-align:top} th{background:#f3f4f7}
table.small{font-size:12px} table.kv td:first-child{font-weight:600}
svg.chart{background:#fff;border:1px solid #e3e5ea}
svg .title{font-size:12px;font-weight:600} svg .tick,svg .legend{font-size:10px;fill:#444}
svg .axis{font-size:11px;fill:#333} svg .grid{stroke:#eceef2} svg .frame{fill:none;stroke:#aab}
"""
"""The reports' shared style: page, headings, tables and the charts' classes."""


def html_table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table of already-escaped HTML cells (the header's too)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
