"""numba kernels of the body model: piecewise quintic Hermite splines (pure, float64 arrays)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .jets import FloatArray


@njit(cache=True)
def quintic_coefficients(knots_t: FloatArray, y: FloatArray, dy: FloatArray, ddy: FloatArray) -> FloatArray:
    """Per-interval polynomial coefficients c0..c5 in local time s = t - t_i (shape (K-1, 6)).

    Each interval matches value, first and second derivative at both ends, so the curve is C2.
    """
    n = knots_t.shape[0] - 1
    coef = np.zeros((n, 6))
    for i in range(n):
        h = knots_t[i + 1] - knots_t[i]
        p0, v0, a0 = y[i], dy[i], ddy[i]
        p1, v1, a1 = y[i + 1], dy[i + 1], ddy[i + 1]
        coef[i, 0] = p0
        coef[i, 1] = v0
        coef[i, 2] = 0.5 * a0
        coef[i, 3] = (20.0 * (p1 - p0) - (8.0 * v1 + 12.0 * v0) * h - (3.0 * a0 - a1) * h * h) / (2.0 * h**3)
        coef[i, 4] = (30.0 * (p0 - p1) + (14.0 * v1 + 16.0 * v0) * h + (3.0 * a0 - 2.0 * a1) * h * h) / (
            2.0 * h**4
        )
        coef[i, 5] = (12.0 * (p1 - p0) - 6.0 * (v1 + v0) * h - (a0 - a1) * h * h) / (2.0 * h**5)
    return coef


@njit(cache=True)
def eval_quintic(knots_t: FloatArray, coef: FloatArray, t: FloatArray, out: FloatArray) -> None:
    """Value, first and second derivative at times ``t`` into ``out`` (3, N).

    Before the first knot and after the last the curve holds its end value (end derivatives must be 0).
    """
    n_int = coef.shape[0]
    for k in range(t.shape[0]):
        tk = t[k]
        if tk <= knots_t[0]:
            out[0, k] = coef[0, 0]
            out[1, k] = 0.0
            out[2, k] = 0.0
            continue
        if tk >= knots_t[n_int]:
            i = n_int - 1
            s = knots_t[n_int] - knots_t[i]
            c = coef[i]
            out[0, k] = c[0] + s * (c[1] + s * (c[2] + s * (c[3] + s * (c[4] + s * c[5]))))
            out[1, k] = 0.0
            out[2, k] = 0.0
            continue
        i = np.searchsorted(knots_t, tk, side="right") - 1
        s = tk - knots_t[i]
        c = coef[i]
        out[0, k] = c[0] + s * (c[1] + s * (c[2] + s * (c[3] + s * (c[4] + s * c[5]))))
        out[1, k] = c[1] + s * (2.0 * c[2] + s * (3.0 * c[3] + s * (4.0 * c[4] + s * 5.0 * c[5])))
        out[2, k] = 2.0 * c[2] + s * (6.0 * c[3] + s * (12.0 * c[4] + s * 20.0 * c[5]))
