"""Default per-metric targets shown (colour-coded) on the coach page; a coach edits them per athlete.

Each target is a bound on one metric (same names as everywhere: JSON, MQTT, InfluxDB, UI): ``min``
means the value should be at least the target, ``max`` at most. Within ``AMBER_BAND`` of the target
(relative) a value is amber, beyond it red. ``pain_threshold`` (0-10) is the pain above which the
guidance is to reduce load and reassess. Edited values are published on the bus topic ``thresholds``
(payload ``{"athlete": id, "values": {name: value}}``) so the cue rules can follow them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Target:
    bound: Literal["min", "max"]
    value: float


DEFAULT_TARGETS: dict[str, Target] = {
    # landing
    "flexion_at_contact_deg": Target("min", 15.0),
    "peak_flexion_deg": Target("min", 60.0),
    "peak_valgus_deg": Target("max", 8.0),
    "valgus_excursion_deg": Target("max", 8.0),
    "peak_shank_accel_g": Target("max", 8.0),
    "time_to_stabilization_s": Target("max", 1.0),
    # cut
    "flexion_at_plant_deg": Target("min", 20.0),
    "braking_time_s": Target("max", 0.4),
    # rep
    "depth_deg": Target("min", 60.0),
    "eccentric_s": Target("min", 2.0),
    # every event
    "control_score": Target("min", 70.0),
}
DEFAULT_PAIN_THRESHOLD = 3
AMBER_BAND = 0.2

Grade = Literal["good", "warn", "bad", "none"]


def grade(value: float, target: Target) -> Grade:
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
            out[name] = Target(out[name].bound, float(value))
    return out
