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


def _searched(decimator: Decimator, last_t_s: float, t_s: np.ndarray) -> list[int]:
    """The per-kept-sample search, the reference for the keep-everything shortcut."""
    step_s, tol_s = decimator.min_dt_s, decimator.min_dt_s * 1e-3
    keep: list[int] = []
    i = int(np.searchsorted(t_s, last_t_s + step_s - tol_s))
    while i < t_s.shape[0]:
        keep.append(i)
        i = max(i + 1, int(np.searchsorted(t_s, t_s[i] + step_s - tol_s)))
    return keep


def test_a_rate_at_or_above_the_data_rate_keeps_what_the_search_keeps() -> None:
    """Streams at, just below and above the decimation period (the shortcut that keeps a whole block
    must agree with the search sample for sample, across chunk edges)."""
    rng = np.random.default_rng(7)
    for rate_hz in (200.0, 400.0, 199.9):
        decimator = Decimator(rate_hz)
        last_t_s = -np.inf
        t0_s = 1_767_225_600.0
        for _ in range(300):
            n = int(rng.integers(1, 40))
            dt_s = np.where(rng.random(n) < 0.1, rng.uniform(0.0, 0.01, n), 1.0 / 200.0)
            t_s = t0_s + np.cumsum(dt_s)
            t0_s = float(t_s[-1])
            expected = _searched(decimator, last_t_s, t_s)
            assert decimator.keep("a/right", t_s).tolist() == expected
            last_t_s = float(t_s[expected[-1]]) if expected else last_t_s
