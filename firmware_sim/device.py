"""A simulated sensorhub sensor: its own drifting clock, control handling, sampling, packets, battery.

The device samples at integer-microsecond ticks of ITS clock; the true time of each tick follows from the
clock model, and the body model is evaluated at exactly those true times. So timestamps in packets are
perfectly regular on the sensor clock while the host sees them drift by ``drift_ppm``.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from sensorhub.model import FloatArray

from .encoder import (
    FLAG_RESTART,
    IdentifyCommand,
    StartCommand,
    StopCommand,
    clip_flags,
    encode_data,
    encode_info,
    parse_command,
)
from .errors_model import ImuErrorModel, to_raw
from .exceptions import FirmwareSimError

log = logging.getLogger(__name__)

SignalFn = Callable[[FloatArray], tuple[FloatArray, FloatArray]]
"""Ideal signals at true times: ``t_s (N,) -> (gyr_rad_s (N, 3), acc_m_s2 (N, 3))``."""

FIRMWARE_LATENCY_S = 0.0003  # sample of the last tick -> notification queued to the radio
SENSOR_CLOCK_WRAP_US = 2**32


class DeviceError(FirmwareSimError):
    """The simulated device was driven wrongly (time going backwards)."""


@dataclass(frozen=True, slots=True)
class SensorClock:
    """Sensor clock reading ``offset_us + (1 + drift_ppm * 1e-6) * t_true_s * 1e6`` (unwrapped, us)."""

    offset_us: float = 0.0
    drift_ppm: float = 0.0

    @property
    def rate(self) -> float:
        return 1.0 + self.drift_ppm * 1e-6

    def sensor_us(self, t_true_s: float) -> float:
        return self.offset_us + self.rate * t_true_s * 1e6

    def true_s(self, sensor_us: FloatArray | float) -> Any:
        return (np.asarray(sensor_us, dtype=np.float64) - self.offset_us) / self.rate * 1e-6

    @classmethod
    def random(cls, rng: np.random.Generator, max_drift_ppm: float = 50.0) -> SensorClock:
        """Power-on at a random moment of the 32-bit counter, crystal error uniform in +-max_drift_ppm."""
        offset_us = float(rng.integers(0, SENSOR_CLOCK_WRAP_US))
        return cls(offset_us=offset_us, drift_ppm=float(rng.uniform(-max_drift_ppm, max_drift_ppm)))


class DeviceState(StrEnum):
    IDLE = "idle"
    STREAMING = "streaming"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    rate_hz: int = 200
    acc_range_g: int = 16
    gyr_range_dps: int = 2000
    samples_per_packet: int = 8

    @property
    def period_us(self) -> int:
        return 1_000_000 // self.rate_hz  # exact for the own profile's rates (60 Hz: 16 666 us)

    def start_command(self) -> StartCommand:
        return StartCommand(self.rate_hz, self.acc_range_g, self.gyr_range_dps, self.samples_per_packet)


@dataclass(frozen=True, slots=True)
class DevicePacket:
    """One data notification with the simulator's ground truth about it."""

    sensor_id: str
    index: int  # packets sent by this device since it was created (never wraps)
    seq: int  # u16 as on the wire
    t0_sensor_us: int  # unwrapped sensor clock at the first sample (the wire carries it mod 2**32)
    period_us: int
    flags: int
    raw: np.ndarray[Any, np.dtype[np.int16]]  # (n, 6) ax, ay, az, gx, gy, gz
    t_true_s: FloatArray  # (n,) true time of each sample
    t_emit_true_s: float  # true time the notification is handed to the radio
    payload: bytes

    @property
    def n_samples(self) -> int:
        return int(self.raw.shape[0])


@dataclass(slots=True)
class SimulatedDevice:
    """One sensor. Drive it with ``write_control`` and ``advance(t_true_s)`` in increasing true time."""

    sensor_id: str
    signal: SignalFn
    clock: SensorClock
    errors: ImuErrorModel
    end_true_s: float = math.inf  # the motion ends here; no sample is taken after it
    battery_start_pct: float = 100.0
    battery_drain_pct_per_h: float = 6.0  # ~16 h of streaming on a full charge
    prefetch_s: float = 0.5  # the body model is evaluated in blocks this long (its cost is per call)
    settings: StreamSettings = field(default_factory=StreamSettings)
    state: DeviceState = DeviceState.IDLE
    identify_count: int = 0
    packets_sent: int = 0
    samples_sent: int = 0
    _now_true_s: float = 0.0
    _seq: int = 0
    _next_tick_us: int = 0  # sensor clock of the next sample (unwrapped)
    _restart_pending: bool = False
    _cache_tick_us: int = 0  # sensor clock of the first cached sample
    _cache_gyr: FloatArray = field(default_factory=lambda: np.zeros((0, 3)))
    _cache_acc: FloatArray = field(default_factory=lambda: np.zeros((0, 3)))

    def write_control(self, payload: bytes, t_true_s: float) -> None:
        """Handle a write to ``control``; raises ``CommandRejected`` (ATT 0x80) and changes nothing."""
        self._set_time(t_true_s)
        command = parse_command(payload)
        if isinstance(command, StartCommand):
            self.start(StreamSettings(
                command.rate_hz, command.acc_range_g, command.gyr_range_dps, command.samples_per_packet
            ), t_true_s)
        elif isinstance(command, StopCommand):
            self.stop(t_true_s)
        elif isinstance(command, IdentifyCommand):
            self.identify_count += 1
            log.info("sensor %s: IDENTIFY (LED blinks)", self.sensor_id)

    def start(self, settings: StreamSettings, t_true_s: float) -> None:
        """(Re)start sampling with ``settings`` (the sensorhub START command; other firmwares' start
        sequences, e.g. the commercial profiles' peripherals, call it directly)."""
        self._set_time(t_true_s)
        self.settings = settings
        self.state = DeviceState.STREAMING
        self._seq = 0
        self._next_tick_us = math.ceil(self.clock.sensor_us(t_true_s))
        self._restart_pending = True
        self._cache_gyr = self._cache_acc = np.zeros((0, 3))

    def stop(self, t_true_s: float) -> None:
        self._set_time(t_true_s)
        self.state = DeviceState.IDLE

    def read_info(self) -> bytes:
        s = self.settings
        return encode_info(
            streaming=self.state is DeviceState.STREAMING,
            rate_hz=s.rate_hz,
            acc_range_g=s.acc_range_g,
            gyr_range_dps=s.gyr_range_dps,
            samples_per_packet=s.samples_per_packet,
        )

    def battery_pct(self, t_true_s: float | None = None) -> int:
        """Battery Level characteristic (u8 percent), draining linearly with time."""
        t = self._now_true_s if t_true_s is None else t_true_s
        level = self.battery_start_pct - self.battery_drain_pct_per_h * t / 3600.0
        return int(min(100.0, max(0.0, level)))

    def advance(self, t_true_s: float) -> list[DevicePacket]:
        """All packets whose last sample is taken at or before ``t_true_s`` (and before the motion ends)."""
        self._set_time(t_true_s)
        if self.state is not DeviceState.STREAMING:
            return []
        s = self.settings
        spp, period_us = s.samples_per_packet, s.period_us
        horizon_s = min(t_true_s, self.end_true_s)
        # Whole packets only: count how many last-sample ticks fall before the horizon.
        horizon_us = self.clock.sensor_us(horizon_s)
        n_ticks = math.floor((horizon_us - self._next_tick_us) / period_us) + 1
        n_packets = max(0, n_ticks // spp)
        if n_packets == 0:
            return []
        n = n_packets * spp
        ticks_us = self._next_tick_us + period_us * np.arange(n, dtype=np.int64)
        t_s = np.asarray(self.clock.true_s(ticks_us.astype(np.float64)), dtype=np.float64)
        gyr, acc = self._ideal(ticks_us, t_s)
        gyr, acc = self.errors.apply(gyr, acc, float(s.rate_hz))
        raw = to_raw(gyr, acc, s.acc_range_g, s.gyr_range_dps)
        packets = []
        for k in range(n_packets):
            rows = slice(k * spp, (k + 1) * spp)
            flags = clip_flags(raw[rows])
            if self._restart_pending:
                flags |= FLAG_RESTART
                self._restart_pending = False
            t0_us = int(ticks_us[k * spp])
            payload = encode_data(
                flags=flags,
                seq=self._seq,
                t0_us=t0_us,
                period_us=period_us,
                acc_range_g=s.acc_range_g,
                gyr_range_dps=s.gyr_range_dps,
                raw=raw[rows],
            )
            packets.append(
                DevicePacket(
                    sensor_id=self.sensor_id,
                    index=self.packets_sent,
                    seq=self._seq,
                    t0_sensor_us=t0_us,
                    period_us=period_us,
                    flags=flags,
                    raw=raw[rows].copy(),
                    t_true_s=t_s[rows].copy(),
                    t_emit_true_s=float(t_s[rows][-1]) + FIRMWARE_LATENCY_S,
                    payload=payload,
                )
            )
            self._seq = (self._seq + 1) & 0xFFFF
            self.packets_sent += 1
            self.samples_sent += spp
        self._next_tick_us += n * period_us
        return packets

    def _ideal(
        self, ticks_us: np.ndarray[Any, np.dtype[np.int64]], t_s: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Ideal signals at these ticks, from a cache filled ``prefetch_s`` ahead (ticks are known early)."""
        period_us = self.settings.period_us
        first = (int(ticks_us[0]) - self._cache_tick_us) // period_us
        if first < 0 or first + len(ticks_us) > len(self._cache_gyr):
            n_block = max(len(ticks_us), round(self.prefetch_s * self.settings.rate_hz))
            if len(self._cache_gyr) == 0:
                # Stagger the first block per sensor so that many sensors do not all refill at once.
                n_block = max(
                    len(ticks_us),
                    round(n_block * (0.2 + 0.8 * (zlib.crc32(self.sensor_id.encode()) % 997) / 997)),
                )
            block_us = int(ticks_us[0]) + period_us * np.arange(n_block, dtype=np.int64)
            block_s = np.asarray(self.clock.true_s(block_us.astype(np.float64)), dtype=np.float64)
            block_s = np.minimum(block_s, max(self.end_true_s, float(t_s[-1])))  # never past the motion
            self._cache_gyr, self._cache_acc = (np.asarray(a, dtype=np.float64) for a in self.signal(block_s))
            self._cache_tick_us, first = int(ticks_us[0]), 0
        rows = slice(first, first + len(ticks_us))
        return self._cache_gyr[rows], self._cache_acc[rows]

    def _set_time(self, t_true_s: float) -> None:
        if t_true_s < self._now_true_s:
            raise DeviceError(f"time went backwards: {t_true_s} s after {self._now_true_s} s")
        self._now_true_s = t_true_s
