"""A logger's time column -> one regular sample grid: the nominal rate, each row's sample slot, the gaps.

An IMU samples on its own crystal; what a logger or a phone app writes is the host's reception time:
jitter (tenths of a millisecond to a few), samples arriving in batches (one BLE packet: several samples,
one stamp), dropped samples as rows of NaN or as rows that are simply missing, and a host clock that
runs a few hundred ppm off the sensor's. The samples themselves stay regular, so the right placement of a
row is an integer slot ``k`` on the grid ``t0_s + k * period_s``, not a resampling of its values.

Slots: in units of the period a row's stamp is ``a_i = t_i / period - i = G_i + d_i``, the samples missing
before it (G, a non-decreasing integer) plus its reception delay (d >= 0: jitter, a batch's wait, a
backlog). Delays only ever add to a stamp, so a row's slot is bounded by the stamps of the rows after it,
and the tightest bound (a row that arrived at once) is the answer: a batch or a backlog, whose rows
arrive late together, is not a gap. See ``_slots``. The period comes first from the lower envelope of the
stamps (``_period``), then from a fit of the stamps on their slots, which also gives the grid's origin.

Refused (``InputError`` saying what is wrong): too few stamped rows, a rate outside 50-800 Hz, a time
column that runs backwards, or stamps that no regular grid explains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensorhub.errors import InputError
from sensorhub.model import FloatArray

MIN_RATE_HZ = 50.0
MAX_RATE_HZ = 800.0
RATE_MARGIN = 0.05  # a logger's rate may sit a few percent off its nominal value
WINDOW_ROWS = 32  # rows per window of the first period estimate: longer than a BLE packet's batch
BLOCK_ROWS = 128  # rows per block of the slot search: the first period's error stays below a sample
MIN_STAMPED_ROWS = 2 * WINDOW_ROWS
MAX_BACKWARDS_PERIODS = 4.0  # a stamp may precede the previous one by this much jitter, not more
MAX_UNEXPLAINED = 0.02  # fraction of rows whose stamp no grid slot explains before the column is refused
MAX_LATE_S = 1.0  # a reception delay beyond this (over the grid) no link explains (backlogs stay below)
EARLY_SLACK = 0.25  # periods a stamp may sit below the grid's lower envelope (its own jitter, the fit)
LATE_PERIODS = 8.0  # a stamp later than this is delayed (a batch is shorter): fine for a stretch ...
MAX_DELAYED = 0.1  # ... of at most this fraction of the rows (a backlog), not throughout


@dataclass(frozen=True, slots=True)
class GridReport:
    """How a time column was read (printed by ``analyze``, kept for tests and the report)."""

    rate_hz: float
    rows: int
    slots: int  # grid samples from the first to the last row
    missing_slots: int  # slots with no row (dropped samples written as missing rows)
    nan_rows: int  # rows with a missing value (dropped samples written as rows of NaN)
    duplicate_rows: int  # rows that landed on an occupied slot (kept: the first)
    jitter_ms: float  # reception delay of the stamps over the grid's lower envelope (p99 - p1, ms)

    def summary(self) -> str:
        return (f"{self.rate_hz:.2f} Hz from the time column ({self.rows} rows on {self.slots} grid samples: "
                f"{self.missing_slots} missing, {self.nan_rows} NaN rows, {self.duplicate_rows} duplicates; "
                f"stamp jitter {self.jitter_ms:.2f} ms)")


@dataclass(frozen=True, slots=True)
class Grid:
    t_s: FloatArray  # (M,) regular grid times
    data: FloatArray  # (M, C) the rows' values on their slots, NaN where no row (or a NaN row) sits
    report: GridReport


def _period(t_s: FloatArray) -> float:
    """First estimate of the period (to ~1e-3): the slope between the lower-envelope points of consecutive
    chunks of rows (each chunk's least-delayed stamp: the end of a batch, a packet received at once),
    median over the recording; a pair with a gap between them is an outlier the median ignores. The chunk
    minima are taken relative to the current estimate, starting from the median stamp step over windows
    of rows (biased by batching, by up to a batch over the window)."""
    rows = np.flatnonzero(np.isfinite(t_s)).astype(np.float64)
    stamps = t_s[np.isfinite(t_s)]
    w = min(WINDOW_ROWS, rows.shape[0] - 1)
    period_s = float(np.median((stamps[w:] - stamps[:-w]) / (rows[w:] - rows[:-w])))
    chunks = stamps.shape[0] // (2 * WINDOW_ROWS)
    if chunks < 3 or not period_s > 0:
        return period_s
    size = 2 * WINDOW_ROWS
    for _ in range(3):
        r = (stamps - period_s * rows)[: chunks * size].reshape(chunks, size)
        at = np.argmin(r, axis=1) + np.arange(chunks) * size
        period_s = float(np.median(np.diff(stamps[at]) / np.diff(rows[at])))
    return period_s


def _slots(t_s: FloatArray, period_s: float) -> np.ndarray:
    """Each row's grid slot (first row: 0), given the period; see the module docstring.

    In units of the period a row's stamp is ``a_i = t_i / period - i = G_i + d_i``: the samples missing
    before it (G, a non-decreasing integer) plus its reception delay (d >= 0). Within a block of rows the
    period's error does not add up to a sample, and ``G_i = min over the block's later rows j of
    floor(a_j - c)`` with ``c`` the block's lowest stamp: a later row with a short delay bounds every row
    before it (a batch, whose rows arrive late together, is not a gap). Blocks chain through the
    difference of their lowest stamps, so the period's error never adds up over the recording; a last
    pass over the whole recording lets a later row bound every earlier one (a backlog longer than a
    block, whose rows all arrive late, is not a gap either)."""
    n = t_s.shape[0]
    a = t_s / period_s - np.arange(n)
    slot = np.arange(n, dtype=np.int64)
    g_start = 0
    c_prev: float | None = None
    for b0 in range(0, n, BLOCK_ROWS):
        b1 = min(n, b0 + BLOCK_ROWS)
        block = a[b0:b1]
        finite = np.isfinite(block)
        if not np.any(finite):
            slot[b0:b1] += g_start
            continue
        c = float(block[finite].min())
        if c_prev is not None:
            g_start += int(np.rint(c - c_prev))
        c_prev = c
        bound = np.where(finite, np.floor(block - c + EARLY_SLACK), np.inf)
        gaps = np.minimum.accumulate(bound[::-1])[::-1]  # min over each row and the block's later rows
        gaps[~np.isfinite(gaps)] = 0.0  # unstamped rows after the block's last stamp: no gap known
        slot[b0:b1] += g_start + gaps.astype(np.int64)
    later = np.minimum.accumulate((slot - np.arange(n))[::-1])[::-1]
    return np.asarray(later + np.arange(n) - later[0], dtype=np.int64)


def _fit_line(k: FloatArray, stamps: FloatArray) -> tuple[float, float]:
    """Period and origin of the grid: least squares, then again on the stamps at or below that line
    (reception delays only ever add to a stamp)."""
    period_s, t0_s = np.polyfit(k, stamps, 1)
    low = stamps - (t0_s + period_s * k) <= 0.0
    if np.count_nonzero(low) >= MIN_STAMPED_ROWS // 2:
        period_s, t0_s = np.polyfit(k[low], stamps[low], 1)
    return float(period_s), float(t0_s)


def _rate_ok(rate_hz: float) -> bool:
    return MIN_RATE_HZ * (1 - RATE_MARGIN) <= rate_hz <= MAX_RATE_HZ * (1 + RATE_MARGIN)


def regular_grid(t_s: FloatArray, data: FloatArray, where: str) -> Grid:
    """Place the rows of (t_s, data) on one regular grid; see the module docstring."""
    t_s = np.asarray(t_s, dtype=np.float64)
    n = t_s.shape[0]
    stamped = np.isfinite(t_s)
    if np.count_nonzero(stamped) < MIN_STAMPED_ROWS:
        raise InputError(f"{where}: only {np.count_nonzero(stamped)} rows have a time; a recording needs "
                         ">= 3 s of standing followed by knee bends or walking")
    stamps = t_s[stamped]
    period_s = _period(t_s)
    if not (period_s > 0 and _rate_ok(1.0 / period_s)):
        rate = f"{1.0 / period_s:.1f} Hz" if period_s > 0 else "no positive step"
        raise InputError(f"{where}: the time column gives no usable sample rate ({rate}; allowed "
                         f"{MIN_RATE_HZ:.0f}-{MAX_RATE_HZ:.0f} Hz): is time_s in seconds, one row per "
                         "sample?")
    steps = np.diff(stamps)
    if np.any(steps < -MAX_BACKWARDS_PERIODS * period_s):
        i = int(np.flatnonzero(steps < -MAX_BACKWARDS_PERIODS * period_s)[0])
        raise InputError(f"{where}: time_s runs backwards ({stamps[i + 1]} after {stamps[i]}): rows must be "
                         "in the order the samples were taken")
    # slots with the first period, the period refitted on them (far better than 1e-6), the slots again
    slot = _slots(t_s, period_s)
    period_s, t0_s = _fit_line(slot[stamped].astype(np.float64), stamps)
    slot = _slots(t_s, period_s)
    period_s, t0_s = _fit_line(slot[stamped].astype(np.float64), stamps)
    rate_hz = 1.0 / period_s
    residual = stamps - (t0_s + period_s * slot[stamped])
    residual -= np.percentile(residual, 1.0)
    unexplained = (residual < -0.5 * period_s) | (residual > MAX_LATE_S)
    delayed = residual > LATE_PERIODS * period_s
    if (np.count_nonzero(unexplained) > MAX_UNEXPLAINED * stamps.shape[0]
            or np.count_nonzero(delayed) > MAX_DELAYED * stamps.shape[0] or not _rate_ok(rate_hz)):
        off = np.count_nonzero(unexplained | delayed)
        raise InputError(f"{where}: the time column fits no regular sample grid ({off} of {stamps.shape[0]} "
                         f"stamps early or late by over {LATE_PERIODS:.0f} samples on a {rate_hz:.1f} Hz "
                         "grid): the samples must come from one sensor clock at one rate, one row per sample")
    # the grid, and each row on its slot (the first complete row of a slot wins; NaN rows fill nothing)
    m = int(slot[-1]) + 1
    grid_t = t0_s + period_s * np.arange(m, dtype=np.float64)
    out = np.full((m, data.shape[1]), np.nan)
    complete = np.all(np.isfinite(data), axis=1)
    rows = np.flatnonzero(complete)
    _, first = np.unique(slot[rows], return_index=True)
    keep = rows[first]
    out[slot[keep]] = data[keep]
    jitter_ms = float(np.percentile(residual, 99.0)) * 1e3
    if not math.isfinite(jitter_ms):
        raise InputError(f"{where}: the time column has no usable values")
    report = GridReport(rate_hz=rate_hz, rows=n, slots=m, missing_slots=m - int(np.unique(slot).shape[0]),
                        nan_rows=int(n - np.count_nonzero(complete)),
                        duplicate_rows=int(rows.shape[0] - keep.shape[0]), jitter_ms=jitter_ms)
    return Grid(t_s=grid_t, data=out, report=report)


__all__ = ["Grid", "GridReport", "regular_grid"]
