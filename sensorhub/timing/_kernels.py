"""numba kernels of the timing stage (pure functions on float64 arrays)."""

from __future__ import annotations

import numpy as np

from sensorhub.jit import njit


@njit(cache=True)
def lower_envelope_line(x: np.ndarray, r: np.ndarray, max_slope: float) -> tuple[float, float]:
    """The line ``a + b * x`` below every point (x ascending) that maximises its value at mean(x).

    That is the linear program "minimise sum(r - a - b x) subject to r >= a + b x" (the classical
    one-way clock-sync estimator): its solution supports the lower convex hull at mean(x). The slope
    is clamped to +-max_slope (then ``a`` is lowered so that the line stays below every point).
    """
    n = x.shape[0]
    if n == 1:
        return r[0], 0.0
    # Andrew's monotone chain, lower hull only (x is ascending).
    hull = np.empty(n, dtype=np.int64)
    h = 0
    for i in range(n):
        while h >= 2:
            i0 = hull[h - 2]
            i1 = hull[h - 1]
            cross = (x[i1] - x[i0]) * (r[i] - r[i0]) - (r[i1] - r[i0]) * (x[i] - x[i0])
            if cross <= 0.0:
                h -= 1
            else:
                break
        hull[h] = i
        h += 1
    x_mean = 0.0
    for i in range(n):
        x_mean += x[i]
    x_mean /= n
    # The hull edge spanning x_mean; slopes increase along the lower hull.
    slope = 0.0
    j = 0
    found = False
    for k in range(h - 1):
        i0 = hull[k]
        i1 = hull[k + 1]
        if x[i1] >= x_mean and x[i1] > x[i0]:
            slope = (r[i1] - r[i0]) / (x[i1] - x[i0])
            j = i0
            found = True
            break
    if not found:
        j = hull[h - 1]
    slope = min(max(slope, -max_slope), max_slope)
    a = r[j] - slope * x[j]
    for i in range(n):  # after clamping, keep the line below all points
        a_i = r[i] - slope * x[i]
        if a_i < a:
            a = a_i
    return a, slope


@njit(cache=True)
def interpolate_on_grid(
    t_s: np.ndarray, acc_m_s2: np.ndarray, gyr_rad_s: np.ndarray, grid_s: np.ndarray, max_gap_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of (t ascending) samples at ``grid_s`` (ascending).

    NaN where a grid time lies outside the samples or between two samples more than ``max_gap_s`` apart.
    """
    m = grid_s.shape[0]
    n = t_s.shape[0]
    acc_out = np.full((m, 3), np.nan)
    gyr_out = np.full((m, 3), np.nan)
    if n == 0:
        return acc_out, gyr_out
    j = 0  # index of the left bracket t_s[j] <= g
    for k in range(m):
        g = grid_s[k]
        if g < t_s[0] or g > t_s[n - 1]:
            continue
        while j + 1 < n and t_s[j + 1] <= g:
            j += 1
        if t_s[j] == g:
            for c in range(3):
                acc_out[k, c] = acc_m_s2[j, c]
                gyr_out[k, c] = gyr_rad_s[j, c]
            continue
        dt = t_s[j + 1] - t_s[j]
        if dt > max_gap_s:
            continue
        w = (g - t_s[j]) / dt
        for c in range(3):
            acc_out[k, c] = acc_m_s2[j, c] + w * (acc_m_s2[j + 1, c] - acc_m_s2[j, c])
            gyr_out[k, c] = gyr_rad_s[j, c] + w * (gyr_rad_s[j + 1, c] - gyr_rad_s[j, c])
    return acc_out, gyr_out


@njit(cache=True)
def _first_needed(t_s: np.ndarray, lo: int, hi: int, next_grid_s: float) -> int:
    """Index of the last sample at or before ``next_grid_s`` (the left bracket still needed), >= lo."""
    i = lo
    while i + 1 < hi and t_s[i + 1] <= next_grid_s:
        i += 1
    return i


@njit(cache=True)
def align_tracks(
    k_first: int,
    k_last: int,
    rate_hz: float,
    max_gap_s: float,
    t_a: np.ndarray,
    acc_a: np.ndarray,
    gyr_a: np.ndarray,
    lo_a: int,
    hi_a: int,
    t_b: np.ndarray,
    acc_b: np.ndarray,
    gyr_b: np.ndarray,
    lo_b: int,
    hi_b: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Both tracks ([lo, hi) of their buffers) interpolated at grid points k_first..k_last (k / rate_hz).

    Returns the grid, the four (m, 3) arrays and the first buffer index each track still needs.
    """
    m = k_last - k_first + 1
    grid_s = np.empty(m)
    for i in range(m):
        grid_s[i] = (k_first + i) / rate_hz
    acc_out_a, gyr_out_a = interpolate_on_grid(
        t_a[lo_a:hi_a], acc_a[lo_a:hi_a], gyr_a[lo_a:hi_a], grid_s, max_gap_s
    )
    acc_out_b, gyr_out_b = interpolate_on_grid(
        t_b[lo_b:hi_b], acc_b[lo_b:hi_b], gyr_b[lo_b:hi_b], grid_s, max_gap_s
    )
    next_grid_s = (k_last + 1) / rate_hz
    return (
        grid_s,
        acc_out_a,
        gyr_out_a,
        acc_out_b,
        gyr_out_b,
        _first_needed(t_a, lo_a, hi_a, next_grid_s),
        _first_needed(t_b, lo_b, hi_b, next_grid_s),
    )
