"""WitMotion BLE IMUs (WT901BLE, WT9011DCL, BWT901BLECL): GATT UUIDs, rate command and decoder.

Public protocol ("Bluetooth 5.0 communication protocol", WitMotion SDK docs): the sensor notifies on
``ffe4`` frames of 20 bytes, ``0x55 0x61`` followed by nine little-endian int16 values
``ax ay az wx wy wz roll pitch yaw``; acceleration full scale +-16 g, angular rate +-2000 deg/s,
angles +-180 deg (unused here: sensorhub runs its own orientation filter). One notification may carry
several frames; other frame types (``0x71`` register replies) are skipped. Commands are written to
``ffe9`` as ``0xFF 0xAA register low high``; register 0x03 sets the output rate.

WitMotion frames carry neither a sequence number nor a sensor timestamp. The decoder numbers the frames
itself and stamps them on the host clock at the configured rate, so a lost notification is not
detectable from the data alone (the link layer retransmits; a drop is still seen as a gap).

Register with ``register_decoder(PROTOCOL_NAME, WitMotionDecoder)`` from ``sensorhub.protocol``.
"""

from __future__ import annotations

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2, RAD_PER_DEG
from sensorhub.errors import ProtocolError
from sensorhub.model import ImuPacket

PROTOCOL_NAME = "witmotion"

SERVICE_UUID = "0000ffe5-0000-1000-8000-00805f9a34fb"
NOTIFY_UUID = "0000ffe4-0000-1000-8000-00805f9a34fb"
WRITE_UUID = "0000ffe9-0000-1000-8000-00805f9a34fb"
NAME_PREFIXES = ("WT901", "WT9011", "BWT901")

FRAME_HEADER = 0x55
FRAME_IMU = 0x61
FRAME_SIZE = 20
ACC_RANGE_G = 16
GYR_RANGE_DPS = 2000
RAW_FULL_SCALE = 32768.0

_ACC_SCALE_M_S2 = ACC_RANGE_G * GRAVITY_M_S2 / RAW_FULL_SCALE
_GYR_SCALE_RAD_S = GYR_RANGE_DPS * RAD_PER_DEG / RAW_FULL_SCALE
_I16_LE = np.dtype("<i2")

# Output-rate register values of the BLE 5.0 protocol.
RATE_CODES = {10: 0x06, 20: 0x07, 50: 0x08, 100: 0x09, 200: 0x0B}
REGISTER_RATE = 0x03


def rate_command(rate_hz: int) -> bytes:
    """The command that sets the output rate (nearest supported rate at or below ``rate_hz``)."""
    supported = [r for r in sorted(RATE_CODES) if r <= rate_hz] or [min(RATE_CODES)]
    return bytes((0xFF, 0xAA, REGISTER_RATE, RATE_CODES[supported[-1]], 0x00))


class WitMotionDecoder:
    """Stateful per sensor: numbers notifications (``seq``) and spaces frames at the configured rate."""

    protocol = PROTOCOL_NAME

    def __init__(self, rate_hz: float = 200.0) -> None:
        if rate_hz <= 0:
            raise ProtocolError(f"rate_hz must be positive, got {rate_hz}")
        self.period_us = round(1e6 / rate_hz)
        self._packets = 0

    def decode(self, sensor_id: str, t_host_s: float, payload: bytes) -> ImuPacket:
        rows = []
        offset = 0
        while offset + FRAME_SIZE <= len(payload):
            if payload[offset] != FRAME_HEADER:
                raise ProtocolError(f"WitMotion frame at byte {offset} does not start with 0x55")
            if payload[offset + 1] == FRAME_IMU:
                rows.append(np.frombuffer(payload, dtype=_I16_LE, count=9, offset=offset + 2)[:6])
            offset += FRAME_SIZE
        if offset != len(payload):
            raise ProtocolError(f"WitMotion notification of {len(payload)} bytes is not whole 20-byte frames")
        if not rows:
            raise ProtocolError("WitMotion notification without an acceleration/gyro frame (0x61)")
        raw = np.vstack(rows).astype(np.float64)
        n = raw.shape[0]
        seq = self._packets & 0xFFFF
        self._packets += 1
        # Host-clock stamps: the last frame arrived now, earlier ones one period apart.
        t0_us = (round(t_host_s * 1e6) - (n - 1) * self.period_us) & 0xFFFFFFFF
        return ImuPacket(
            sensor_id=sensor_id,
            t_host_s=t_host_s,
            seq=seq,
            t0_sensor_us=t0_us,
            period_us=self.period_us,
            acc_m_s2=raw[:, 0:3] * _ACC_SCALE_M_S2,
            gyr_rad_s=raw[:, 3:6] * _GYR_SCALE_RAD_S,
            acc_range_m_s2=ACC_RANGE_G * GRAVITY_M_S2,
            gyr_range_rad_s=GYR_RANGE_DPS * RAD_PER_DEG,
        )

    def clipped_samples(self, packet: ImuPacket, payload: bytes) -> int:
        full_acc = np.abs(packet.acc_m_s2) >= packet.acc_range_m_s2 * (1.0 - 1.0 / RAW_FULL_SCALE)
        full_gyr = np.abs(packet.gyr_rad_s) >= packet.gyr_range_rad_s * (1.0 - 1.0 / RAW_FULL_SCALE)
        return int(np.count_nonzero(full_acc.any(axis=1) | full_gyr.any(axis=1)))


def encode_frame(
    acc_raw: tuple[int, int, int], gyr_raw: tuple[int, int, int], angle_raw: tuple[int, int, int] = (0, 0, 0)
) -> bytes:
    """One 0x61 frame (for tests and simulators)."""
    values = np.array([*acc_raw, *gyr_raw, *angle_raw], dtype=_I16_LE)
    return bytes((FRAME_HEADER, FRAME_IMU)) + values.tobytes()
