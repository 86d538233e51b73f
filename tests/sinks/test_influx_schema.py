"""Every event becomes a point, whatever could be measured of it."""

from __future__ import annotations

import math

from sensorhub.model import Event
from sensorhub.sinks.influx_schema import event_line


def test_an_event_with_no_measurable_metric_is_still_a_point() -> None:
    """Found by `sensorhub bench faults`: a landing none of whose metrics (nor its control score) could be
    measured had no field, so no line, and never reached the server."""
    nan = math.nan
    empty = Event("landing", "ana/right", 1_800_000_000.25, {"flight_time_s": nan, "peak_flexion_deg": nan},
                  nan)
    line = event_line(empty, {"athlete": "ana", "leg": "right"})
    assert line is not None and "measured_metrics=0i" in line
    some = Event("landing", "ana/right", 1_800_000_000.5, {"flight_time_s": 0.31, "peak_flexion_deg": nan},
                 72.0)
    line = event_line(some, {"athlete": "ana", "leg": "right"})
    assert line is not None and "measured_metrics=1i" in line and "flight_time_s=0.31" in line
