"""Thigh + shank samples of one leg onto ONE common time grid at the nominal rate.

Grid points are ``k / rate_hz`` host seconds (integer ``k``), so every leg at the same rate shares the
same grid. Each sensor is linearly interpolated at the grid times; a grid time falling into a sensor gap
wider than ``max_gap_periods`` periods, or outside its data, gives a NaN row for that sensor.

A grid point is emitted once both sensors have data past it. A sensor that has not been heard from for
``max_wait_s`` plus one packet span (host time) is silent: grid points older than that are emitted with NaN
for it, so the aligner never stalls behind a dead sensor. A sensor that is heard (packets arrive, even if
they wait in the clock's reorder window, see :meth:`LegAligner.heard`) is waited for, but never longer
than ``max_wait_heard_s`` (a sensor bursting old buffered data must not hold the grid back). "Host time" is
the latest of the caller's ``now_s`` and the newest sample, so the output depends only on the input.
When both sensors were silent for more than ``max_fill_s`` the grid jumps to the new data instead of
filling the silence with NaN rows (a host clock step or a long disconnection).
"""

from __future__ import annotations

import math

import numpy as np

from sensorhub.model import FloatArray, LegSamples, Segment, TimedSamples
from sensorhub.timing._kernels import align_tracks


class _Track:
    """Pending samples of one sensor (times ascending) in a reusable buffer: ``[lo, hi)`` is live."""

    __slots__ = ("acc_m_s2", "gyr_rad_s", "heard_s", "hi", "last_t_s", "lo", "t_s")

    def __init__(self, capacity: int = 256) -> None:
        self.t_s: FloatArray = np.empty(capacity)
        self.acc_m_s2: FloatArray = np.empty((capacity, 3))
        self.gyr_rad_s: FloatArray = np.empty((capacity, 3))
        self.lo = 0
        self.hi = 0
        self.heard_s = -math.inf
        self.last_t_s = -math.inf

    def append(self, samples: TimedSamples) -> None:
        t_s, acc_m_s2, gyr_rad_s = samples.t_s, samples.acc_m_s2, samples.gyr_rad_s
        n = t_s.shape[0]
        if n == 0:
            return
        if t_s[0] <= self.last_t_s:  # never go back in time (the clock guarantees it; be safe)
            keep = t_s > self.last_t_s
            t_s, acc_m_s2, gyr_rad_s = t_s[keep], acc_m_s2[keep], gyr_rad_s[keep]
            n = t_s.shape[0]
            if n == 0:
                return
        if self.hi + n > self.t_s.shape[0]:
            self._make_room(n)
        hi = self.hi
        self.t_s[hi : hi + n] = t_s
        self.acc_m_s2[hi : hi + n] = acc_m_s2
        self.gyr_rad_s[hi : hi + n] = gyr_rad_s
        self.hi = hi + n
        self.last_t_s = float(t_s[-1])
        if self.last_t_s > self.heard_s:
            self.heard_s = self.last_t_s

    def _make_room(self, n: int) -> None:
        live = self.hi - self.lo
        capacity = self.t_s.shape[0]
        while live + n > capacity // 2:
            capacity *= 2
        t_s, acc_m_s2, gyr_rad_s = np.empty(capacity), np.empty((capacity, 3)), np.empty((capacity, 3))
        t_s[:live] = self.t_s[self.lo : self.hi]
        acc_m_s2[:live] = self.acc_m_s2[self.lo : self.hi]
        gyr_rad_s[:live] = self.gyr_rad_s[self.lo : self.hi]
        self.t_s, self.acc_m_s2, self.gyr_rad_s = t_s, acc_m_s2, gyr_rad_s
        self.lo, self.hi = 0, live


class LegAligner:
    """Aligns one leg's thigh and shank :class:`TimedSamples` into :class:`LegSamples` chunks."""

    def __init__(
        self,
        leg_id: str,
        rate_hz: float,
        *,
        max_wait_s: float = 0.1,
        max_wait_heard_s: float = 0.25,
        max_gap_periods: float = 1.5,
        max_fill_s: float = 10.0,
    ) -> None:
        if not rate_hz > 0.0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.leg_id = leg_id
        self.rate_hz = float(rate_hz)
        self.period_s = 1.0 / self.rate_hz
        self.max_wait_s = max_wait_s
        self.max_wait_heard_s = max(max_wait_heard_s, max_wait_s)
        self.packet_span_s = 0.0  # longest packet seen: a sensor is heard once per packet at best
        self.max_gap_s = max_gap_periods * self.period_s
        self.max_fill_s = max_fill_s
        self._max_fill_points = math.ceil(max_fill_s * self.rate_hz)
        self._tracks = {Segment.THIGH: _Track(), Segment.SHANK: _Track()}
        self._next_k: int | None = None  # index of the next grid point to emit
        self._now_s = -math.inf

    def push(self, segment: Segment, samples: TimedSamples, now_s: float = -math.inf) -> LegSamples | None:
        """Add samples of the thigh or shank sensor; returns the grid points that became final."""
        self.add(segment, samples)
        return self.advance(now_s)

    def note_packet_span(self, span_s: float) -> None:
        """A sensor sends packets covering ``span_s`` of samples: wait that much longer before calling it
        silent (19-sample packets at 50 Hz arrive only every 0.38 s)."""
        if span_s > self.packet_span_s:
            self.packet_span_s = span_s

    def heard(self, segment: Segment, t_host_s: float) -> None:
        """The sensor of ``segment`` delivered a packet at host time ``t_host_s`` (its samples may follow)."""
        track = self._tracks[segment]
        if t_host_s > track.heard_s:
            track.heard_s = t_host_s

    def add(self, segment: Segment, samples: TimedSamples) -> None:
        """Add samples without emitting (call :meth:`advance` after a batch of ``add``)."""
        track = self._tracks[segment]
        track.append(samples)
        if self._next_k is None and track.hi > track.lo:
            self._next_k = math.ceil(float(track.t_s[track.lo]) * self.rate_hz)

    def advance(self, now_s: float = -math.inf) -> LegSamples | None:
        """Emit grid points that are final at host time ``now_s`` (data on both sides, or waited enough)."""
        thigh = self._tracks[Segment.THIGH]
        shank = self._tracks[Segment.SHANK]
        now_s = self._now_s = max(self._now_s, now_s, thigh.last_t_s, shank.last_t_s)
        give_up_s = now_s - self.max_wait_s - self.packet_span_s
        give_up_heard_s = now_s - self.max_wait_heard_s - self.packet_span_s
        ready_s = min(
            max(thigh.last_t_s, give_up_heard_s if thigh.heard_s >= give_up_s else give_up_s),
            max(shank.last_t_s, give_up_heard_s if shank.heard_s >= give_up_s else give_up_s),
        )
        return self._emit_until(ready_s)

    def flush(self) -> LegSamples | None:
        """Emit every grid point up to the newest sample of either sensor (end of stream)."""
        return self._emit_until(
            max(self._tracks[Segment.THIGH].last_t_s, self._tracks[Segment.SHANK].last_t_s)
        )

    def _emit_until(self, ready_s: float) -> LegSamples | None:
        if self._next_k is None or not math.isfinite(ready_s):
            return None
        k_end = math.floor(ready_s * self.rate_hz)  # last grid index that may be emitted
        if k_end < self._next_k:
            return None
        a = self._tracks[Segment.THIGH]
        b = self._tracks[Segment.SHANK]
        if k_end - self._next_k > self._max_fill_points:
            self._next_k = self._skip_silence(self._next_k, k_end, a, b)
            if k_end < self._next_k:
                return None
        grid_s, thigh_acc, thigh_gyr, shank_acc, shank_gyr, a.lo, b.lo = align_tracks(
            self._next_k, k_end, self.rate_hz, self.max_gap_s,
            a.t_s, a.acc_m_s2, a.gyr_rad_s, a.lo, a.hi,
            b.t_s, b.acc_m_s2, b.gyr_rad_s, b.lo, b.hi,
        )  # fmt: skip
        self._next_k = k_end + 1
        return LegSamples(self.leg_id, grid_s, thigh_acc, thigh_gyr, shank_acc, shank_gyr)

    def _skip_silence(self, next_k: int, k_end: int, a: _Track, b: _Track) -> int:
        """Both sensors silent for longer than ``max_fill_s``: jump the grid to the data instead of
        emitting hours of NaN rows (e.g. after a host clock step or a long disconnection); with no data
        yet past the grid, past ``k_end`` (the host clock says those points are final)."""
        next_grid_s = next_k / self.rate_hz
        first_new_s = math.inf
        for track in (a, b):
            for i in range(track.lo, track.hi):
                if track.t_s[i] >= next_grid_s:
                    first_new_s = min(first_new_s, float(track.t_s[i]))
                    break
        if first_new_s - next_grid_s > self.max_fill_s:
            return math.ceil(first_new_s * self.rate_hz) if math.isfinite(first_new_s) else k_end + 1
        return next_k
