"""Host receive times the pipeline can trust.

A host time comes from outside the process (an MQTT gateway's payload, a recording file) and drives
every sensor's clock mapping and its leg's grid: one NaN, a value from another century or a jump of
years would poison the clock offset or make the grid fill years of rows. Such a packet is rejected
before it touches any state, with a reason. A jump of more than ``MAX_JUMP_S`` from the leg's last
accepted host time is rejected too, also when every later packet agrees: the clock mapping slews at
5 % and cannot follow a step of hours (it would stall the leg or fill hours of grid rows), so a host
clock set by hours while the service runs needs a restart; /health shows it as ``host_time_jump``.
The decision depends only on the packet sequence, so a replay rejects exactly what the live run did.
"""

from __future__ import annotations

import math
from enum import StrEnum

MAX_HOST_TIME_S = 2.0**32  # 2106-02-07 UTC: later than any host clock this runs on
MAX_JUMP_S = 3600.0  # from the leg's last accepted host time, either way


class HostTimeReason(StrEnum):
    NOT_FINITE = "host_time_not_finite"
    OUT_OF_RANGE = "host_time_out_of_range"
    JUMP = "host_time_jump"


class HostTimeGate:
    """Per leg: accepts or rejects each packet's host time (see the module docstring)."""

    __slots__ = ("_ref_s",)

    def __init__(self) -> None:
        self._ref_s = math.nan  # newest accepted host time of the leg (NaN: none yet)

    def check(self, t_host_s: float, fallback_ref_s: float = math.nan) -> HostTimeReason | None:
        """None when ``t_host_s`` is accepted; ``fallback_ref_s``: a reference for a leg's first packet
        (another leg's last accepted time)."""
        if not math.isfinite(t_host_s):
            return HostTimeReason.NOT_FINITE
        if not 0.0 <= t_host_s < MAX_HOST_TIME_S:
            return HostTimeReason.OUT_OF_RANGE
        ref_s = self._ref_s if not math.isnan(self._ref_s) else fallback_ref_s
        if not math.isnan(ref_s) and abs(t_host_s - ref_s) > MAX_JUMP_S:
            return HostTimeReason.JUMP
        if math.isnan(self._ref_s) or t_host_s > self._ref_s:
            self._ref_s = t_host_s
        return None

    @property
    def last_s(self) -> float:
        return self._ref_s
