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
    acc_out = np.empty((grid_s.shape[0], 3))
    gyr_out = np.empty((grid_s.shape[0], 3))
    _interpolate_into(t_s, acc_m_s2, gyr_rad_s, grid_s, max_gap_s, acc_out, gyr_out)
    return acc_out, gyr_out


@njit(cache=True)
def _interpolate_into(
    t_s: np.ndarray,
    acc_m_s2: np.ndarray,
    gyr_rad_s: np.ndarray,
    grid_s: np.ndarray,
    max_gap_s: float,
    acc_out: np.ndarray,
    gyr_out: np.ndarray,
) -> None:
    """:func:`interpolate_on_grid` into (m, 3) rows of preallocated outputs."""
    m = grid_s.shape[0]
    n = t_s.shape[0]
    acc_out[:] = np.nan
    gyr_out[:] = np.nan
    if n == 0:
        return
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


@njit(cache=True)
def _first_needed(t_s: np.ndarray, lo: int, hi: int, next_grid_s: float) -> int:
    """Index of the last sample at or before ``next_grid_s`` (the left bracket still needed), >= lo."""
    i = lo
    while i + 1 < hi and t_s[i + 1] <= next_grid_s:
        i += 1
    return i


@njit(cache=True)
def fill_samples(
    t_s: np.ndarray,
    acc_m_s2: np.ndarray,
    gyr_rad_s: np.ndarray,
    fills: np.ndarray,
    t_first_s: np.ndarray,
    step_s: np.ndarray,
    src_acc_m_s2: np.ndarray,
    src_gyr_rad_s: np.ndarray,
) -> None:
    """Mapped packets into their track rows: fill ``j`` = (row, start, first, n, src) writes samples
    ``first..n-1`` of the packet at ``src`` rows of the sources from ``start`` of ``row``, at times
    ``i * step_s[j] + t_first_s[j]`` (the arithmetic of ``sensorhub.timing.clock.sample_times``)."""
    for j in range(fills.shape[0]):
        row, start, first, n, src = fills[j, 0], fills[j, 1], fills[j, 2], fills[j, 3], fills[j, 4]
        for i in range(first, n):
            at = start + i - first
            t_s[row, at] = i * step_s[j] + t_first_s[j]
            for c in range(3):
                acc_m_s2[row, at, c] = src_acc_m_s2[src + i, c]
                gyr_rad_s[row, at, c] = src_gyr_rad_s[src + i, c]


@njit(cache=True)
def align_segments(
    t_s: np.ndarray,
    acc_m_s2: np.ndarray,
    gyr_rad_s: np.ndarray,
    lo: np.ndarray,
    segments: np.ndarray,
    rate_hz: np.ndarray,
    max_gap_s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid points of many legs at once. Track ``r`` holds samples ``[lo[r], hi)`` of row ``r`` of the
    (tracks, capacity[, 3]) buffers; segment ``j`` = (row_a, row_b, hi_a, hi_b, k_first, k_last)
    interpolates both tracks, as far as ``hi`` when it was emitted, at grid points k_first..k_last
    (``k / rate_hz[j]``), and moves ``lo`` of both tracks to the first sample they still need. A leg's
    segments come in order. Returns the grid and the four (m, 3) arrays, segment after segment."""
    total = 0
    for j in range(segments.shape[0]):
        total += segments[j, 5] - segments[j, 4] + 1
    grid_s = np.empty(total)
    acc_a = np.empty((total, 3))
    gyr_a = np.empty((total, 3))
    acc_b = np.empty((total, 3))
    gyr_b = np.empty((total, 3))
    at = 0
    for j in range(segments.shape[0]):
        row_a, row_b, hi_a, hi_b = segments[j, 0], segments[j, 1], segments[j, 2], segments[j, 3]
        k_first, k_last = segments[j, 4], segments[j, 5]
        m = k_last - k_first + 1
        for i in range(m):
            grid_s[at + i] = (k_first + i) / rate_hz[j]
        grid = grid_s[at : at + m]
        lo_a, lo_b = lo[row_a], lo[row_b]
        _interpolate_into(t_s[row_a, lo_a:hi_a], acc_m_s2[row_a, lo_a:hi_a], gyr_rad_s[row_a, lo_a:hi_a],
                          grid, max_gap_s[j], acc_a[at : at + m], gyr_a[at : at + m])
        _interpolate_into(t_s[row_b, lo_b:hi_b], acc_m_s2[row_b, lo_b:hi_b], gyr_rad_s[row_b, lo_b:hi_b],
                          grid, max_gap_s[j], acc_b[at : at + m], gyr_b[at : at + m])
        next_grid_s = (k_last + 1) / rate_hz[j]
        lo[row_a] = _first_needed(t_s[row_a], lo_a, hi_a, next_grid_s)
        lo[row_b] = _first_needed(t_s[row_b], lo_b, hi_b, next_grid_s)
        at += m
    return grid_s, acc_a, gyr_a, acc_b, gyr_b
