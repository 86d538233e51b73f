"""/health sample rates do not depend on how often, or by how many publishers, the report is asked for."""

from __future__ import annotations

from sensorhub.model import Segment, SensorRef, Side
from sensorhub.runtime.health import HealthReporter, MeasuredPipeline
from sensorhub.runtime.live import LiveStats


def test_rate_is_measured_over_a_window_whatever_the_callers() -> None:
    ref = SensorRef("s1", "ana", Side.RIGHT, Segment.THIGH)
    reporter = HealthReporter(MeasuredPipeline([ref]), links=dict, live=LiveStats)
    rates = []
    # A sensor at 200 Hz; three publishers ask every 30-70 ms between them (dashboard, MQTT, InfluxDB).
    t_s = 1000.0
    for step in range(200):
        t_s += 0.03 if step % 3 else 0.07
        rates.append(reporter._rate_hz("s1", round((t_s - 1000.0) * 200.0), t_s))
    measured = [r for r in rates[20:] if r is not None]
    assert len(measured) == 180 and all(195.0 <= r <= 205.0 for r in measured), measured
    # A sensor that stops: the rate falls to 0 within the window, it is not stuck at the last value.
    n = round((t_s - 1000.0) * 200.0)
    for _ in range(120):
        t_s += 0.05
        last = reporter._rate_hz("s1", n, t_s)
    assert last == 0.0
