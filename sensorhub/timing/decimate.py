"""Decimation of a stream for display and publishing (dashboard, MQTT, InfluxDB): one sample per
``1 / rate_hz`` per stream, the first that comes at least that long after the previously kept one, so
every consumer at the same rate keeps the same samples."""

from __future__ import annotations

import math

import numpy as np

from sensorhub.model import FloatArray


class Decimator:
    """Per-stream (e.g. per-leg) state of the decimation; ``keep`` returns the indices to keep."""

    def __init__(self, rate_hz: float) -> None:
        if not rate_hz > 0.0:
            raise ValueError(f"decimation rate must be positive, got {rate_hz}")
        self.min_dt_s = 1.0 / rate_hz
        self._tol_s = self.min_dt_s * 1e-3  # grid times carry rounding: 0.05 s after must count as 0.05 s
        self._last_kept_t_s: dict[str, float] = {}

    def keep(self, key: str, t_s: FloatArray) -> np.ndarray:
        """Indices into ``t_s`` (sorted) of the samples to keep; jumps by search, so the cost is per
        kept sample, not per input sample."""
        n = t_s.shape[0]
        first_t_s = self._last_kept_t_s.get(key, -math.inf) + self.min_dt_s - self._tol_s
        if n and t_s[0] >= first_t_s and bool(np.all(t_s[1:] >= t_s[:-1] + self.min_dt_s - self._tol_s)):
            # every sample is kept (a rate at or above the data's): the same answer without a search each
            self._last_kept_t_s[key] = float(t_s[-1])
            return np.arange(n, dtype=np.int64)
        keep: list[int] = []
        i = int(np.searchsorted(t_s, first_t_s))
        while i < n:
            keep.append(i)
            i = max(i + 1, int(np.searchsorted(t_s, t_s[i] + self.min_dt_s - self._tol_s)))
        if keep:
            self._last_kept_t_s[key] = float(t_s[keep[-1]])
        return np.asarray(keep, dtype=np.int64)
