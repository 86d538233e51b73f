"""Default per-metric targets shown (colour-coded) on the coach page; a coach edits them per athlete.

Each target is a bound on one metric (``sensorhub.analysis.Target``, same metric names as everywhere:
JSON, MQTT, InfluxDB, UI): ``min`` means the value should be at least the target, ``max`` at most.
Within ``AMBER_BAND`` of the target (relative) a value is amber, beyond it red. ``pain_threshold``
(0-10) is the pain above which the guidance is to reduce load and reassess. Edited values are published
on the bus topic ``thresholds`` (payload ``{"athlete": id, "values": {name: value}}``) so the cue rules
can follow them.
"""

from __future__ import annotations

import math
from typing import Literal

from sensorhub.analysis import Target

DEFAULT_TARGETS: dict[str, Target] = {
    t.metric: t
    for t in (
        # landing
        Target("flexion_at_contact_deg", min=15.0),
        Target("peak_flexion_deg", min=60.0),
        Target("peak_valgus_deg", max=8.0),
        Target("valgus_excursion_deg", max=8.0),
        Target("peak_shank_accel_g", max=8.0),
        Target("time_to_stabilization_s", max=1.0),
        # cut
        Target("flexion_at_plant_deg", min=20.0),
        Target("braking_time_s", max=0.4),
        # rep
        Target("depth_deg", min=60.0),
        Target("eccentric_s", min=2.0),
        # every event
        Target("control_score", min=70.0),
    )
}
DEFAULT_PAIN_THRESHOLD = 3
AMBER_BAND = 0.2

Grade = Literal["good", "warn", "bad", "none"]


def grade(value: float, target: Target) -> Grade:
    """Against the target's one shown bound (a two-sided target shows its max)."""
    if not math.isfinite(value):
        return "none"
    margin = AMBER_BAND * max(abs(target.value), 1e-9)
    if target.bound == "min":
        return "good" if value >= target.value else "warn" if value >= target.value - margin else "bad"
    return "good" if value <= target.value else "warn" if value <= target.value + margin else "bad"


def targets_with(overrides: dict[str, float], base: dict[str, Target] | None = None) -> dict[str, Target]:
    """``base`` (default ``DEFAULT_TARGETS``) with the coach's edited values; an edit keeps the bound."""
    out = dict(DEFAULT_TARGETS if base is None else base)
    for name, value in overrides.items():
        if name in out:
            out[name] = out[name].with_value(float(value))
    return out
