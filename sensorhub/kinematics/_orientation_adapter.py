"""Adapter from sensorhub.orientation's streaming filter to the kinematics' OrientationStream protocol."""

from __future__ import annotations

from sensorhub.model import FloatArray
from sensorhub.orientation import FilterParams, OrientationFilter


class _FilterStream:
    __slots__ = ("_filter",)

    def __init__(self, rate_hz: float, params: FilterParams | None = None) -> None:
        self._filter = OrientationFilter(rate_hz, params)

    def update(self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray) -> FloatArray:
        quat, _ = self._filter.update(gyr_rad_s, acc_m_s2)
        return quat


def make_stream(rate_hz: float, tau_acc_s: float | None = None) -> _FilterStream:
    params = None if tau_acc_s is None else FilterParams(tau_acc_s=tau_acc_s)
    return _FilterStream(rate_hz, params)
