"""Bytes -> :class:`~sensorhub.model.ImuPacket`: the sensorhub-v1 decoder, a registry of decoders by
protocol name, and per-sensor decode statistics.

Decoding is one header ``struct`` unpack plus a few numpy operations on the sample block (no per-sample
Python), because the live path decodes every packet of up to 1000 sensors on one core.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2
from sensorhub.errors import ProtocolError
from sensorhub.model import ImuPacket, RawPacket
from sensorhub.protocol import movella_dot, spec
from sensorhub.protocol._kernels import scale_samples, scale_samples_many

log = logging.getLogger(__name__)

_I16_LE = np.dtype("<i2")
_ACC_RANGES = frozenset(spec.ACC_RANGES_G)
_GYR_RANGES = frozenset(spec.GYR_RANGES_DPS)


class MalformedReason(StrEnum):
    """Why a packet was rejected; the key under which :class:`DecodeStats` counts it."""

    TOO_SHORT = "too_short"
    BAD_VERSION = "bad_version"
    RESERVED_FLAGS = "reserved_flags"
    BAD_SAMPLE_COUNT = "bad_sample_count"
    LENGTH_MISMATCH = "length_mismatch"
    BAD_ACC_RANGE = "bad_acc_range"
    BAD_GYR_RANGE = "bad_gyr_range"
    ZERO_PERIOD = "zero_period"
    DECODER_FAILURE = "decoder_failure"  # a (third-party) decoder raised something else than ProtocolError


class MalformedPacketError(ProtocolError):
    """A packet that violates the wire protocol; ``reason`` classifies it, the message gives the values."""

    def __init__(self, reason: MalformedReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


def decode_packet(sensor_id: str, t_host_s: float, payload: bytes) -> ImuPacket:
    """Decode one sensorhub-v1 data notification into SI units (sensor frame, sensor clock).

    Raises :class:`MalformedPacketError` (a :class:`~sensorhub.errors.ProtocolError`) naming the first
    violated rule of ``docs/protocol.md``.
    """
    return decode_packet_counting(sensor_id, t_host_s, payload)[0]


def _checked_header(payload: bytes) -> tuple[int, int, int, int, int, int, int]:
    """The header fields (flags, seq, t0_us, period_us, acc_g, n, gyr_dps) of a well-formed packet;
    :class:`MalformedPacketError` naming the first violated rule otherwise."""
    size = len(payload)
    if size < spec.HEADER_SIZE:
        raise MalformedPacketError(
            MalformedReason.TOO_SHORT, f"{size} bytes, a data packet has at least {spec.HEADER_SIZE}"
        )
    version, flags, seq, t0_us, period_us, acc_g, n, gyr_dps = spec.HEADER_STRUCT.unpack_from(payload)
    if version != spec.PROTOCOL_VERSION:
        raise MalformedPacketError(MalformedReason.BAD_VERSION, f"version {version}, expected 1")
    if flags & spec.FLAGS_RESERVED:
        raise MalformedPacketError(
            MalformedReason.RESERVED_FLAGS, f"flags 0x{flags:02x} set reserved bits 3-7"
        )
    if not spec.MIN_SAMPLES <= n <= spec.MAX_SAMPLES:
        raise MalformedPacketError(
            MalformedReason.BAD_SAMPLE_COUNT, f"n = {n}, allowed {spec.MIN_SAMPLES}..{spec.MAX_SAMPLES}"
        )
    if size != spec.HEADER_SIZE + spec.SAMPLE_SIZE * n:
        raise MalformedPacketError(
            MalformedReason.LENGTH_MISMATCH,
            f"{size} bytes but n = {n} needs {spec.HEADER_SIZE + spec.SAMPLE_SIZE * n}",
        )
    if acc_g not in _ACC_RANGES:
        raise MalformedPacketError(
            MalformedReason.BAD_ACC_RANGE, f"acc_range_g {acc_g}, allowed {spec.ACC_RANGES_G}"
        )
    if gyr_dps not in _GYR_RANGES:
        raise MalformedPacketError(
            MalformedReason.BAD_GYR_RANGE, f"gyr_range_dps {gyr_dps}, allowed {spec.GYR_RANGES_DPS}"
        )
    if period_us == 0:
        raise MalformedPacketError(MalformedReason.ZERO_PERIOD, "period_us is 0")
    return flags, seq, t0_us, period_us, acc_g, n, gyr_dps


def _imu(sensor_id: str, t_host_s: float, header: tuple[int, int, int, int, int, int, int],
         acc_m_s2: np.ndarray, gyr_rad_s: np.ndarray) -> ImuPacket:
    flags, seq, t0_us, period_us, acc_g, _n, gyr_dps = header
    return ImuPacket(
        sensor_id=sensor_id,
        t_host_s=t_host_s,
        seq=seq,
        t0_sensor_us=t0_us,
        period_us=period_us,
        acc_m_s2=acc_m_s2,
        gyr_rad_s=gyr_rad_s,
        acc_range_m_s2=acc_g * GRAVITY_M_S2,
        gyr_range_rad_s=gyr_dps * math.pi / 180.0,
        flags=flags,
    )


def decode_packet_counting(sensor_id: str, t_host_s: float, payload: bytes) -> tuple[ImuPacket, int]:
    """:func:`decode_packet` plus the number of samples with any raw value at full scale.

    Counted from the data, not from the flags (a device may not set the clipping flags).
    """
    header = _checked_header(payload)
    _flags, _seq, _t0, _period, acc_g, n, gyr_dps = header
    raw = np.frombuffer(payload, dtype=_I16_LE, count=6 * n, offset=spec.HEADER_SIZE).reshape(n, 6)
    acc_m_s2, gyr_rad_s, clipped = scale_samples(raw, float(acc_g), float(gyr_dps))
    return _imu(sensor_id, t_host_s, header, acc_m_s2, gyr_rad_s), clipped


_PENDING = MalformedPacketError(MalformedReason.DECODER_FAILURE, "not decoded")  # a slot not yet filled


def decode_many_counting(
    packets: Sequence[RawPacket],
) -> list[tuple[ImuPacket, int] | MalformedPacketError]:
    """:func:`decode_packet_counting` of many sensorhub-v1 packets with ONE numba call for all their
    samples (the live loop decodes a turn's packets at once); bit-identical to decoding each alone.
    A malformed packet gives its error in its place; the others are decoded."""
    out: list[tuple[ImuPacket, int] | MalformedPacketError] = [_PENDING] * len(packets)
    headers: list[tuple[int, tuple[int, int, int, int, int, int, int]]] = []
    blocks: list[bytes] = []
    for k, packet in enumerate(packets):
        try:
            header = _checked_header(packet.payload)
        except MalformedPacketError as exc:
            out[k] = exc
            continue
        headers.append((k, header))
        blocks.append(packet.payload[spec.HEADER_SIZE:])
    if not headers:
        return out
    raw = np.frombuffer(b"".join(blocks), dtype=_I16_LE).reshape(-1, 6)
    bounds = np.zeros(len(headers) + 1, dtype=np.int64)
    np.cumsum([h[5] for _, h in headers], out=bounds[1:])
    acc_g = np.array([float(h[4]) for _, h in headers])
    gyr_dps = np.array([float(h[6]) for _, h in headers])
    acc_m_s2, gyr_rad_s, clipped = scale_samples_many(raw, bounds, acc_g, gyr_dps)
    for j, (k, header) in enumerate(headers):
        a, b = int(bounds[j]), int(bounds[j + 1])
        packet = packets[k]
        imu = _imu(packet.sensor_id, packet.t_host_s, header, acc_m_s2[a:b], gyr_rad_s[a:b])
        out[k] = (imu, int(clipped[j]))
    return out


# --- decoders by protocol name --------------------------------------------------------------------


class PacketDecoder(Protocol):
    """Turns one notification of a device into an :class:`ImuPacket`, or raises ProtocolError.

    One instance per sensor: decoders of commercial devices may keep state (e.g. frame numbering). A
    decoder whose device splits a sample over several notifications returns None until it is whole.
    """

    protocol: str

    def decode(self, sensor_id: str, t_host_s: float, payload: bytes) -> ImuPacket | None: ...

    def clipped_samples(self, packet: ImuPacket, payload: bytes) -> int:
        """Samples of ``packet`` (just returned by ``decode``) with an axis at full scale."""
        ...


DecoderFactory = Callable[[], PacketDecoder]


class SensorhubV1Decoder:
    """The decoder of the sensorhub GATT profile v1 (one per sensor)."""

    protocol = spec.PROTOCOL_NAME

    def __init__(self) -> None:
        self._last: tuple[ImuPacket | None, int] = (None, 0)

    def decode(self, sensor_id: str, t_host_s: float, payload: bytes) -> ImuPacket:
        packet, clipped = decode_packet_counting(sensor_id, t_host_s, payload)
        self._last = (packet, clipped)  # counted by the decode kernel, handed out by clipped_samples
        return packet

    def clipped_samples(self, packet: ImuPacket, payload: bytes) -> int:
        last, clipped = self._last
        if last is packet:
            return clipped
        return decode_packet_counting(packet.sensor_id, packet.t_host_s, payload)[1]


def _witmotion_decoder() -> PacketDecoder:
    from sensorhub.protocol.witmotion import WitMotionDecoder  # lazy: only configs that use it pay

    return WitMotionDecoder()


def _movella_dot_decoder() -> PacketDecoder:
    return movella_dot.MovellaDotDecoder()


def _metamotion_decoder() -> PacketDecoder:
    from sensorhub.protocol.metamotion import MetaMotionDecoder

    return MetaMotionDecoder()


_REGISTRY: dict[str, DecoderFactory] = {
    spec.PROTOCOL_NAME: SensorhubV1Decoder,
    "witmotion": _witmotion_decoder,
    "movella-dot": _movella_dot_decoder,
    "metamotion": _metamotion_decoder,
}

# Rates a leg's time grid may run at: the own profile's, and the fixed rate of a commercial profile that
# is not one of them (Movella DOT's fastest real-time rate, 60 Hz).
GRID_RATES_HZ = tuple(sorted({*spec.RATES_HZ, movella_dot.STREAM_RATE_HZ}))


def register_decoder(protocol: str, factory: DecoderFactory, *, replace: bool = False) -> None:
    """Make ``make_decoder(protocol)`` build decoders with ``factory`` (e.g. a WitMotion decoder)."""
    if protocol in _REGISTRY and not replace:
        raise ProtocolError(f"a decoder for protocol {protocol!r} is already registered (pass replace=True)")
    _REGISTRY[protocol] = factory


def available_protocols() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def make_decoder(protocol: str = spec.PROTOCOL_NAME) -> PacketDecoder:
    """A new decoder for ``protocol``; :class:`ProtocolError` lists the known names if it is unknown."""
    try:
        factory = _REGISTRY[protocol]
    except KeyError:
        raise ProtocolError(
            f"unknown sensor protocol {protocol!r}; known protocols: {', '.join(available_protocols())}"
        ) from None
    return factory()


# --- statistics and the never-raising path ----------------------------------------------------------

LOG_INTERVAL_S = 10.0
"""At most one malformed-packet log line per sensor per this interval (the first one always logs)."""


@dataclass(slots=True)
class DecodeStats:
    """Decode counters of one sensor."""

    sensor_id: str
    packets: int = 0  # decoded successfully
    samples: int = 0
    clipped: int = 0  # samples with any axis at full scale
    malformed: dict[str, int] = field(default_factory=dict)  # by MalformedReason value
    last_error: str = ""
    _suppressed: int = field(default=0, repr=False)
    _last_log_s: float = field(default=-math.inf, repr=False)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def count_malformed(self, reason: str, message: str) -> None:
        self.malformed[reason] = self.malformed.get(reason, 0) + 1
        self.last_error = message
        now_s = time.monotonic()  # only paces logging; never influences decoded data
        if now_s - self._last_log_s >= LOG_INTERVAL_S:
            extra = f" ({self._suppressed} more since the last report)" if self._suppressed else ""
            log.warning("sensor %s: dropped malformed packet: %s%s", self.sensor_id, message, extra)
            self._last_log_s = now_s
            self._suppressed = 0
        else:
            self._suppressed += 1


def decode_or_count(packet: RawPacket, decoder: PacketDecoder, stats: DecodeStats) -> ImuPacket | None:
    """Decode ``packet``; a malformed one is counted in ``stats``, logged (rate-limited) and gives None
    (as does a notification the decoder holds until its sample is whole).

    Never raises: a pipeline must survive any byte string a radio or a broker hands it.
    """
    try:
        imu = decoder.decode(packet.sensor_id, packet.t_host_s, packet.payload)
        if imu is None:
            return None  # part of a sample: the decoder holds it until the rest arrives
        clipped = decoder.clipped_samples(imu, packet.payload)
    except MalformedPacketError as exc:
        stats.count_malformed(exc.reason.value, str(exc))
        return None
    except ProtocolError as exc:
        stats.count_malformed(getattr(exc, "reason", MalformedReason.DECODER_FAILURE.value), str(exc))
        return None
    except Exception as exc:  # a buggy plugin decoder must not stop the pipeline; counted and logged
        stats.count_malformed(
            MalformedReason.DECODER_FAILURE.value, f"{decoder.protocol} decoder raised {exc!r}"
        )
        return None
    stats.packets += 1
    stats.samples += imu.n_samples
    stats.clipped += clipped
    return imu


def warm_up() -> None:
    """Compile (or load from cache) the decode kernel now, so the first live packet does not wait for it."""
    header = spec.HEADER_STRUCT.pack(spec.PROTOCOL_VERSION, 0, 0, 0, 5000, 16, 1, 2000)
    decode_packet("warm-up", 0.0, header + bytes(spec.SAMPLE_SIZE))
