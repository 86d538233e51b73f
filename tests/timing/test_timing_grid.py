"""A logger's time column onto the sensor's grid (``sensorhub.timing.grid``): every row back on the slot of
the sample it carries, whatever the jitter, batching, clock rate difference and dropped samples."""

from __future__ import annotations

import numpy as np
import pytest

from sensorhub.errors import InputError
from sensorhub.timing.grid import regular_grid


def logged(seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """A stamped stream: sample k taken at k / rate (sensor clock), received in batches, stamped by a host
    clock running ``drift_ppm`` off with jitter; loss bursts written as missing rows or as NaN rows.
    Column 0 of the data is the sample's true index (what the test checks against)."""
    rng = np.random.default_rng(seed)
    rate = float(rng.choice([100, 104, 120, 200, 208, 400, 416, 800]))
    n = int(rate * rng.uniform(20, 90))
    batch = int(rng.choice([1, 1, 2, 4, 6]))
    drift = rng.uniform(-200e-6, 200e-6)
    k = np.arange(n)
    last_of_batch = np.minimum((k // batch) * batch + batch - 1, n - 1)
    stamps = 100.0 + last_of_batch / rate * (1.0 + drift)
    stamps += np.clip(np.abs(rng.normal(0.0, rng.uniform(0.1e-3, 0.5e-3), n)), 0.0, 1.5e-3)
    data = np.column_stack([k.astype(float), rng.normal(size=n)])
    keep = np.ones(n, bool)
    for _ in range(int(rng.integers(1, 6))):
        a = int(rng.integers(100, n - 500))
        burst = slice(a, a + int(rng.integers(1, int(0.4 * rate))))
        if rng.random() < 0.5:
            keep[burst] = False
        else:
            data[burst] = np.nan
    return stamps[keep], data[keep], {"rate": rate, "batch": batch, "drift": drift}


@pytest.mark.parametrize("seed", range(24))
def test_rows_land_on_their_samples_slots(seed: int) -> None:
    stamps, data, truth = logged(seed)
    grid = regular_grid(stamps, data, "test")
    placed = np.isfinite(grid.data[:, 0])
    offset = grid.data[placed, 0] - np.flatnonzero(placed)
    wrong = offset != np.median(offset)
    # Only rows just before a gap whose whole batch arrived late can be ambiguous (no later row of theirs
    # says how late): at most a batch's worth of rows per gap, each at most a batch away.
    assert np.count_nonzero(wrong) <= 6 * (truth["batch"] - 1), (truth, np.flatnonzero(wrong))
    assert np.abs(offset - np.median(offset)).max() <= truth["batch"] - 1
    true_rate = truth["rate"] / (1.0 + truth["drift"])  # the grid is in host seconds
    assert grid.report.rate_hz == pytest.approx(true_rate, rel=1e-6)
    assert grid.t_s.shape[0] == grid.data.shape[0]
    assert np.allclose(np.diff(grid.t_s), 1.0 / grid.report.rate_hz)


def test_a_backlog_is_not_a_gap() -> None:
    """Rows delayed together for a while (a congested link catching up) keep their slots."""
    rate, n = 200.0, 8000
    stamps = 5.0 + np.arange(n) / rate
    stamps[3000:3300] += np.linspace(0.4, 0.0, 300)  # up to 80 samples late, then caught up
    grid = regular_grid(stamps, np.arange(n, dtype=float)[:, None], "test")
    assert grid.data.shape[0] == n and np.array_equal(grid.data[:, 0], np.arange(n))


@pytest.mark.parametrize(
    ("stamps", "message"),
    [
        (np.arange(4000) * 5.0, "no usable sample rate"),  # milliseconds, not seconds
        (np.arange(4000) / 30.0, "no usable sample rate"),  # 30 Hz
        (np.sort(np.random.default_rng(2).uniform(0, 20, 4000)), "fits no regular"),
        (np.r_[np.arange(2000) / 200.0, 5.0 + np.arange(2000) / 200.0], "runs backwards"),
        (np.full(40, 1.0), "only 40 rows"),
    ],
)
def test_a_column_without_a_usable_rate_is_refused(stamps: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        regular_grid(stamps, np.zeros((stamps.shape[0], 1)), "test")
