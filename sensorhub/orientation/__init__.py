"""6-axis orientation (gyroscope + accelerometer) per sensor: the VQF method in numba, gyro-bias aware.

Public API:
- ``estimate(gyr_rad_s, acc_m_s2, rate_hz) -> (N, 4)`` quaternions [w, x, y, z], sensor -> earth (z up);
- ``OrientationFilter`` (one sensor, streaming ``update`` and ``update_batch``, identical results);
- ``OrientationBank`` (many sensors in one compiled call, for the live pipeline);
- ``FilterParams`` (tuning, SI units), ``Flag`` (per-sample diagnostics);
- ``warmup()``: compile or load every kernel; call it at start-up, before the first live sample.
"""

from __future__ import annotations

from sensorhub.model import FloatArray
from sensorhub.orientation.filter import Flag, FlagArray, OrientationBank, OrientationFilter, ensure_compiled
from sensorhub.orientation.params import FilterParams

__all__ = [
    "FilterParams",
    "Flag",
    "FlagArray",
    "OrientationBank",
    "OrientationFilter",
    "estimate",
    "warmup",
]


def estimate(gyr_rad_s: FloatArray, acc_m_s2: FloatArray, rate_hz: float,
             params: FilterParams | None = None) -> FloatArray:
    """Orientation of every sample, (N, 4) [w, x, y, z], from gyr (N, 3) rad/s and acc (N, 3) m/s^2.

    Causal: the same filter, and the same results, as the live path. NaN rows are bridged.
    """
    quat, _ = OrientationFilter(rate_hz, params).update_batch(gyr_rad_s, acc_m_s2)
    return quat


def warmup() -> None:
    """Compile (or load from numba's cache) every kernel; call at start-up, before the first live sample.

    The first filter constructed does the same; afterwards compilation is disabled, so an unexpected
    input type is converted by the wrappers instead of compiled on the live path.
    """
    ensure_compiled()
