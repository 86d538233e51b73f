"""``control_score`` (0-100): how well an event matches deceleration-control targets from the literature.

score = 100 * sum_k w_k * s_k / sum_k w_k over the metrics the event has, where each sub-score
s_k = clip((x_k - bad_k) / (good_k - bad_k), 0, 1) ramps linearly from the ``bad`` value (0) to the
``good`` value (1). Targets and their sources are tabulated in docs/events.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    metric: str
    good: float
    bad: float
    weight: float = 1.0

    def sub_score(self, value: float) -> float:
        return min(1.0, max(0.0, (value - self.bad) / (self.good - self.bad)))


# Landing: knee flexion excursion > 45 deg and flexion at contact > 30 deg are "good" in the Landing Error
# Scoring System (Padua et al., Am J Sports Med 2009); frontal-plane knee valgus predicts ACL injury in
# landings (Hewett et al., Am J Sports Med 2005: 8 deg more abduction in those injured).
LANDING_TARGETS = (
    Target("flexion_excursion_deg", good=45.0, bad=20.0, weight=2.0),
    Target("flexion_at_contact_deg", good=30.0, bad=5.0),
    Target("peak_valgus_deg", good=3.0, bad=10.0, weight=2.0),
)
# Cuts: knee valgus and an extended knee at plant are the cutting risk factors (Dos'Santos et al., Sports
# Med 2018, "The effect of angle and velocity on change of direction biomechanics").
CUT_TARGETS = (
    Target("peak_valgus_deg", good=3.0, bad=10.0, weight=2.0),
    Target("flexion_at_plant_deg", good=30.0, bad=10.0),
)
# Reps: frontal-plane knee alignment rates single-leg squat quality (Crossley et al., Am J Sports Med 2011);
# slow eccentric control (2-3 s lowering) in patellofemoral rehab (Collins et al., Br J Sports Med 2018,
# patellofemoral pain consensus: progressive loading with controlled tempo).
REP_TARGETS = (
    Target("peak_valgus_deg", good=3.0, bad=10.0, weight=2.0),
    Target("eccentric_s", good=2.0, bad=0.8),
)

TARGETS: Mapping[str, tuple[Target, ...]] = {
    "landing": LANDING_TARGETS,
    "cut": CUT_TARGETS,
    "rep": REP_TARGETS,
}


def control_score(
    event_type: str, metrics: Mapping[str, float], targets: Mapping[str, tuple[Target, ...]] = TARGETS
) -> float:
    """0-100, NaN when the event has none of its scored metrics."""
    num = den = 0.0
    for t in targets.get(event_type, ()):
        value = metrics.get(t.metric)
        if value is None or not math.isfinite(value):
            continue
        num += t.weight * t.sub_score(value)
        den += t.weight
    return round(100.0 * num / den, 1) if den > 0.0 else float("nan")
