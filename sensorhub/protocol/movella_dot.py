"""Movella DOT (formerly Xsens DOT): GATT UUIDs, the documented commands and the data decoder.

Written from "Movella DOT BLE Service Specification", document XD0506P, revision C (July 2023; firmware
2.x, DOT v1 and v2). All fields are little-endian. UUIDs are ``1517xxxx-4947-11E9-8646-D663BD873D93``:

- Configuration service 0x1000: Device Control 0x1002 (32 bytes, read/write). Its Visit Index bit 4
  selects the output rate field (u16 at offset 24): 1, 4, 10, 12, 15, 20, 30, 60 Hz for real-time
  streaming (120 Hz only when recording). sensorhub streams at 60 Hz, the fastest real-time rate.
- Measurement service 0x2000: Control 0x2001 (3 bytes: type 1 = measurement, action 1 start / 0 stop,
  payload mode). Payload mode 21 "Rate quantities" notifies on Medium Payload 0x2003 (40 bytes, unused
  tail zero): timestamp u32 (sensor clock, microseconds), calibrated acceleration 3 x f32 (m/s^2,
  specific force in the sensor frame) and angular velocity 3 x f32 (deg/s). The spec's best practice:
  enable the notification first, then write start.
- Battery service 0x3000: Battery 0x3001 (level %, charging).
- Message service 0x7000: Control 0x7001 (write), Acknowledge 0x7002 (read), Notification 0x7003.
  Messages are ``MID LEN DATA CHECKSUM`` with the checksum making all bytes sum to 0 mod 256.
  Synchronisation (MID 0x02): StartSync (SyID 0x01 + the root node's MAC, little-endian), StopSync
  (0x02), GetSyncStatus (0x08); the acknowledge is SyID 0x03 with a result byte (0x00 = success).

DOT frames carry no sequence number; the decoder numbers them from the sensor timestamps (a gap of k
sample periods advances the number by k), so lost notifications are counted like the own profile's.
"""

from __future__ import annotations

import struct

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2, RAD_PER_DEG
from sensorhub.errors import ProtocolError
from sensorhub.model import ImuPacket
from sensorhub.protocol.spec import FLAG_RESTART, SEQ_MODULUS, T0_MODULUS_US

PROTOCOL_NAME = "movella-dot"
SPEC_VERSION = "Movella DOT BLE Service Specification XD0506P rev. C (July 2023)"


def dot_uuid(short: int) -> str:
    return f"1517{short:04x}-4947-11e9-8646-d663bd873d93"


CONFIGURATION_SERVICE_UUID = dot_uuid(0x1000)
DEVICE_CONTROL_UUID = dot_uuid(0x1002)
MEASUREMENT_SERVICE_UUID = dot_uuid(0x2000)
CONTROL_UUID = dot_uuid(0x2001)
MEDIUM_PAYLOAD_UUID = dot_uuid(0x2003)
BATTERY_SERVICE_UUID = dot_uuid(0x3000)
BATTERY_UUID = dot_uuid(0x3001)
MESSAGE_SERVICE_UUID = dot_uuid(0x7000)
MESSAGE_CONTROL_UUID = dot_uuid(0x7001)
MESSAGE_ACK_UUID = dot_uuid(0x7002)
MESSAGE_NOTIFY_UUID = dot_uuid(0x7003)
NAME_PREFIXES = ("Movella DOT", "Xsens DOT")  # advertised names: firmware >= 2.5 / before
COMPANY_ID = 0x0886  # Movella Technologies B.V., in the advertisement's manufacturer data

STREAM_RATE_HZ = 60
OUTPUT_RATES_HZ = (1, 4, 10, 12, 15, 20, 30, 60)  # real-time streaming (120 Hz: recording only)
PERIOD_US = round(1e6 / STREAM_RATE_HZ)
ACC_RANGE_G = 16  # DOT hardware full scale (User Manual): +-16 g, +-2000 deg/s
GYR_RANGE_DPS = 2000

MEASUREMENT_TYPE = 1
PAYLOAD_RATE_QUANTITIES = 21
MEDIUM_PAYLOAD_SIZE = 40
RATE_QUANTITIES = struct.Struct("<I3f3f")  # timestamp, acceleration, angular velocity: 28 bytes

DEVICE_CONTROL_SIZE = 32
VISIT_OUTPUT_RATE = 0x10
OUTPUT_RATE_OFFSET = 24  # after visit index, identify, power, 4 timeouts, tag length and 16-byte tag

MID_SYNC = 0x02
SYNC_START = 0x01
SYNC_STOP = 0x02
SYNC_ACK = 0x03
SYNC_GET_STATUS = 0x08
SYNC_STATUS = 0x51
SYNC_RESULTS = {0x00: "success", 0x05: "not enough samples", 0x07: "skew too large",
                0x08: "starting timing error", 0x09: "not started"}
# A timestamp this far behind the previous one means the sensor restarted its clock (not a reorder).
RESTART_BACK_US = 1_000_000


def control_command(start: bool, payload_mode: int = PAYLOAD_RATE_QUANTITIES) -> bytes:
    """Measurement Control (0x2001): start or stop streaming in ``payload_mode``."""
    return bytes((MEASUREMENT_TYPE, 1 if start else 0, payload_mode))


def output_rate_command(rate_hz: int = STREAM_RATE_HZ) -> bytes:
    """Device Control (0x1002) write that sets only the output rate (Visit Index bit 4)."""
    if rate_hz not in OUTPUT_RATES_HZ:
        raise ProtocolError(f"Movella DOT streams at {OUTPUT_RATES_HZ} Hz, not {rate_hz}")
    body = bytearray(DEVICE_CONTROL_SIZE)
    body[0] = VISIT_OUTPUT_RATE
    struct.pack_into("<H", body, OUTPUT_RATE_OFFSET, rate_hz)
    return bytes(body)


def message(mid: int, data: bytes) -> bytes:
    """A Message-service message: ``MID LEN DATA CHECKSUM`` (all bytes sum to 0 mod 256)."""
    head = bytes((mid, len(data))) + data
    return head + bytes(((-sum(head)) & 0xFF,))


def parse_message(raw: bytes) -> tuple[int, bytes]:
    """(MID, DATA) of a message; ProtocolError for a wrong length or checksum."""
    if len(raw) < 3 or raw[1] != len(raw) - 3:
        raise ProtocolError(f"DOT message of {len(raw)} bytes does not match its LEN field")
    if sum(raw) & 0xFF:
        raise ProtocolError(f"DOT message {raw.hex()} has a bad checksum")
    return raw[0], bytes(raw[2:-1])


def start_sync_command(root_mac: str) -> bytes:
    """StartSync with ``root_mac`` (``AA:BB:CC:DD:EE:FF``; sent least significant byte first)."""
    parts = root_mac.split(":")
    if len(parts) != 6:
        raise ProtocolError(f"root node MAC must be AA:BB:CC:DD:EE:FF, got {root_mac!r}")
    return message(MID_SYNC, bytes((SYNC_START, *reversed([int(p, 16) for p in parts]))))


def stop_sync_command() -> bytes:
    return message(MID_SYNC, bytes((SYNC_STOP,)))


def get_sync_status_command() -> bytes:
    return message(MID_SYNC, bytes((SYNC_GET_STATUS,)))


def sync_ack_result(ack: bytes) -> str:
    """The result of a synchronisation acknowledge read from 0x7002 (``success`` or why it failed)."""
    mid, data = parse_message(ack)
    if mid != MID_SYNC or not data or data[0] != SYNC_ACK or len(data) < 2:
        raise ProtocolError(f"not a synchronisation acknowledge: {ack.hex()}")
    return SYNC_RESULTS.get(data[1], f"result 0x{data[1]:02x}")


_ACC_RANGE_M_S2 = ACC_RANGE_G * GRAVITY_M_S2
_GYR_RANGE_RAD_S = GYR_RANGE_DPS * RAD_PER_DEG


class MovellaDotDecoder:
    """One sensor's Rate quantities notifications -> packets of one sample (numbered by timestamp)."""

    protocol = PROTOCOL_NAME

    def __init__(self) -> None:
        self._last_us: int | None = None
        self._seq = 0

    def decode(self, sensor_id: str, t_host_s: float, payload: bytes) -> ImuPacket:
        if not RATE_QUANTITIES.size <= len(payload) <= MEDIUM_PAYLOAD_SIZE:
            raise ProtocolError(f"DOT Rate quantities notification of {len(payload)} bytes; expected "
                                f"{RATE_QUANTITIES.size}..{MEDIUM_PAYLOAD_SIZE}")
        ts_us, ax, ay, az, gx, gy, gz = RATE_QUANTITIES.unpack_from(payload)
        flags = 0
        if self._last_us is None:
            flags = FLAG_RESTART
        else:
            dt_us = (ts_us - self._last_us) % T0_MODULUS_US
            if dt_us == 0 or dt_us > T0_MODULUS_US - RESTART_BACK_US:
                flags = FLAG_RESTART  # the same stamp again or a clock that went back: a new run
            else:
                self._seq += max(1, round(dt_us / PERIOD_US))
        if flags:
            self._seq = 0
        self._last_us = ts_us
        return ImuPacket(
            sensor_id=sensor_id,
            t_host_s=t_host_s,
            seq=self._seq % SEQ_MODULUS,
            t0_sensor_us=ts_us,
            period_us=PERIOD_US,
            acc_m_s2=np.array([[ax, ay, az]], dtype=np.float64),
            gyr_rad_s=np.array([[gx, gy, gz]], dtype=np.float64) * RAD_PER_DEG,
            acc_range_m_s2=_ACC_RANGE_M_S2,
            gyr_range_rad_s=_GYR_RANGE_RAD_S,
            flags=flags,
        )

    def clipped_samples(self, packet: ImuPacket, payload: bytes) -> int:
        """Rate quantities carry no status word: a value at the hardware's full scale is clipped."""
        acc = np.abs(packet.acc_m_s2) >= 0.999 * packet.acc_range_m_s2
        gyr = np.abs(packet.gyr_rad_s) >= 0.999 * packet.gyr_range_rad_s
        return int(np.count_nonzero(acc.any(axis=1) | gyr.any(axis=1)))
