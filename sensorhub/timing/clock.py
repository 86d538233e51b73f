"""Sensor clock -> host clock, per sensor: sequence handling, unwrapping, drift and offset estimation.

Model: a packet's host receive time is ``y = offset + (1 + b) * x + latency`` where ``x`` is the
sensor time of the packet's LAST sample (a packet cannot leave before its last sample exists) and
``latency >= 0`` is radio + stack + scheduling delay, jittery (BLE connection intervals of 7.5-30 ms).
The reported ``drift_ppm`` is the sensor clock's rate error, + = the sensor clock runs fast:
``1 + drift = 1 / (1 + b)``.
The estimator fits the lower envelope of (x, y): per window of ``window_s`` sensor time it keeps the
point of least ``y - x``, and the line through the last ``horizon_windows`` minima is the solution of
the one-way clock-sync linear program (lower convex hull, supporting at the mean x).

Latency definition: the minimum latency cannot be told apart from the offset, so the mapped host time
of a sample is "when it would have arrived over the fastest link seen": ``latency_s`` reported here is
the EXCESS latency of a packet over that fastest one (>= 0 up to estimator error).

Mapped times never jump: a new estimate is approached at no more than ``max_slew`` seconds per second
of sensor time (times stay strictly increasing), like NTP slewing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sensorhub.model import FloatArray, ImuPacket, TimedSamples
from sensorhub.protocol.spec import FLAG_RESTART, SEQ_MODULUS, T0_MODULUS_US
from sensorhub.timing._kernels import lower_envelope_line

_HALF_SEQ = SEQ_MODULUS // 2
_HALF_T0 = T0_MODULUS_US // 2
_ARANGE = [np.arange(n, dtype=np.float64) for n in range(65)]

Mapped = tuple[ImuPacket, float, float, int]
"""A released packet, its samples' host times as scalars: (packet, t_first_s, step_s, n_missing_before);
sample ``i`` is at ``i * step_s + t_first_s`` (see :func:`sample_times`)."""


def sample_times(n: int, t_first_s: float, step_s: float) -> FloatArray:
    """The host times of a packet's ``n`` samples (one float64 rounding per step, as ``fill_times``)."""
    steps = _ARANGE[n] if n < len(_ARANGE) else np.arange(n, dtype=np.float64)
    t_s: FloatArray = steps * step_s
    t_s += t_first_s
    return t_s


@dataclass(frozen=True, slots=True)
class ClockParams:
    """Tuning of :class:`SensorClock`; the defaults suit 50-800 Hz streams over BLE or MQTT."""

    window_s: float = 0.25  # sensor time per lower-envelope window (min latency kept per window)
    horizon_windows: int = 480  # windows remembered for the fit (480 * 0.25 s = 2 min)
    max_drift_ppm: float = 500.0  # crystals are within +-100 ppm; more is an estimator artefact
    max_slew: float = 0.05  # seconds of correction per second of sensor time (5 %)
    reorder_packets: int = 3  # packets held back waiting for a missing one
    reorder_timeout_s: float = 0.1  # host time a packet is held back at most
    history_packets: int = 64  # released packets remembered to recognise duplicates and late ones
    latency_smoothing: float = 0.02  # EWMA weight of a packet's excess latency in ``latency_s``
    settle_s: float = 10.0  # sensor time the fit must span before ``drift_ppm`` is reported
    # A packet whose sensor clock ran ahead of the host clock since the last released packet by more than
    # this (+ max_drift_ppm of the interval) cannot have been sent then: the sensor clock jumped (a corrupt
    # or crafted t0, a clock reset without the restart flag). Mapped on, its samples would land that far
    # in the future and the grid would fill the jump; instead a new run starts at it (re-anchored on the
    # host clock), as on a restart.
    max_ahead_s: float = 2.0


@dataclass(slots=True)
class ClockStats:
    """Sequence and clock diagnostics of one sensor."""

    packets: int = 0  # released in order into the pipeline
    samples: int = 0
    lost: int = 0  # samples missing in gaps of the sensor time line
    duplicates: int = 0
    reordered: int = 0  # arrived after a later packet, put back in order
    late: int = 0  # arrived after its gap had been given up (dropped; its samples count as lost)
    restarts: int = 0
    drift_ppm: float = float("nan")  # sensor clock rate error, + = runs fast; NaN until the fit settles
    offset_s: float = float("nan")  # host time at sensor clock 0 of the current run
    latency_s: float = float("nan")  # smoothed excess latency (see module docstring)


def _signed(delta: int, modulus: int, half: int) -> int:
    delta %= modulus
    return delta - modulus if delta >= half else delta


class _Envelope:
    """Window minima of r = y - x and the lower-envelope line through them (bounded memory)."""

    def __init__(self, params: ClockParams, slope: float) -> None:
        self._window_s = params.window_s
        self._max_slope = params.max_drift_ppm * 1e-6
        size = params.horizon_windows + 1
        self._x = np.empty(size)
        self._r = np.empty(size)
        self._count = 0  # closed windows stored in [0, count); slot ``count`` holds the open window
        self._window = -1
        self._open_r_s = 0.0  # r of the open window's point (slot ``count``), as a Python float
        self.a = 0.0
        self.b = slope

    @property
    def span_s(self) -> float:
        """Sensor time covered by the remembered windows."""
        return float(self._x[self._count] - self._x[0]) if self._window >= 0 else 0.0

    def add(self, x_s: float, r_s: float) -> None:
        window = int(x_s // self._window_s)
        if self._window < 0:
            self._window = window
            self._x[0], self._r[0] = x_s, r_s
            self._open_r_s = r_s
            self.a = r_s - self.b * x_s
            return
        if window != self._window:  # close the open window, open a new one
            self._count += 1
            if self._count == self._x.shape[0]:
                self._x[:-1] = self._x[1:]
                self._r[:-1] = self._r[1:]
                self._count -= 1
            self._window = window
            self._x[self._count], self._r[self._count] = x_s, r_s
            self._open_r_s = r_s
            self.a, self.b = lower_envelope_line(
                self._x[: self._count + 1], self._r[: self._count + 1], self._max_slope
            )
            return
        if r_s < self._open_r_s:
            self._x[self._count], self._r[self._count] = x_s, r_s
            self._open_r_s = r_s
        if r_s < self.a + self.b * x_s:  # below the line: lower it now, refit when the window closes
            self.a = r_s - self.b * x_s


class SensorClock:
    """Orders, de-duplicates and maps one sensor's packets onto the host clock.

    ``push`` takes decoded packets in arrival order and returns the samples that became releasable;
    ``now_s`` is the latest host receive time the caller has seen (drives the reorder timeout), so the
    output depends only on the packet sequence.
    """

    def __init__(self, sensor_id: str, params: ClockParams | None = None) -> None:
        self.sensor_id = sensor_id
        self.params = params or ClockParams()
        self._stats = ClockStats()
        self._held: dict[int, tuple[ImuPacket, float]] = {}  # extended seq -> (packet, arrival host s)
        self._history: deque[tuple[int, int, int]] = deque(maxlen=self.params.history_packets)
        self._seen: set[tuple[int, int]] = set()  # (seq, t0_us) of the packets in _history
        self._started = False
        self._host_ref_s = 0.0  # host time origin of the fit's y axis (first packet ever)
        self._last_out_s = -np.inf
        self._last_host_s = -np.inf  # host receive time of the last released packet
        self._slope_prior = 0.0
        self.last_accepted_s = -np.inf
        """Host receive time of the newest packet taken into the stream (held or released), i.e. the
        sensor is alive even while its samples wait in the reorder window."""
        self._new_run(None)

    # --- public ------------------------------------------------------------------------------------

    def push(self, packet: ImuPacket, now_s: float) -> list[TimedSamples]:
        return [self.timed(m) for m in self.push_mapped(packet, now_s)]

    def poll(self, now_s: float) -> list[TimedSamples]:
        """Release held packets that are next in sequence, or waited too long, or overflow the window."""
        return [self.timed(m) for m in self.poll_mapped(now_s)]

    def flush(self) -> list[TimedSamples]:
        """Release everything held (end of stream, or before a restart)."""
        return [self.timed(m) for m in self.flush_mapped()]

    def timed(self, mapped: Mapped) -> TimedSamples:
        """A released packet's samples with their host times."""
        packet, t_first_s, step_s, missing = mapped
        return TimedSamples(
            sensor_id=self.sensor_id,
            t_s=sample_times(packet.acc_m_s2.shape[0], t_first_s, step_s),
            acc_m_s2=packet.acc_m_s2,
            gyr_rad_s=packet.gyr_rad_s,
            n_missing_before=missing,
        )

    @property
    def holding(self) -> bool:
        """Packets wait in the reorder window (only then can :meth:`poll` release anything)."""
        return bool(self._held)

    def push_mapped(self, packet: ImuPacket, now_s: float) -> list[Mapped]:
        """:meth:`push` with the sample times as scalars (no arrays made: the front's turn path)."""
        out: list[Mapped] = []
        if not self._started:
            self._started = True
            self._host_ref_s = packet.t_host_s
            self._new_run(packet)
            out.append(self._release(packet, packet.seq))
            return out
        if self._is_duplicate(packet):
            self._stats.duplicates += 1
            return self.poll_mapped(now_s)
        ds = _signed(packet.seq - self._last_seq, SEQ_MODULUS, _HALF_SEQ)
        dt_us = _signed(packet.t0_sensor_us - self._last_t0_us, T0_MODULUS_US, _HALF_T0)
        if packet.flags & FLAG_RESTART:
            if ds < 0 and self._fits_earlier(packet, ds, dt_us):
                self._stats.late += 1  # this run's first packet, overtaken by the ones after it
                return self.poll_mapped(now_s)
            out.extend(self.flush_mapped())
            self._restart(packet)
            out.append(self._release(packet, packet.seq))
            return out
        if ds <= 0:
            if self._is_late(packet, ds):
                self._stats.late += 1
                return self.poll_mapped(now_s)
            out.extend(self.flush_mapped())  # sequence went back without a match: the sensor restarted
            self._restart(packet)
            out.append(self._release(packet, packet.seq))
            return out
        if dt_us <= 0 or self._jumped_ahead(packet, dt_us):
            # seq forward but the sensor clock went back (a restart whose first packet was lost), or ran
            # ahead of the host clock: a new run
            out.extend(self.flush_mapped())
            self._restart(packet)
            out.append(self._release(packet, packet.seq))
            return out
        ext = self._last_ext_seq + ds
        held = self._held
        self.last_accepted_s = packet.t_host_s
        if not held and ds == 1:  # the next in sequence and nothing waits: what poll would do
            out.append(self._release(packet, ext))
            return out
        if held and ext < max(held):
            self._stats.reordered += 1
        held[ext] = (packet, packet.t_host_s)
        out.extend(self.poll_mapped(now_s))
        return out

    def poll_mapped(self, now_s: float) -> list[Mapped]:
        out: list[Mapped] = []
        held = self._held
        while held:
            nxt = self._last_ext_seq + 1
            if nxt in held:
                ext = nxt
            else:
                ext = min(held)
                waited_s = now_s - held[ext][1]
                if len(held) <= self.params.reorder_packets and waited_s < self.params.reorder_timeout_s:
                    break  # keep waiting for the missing packet(s); otherwise give the gap up
            packet, _ = held.pop(ext)
            out.append(self._release(packet, ext))
        return out

    def flush_mapped(self) -> list[Mapped]:
        return self.poll_mapped(np.inf)

    def stats(self) -> ClockStats:
        s = self._stats
        settled = self._env.span_s >= self.params.settle_s
        # host = (1 + b) * sensor, so the sensor clock runs at 1 / (1 + b) of the host rate.
        s.drift_ppm = (1.0 / (1.0 + self._env.b) - 1.0) * 1e6 if settled else float("nan")
        if self._started:
            # host = host_ref + a + (1 + b) * (t_sensor - base): the host time at sensor clock 0.
            s.offset_s = self._host_ref_s + self._env.a - (1.0 + self._env.b) * self._base_us * 1e-6
        return s

    # --- internals ---------------------------------------------------------------------------------

    def _new_run(self, packet: ImuPacket | None) -> None:
        self._env = _Envelope(self.params, self._slope_prior)
        self._anchor: tuple[float, float] | None = None  # (x_s, t_rel_s) of the last mapped sample
        if packet is None:
            self._base_us = 0
            self._last_seq = 0
            self._last_ext_seq = 0
            self._last_t0_us = 0
            self._last_ext_t0_us = 0
            self._next_ext_t0_us = 0
            return
        self._base_us = packet.t0_sensor_us  # this run's sensor time origin (extended)
        self._last_seq = packet.seq
        self._last_ext_seq = packet.seq - 1  # _release advances it
        self._last_t0_us = packet.t0_sensor_us
        self._last_ext_t0_us = packet.t0_sensor_us
        self._next_ext_t0_us = packet.t0_sensor_us

    def _restart(self, packet: ImuPacket) -> None:
        self._stats.restarts += 1
        self._slope_prior = self._env.b  # same crystal: keep the drift, re-learn the offset
        self._held.clear()
        self._history.clear()
        self._seen.clear()
        self._new_run(packet)

    def _is_duplicate(self, packet: ImuPacket) -> bool:
        if (packet.seq, packet.t0_sensor_us) in self._seen:
            return True
        return bool(self._held) and any(
            p.seq == packet.seq and p.t0_sensor_us == packet.t0_sensor_us for p, _ in self._held.values()
        )

    def _is_late(self, packet: ImuPacket, ds: int) -> bool:
        """A packet behind the released sequence whose sensor time fits in a gap we gave up.

        Anything else behind the sequence (older than the history, or not fitting) is a restart.
        """
        ext = self._last_ext_seq + ds
        dt_us = _signed(packet.t0_sensor_us - self._last_t0_us, T0_MODULUS_US, _HALF_T0)
        t0_ext = self._last_ext_t0_us + dt_us
        before = [h for h in self._history if h[0] < ext]
        after = [h for h in self._history if h[0] > ext]
        if not before or not after:
            return False
        lo = max(before)
        hi = min(after)
        return self._ext_t0(lo) < t0_ext < self._ext_t0(hi)

    def _jumped_ahead(self, packet: ImuPacket, dt_us: int) -> bool:
        host_s = packet.t_host_s - self._last_host_s
        ahead_s = dt_us * 1e-6 - host_s
        return ahead_s > self.params.max_ahead_s + self.params.max_drift_ppm * 1e-6 * abs(host_s)

    @staticmethod
    def _fits_earlier(packet: ImuPacket, ds: int, dt_us: int) -> bool:
        """Sequence and sensor clock both behind by about the same number of packets."""
        expected_us = ds * packet.n_samples * packet.period_us
        return dt_us < 0 and abs(dt_us - expected_us) <= -expected_us // 2

    def _ext_t0(self, entry: tuple[int, int, int]) -> int:
        dt_us = _signed(entry[2] - self._last_t0_us, T0_MODULUS_US, _HALF_T0)
        return self._last_ext_t0_us + dt_us

    def _release(self, packet: ImuPacket, ext_seq: int) -> Mapped:
        if packet.t_host_s > self.last_accepted_s:
            self.last_accepted_s = packet.t_host_s
        self._last_host_s = packet.t_host_s
        params = self.params
        stats = self._stats
        n = packet.acc_m_s2.shape[0]
        period_us = packet.period_us
        ext_t0 = self._last_ext_t0_us + _signed(
            packet.t0_sensor_us - self._last_t0_us, T0_MODULUS_US, _HALF_T0
        )
        missing = round((ext_t0 - self._next_ext_t0_us) / period_us)
        if missing < 0:
            missing = 0
        self._last_seq = packet.seq
        self._last_ext_seq = ext_seq
        self._last_t0_us = packet.t0_sensor_us
        self._last_ext_t0_us = ext_t0
        self._next_ext_t0_us = ext_t0 + n * period_us
        history = self._history
        if len(history) == history.maxlen:
            self._seen.discard(history[0][1:])
        history.append((ext_seq, packet.seq, packet.t0_sensor_us))
        self._seen.add((packet.seq, packet.t0_sensor_us))

        # Clock fit on the packet's last sample.
        x0_s = (ext_t0 - self._base_us) * 1e-6
        period_s = period_us * 1e-6
        x_last_s = x0_s + (n - 1) * period_s
        y_s = packet.t_host_s - self._host_ref_s
        env = self._env
        env.add(x_last_s, y_s - x_last_s)
        slope = 1.0 + env.b
        target_last = env.a + slope * x_last_s

        # Sample times: continue from the anchor with the fitted rate, slewing towards the target.
        # The map is linear within a packet, so it is computed on scalars and applied once.
        anchor = self._anchor
        if anchor is None or x_last_s <= anchor[0]:
            t_first_rel = env.a + slope * x0_s
            step_s = slope * period_s
        else:
            x_a, t_a = anchor
            span_s = x_last_s - x_a
            limit_s = params.max_slew * span_s
            correction = min(max(target_last - (t_a + slope * span_s), -limit_s), limit_s)
            rate = slope + correction / span_s
            t_first_rel = t_a + rate * (x0_s - x_a)
            step_s = rate * period_s
        t_last_rel = t_first_rel + step_s * (n - 1)
        t_first_s = self._host_ref_s + t_first_rel
        if t_first_s <= self._last_out_s:  # only after a restart with an inconsistent host clock
            t_first_s = self._last_out_s + 1e-6
        self._anchor = (x_last_s, t_last_rel)
        self._last_out_s = (n - 1) * step_s + t_first_s  # the last of sample_times(n, t_first_s, step_s)

        latency_s = packet.t_host_s - self._last_out_s
        w = params.latency_smoothing
        stats.latency_s = latency_s if stats.packets == 0 else (1.0 - w) * stats.latency_s + w * latency_s
        stats.packets += 1
        stats.samples += n
        stats.lost += missing
        return packet, t_first_s, step_s, missing
