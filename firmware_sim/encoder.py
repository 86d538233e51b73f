"""Sensor-side bytes of the sensorhub wire protocol, version 1 (docs/protocol.md).

Written from the spec's byte tables, independently of sensorhub's decoder; the golden vectors in
``tests/golden/protocol_v1.json`` pin both. The encoder builds data notifications and the info payload and
parses control commands, rejecting anything the spec does not allow (the GATT layer answers ATT 0x80).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .exceptions import FirmwareSimError

PROTOCOL_VERSION = 1
HEADER_SIZE = 14
SAMPLE_SIZE = 12
MAX_SAMPLES_PER_PACKET = 19  # 14 + 12 * 19 = 242 bytes fit a 247-byte ATT MTU

ACC_RANGES_G = (2, 4, 8, 16, 32)
GYR_RANGES_DPS = (125, 250, 500, 1000, 2000, 4000)
RATES_HZ = (50, 100, 200, 400, 800)

FLAG_ACC_CLIPPED = 0x01
FLAG_GYR_CLIPPED = 0x02
FLAG_RESTART = 0x04
_FLAGS_ALLOWED = FLAG_ACC_CLIPPED | FLAG_GYR_CLIPPED | FLAG_RESTART

OPCODE_START = 0x01
OPCODE_STOP = 0x02
OPCODE_IDENTIFY = 0x03

ATT_APPLICATION_ERROR = 0x80

RAW_MIN = -32768
RAW_MAX = 32767

# <: little-endian, no padding. Header: version, flags, seq, t0_us, period_us, acc_range_g, n, gyr_range_dps
_HEADER = struct.Struct("<BBHIHBBH")
_START_PAYLOAD = struct.Struct("<HBHB")  # rate_hz, acc_range_g, gyr_range_dps, samples_per_packet
_INFO = struct.Struct("<BBHBHB")


class EncodeError(FirmwareSimError):
    """The simulator asked for a packet the protocol cannot carry (a bug in the caller)."""


class CommandRejected(FirmwareSimError):  # noqa: N818 - named for the ATT outcome
    """A control write the device refuses; a GATT server answers it with ``att_error``."""

    att_error = ATT_APPLICATION_ERROR


@dataclass(frozen=True, slots=True)
class StartCommand:
    rate_hz: int
    acc_range_g: int
    gyr_range_dps: int
    samples_per_packet: int


@dataclass(frozen=True, slots=True)
class StopCommand:
    pass


@dataclass(frozen=True, slots=True)
class IdentifyCommand:
    pass


Command = StartCommand | StopCommand | IdentifyCommand


def clip_flags(raw: NDArray[np.int16]) -> int:
    """Flags bits 0/1: any accelerometer (columns 0-2) or gyroscope (3-5) sample at full scale."""
    raw = np.asarray(raw)
    flags = 0
    if np.any((raw[:, 0:3] == RAW_MIN) | (raw[:, 0:3] == RAW_MAX)):
        flags |= FLAG_ACC_CLIPPED
    if np.any((raw[:, 3:6] == RAW_MIN) | (raw[:, 3:6] == RAW_MAX)):
        flags |= FLAG_GYR_CLIPPED
    return flags


def encode_data(
    *,
    flags: int,
    seq: int,
    t0_us: int,
    period_us: int,
    acc_range_g: int,
    gyr_range_dps: int,
    raw: NDArray[np.integer] | list[list[int]],
) -> bytes:
    """One data notification: header plus ``n`` samples ``ax, ay, az, gx, gy, gz`` as int16.

    ``seq`` and ``t0_us`` are taken modulo their field width (the device counts past the wrap).
    """
    samples = np.asarray(raw)
    if samples.ndim != 2 or samples.shape[1] != 6:
        raise EncodeError(f"raw samples must be shaped (n, 6), got {samples.shape}")
    n = int(samples.shape[0])
    if not 1 <= n <= MAX_SAMPLES_PER_PACKET:
        raise EncodeError(f"a packet carries 1..{MAX_SAMPLES_PER_PACKET} samples, got {n}")
    if np.any(samples < RAW_MIN) or np.any(samples > RAW_MAX):
        raise EncodeError("raw samples must fit int16; quantise and clip before encoding")
    if flags & ~_FLAGS_ALLOWED:
        raise EncodeError(f"flags bits 3-7 are reserved, got {flags:#04x}")
    if acc_range_g not in ACC_RANGES_G:
        raise EncodeError(f"acc_range_g must be one of {ACC_RANGES_G}, got {acc_range_g}")
    if gyr_range_dps not in GYR_RANGES_DPS:
        raise EncodeError(f"gyr_range_dps must be one of {GYR_RANGES_DPS}, got {gyr_range_dps}")
    if not 1 <= period_us <= 0xFFFF:
        raise EncodeError(f"period_us must be 1..65535, got {period_us}")
    header = _HEADER.pack(
        PROTOCOL_VERSION,
        flags,
        seq & 0xFFFF,
        t0_us & 0xFFFFFFFF,
        period_us,
        acc_range_g,
        n,
        gyr_range_dps,
    )
    return header + samples.astype("<i2").tobytes()


def encode_info(
    *, streaming: bool, rate_hz: int, acc_range_g: int, gyr_range_dps: int, samples_per_packet: int
) -> bytes:
    """The 8-byte ``info`` characteristic value."""
    return _INFO.pack(
        PROTOCOL_VERSION, 1 if streaming else 0, rate_hz, acc_range_g, gyr_range_dps, samples_per_packet
    )


def encode_command(command: Command) -> bytes:
    """Bytes a host writes to ``control`` (used by the simulator's own transports and tests)."""
    if isinstance(command, StartCommand):
        _check_start(command)
        return bytes([OPCODE_START]) + _START_PAYLOAD.pack(
            command.rate_hz, command.acc_range_g, command.gyr_range_dps, command.samples_per_packet
        )
    if isinstance(command, StopCommand):
        return bytes([OPCODE_STOP])
    return bytes([OPCODE_IDENTIFY])


def parse_command(payload: bytes) -> Command:
    """Parse a control write; raise ``CommandRejected`` for an unknown opcode, wrong length or value."""
    if len(payload) == 0:
        raise CommandRejected("empty control write")
    opcode = payload[0]
    if opcode == OPCODE_START:
        if len(payload) != 1 + _START_PAYLOAD.size:
            raise CommandRejected(f"START takes {1 + _START_PAYLOAD.size} bytes, got {len(payload)}")
        rate_hz, acc_range_g, gyr_range_dps, spp = _START_PAYLOAD.unpack_from(payload, 1)
        command = StartCommand(rate_hz, acc_range_g, gyr_range_dps, spp)
        _check_start(command)
        return command
    if opcode in (OPCODE_STOP, OPCODE_IDENTIFY):
        if len(payload) != 1:
            raise CommandRejected(f"opcode {opcode:#04x} takes no payload, got {len(payload) - 1} bytes")
        return StopCommand() if opcode == OPCODE_STOP else IdentifyCommand()
    raise CommandRejected(f"unknown opcode {opcode:#04x}")


def _check_start(command: StartCommand) -> None:
    if command.rate_hz not in RATES_HZ:
        raise CommandRejected(f"rate_hz must be one of {RATES_HZ}, got {command.rate_hz}")
    if command.acc_range_g not in ACC_RANGES_G:
        raise CommandRejected(f"acc_range_g must be one of {ACC_RANGES_G}, got {command.acc_range_g}")
    if command.gyr_range_dps not in GYR_RANGES_DPS:
        raise CommandRejected(f"gyr_range_dps must be one of {GYR_RANGES_DPS}, got {command.gyr_range_dps}")
    if not 1 <= command.samples_per_packet <= MAX_SAMPLES_PER_PACKET:
        raise CommandRejected(
            f"samples_per_packet must be 1..{MAX_SAMPLES_PER_PACKET}, got {command.samples_per_packet}"
        )
