"""Fatigue within a set: a drift of control metrics over the set's events, per leg and event type.

Watched drifts (``DEFAULT_CHECKS``): ``peak_valgus_deg`` rising (reps, landings, cuts), ``eccentric_s``
falling (reps), ``flexion_at_contact_deg`` falling (landings), ``flexion_at_plant_deg`` falling (cuts).
A metric drifts when, over at least ``min_reps`` events (default 6) of one leg and type in the set,
both hold in the bad direction by at least the metric's ``min_effect``:

- the Theil-Sen trend (median of the pairwise slopes, robust to an odd rep) times (n - 1): the change
  across the set the trend predicts;
- the mean of the last third of the events minus the mean of the first third.

Requiring both keeps one outlying rep, or a noisy but flat set, from raising the flag. The effect sizes
are set above the measurement error of the angles (<= 2 deg RMSE against the simulator's truth, README)
and the rep-to-rep scatter of a steady athlete; they are starting points, clinician to adjust.

``FatigueMonitor.push(event)`` gives the current status live (one event at a time); ``assess_set``
gives the same for a finished set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from sensorhub.rehab.load import EventLike

MIN_REPS = 6


@dataclass(frozen=True, slots=True)
class DriftCheck:
    metric: str
    direction: int  # +1: rising is fatigue, -1: falling is fatigue
    min_effect: float  # in the metric's unit
    label: str


DEFAULT_CHECKS: Mapping[str, tuple[DriftCheck, ...]] = {
    "rep": (
        DriftCheck("peak_valgus_deg", +1, 3.0, "valgus rising"),
        DriftCheck("eccentric_s", -1, 0.5, "lowering getting faster"),
    ),
    "landing": (
        DriftCheck("peak_valgus_deg", +1, 3.0, "valgus rising"),
        DriftCheck("flexion_at_contact_deg", -1, 5.0, "flexion at contact falling"),
    ),
    "cut": (
        DriftCheck("peak_valgus_deg", +1, 3.0, "valgus rising"),
        DriftCheck("flexion_at_plant_deg", -1, 5.0, "flexion at plant falling"),
    ),
}


def theil_sen_slope(y: np.ndarray) -> float:
    """Median of the pairwise slopes of ``y`` against its index (Theil-Sen), NaN below 2 points."""
    n = y.shape[0]
    if n < 2:
        return math.nan
    i, j = np.triu_indices(n, k=1)
    return float(np.median((y[j] - y[i]) / (j - i)))


@dataclass(frozen=True, slots=True)
class FatigueFinding:
    leg_id: str
    event_type: str
    metric: str
    n: int
    trend_change: float  # Theil-Sen slope x (n - 1), metric units
    first_third_mean: float
    last_third_mean: float
    min_effect: float
    flagged: bool
    reason: str


@dataclass(frozen=True, slots=True)
class FatigueStatus:
    findings: tuple[FatigueFinding, ...]  # every check with enough events

    @property
    def flagged(self) -> bool:
        return any(f.flagged for f in self.findings)

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.reason for f in self.findings if f.flagged)


def _check(leg_id: str, event_type: str, values: list[float], check: DriftCheck) -> FatigueFinding:
    y = np.asarray(values, dtype=np.float64)
    n = y.shape[0]
    third = max(1, n // 3)
    first, last = float(np.mean(y[:third])), float(np.mean(y[-third:]))
    trend = theil_sen_slope(y) * (n - 1)
    bad_trend = check.direction * trend
    bad_change = check.direction * (last - first)
    flagged = bad_trend >= check.min_effect and bad_change >= check.min_effect
    reason = (
        f"{leg_id} {event_type}: {check.label}: {check.metric} {first:.2f} -> {last:.2f} "
        f"(first vs last third of {n}), trend {trend:+.2f} over the set; "
        f"fatigue when both move >= {check.min_effect:g} the bad way"
    )
    return FatigueFinding(
        leg_id, event_type, check.metric, n, trend, first, last, check.min_effect, flagged, reason
    )


class FatigueMonitor:
    """Feed a set's events as they come; ``push`` returns the current status. ``reset`` between sets."""

    def __init__(
        self, checks: Mapping[str, tuple[DriftCheck, ...]] = DEFAULT_CHECKS, min_reps: int = MIN_REPS
    ) -> None:
        if min_reps < 3:
            raise ValueError(f"min_reps must be >= 3 (thirds of the set), got {min_reps}")
        self.checks = checks
        self.min_reps = min_reps
        self._series: dict[tuple[str, str, str], list[float]] = {}
        self._status = FatigueStatus(())

    def reset(self) -> None:
        self._series.clear()
        self._status = FatigueStatus(())

    @property
    def status(self) -> FatigueStatus:
        return self._status

    def push(self, event: EventLike) -> FatigueStatus:
        checks = self.checks.get(event.type, ())
        if not checks:
            return self._status
        for check in checks:
            value = event.metrics.get(check.metric)
            if isinstance(value, int | float) and math.isfinite(value):
                self._series.setdefault((event.leg_id, event.type, check.metric), []).append(float(value))
        findings = []
        for (leg_id, event_type, metric), values in sorted(self._series.items()):
            if len(values) < self.min_reps:
                continue
            check = next(c for c in self.checks[event_type] if c.metric == metric)
            findings.append(_check(leg_id, event_type, values, check))
        self._status = FatigueStatus(tuple(findings))
        return self._status


def assess_set(
    events: Iterable[EventLike],
    checks: Mapping[str, tuple[DriftCheck, ...]] = DEFAULT_CHECKS,
    min_reps: int = MIN_REPS,
) -> FatigueStatus:
    """The fatigue status of a finished set (events in time order)."""
    monitor = FatigueMonitor(checks, min_reps)
    for event in events:
        monitor.push(event)
    return monitor.status
