"""The front of the pipeline: raw packets -> decoded -> host clock -> one grid per leg.

``Front.ingest`` is a pure function of the packet sequence (host receive times included): the same
recording gives bit-identical :class:`LegSamples`, live or replayed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sensorhub.errors import ConfigError
from sensorhub.model import ImuPacket, LegSamples, RawPacket, Segment, SensorRef, Side
from sensorhub.protocol.decode import (
    GRID_RATES_HZ,
    DecodeStats,
    MalformedPacketError,
    PacketDecoder,
    SensorhubV1Decoder,
    decode_many_counting,
    decode_or_count,
    make_decoder,
)
from sensorhub.protocol.spec import HEADER_STRUCT, PROTOCOL_NAME, PROTOCOL_VERSION, SAMPLE_SIZE
from sensorhub.timing.align import LegAligner, TrackStore
from sensorhub.timing.clock import ClockParams, Mapped, SensorClock
from sensorhub.timing.host_time import HostTimeGate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SensorStats:
    """Everything the front knows about one sensor's stream (for /health, the dashboard, metrics)."""

    sensor_id: str
    leg_id: str
    packets: int  # decoded and released in order
    samples: int
    lost: int  # samples missing in sequence gaps
    duplicates: int
    reordered: int
    late: int
    restarts: int
    malformed: int
    malformed_by_reason: dict[str, int]
    clipped: int
    drift_ppm: float
    offset_s: float  # host time at sensor clock 0 of the current run
    latency_s: float  # smoothed excess latency over the fastest packet (see sensorhub.timing.clock)


class _Sensor:
    __slots__ = ("clock", "decode_stats", "decoder", "ref")

    def __init__(self, ref: SensorRef, decoder: PacketDecoder, params: ClockParams) -> None:
        self.ref = ref
        self.decoder = decoder
        self.decode_stats = DecodeStats(ref.sensor_id)
        self.clock = SensorClock(ref.sensor_id, params)


class _Leg:
    __slots__ = ("aligner", "host_gate", "now_s", "sensors")

    def __init__(self) -> None:
        self.sensors: list[_Sensor] = []
        self.aligner: LegAligner | None = None
        self.now_s = -math.inf
        self.host_gate = HostTimeGate()


Decoded = tuple[_Sensor, ImuPacket | None]
"""An admitted packet's sensor and its decoded samples (None: malformed, or held by the decoder)."""


def _nominal_rate_hz(period_us: int) -> float | None:
    """The supported rate a sensor period belongs to (within 5 %), or None for an implausible period."""
    for rate_hz in GRID_RATES_HZ:
        if abs(period_us * rate_hz * 1e-6 - 1.0) < 0.05:
            return float(rate_hz)
    return None


class Front:
    """decode -> clock -> align for a set of sensors.

    ``rate_hz`` is the grid rate; ``None`` takes each leg's rate from the first packet whose period
    matches a supported rate (50-800 Hz); samples before that are not aligned.
    ``protocols`` maps sensor_id -> decoder protocol name (default ``sensorhub-v1``).
    """

    def __init__(
        self,
        sensors: Sequence[SensorRef],
        *,
        rate_hz: float | None = None,
        protocols: Mapping[str, str] | None = None,
        clock_params: ClockParams | None = None,
        max_wait_s: float = 0.1,
    ) -> None:
        params = clock_params or ClockParams()
        protocols = protocols or {}
        self.rate_hz = rate_hz
        self.max_wait_s = max_wait_s
        self._sensors: dict[str, _Sensor] = {}
        self._legs: dict[str, _Leg] = {}
        self._sensor_leg: dict[str, _Leg] = {}
        for ref in sensors:
            if ref.sensor_id in self._sensors:
                raise ConfigError(f"sensor {ref.sensor_id!r} is listed twice")
            leg = self._legs.setdefault(ref.leg_id, _Leg())
            if any(s.ref.segment == ref.segment for s in leg.sensors):
                raise ConfigError(
                    f"leg {ref.leg_id} has two {ref.segment} sensors (second: {ref.sensor_id!r})"
                )
            sensor = _Sensor(ref, make_decoder(protocols.get(ref.sensor_id, PROTOCOL_NAME)), params)
            self._sensors[ref.sensor_id] = sensor
            leg.sensors.append(sensor)
            self._sensor_leg[ref.sensor_id] = leg
        self.unknown_packets = 0
        self._store = TrackStore(deferred=True)  # every leg's tracks: one kernel call aligns a whole turn
        self._last_host_s = math.nan  # last accepted host time, any leg (a new leg's first reference)

    @property
    def leg_ids(self) -> tuple[str, ...]:
        return tuple(self._legs)

    def leg_of(self, sensor_id: str) -> str | None:
        sensor = self._sensors.get(sensor_id)
        return sensor.ref.leg_id if sensor is not None else None

    def grid_rate_hz(self, leg_id: str) -> float:
        """The grid rate of a leg (fixed by its first packet when ``rate_hz`` is None)."""
        leg = self._legs[leg_id]
        if leg.aligner is None:
            raise KeyError(f"leg {leg_id} has no grid yet (no packet received)")
        return float(leg.aligner.rate_hz)

    def ingest(self, packet: RawPacket) -> list[LegSamples]:
        """Process one received packet; returns the grid chunks it completed (usually 0 or 1)."""
        sensor = self._admit(packet)
        if sensor is None:
            return []
        return self.advance(packet, (sensor, decode_or_count(packet, sensor.decoder, sensor.decode_stats)))

    def decode_many(self, packets: Sequence[RawPacket]) -> list[Decoded | None]:
        """Host-time checks and decoding of many packets (a loop turn's) at once: every sensorhub-v1
        packet's samples in one numba call. Hand each result, in order, to :meth:`advance`; the outputs
        are bit-identical to :meth:`ingest` packet by packet (the checks and the decoders keep no state
        that the later stages change)."""
        admitted = [self._admit(p) for p in packets]
        out: list[Decoded | None] = [None] * len(packets)
        batch = [k for k, s in enumerate(admitted) if s is not None and type(s.decoder) is SensorhubV1Decoder]
        for k, result in zip(batch, decode_many_counting([packets[k] for k in batch]), strict=True):
            sensor = admitted[k]
            assert sensor is not None
            stats = sensor.decode_stats
            if isinstance(result, MalformedPacketError):
                stats.count_malformed(result.reason.value, str(result))
                out[k] = (sensor, None)
                continue
            imu, clipped = result
            stats.packets += 1
            stats.samples += imu.n_samples
            stats.clipped += clipped
            out[k] = (sensor, imu)
        for k, sensor in enumerate(admitted):
            if sensor is not None and out[k] is None:  # other protocols: their own (stateful) decoders
                out[k] = (sensor, decode_or_count(packets[k], sensor.decoder, sensor.decode_stats))
        return out

    def _admit(self, packet: RawPacket) -> _Sensor | None:
        """The packet's sensor, or None for an unknown sensor or a rejected host time (counted)."""
        sensor = self._sensors.get(packet.sensor_id)
        if sensor is None:
            self.unknown_packets += 1
            if self.unknown_packets == 1:
                log.warning("packet from unconfigured sensor %r ignored (counted)", packet.sensor_id)
            return None
        leg = self._sensor_leg[packet.sensor_id]
        rejected = leg.host_gate.check(packet.t_host_s, self._last_host_s)
        if rejected is not None:  # before any state is touched: nothing but this packet is lost
            sensor.decode_stats.count_malformed(
                rejected.value, f"host receive time {packet.t_host_s!r} rejected ({rejected.value})"
            )
            return None
        self._last_host_s = packet.t_host_s
        return sensor

    def advance(self, packet: RawPacket, decoded: Decoded | None) -> list[LegSamples]:
        """Clock mapping and alignment of one admitted, decoded packet (None: nothing to do)."""
        self._step(packet, decoded)
        return [chunk for _, chunk in self._store.collect()]

    def advance_many(
        self,
        packets: Sequence[RawPacket],
        decoded: Sequence[Decoded | None],
        on_error: Callable[[RawPacket, Exception], object] | None = None,
    ) -> list[tuple[int, LegSamples]]:
        """:meth:`advance` of a loop turn's packets (``decoded``: :meth:`decode_many`'s): each leg's grid
        rows of the turn as one chunk, with the index of the packet that completed its first row. The rows
        are bit for bit those of :meth:`advance` packet by packet, joined (tested): the sample times and
        the interpolation of every leg are computed at the end, in one numba call each. ``on_error`` takes
        a packet whose processing raised (its leg's state may be half-updated) and the turn goes on;
        without it the error propagates."""
        store = self._store
        for k, (packet, item) in enumerate(zip(packets, decoded, strict=True)):
            store.tag = k
            try:
                self._step(packet, item)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(packet, exc)
        return store.collect()

    def _step(self, packet: RawPacket, decoded: Decoded | None) -> None:
        """One packet through its sensor's clock and its leg's aligner; the grid points it makes final are
        recorded in the (deferred) track store."""
        if decoded is None:
            return
        sensor, imu = decoded
        leg = self._sensor_leg[packet.sensor_id]
        if packet.t_host_s > leg.now_s:
            leg.now_s = packet.t_host_s
        aligner = leg.aligner
        if imu is not None:
            if aligner is None:
                rate_hz = self.rate_hz or _nominal_rate_hz(imu.period_us)
                if rate_hz is not None:
                    aligner = leg.aligner = LegAligner(
                        sensor.ref.leg_id, rate_hz, max_wait_s=self.max_wait_s, store=self._store
                    )
            mapped = sensor.clock.push_mapped(imu, leg.now_s)
            if aligner is not None:
                self._feed(aligner, sensor, mapped)
                aligner.heard(sensor.ref.segment, sensor.clock.last_accepted_s)
                aligner.note_packet_span(imu.acc_m_s2.shape[0] * imu.period_us * 1e-6)
        for other in leg.sensors:  # the leg's clock advanced: release what waited too long elsewhere
            if other is not sensor and other.clock.holding:
                mapped = other.clock.poll_mapped(leg.now_s)
                if aligner is not None:
                    self._feed(aligner, other, mapped)
        if aligner is not None:
            aligner.advance(leg.now_s)

    def flush(self) -> list[LegSamples]:
        """End of stream: release everything held and emit the remaining grid points."""
        out: list[LegSamples] = []
        for leg in self._legs.values():
            aligner = leg.aligner
            for sensor in leg.sensors:
                mapped = sensor.clock.flush_mapped()
                if aligner is not None:
                    self._feed(aligner, sensor, mapped)
            if aligner is not None:
                aligner.advance(leg.now_s)
                out.extend(chunk for _, chunk in self._store.collect())
                aligner.flush()
                out.extend(chunk for _, chunk in self._store.collect())
        return out

    def stats(self) -> dict[str, SensorStats]:
        out: dict[str, SensorStats] = {}
        for sensor_id, sensor in self._sensors.items():
            clock = sensor.clock.stats()
            dec = sensor.decode_stats
            out[sensor_id] = SensorStats(
                sensor_id=sensor_id,
                leg_id=sensor.ref.leg_id,
                packets=clock.packets,
                samples=clock.samples,
                lost=clock.lost,
                duplicates=clock.duplicates,
                reordered=clock.reordered,
                late=clock.late,
                restarts=clock.restarts,
                malformed=dec.malformed_total,
                malformed_by_reason=dict(dec.malformed),
                clipped=dec.clipped,
                drift_ppm=clock.drift_ppm,
                offset_s=clock.offset_s,
                latency_s=clock.latency_s,
            )
        return out

    @staticmethod
    def _feed(aligner: LegAligner, sensor: _Sensor, mapped: list[Mapped]) -> None:
        # Only adds: the caller advances the aligner once per packet (same output, less work).
        segment = sensor.ref.segment
        for packet, t_first_s, step_s, _missing in mapped:
            aligner.add_mapped(segment, packet.acc_m_s2, packet.gyr_rad_s, t_first_s, step_s)

def warmup() -> None:
    """Compile (or load from numba's cache) the timing kernels by running one leg's front over a second of
    synthetic packets (clock windows close, the grid advances): the first live packet never waits."""
    refs = [SensorRef(f"warmup-{seg}", "warmup", Side.RIGHT, seg) for seg in (Segment.THIGH, Segment.SHANK)]
    front = Front(refs)
    n, period_us = 10, 5000
    for k in range(20):
        for ref in refs:
            header = HEADER_STRUCT.pack(PROTOCOL_VERSION, 0, k, k * n * period_us, period_us, 16, n, 2000)
            front.ingest(RawPacket(ref.sensor_id, 100.0 + (k + 1) * n * period_us * 1e-6,
                                   header + bytes(SAMPLE_SIZE * n)))
    front.flush()
