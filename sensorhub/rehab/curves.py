"""Knee-angle curves of single events (a rep, a landing, a cut), for the report and the history store.

A curve is flexion and valgus (degrees) resampled to ``CURVE_POINTS`` points evenly spread over the
event's window, so curves of reps of different durations overlay on a 0-100 % axis:
- rep: start of descent (``t_s``) .. end (``t_end_s``);
- landing and cut: initial contact / plant - 0.1 s .. + 0.4 s (the loading phase).

``AngleRing`` keeps the last ``keep_s`` seconds of each leg's angles (live: fed every chunk the knee
estimator emits) and answers ``curve_for(event)`` when the detector reports the event, which happens
after the event's window has closed (reps: after the hold-off; landings: after the 0.8 s window).
Angle rows flagged as missing input are not measurements and are left out; a window with a gap longer
than ``max_gap_s`` or not fully in the buffer gives no curve (None), never a made-up one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensorhub.analysis.detector import UNRELIABLE_ANGLE  # rows that are not a measurement
from sensorhub.conventions import DEG_PER_RAD
from sensorhub.model import Event, FloatArray, KneeAngles

CURVE_POINTS = 101
IMPACT_WINDOW_S = (-0.1, 0.4)  # landing / cut: around initial contact
DEFAULT_KEEP_S = 10.0
DEFAULT_MAX_GAP_S = 0.1


@dataclass(frozen=True, slots=True)
class Curve:
    """One event's knee-angle curve: ``CURVE_POINTS`` samples from ``t0_s`` to ``t1_s`` (degrees)."""

    event_type: str
    t0_s: float
    t1_s: float
    flexion_deg: tuple[float, ...]
    valgus_deg: tuple[float, ...]

    def times_s(self) -> FloatArray:
        return np.linspace(self.t0_s, self.t1_s, len(self.flexion_deg))

    def to_store(self) -> dict[str, list[float]]:
        """The ``events.curve_json`` content (HistoryStore.record_event's ``curve``): the two angle
        series (0.01 deg: about 1.5 kB per event) and ``window_s`` = [t0_s, t1_s]."""
        return {
            "flexion_deg": [round(v, 2) for v in self.flexion_deg],
            "valgus_deg": [round(v, 2) for v in self.valgus_deg],
            "window_s": [round(self.t0_s, 4), round(self.t1_s, 4)],
        }

    @classmethod
    def from_store(cls, event_type: str, obj: Mapping[str, Any]) -> Curve | None:
        """A stored curve back; None when it lacks the angle series (nulls are missing values)."""
        flex, valg = obj.get("flexion_deg"), obj.get("valgus_deg")
        if not flex or not valg or len(flex) != len(valg):
            return None
        window = obj.get("window_s") or [0.0, 1.0]
        return cls(
            event_type,
            float(window[0]),
            float(window[1]),
            tuple(math.nan if v is None else float(v) for v in flex),
            tuple(math.nan if v is None else float(v) for v in valg),
        )


def curve_window(event: Event) -> tuple[float, float] | None:
    """The time window a curve of this event covers (None: a rep without its end)."""
    if event.type == "rep":
        t_end = event.metrics.get("t_end_s", math.nan)
        return (event.t_s, t_end) if math.isfinite(t_end) and t_end > event.t_s else None
    return event.t_s + IMPACT_WINDOW_S[0], event.t_s + IMPACT_WINDOW_S[1]


def extract_curve(
    t_s: FloatArray,
    flexion_deg: FloatArray,
    valgus_deg: FloatArray,
    event: Event,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
) -> Curve | None:
    """Resample one event's window of angle rows (NaN = missing) to ``CURVE_POINTS`` points.

    None when the window is not covered by finite rows at both ends or has a gap over ``max_gap_s``."""
    window = curve_window(event)
    if window is None:
        return None
    t0, t1 = window
    ok = np.isfinite(t_s) & np.isfinite(flexion_deg) & np.isfinite(valgus_deg)
    lo = int(np.searchsorted(t_s, t0, side="left"))
    hi = int(np.searchsorted(t_s, t1, side="right"))
    # one row on each side of the window so the ends interpolate instead of extrapolating
    sl = slice(max(lo - 1, 0), min(hi + 1, t_s.shape[0]))
    t, f, v = t_s[sl][ok[sl]], flexion_deg[sl][ok[sl]], valgus_deg[sl][ok[sl]]
    if t.shape[0] < 2 or t[0] > t0 + 1e-9 or t[-1] < t1 - 1e-9:
        return None
    if float(np.max(np.diff(t))) > max_gap_s:
        return None
    grid = np.linspace(t0, t1, CURVE_POINTS)
    return Curve(
        event.type,
        t0,
        t1,
        tuple(float(x) for x in np.interp(grid, t, f)),
        tuple(float(x) for x in np.interp(grid, t, v)),
    )


class _LegRing:
    """A fixed-capacity circular buffer of (t, flexion, valgus) rows of one leg."""

    def __init__(self, capacity: int) -> None:
        self._data = np.full((capacity, 3), np.nan)
        self._next = 0
        self._count = 0

    def push(self, t_s: FloatArray, flexion_deg: FloatArray, valgus_deg: FloatArray) -> None:
        rows = np.column_stack([t_s, flexion_deg, valgus_deg])
        cap = self._data.shape[0]
        if rows.shape[0] >= cap:
            rows = rows[-cap:]
        n = rows.shape[0]
        end = self._next + n
        if end <= cap:
            self._data[self._next : end] = rows
        else:
            k = cap - self._next
            self._data[self._next :] = rows[:k]
            self._data[: n - k] = rows[k:]
        self._next = end % cap
        self._count = min(self._count + n, cap)

    def rows(self) -> FloatArray:
        """The kept rows, oldest first."""
        cap = self._data.shape[0]
        if self._count < cap:
            return self._data[: self._count]
        return np.concatenate([self._data[self._next :], self._data[: self._next]])


class AngleRing:
    """The last ``keep_s`` seconds of knee angles per leg; ``curve_for(event)`` extracts a curve.

    Not thread-safe: feed and query it from one thread (the loop's pipeline stage)."""

    def __init__(
        self, rate_hz: float, keep_s: float = DEFAULT_KEEP_S, max_gap_s: float = DEFAULT_MAX_GAP_S
    ) -> None:
        if rate_hz <= 0.0 or keep_s <= 0.0:
            raise ValueError(f"rate_hz and keep_s must be positive, got {rate_hz}, {keep_s}")
        self.capacity = math.ceil(rate_hz * keep_s) + 1
        self.max_gap_s = max_gap_s
        self._legs: dict[str, _LegRing] = {}

    def push(self, angles: KneeAngles) -> None:
        """Append a chunk of one leg's angles (radians, as the knee estimator emits them)."""
        if angles.t_s.shape[0] == 0:
            return
        flex = angles.flexion_rad * DEG_PER_RAD
        valg = angles.valgus_rad * DEG_PER_RAD
        bad = (np.asarray(angles.quality).astype(np.int64) & UNRELIABLE_ANGLE) != 0
        if bad.any():
            flex = np.where(bad, np.nan, flex)
            valg = np.where(bad, np.nan, valg)
        ring = self._legs.get(angles.leg_id)
        if ring is None:
            ring = self._legs[angles.leg_id] = _LegRing(self.capacity)
        ring.push(angles.t_s, flex, valg)

    def curve_for(self, event: Event) -> Curve | None:
        """The event's curve from its leg's buffer; None when the window is not (fully) kept."""
        ring = self._legs.get(event.leg_id)
        if ring is None:
            return None
        rows = ring.rows()
        return extract_curve(rows[:, 0], rows[:, 1], rows[:, 2], event, self.max_gap_s)
