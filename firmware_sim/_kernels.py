"""numba kernels of the sensor front-end and the error model (pure, float64 arrays)."""

from __future__ import annotations

import numpy as np
from numba import njit

from sensorhub.model import FloatArray


@njit(cache=True)
def biquad_columns(x: FloatArray, b0: float, b1: float, b2: float, a1: float, a2: float) -> FloatArray:
    """Second-order IIR (direct form II transposed) along axis 0 of ``x`` (N, K), started in the steady
    state of the first row (unit DC gain assumed: no start-up transient)."""
    n, k = x.shape
    out = np.empty_like(x)
    for j in range(k):
        x0 = x[0, j]
        z2 = (b2 - a2) * x0
        z1 = (b1 - a1) * x0 + z2
        for i in range(n):
            xi = x[i, j]
            yi = b0 * xi + z1
            z1 = b1 * xi - a1 * yi + z2
            z2 = b2 * xi - a2 * yi
            out[i, j] = yi
    return out


@njit(cache=True)
def ar1_columns(start: FloatArray, a: float, innovations: FloatArray) -> FloatArray:
    """First-order autoregression x_i = a x_(i-1) + w_i along axis 0, from ``start`` (K,)."""
    n, k = innovations.shape
    out = np.empty_like(innovations)
    for j in range(k):
        xi = start[j]
        for i in range(n):
            xi = a * xi + innovations[i, j]
            out[i, j] = xi
    return out
