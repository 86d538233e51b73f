"""numba kernels of the decoders (pure functions on arrays)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sensorhub.conventions import GRAVITY_M_S2


@njit(cache=True)
def scale_samples(
    raw: np.ndarray, acc_range_g: float, gyr_range_dps: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """(n, 6) raw i16 ``ax ay az gx gy gz`` -> (acc_m_s2 (n, 3), gyr_rad_s (n, 3), clipped samples).

    A sample is clipped when any of its six raw values is -32768 or 32767 (full scale).

    Evaluated in the spec's order (raw * range * g / 32768, raw * range * pi / 180 / 32768), so the
    results are bit-identical to the formulas in ``docs/protocol.md``.
    """
    n = raw.shape[0]
    acc_m_s2 = np.empty((n, 3))
    gyr_rad_s = np.empty((n, 3))
    clipped = 0
    for i in range(n):
        at_full_scale = False
        for j in range(3):
            acc_m_s2[i, j] = raw[i, j] * acc_range_g * GRAVITY_M_S2 / 32768.0
            gyr_rad_s[i, j] = raw[i, j + 3] * gyr_range_dps * math.pi / 180.0 / 32768.0
        for j in range(6):
            if raw[i, j] == 32767 or raw[i, j] == -32768:
                at_full_scale = True
        if at_full_scale:
            clipped += 1
    return acc_m_s2, gyr_rad_s, clipped
