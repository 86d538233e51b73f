"""Timing: sensor clock -> host clock per sensor (``clock``), thigh + shank on one grid (``align``),
and the composed front of the pipeline (``front``: decode -> clock -> align)."""

from sensorhub.timing.align import LegAligner
from sensorhub.timing.clock import ClockParams, ClockStats, SensorClock
from sensorhub.timing.decimate import Decimator
from sensorhub.timing.front import Front, SensorStats

__all__ = ["ClockParams", "ClockStats", "Decimator", "Front", "LegAligner", "SensorClock", "SensorStats"]
