"""``control_score`` (0-100): how well an event matches deceleration-control targets from the literature.

score = 100 * sum_k w_k * s_k / sum_k w_k over the metrics the event has, where each sub-score
s_k = clip((x_k - bad_k) / (good_k - bad_k), 0, 1) ramps linearly from the ``bad`` value (0) to the
``good`` value (1), the bound of the metric's ``Target``. Targets and their sources are tabulated in
docs/events.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on one metric: ``min`` <= value <= ``max`` (either may be None, not both).

    The one target type: the control score ramps toward it, the coach's page grades events against it,
    a rehab program's milestones count the events that meet it."""

    metric: str
    min: float | None = None
    max: float | None = None

    @property
    def bound(self) -> Literal["min", "max"]:
        """The side a one-bound view uses (the score's ramp, the dashboard's colours): max when set."""
        return "max" if self.max is not None else "min"

    @property
    def value(self) -> float:
        """The bound on that side."""
        value = self.max if self.max is not None else self.min
        assert value is not None, f"target {self.metric} has no bound"
        return value

    def with_value(self, value: float) -> Target:
        """The same side at ``value`` (a coach's edit of one athlete's threshold): a one-sided target."""
        return Target(self.metric, max=value) if self.bound == "max" else Target(self.metric, min=value)

    def bounds(self, override: float | None = None) -> tuple[float | None, float | None]:
        """(min, max): ``override`` (an athlete's own threshold for this metric) replaces the single
        bound; a two-sided target keeps its range."""
        lo, hi = self.min, self.max
        if override is not None and (lo is None) != (hi is None):
            lo, hi = (override, None) if lo is not None else (None, override)
        return lo, hi

    def met(self, value: float, override: float | None = None) -> bool:
        if not math.isfinite(value):
            return False
        lo, hi = self.bounds(override)
        return (lo is None or value >= lo) and (hi is None or value <= hi)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} <= {self.metric} <= {self.max:g}"
        if self.min is not None:
            return f"{self.metric} >= {self.min:g}"
        return f"{self.metric} <= {self.max:g}"


@dataclass(frozen=True, slots=True)
class ScoreTerm:
    """One metric's part of the score: 0 at ``bad``, 1 at the target's bound (``good``), linear between."""

    target: Target
    bad: float
    weight: float = 1.0

    def sub_score(self, value: float) -> float:
        good = self.target.value
        return min(1.0, max(0.0, (value - self.bad) / (good - self.bad)))


# Landing: knee flexion excursion > 45 deg and flexion at contact > 30 deg are "good" in the Landing Error
# Scoring System (Padua et al., Am J Sports Med 2009); frontal-plane knee valgus predicts ACL injury in
# landings (Hewett et al., Am J Sports Med 2005: 8 deg more abduction in those injured).
LANDING_SCORE = (
    ScoreTerm(Target("flexion_excursion_deg", min=45.0), bad=20.0, weight=2.0),
    ScoreTerm(Target("flexion_at_contact_deg", min=30.0), bad=5.0),
    ScoreTerm(Target("peak_valgus_deg", max=3.0), bad=10.0, weight=2.0),
)
# Cuts: knee valgus and an extended knee at plant are the cutting risk factors (Dos'Santos et al., Sports
# Med 2018, "The effect of angle and velocity on change of direction biomechanics").
CUT_SCORE = (
    ScoreTerm(Target("peak_valgus_deg", max=3.0), bad=10.0, weight=2.0),
    ScoreTerm(Target("flexion_at_plant_deg", min=30.0), bad=10.0),
)
# Reps: frontal-plane knee alignment rates single-leg squat quality (Crossley et al., Am J Sports Med 2011);
# slow eccentric control (2-3 s lowering) in patellofemoral rehab (Collins et al., Br J Sports Med 2018,
# patellofemoral pain consensus: progressive loading with controlled tempo).
REP_SCORE = (
    ScoreTerm(Target("peak_valgus_deg", max=3.0), bad=10.0, weight=2.0),
    ScoreTerm(Target("eccentric_s", min=2.0), bad=0.8),
)

SCORE_TERMS: Mapping[str, tuple[ScoreTerm, ...]] = {
    "landing": LANDING_SCORE,
    "cut": CUT_SCORE,
    "rep": REP_SCORE,
}


def control_score(
    event_type: str, metrics: Mapping[str, float], terms: Mapping[str, tuple[ScoreTerm, ...]] = SCORE_TERMS
) -> float:
    """0-100, NaN when the event has none of its scored metrics."""
    num = den = 0.0
    for t in terms.get(event_type, ()):
        value = metrics.get(t.target.metric)
        if value is None or not math.isfinite(value):
            continue
        num += t.weight * t.sub_score(value)
        den += t.weight
    return round(100.0 * num / den, 1) if den > 0.0 else float("nan")
