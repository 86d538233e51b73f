"""What a logger (phone app, data logger, BLE host) writes: sample instants, a time column, drops.

The true time base is the logger's clock (the truth is given in it). The sensor samples on its own
crystal, ``clock_ppm`` fast or slow, from a random phase: true instants ``t0 + k / (rate (1 + ppm))``.
The logger stamps each sample when it receives it:

* ``batch_samples`` = 1: each sample arrives on its own, delayed by a constant latency plus jitter
  (normal, ``jitter_sigma_s``, clipped at ``jitter_max_s``);
* ``batch_samples`` = B > 1: samples arrive B at a time (BLE notifications, USB frames) when the last of
  them has been taken, plus jitter; a batch's stamps are its arrival time plus a few microseconds each.

Stamps never go backwards (the logger receives in order), are rounded to ``time_resolution_s`` (a
clock in microseconds, or a phone's milliseconds) and are shifted by the smallest delay of the recording
(the transport latency, which no logger knows and which would shift data and truth alike): no sample is
stamped before it was taken, the fastest arrival is stamped at its instant, and a batch's earlier samples
keep their wait for the last one (a delay that is not constant, so it is not removed). Lost samples come
as independent drops (``drop_prob``) and loss bursts (``bursts_per_min``, lengths uniform in ``burst_s``);
the logger writes them as NaN rows (``drop_rows`` = "nan": it knew a sample was due) or leaves them out
("missing": a gap in the time column).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sensorhub.errors import SensorhubError
from sensorhub.model import FloatArray

DROP_ROWS = ("nan", "missing")
PARSE_STEP_S = 5e-6  # host time between consecutive samples of one received batch


class LoggerError(SensorhubError):
    """Invalid logger settings (the message names the field and the allowed values)."""


BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True, slots=True)
class LoggerSpec:
    """Sensor clock, host time-stamping and losses of one recording."""

    rate_hz: float  # nominal output data rate
    clock_ppm: float = 0.0  # sensor clock rate error against the logger's clock
    jitter_sigma_s: float = 0.0
    jitter_max_s: float = 0.0
    batch_samples: int = 1
    time_resolution_s: float = 1e-6
    drop_rows: str = "nan"
    drop_prob: float = 0.0
    bursts_per_min: float = 0.0
    burst_s: tuple[float, float] = (0.01, 0.4)

    def __post_init__(self) -> None:
        if not 1.0 <= self.rate_hz <= 2000.0:
            raise LoggerError(f"rate_hz must be in [1, 2000], got {self.rate_hz}")
        if self.drop_rows not in DROP_ROWS:
            raise LoggerError(f"drop_rows must be one of {DROP_ROWS}, got {self.drop_rows!r}")
        if self.batch_samples < 1 or self.time_resolution_s <= 0.0:
            raise LoggerError("batch_samples must be >= 1 and time_resolution_s > 0")

    @property
    def period_s(self) -> float:
        """True interval between samples (the sensor's crystal error included)."""
        return 1.0 / (self.rate_hz * (1.0 + self.clock_ppm * 1e-6))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sample_instants(spec: LoggerSpec, duration_s: float, rng: np.random.Generator) -> FloatArray:
    """True instants of the sensor's samples in [0, duration_s], from a random phase."""
    t0 = float(rng.uniform(0.0, spec.period_s))
    n = int(np.floor((duration_s - t0) / spec.period_s)) + 1
    return np.asarray(t0 + np.arange(n) * spec.period_s, dtype=np.float64)


def dropped(spec: LoggerSpec, t_s: FloatArray, rng: np.random.Generator) -> BoolArray:
    """Which samples the logger did not get: independent drops and bursts."""
    lost = rng.random(t_s.size) < spec.drop_prob
    duration_s = float(t_s[-1] - t_s[0]) if t_s.size else 0.0
    for _ in range(int(rng.poisson(spec.bursts_per_min * duration_s / 60.0))):
        start = rng.uniform(t_s[0], t_s[-1])
        lost |= (t_s >= start) & (t_s < start + rng.uniform(*spec.burst_s))
    return lost


def time_column(spec: LoggerSpec, t_s: FloatArray, rng: np.random.Generator) -> FloatArray:
    """The logger's stamps of samples taken at true instants ``t_s``."""
    n = t_s.size
    b = spec.batch_samples
    batch = np.arange(n) // b
    last = np.minimum((batch + 1) * b, n) - 1  # the sample whose arrival completes the batch
    jitter = np.clip(
        rng.normal(0.0, spec.jitter_sigma_s, batch[-1] + 1), -spec.jitter_max_s, spec.jitter_max_s
    )
    stamp = t_s[last] + jitter[batch] + (np.arange(n) - batch * b) * (PARSE_STEP_S if b > 1 else 0.0)
    stamp -= float(np.min(stamp - t_s))
    stamp = np.maximum.accumulate(stamp)
    return np.asarray(np.round(stamp / spec.time_resolution_s) * spec.time_resolution_s, dtype=np.float64)
