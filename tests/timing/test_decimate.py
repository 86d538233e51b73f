"""One decimation for the dashboard, MQTT and InfluxDB: one sample per period, whatever the chunking."""

from __future__ import annotations

import numpy as np

from sensorhub.timing.decimate import Decimator


def test_one_sample_per_period_independent_of_chunking() -> None:
    t_s = 1000.0 + np.arange(2000) / 200.0  # 10 s at 200 Hz
    whole = Decimator(20.0).keep("a/right", t_s)
    assert whole.size == 200 and np.allclose(np.diff(t_s[whole]), 0.05)
    chunked = Decimator(20.0)
    kept = [k + start for start in range(0, 2000, 8) for k in chunked.keep("a/right", t_s[start : start + 8])]
    assert np.array_equal(np.asarray(kept), whole)
    # each stream (leg) has its own state; a gap restarts at the first sample after it
    other = Decimator(20.0)
    assert other.keep("b/left", t_s[:10]).tolist() == [0]
    assert other.keep("b/left", t_s[500:510]).tolist() == [0]
    assert other.keep("a/right", t_s[:10]).tolist() == [0]
