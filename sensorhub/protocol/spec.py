"""The sensorhub GATT profile, version 1 (``docs/protocol.md`` is binding): UUIDs, constants and the
host side of the control and info characteristics.

The data-notification layout lives here as constants; :mod:`sensorhub.protocol.decode` parses it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from sensorhub.errors import ProtocolError

PROTOCOL_NAME = "sensorhub-v1"
PROTOCOL_VERSION = 1

_UUID_BASE = "-8f4b-4c6e-9d2a-5e4e534f5248"
SERVICE_UUID = "6a3e0001" + _UUID_BASE
DATA_UUID = "6a3e0002" + _UUID_BASE
CONTROL_UUID = "6a3e0003" + _UUID_BASE
INFO_UUID = "6a3e0004" + _UUID_BASE
BATTERY_SERVICE_UUID = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"
DEVICE_NAME_PREFIX = "SH-IMU-"

# --- data notification ---------------------------------------------------------------------------
HEADER_STRUCT = struct.Struct("<BBHIHBBH")  # version, flags, seq, t0_us, period_us, acc_g, n, gyr_dps
HEADER_SIZE = 14
SAMPLE_SIZE = 12  # 6 x i16: ax, ay, az, gx, gy, gz
MIN_SAMPLES = 1
MAX_SAMPLES = 19  # 14 + 12 * 19 = 242 bytes fill a 247-byte ATT MTU
RAW_FULL_SCALE = 32768.0  # raw / 32768 * range
RAW_CLIP_HIGH = 32767
RAW_CLIP_LOW = -32768

FLAG_ACC_CLIPPED = 0x01
FLAG_GYR_CLIPPED = 0x02
FLAG_RESTART = 0x04
FLAGS_RESERVED = 0xF8

SEQ_MODULUS = 1 << 16
T0_MODULUS_US = 1 << 32

ACC_RANGES_G = (2, 4, 8, 16, 32)
GYR_RANGES_DPS = (125, 250, 500, 1000, 2000, 4000)
RATES_HZ = (50, 100, 200, 400, 800)

assert HEADER_STRUCT.size == HEADER_SIZE


class Opcode(IntEnum):
    START = 0x01
    STOP = 0x02
    IDENTIFY = 0x03


class DeviceState(IntEnum):
    IDLE = 0
    STREAMING = 1


_START_STRUCT = struct.Struct("<BHBHB")  # opcode, rate_hz, acc_range_g, gyr_range_dps, samples/packet
_INFO_STRUCT = struct.Struct("<BBHBHB")  # version, state, rate_hz, acc_range_g, gyr_range_dps, samples


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """What START asks for; validated on construction (the device rejects anything else)."""

    rate_hz: int = 200
    acc_range_g: int = 16
    gyr_range_dps: int = 2000
    samples_per_packet: int = 8

    def __post_init__(self) -> None:
        check_settings(self.rate_hz, self.acc_range_g, self.gyr_range_dps, self.samples_per_packet)

    @property
    def period_us(self) -> int:
        return round(1e6 / self.rate_hz)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Content of the ``info`` characteristic."""

    version: int
    state: DeviceState
    settings: StreamSettings


def check_settings(rate_hz: int, acc_range_g: int, gyr_range_dps: int, samples_per_packet: int) -> None:
    """Raise :class:`ProtocolError` naming the first unsupported value."""
    if rate_hz not in RATES_HZ:
        raise ProtocolError(f"unsupported rate_hz {rate_hz}; supported: {RATES_HZ}")
    if acc_range_g not in ACC_RANGES_G:
        raise ProtocolError(f"unsupported acc_range_g {acc_range_g}; supported: {ACC_RANGES_G}")
    if gyr_range_dps not in GYR_RANGES_DPS:
        raise ProtocolError(f"unsupported gyr_range_dps {gyr_range_dps}; supported: {GYR_RANGES_DPS}")
    if not MIN_SAMPLES <= samples_per_packet <= MAX_SAMPLES:
        raise ProtocolError(
            f"unsupported samples_per_packet {samples_per_packet}; supported: {MIN_SAMPLES}..{MAX_SAMPLES}"
        )


def encode_start(settings: StreamSettings) -> bytes:
    """START command bytes (7 bytes) for the ``control`` characteristic."""
    return _START_STRUCT.pack(
        Opcode.START,
        settings.rate_hz,
        settings.acc_range_g,
        settings.gyr_range_dps,
        settings.samples_per_packet,
    )


def encode_stop() -> bytes:
    return bytes((Opcode.STOP,))


def encode_identify() -> bytes:
    return bytes((Opcode.IDENTIFY,))


def parse_info(payload: bytes) -> DeviceInfo:
    """Parse the ``info`` characteristic; :class:`ProtocolError` says what is wrong."""
    if len(payload) != _INFO_STRUCT.size:
        raise ProtocolError(f"info payload has {len(payload)} bytes, expected {_INFO_STRUCT.size}")
    version, state, rate_hz, acc_g, gyr_dps, per_packet = _INFO_STRUCT.unpack(payload)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"info reports protocol version {version}, this host speaks {PROTOCOL_VERSION}")
    try:
        device_state = DeviceState(state)
    except ValueError:
        raise ProtocolError(f"info reports unknown state {state} (0 idle, 1 streaming)") from None
    return DeviceInfo(version, device_state, StreamSettings(rate_hz, acc_g, gyr_dps, per_packet))
