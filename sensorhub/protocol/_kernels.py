"""numba kernels of the decoders (pure functions on arrays)."""

from __future__ import annotations

import math

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2
from sensorhub.jit import njit


@njit(cache=True)
def scale_samples(
    raw: np.ndarray, acc_range_g: float, gyr_range_dps: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """(n, 6) raw i16 ``ax ay az gx gy gz`` -> (acc_m_s2 (n, 3), gyr_rad_s (n, 3), clipped samples).

    A sample is clipped when any of its six raw values is -32768 or 32767 (full scale).

    Evaluated in the spec's order (raw * range * g / 32768, raw * range * pi / 180 / 32768), so the
    results are bit-identical to the formulas in ``docs/protocol.md``.
    """
    bounds = np.array([0, raw.shape[0]], dtype=np.int64)
    acc_m_s2, gyr_rad_s, clipped = scale_samples_many(
        raw, bounds, np.full(1, acc_range_g), np.full(1, gyr_range_dps)
    )
    return acc_m_s2, gyr_rad_s, int(clipped[0])


@njit(cache=True)
def scale_samples_many(
    raw: np.ndarray, bounds: np.ndarray, acc_range_g: np.ndarray, gyr_range_dps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`scale_samples` over the sample blocks of many packets in one call: packet ``k`` owns rows
    ``bounds[k]:bounds[k + 1]`` of ``raw`` and its own ranges. Same arithmetic, same order, so every
    value is the per-packet ``scale_samples`` (which is this on one block); returns clipped samples per
    packet."""
    n = raw.shape[0]
    acc_m_s2 = np.empty((n, 3))
    gyr_rad_s = np.empty((n, 3))
    clipped = np.zeros(bounds.shape[0] - 1, dtype=np.int64)
    for k in range(bounds.shape[0] - 1):
        acc_g = acc_range_g[k]
        gyr_dps = gyr_range_dps[k]
        for i in range(bounds[k], bounds[k + 1]):
            at_full_scale = False
            for j in range(3):
                acc_m_s2[i, j] = raw[i, j] * acc_g * GRAVITY_M_S2 / 32768.0
                gyr_rad_s[i, j] = raw[i, j + 3] * gyr_dps * math.pi / 180.0 / 32768.0
            for j in range(6):
                if raw[i, j] == 32767 or raw[i, j] == -32768:
                    at_full_scale = True
            if at_full_scale:
                clipped[k] += 1
    return acc_m_s2, gyr_rad_s, clipped
