"""Limb symmetry index per metric over a set, when both legs are instrumented.

LSI = 100 * min(|mean_left|, |mean_right|) / max(|mean_left|, |mean_right|): 100 = symmetric; without
knowing which leg is involved the smaller mean is taken as the numerator (clinical LSI = involved /
uninvolved x 100, with >= 90 % a common return-to-sport criterion).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sensorhub.model import Event, leg_side


@dataclass(frozen=True, slots=True)
class SymmetryEntry:
    event_type: str
    metric: str
    left_mean: float
    right_mean: float
    n_left: int
    n_right: int
    lsi_pct: float


def lsi_pct(left_mean: float, right_mean: float) -> float:
    """Limb symmetry index, %: 100 * min(|L|, |R|) / max(|L|, |R|) (100 when both are 0), 0.1 % steps."""
    hi = max(abs(left_mean), abs(right_mean))
    return 100.0 if hi == 0.0 else round(100.0 * min(abs(left_mean), abs(right_mean)) / hi, 1)


def limb_symmetry(events: Iterable[Event]) -> list[SymmetryEntry]:
    """One entry per (event type, metric) that both legs have finite values for."""
    values: dict[tuple[str, str, str], list[float]] = {}
    for ev in events:
        side = leg_side(ev.leg_id)
        if side not in ("left", "right"):
            continue
        for name, v in {**ev.metrics, "control_score": ev.control_score}.items():
            if math.isfinite(v):
                values.setdefault((ev.type, name, side), []).append(v)
    out: list[SymmetryEntry] = []
    for (etype, name, side), left in sorted(values.items()):
        if side != "left" or (etype, name, "right") not in values:
            continue
        right = values[(etype, name, "right")]
        lm, rm = sum(left) / len(left), sum(right) / len(right)
        out.append(SymmetryEntry(etype, name, lm, rm, len(left), len(right), lsi_pct(lm, rm)))
    return out
