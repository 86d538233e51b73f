"""Smooth trajectories of the generalised coordinates: C2 piecewise quintic Hermite curves.

A ``Track`` collects keyframes ``(t_s, value, rate, accel)``; between keyframes the curve is the unique
quintic matching value, rate and acceleration at both ends. With the default rate = accel = 0 each
keyframe is a point of rest and each interval is a minimum-jerk movement, the usual model of smooth
human point-to-point motion. The curve is defined for any t (held constant outside the keyframes) and
returns exact first and second derivatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import FirmwareSimError
from ._kernels import eval_quintic, quintic_coefficients
from .jets import FloatArray, Jet


class TrajectoryError(FirmwareSimError):
    """A drill design produced keyframes out of order (a bug in the drill, not in the caller's input)."""


@dataclass(frozen=True, slots=True)
class Spline:
    """An evaluable C2 curve: knots (K,) and per-interval coefficients (K-1, 6)."""

    knots_t: FloatArray
    coef: FloatArray

    def __call__(self, t_s: FloatArray) -> Jet:
        t = np.ascontiguousarray(t_s, dtype=np.float64)
        out = np.empty((3, t.shape[0]))
        eval_quintic(self.knots_t, self.coef, t, out)
        return Jet(out[0], out[1], out[2])


class Track:
    """Keyframes of one coordinate, appended in time order."""

    def __init__(self, name: str, initial: float = 0.0, t0_s: float = 0.0) -> None:
        self.name = name
        self._t: list[float] = [t0_s]
        self._y: list[float] = [initial]
        self._dy: list[float] = [0.0]
        self._ddy: list[float] = [0.0]

    @property
    def last_t(self) -> float:
        return self._t[-1]

    @property
    def last_y(self) -> float:
        return self._y[-1]

    @property
    def last_rate(self) -> float:
        return self._dy[-1]

    def key(self, t_s: float, value: float, rate: float = 0.0, accel: float = 0.0) -> None:
        """Pass through ``value`` at ``t_s`` with the given rate (per s) and acceleration (per s^2)."""
        if t_s <= self._t[-1] + 1e-6:
            raise TrajectoryError(
                f"track {self.name}: keyframe at {t_s:.4f} s is not after {self._t[-1]:.4f} s"
            )
        self._t.append(float(t_s))
        self._y.append(float(value))
        self._dy.append(float(rate))
        self._ddy.append(float(accel))

    def hold(self, t_s: float) -> None:
        """Stay at the current value until ``t_s`` (no-op if ``t_s`` is not later)."""
        if t_s > self._t[-1] + 1e-6:
            if self._dy[-1] != 0.0 or self._ddy[-1] != 0.0:
                raise TrajectoryError(f"track {self.name}: cannot hold while moving at {self._t[-1]:.4f} s")
            self.key(t_s, self._y[-1])

    def build(self) -> Spline:
        if self._dy[-1] != 0.0 or self._ddy[-1] != 0.0:
            raise TrajectoryError(f"track {self.name}: must end at rest")
        t = list(self._t)
        y, dy, ddy = list(self._y), list(self._dy), list(self._ddy)
        if len(t) == 1:  # a constant: two knots so that the kernel has one interval
            t.append(t[0] + 1.0)
            y.append(y[0])
            dy.append(0.0)
            ddy.append(0.0)
        knots = np.asarray(t, dtype=np.float64)
        coef = quintic_coefficients(knots, np.asarray(y), np.asarray(dy), np.asarray(ddy))
        return Spline(knots, coef)


def quintic_segment(
    t0_s: float,
    t1_s: float,
    p0: FloatArray,
    v0: FloatArray,
    a0: FloatArray,
    p1: FloatArray,
    v1: FloatArray,
    a1: FloatArray,
) -> FloatArray:
    """Coefficients (D, 6) of a vector quintic on [t0, t1] in local time s = t - t0."""
    knots = np.array([t0_s, t1_s])
    out = np.empty((len(p0), 6))
    for k in range(len(p0)):
        out[k] = quintic_coefficients(
            knots, np.array([p0[k], p1[k]]), np.array([v0[k], v1[k]]), np.array([a0[k], a1[k]])
        )[0]
    return out


def eval_poly5(coef: FloatArray, s: FloatArray) -> Jet:
    """Evaluate one quintic (6,) at local times ``s`` with derivatives."""
    c = coef
    v = c[0] + s * (c[1] + s * (c[2] + s * (c[3] + s * (c[4] + s * c[5]))))
    d1 = c[1] + s * (2.0 * c[2] + s * (3.0 * c[3] + s * (4.0 * c[4] + s * 5.0 * c[5])))
    d2 = 2.0 * c[2] + s * (6.0 * c[3] + s * (12.0 * c[4] + s * 20.0 * c[5]))
    return Jet(v, d1, d2)
