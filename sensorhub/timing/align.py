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
from sensorhub.timing._kernels import align_segments, fill_samples


class TrackStore:
    """The pending samples of several tracks (one row each of shared buffers, ``[lo, hi)`` live) and the
    numba work recorded on them (``lo`` moves when that work is done).

    Immediate (the default), every packet's sample times and every grid chunk are computed when they are
    recorded. ``deferred`` records them until :meth:`collect`, which computes all of them for every leg
    in two numba calls: the front's loop turn costs two kernel calls, not several per packet. The output
    is bit for bit the same: each chunk interpolates a track as far as it reached when the chunk became
    final (its ``hi`` then), and the buffers only change behind ``hi`` once the recorded work is done.
    """

    def __init__(self, capacity: int = 256, *, deferred: bool = False) -> None:
        self.deferred = deferred
        self.capacity = capacity  # samples per row
        self.t_s: FloatArray = np.empty((0, capacity))
        self.acc_m_s2: FloatArray = np.empty((0, capacity, 3))
        self.gyr_rad_s: FloatArray = np.empty((0, capacity, 3))
        self.lo = np.zeros(0, dtype=np.int64)
        self._rows = 0  # rows in use (the buffers have room for more: legs are added one by one)
        self.tag = 0  # the caller's mark of the work recorded now (the front: the packet's index in the turn)
        self._fills: list[tuple[int, int, int, int, int]] = []  # row, start, first, n, source offset
        self._fill_first_s: list[float] = []
        self._fill_step_s: list[float] = []
        self._fill_acc_m_s2: list[FloatArray] = []
        self._fill_gyr_rad_s: list[FloatArray] = []
        self._fill_rows = 0  # source rows recorded
        # per leg (in the order of their first segment): the tag of its first segment, its segments
        self._segments: dict[LegAligner, tuple[int, list[tuple[int, int, int, int, int, int]]]] = {}
        self._done: dict[LegAligner, tuple[int, list[LegSamples]]] = {}

    def add_row(self) -> int:
        row = self._rows
        self._rows += 1
        if self._rows > self.t_s.shape[0]:
            self._resize(2 * self._rows, self.capacity)
        return row

    def _resize(self, rows: int, capacity: int) -> None:
        old_rows, old_capacity = self.t_s.shape
        t_s = np.empty((rows, capacity))
        acc_m_s2, gyr_rad_s = np.empty((rows, capacity, 3)), np.empty((rows, capacity, 3))
        t_s[:old_rows, :old_capacity] = self.t_s
        acc_m_s2[:old_rows, :old_capacity] = self.acc_m_s2
        gyr_rad_s[:old_rows, :old_capacity] = self.gyr_rad_s
        self.t_s, self.acc_m_s2, self.gyr_rad_s = t_s, acc_m_s2, gyr_rad_s
        self.capacity = capacity
        self.lo = np.concatenate([self.lo, np.zeros(rows - old_rows, dtype=np.int64)])

    def make_room(self, row: int, hi: int, n: int) -> int:
        """Move row ``row``'s live samples to its start (growing every row if they and ``n`` more would
        fill more than half of it); returns the new ``hi``. The recorded work on the row moves with them."""
        lo = int(self.lo[row])
        live = hi - lo
        capacity = self.capacity
        while live + n > capacity // 2:
            capacity *= 2
        if capacity != self.capacity:
            self._resize(self.t_s.shape[0], capacity)
        self.t_s[row, :live] = self.t_s[row, lo:hi]  # (times still to be filled are moved too: harmless)
        self.acc_m_s2[row, :live] = self.acc_m_s2[row, lo:hi]
        self.gyr_rad_s[row, :live] = self.gyr_rad_s[row, lo:hi]
        self.lo[row] = 0
        self._fills = [(r, start - lo if r == row else start, first, m, src)
                       for r, start, first, m, src in self._fills]
        for _, segments in self._segments.values():
            segments[:] = [(a, b, hi_a - lo if a == row else hi_a, hi_b - lo if b == row else hi_b, k0, k1)
                           for a, b, hi_a, hi_b, k0, k1 in segments]
        return live

    def record_fill(self, row: int, start: int, first: int, acc_m_s2: FloatArray, gyr_rad_s: FloatArray,
                    t_first_s: float, step_s: float) -> None:
        """Samples ``first..n-1`` of a packet (at ``i * step_s + t_first_s``) go to ``row`` from ``start``."""
        n = acc_m_s2.shape[0]
        self._fills.append((row, start, first, n, self._fill_rows))
        self._fill_rows += n
        self._fill_first_s.append(t_first_s)
        self._fill_step_s.append(step_s)
        self._fill_acc_m_s2.append(acc_m_s2)
        self._fill_gyr_rad_s.append(gyr_rad_s)
        if not self.deferred:
            self._execute_fills()

    def record_segment(self, owner: LegAligner, segment: tuple[int, int, int, int, int, int]) -> None:
        """Grid points of ``owner``'s leg that became final (see ``align_segments``)."""
        pending = self._segments.get(owner)
        if pending is None:
            self._segments[owner] = (self.tag, [segment])
        else:
            pending[1].append(segment)
        if not self.deferred:
            self.execute()

    def _execute_fills(self) -> None:
        if self._fills:
            fill_samples(self.t_s, self.acc_m_s2, self.gyr_rad_s, np.array(self._fills, dtype=np.int64),
                         np.array(self._fill_first_s), np.array(self._fill_step_s),
                         np.concatenate(self._fill_acc_m_s2), np.concatenate(self._fill_gyr_rad_s))
            self._fills.clear()
            self._fill_first_s.clear()
            self._fill_step_s.clear()
            self._fill_acc_m_s2.clear()
            self._fill_gyr_rad_s.clear()
            self._fill_rows = 0

    def execute(self) -> None:
        """Do the recorded work; its chunks wait for :meth:`collect`."""
        self._execute_fills()
        if not self._segments:
            return
        flat: list[tuple[int, int, int, int, int, int]] = []
        rate_hz: list[float] = []
        max_gap_s: list[float] = []
        sizes: list[int] = []
        for owner, (_, segments) in self._segments.items():  # each leg's segments together: one chunk
            flat += segments
            rate_hz += [owner.rate_hz] * len(segments)
            max_gap_s += [owner.max_gap_s] * len(segments)
            sizes.append(sum(k_last - k_first + 1 for *_, k_first, k_last in segments))
        grid_s, thigh_acc, thigh_gyr, shank_acc, shank_gyr = align_segments(
            self.t_s, self.acc_m_s2, self.gyr_rad_s, self.lo, np.array(flat, dtype=np.int64),
            np.array(rate_hz), np.array(max_gap_s),
        )  # fmt: skip
        at = 0
        for (owner, (tag, _)), m in zip(self._segments.items(), sizes, strict=True):
            rows = slice(at, at + m)
            at += m
            chunk = LegSamples(owner.leg_id, grid_s[rows], thigh_acc[rows], thigh_gyr[rows], shank_acc[rows],
                               shank_gyr[rows])
            done = self._done.get(owner)
            if done is None:
                self._done[owner] = (tag, [chunk])
            else:
                done[1].append(chunk)
        self._segments.clear()

    def collect(self) -> list[tuple[int, LegSamples]]:
        """The chunks of the recorded work: one per leg (in the order of their first grid point), with the
        ``tag`` at which its first grid point became final."""
        self.execute()
        out = [(tag, parts[0] if len(parts) == 1 else LegSamples.concat(parts))
               for tag, parts in self._done.values()]
        self._done.clear()
        return out


class _Track:
    """Pending samples of one sensor (times ascending): row ``row`` of a :class:`TrackStore`."""

    __slots__ = ("heard_s", "hi", "last_t_s", "row", "store")

    def __init__(self, store: TrackStore) -> None:
        self.store = store
        self.row = store.add_row()
        self.hi = 0
        self.heard_s = -math.inf
        self.last_t_s = -math.inf

    @property
    def lo(self) -> int:
        return int(self.store.lo[self.row])

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
        hi = self._room(n)
        store, row = self.store, self.row
        store.t_s[row, hi : hi + n] = t_s
        store.acc_m_s2[row, hi : hi + n] = acc_m_s2
        store.gyr_rad_s[row, hi : hi + n] = gyr_rad_s
        self._appended(hi + n, float(t_s[-1]))

    def append_mapped(self, acc_m_s2: FloatArray, gyr_rad_s: FloatArray, t_first_s: float,
                      step_s: float) -> float | None:
        """:meth:`append` of samples at ``i * step_s + t_first_s`` (written by the store's recorded work);
        returns the time of the first sample kept (None: none)."""
        n = acc_m_s2.shape[0]
        first = 0
        if t_first_s <= self.last_t_s:  # never go back in time (as append: the times ascend)
            while first < n and first * step_s + t_first_s <= self.last_t_s:
                first += 1
        if first == n:
            return None
        hi = self._room(n - first)
        self.store.record_fill(self.row, hi, first, acc_m_s2, gyr_rad_s, t_first_s, step_s)
        self._appended(hi + n - first, (n - 1) * step_s + t_first_s)
        return first * step_s + t_first_s

    def _appended(self, hi: int, last_t_s: float) -> None:
        self.hi = hi
        self.last_t_s = last_t_s
        if last_t_s > self.heard_s:
            self.heard_s = last_t_s

    def _room(self, n: int) -> int:
        """Where ``n`` samples go (making room if the row is full)."""
        if self.hi + n > self.store.capacity:
            self.hi = self.store.make_room(self.row, self.hi, n)
        return self.hi


class LegAligner:
    """Aligns one leg's thigh and shank :class:`TimedSamples` into :class:`LegSamples` chunks.

    ``store``: the buffers it shares with other legs; a deferred store's chunks come from its
    :meth:`TrackStore.collect` (``push``, ``advance`` and ``flush`` then return None).
    """

    def __init__(
        self,
        leg_id: str,
        rate_hz: float,
        *,
        max_wait_s: float = 0.1,
        max_wait_heard_s: float = 0.25,
        max_gap_periods: float = 1.5,
        max_fill_s: float = 10.0,
        store: TrackStore | None = None,
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
        self._store = store or TrackStore()
        self._tracks = {Segment.THIGH: _Track(self._store), Segment.SHANK: _Track(self._store)}
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
            self._next_k = math.ceil(float(self._store.t_s[track.row, track.lo]) * self.rate_hz)

    def add_mapped(self, segment: Segment, acc_m_s2: FloatArray, gyr_rad_s: FloatArray, t_first_s: float,
                   step_s: float) -> None:
        """:meth:`add` of samples at ``i * step_s + t_first_s`` (``sensorhub.timing.clock.Mapped``)."""
        first_s = self._tracks[segment].append_mapped(acc_m_s2, gyr_rad_s, t_first_s, step_s)
        if self._next_k is None and first_s is not None:  # the leg's first sample
            self._next_k = math.ceil(first_s * self.rate_hz)

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
        self._store.record_segment(self, (a.row, b.row, a.hi, b.hi, self._next_k, k_end))
        self._next_k = k_end + 1
        if self._store.deferred:
            return None
        return self._store.collect()[0][1]

    def _skip_silence(self, next_k: int, k_end: int, a: _Track, b: _Track) -> int:
        """Both sensors silent for longer than ``max_fill_s``: jump the grid to the data instead of
        emitting hours of NaN rows (e.g. after a host clock step or a long disconnection); with no data
        yet past the grid, past ``k_end`` (the host clock says those points are final)."""
        self._store.execute()  # the sample times recorded so far, and ``lo``
        next_grid_s = next_k / self.rate_hz
        first_new_s = math.inf
        for track in (a, b):
            t_s = self._store.t_s[track.row]
            for i in range(track.lo, track.hi):
                if t_s[i] >= next_grid_s:
                    first_new_s = min(first_new_s, float(t_s[i]))
                    break
        if first_new_s - next_grid_s > self.max_fill_s:
            return math.ceil(first_new_s * self.rate_hz) if math.isfinite(first_new_s) else k_end + 1
        return next_k
