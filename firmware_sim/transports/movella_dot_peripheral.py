"""A simulated Movella DOT served as a BLE peripheral (Bumble), written from the public "Movella DOT BLE
Service Specification" (XD0506P, revision C): configuration, measurement, battery and message services.

What it implements of the spec: Device Control (0x1002) output-rate writes (Visit Index bit 4); the
measurement Control (0x2001) start/stop of payload mode 21 "Rate quantities" notified on the Medium
Payload characteristic (0x2003, 40 bytes: timestamp u32 us, acceleration 3 x f32 m/s^2, angular
velocity 3 x f32 deg/s, zero padding); Battery (0x3001: level, charging); and the synchronisation
messages of the Message service (StartSync / StopSync / GetSyncStatus with their acknowledge and
notifications). Other payload modes are refused (ATT error 0x80). The DOT timestamp is the device's own
microsecond clock, so the simulated clock drift shows on the host exactly as on a real DOT.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

import numpy as np
from bumble import gatt
from bumble.att import ATT_Error
from bumble.core import AdvertisingData
from bumble.device import Connection

from firmware_sim.device import DevicePacket, DeviceState, StreamSettings
from firmware_sim.encoder import ATT_APPLICATION_ERROR
from firmware_sim.transports.ble_peripheral import BlePeripheral
from sensorhub.conventions import GRAVITY_M_S2

log = logging.getLogger(__name__)


def dot_uuid(short: int) -> str:
    return f"1517{short:04x}-4947-11e9-8646-d663bd873d93"


COMPANY_ID = 0x0886
RATES_HZ = (1, 4, 10, 12, 15, 20, 30, 60)
DEFAULT_RATE_HZ = 60
RATE_QUANTITIES = 21
MEDIUM_PAYLOAD_LEN = 40
ACC_RANGE_G, GYR_RANGE_DPS = 16, 2000  # the IMU's full scale; the device samples at it
SYNCED, UNSYNCED = 0x04, 0x09


@dataclass(frozen=True, slots=True)
class DotSample:
    """What one notification carried, as the float32 values on the wire."""

    timestamp_us: int
    acc_m_s2: tuple[float, float, float]
    gyr_dps: tuple[float, float, float]


def _message(mid: int, data: bytes) -> bytes:
    head = bytes((mid, len(data))) + data
    return head + bytes(((-sum(head)) & 0xFF,))


@dataclass(eq=False)
class MovellaDotPeripheral(BlePeripheral):
    """One simulated DOT; ``samples`` logs every notification that reached the radio."""

    rate_hz: int = DEFAULT_RATE_HZ
    synced: bool = False
    samples: list[DotSample] = field(default_factory=list)
    control_writes: list[bytes] = field(default_factory=list)
    _ack: bytes = b""
    _message_char: gatt.Characteristic[bytes] | None = None

    def services(self) -> list[gatt.Service]:
        props, perms = gatt.Characteristic.Properties, gatt.Characteristic
        rw = gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE

        def char(short: int, p: gatt.Characteristic.Properties, value: gatt.CharacteristicValue | bytes,
                 pm: gatt.Characteristic.Permissions = rw) -> gatt.Characteristic[bytes]:
            return gatt.Characteristic(dot_uuid(short), p, pm, value)

        info = char(0x1001, props.READ, gatt.CharacteristicValue(read=lambda _c: self._device_info()),
                    perms.READABLE)
        device_control = char(0x1002, props.READ | props.WRITE, gatt.CharacteristicValue(
            read=lambda _c: self._device_control(), write=self._on_device_control))
        control = char(0x2001, props.READ | props.WRITE, gatt.CharacteristicValue(
            read=lambda _c: bytes((1, int(self.device.state is DeviceState.STREAMING), RATE_QUANTITIES)),
            write=self._on_control))
        self._data_char = char(0x2003, props.NOTIFY, b"", perms.READABLE)
        battery = char(0x3001, props.READ | props.NOTIFY, gatt.CharacteristicValue(
            read=lambda _c: bytes((self.device.battery_pct(self.now_true_s()), 0))), perms.READABLE)
        message_control = char(0x7001, props.WRITE, gatt.CharacteristicValue(write=self._on_message),
                               perms.WRITEABLE)
        ack = char(0x7002, props.READ, gatt.CharacteristicValue(read=lambda _c: self._ack), perms.READABLE)
        self._message_char = char(0x7003, props.NOTIFY, b"", perms.READABLE)
        return [
            gatt.Service(dot_uuid(0x1000), [info, device_control]),
            gatt.Service(dot_uuid(0x2000), [control, self._data_char]),
            gatt.Service(dot_uuid(0x3000), [battery]),
            gatt.Service(dot_uuid(0x7000), [message_control, ack, self._message_char]),
        ]

    def advertised(self) -> list[tuple[int, bytes]]:
        return [(AdvertisingData.MANUFACTURER_SPECIFIC_DATA, struct.pack("<H", COMPANY_ID) + b"\x01")]

    # -- configuration and measurement control ---------------------------------------------------

    def _device_info(self) -> bytes:
        mac = bytes(int(b, 16) for b in reversed(self.address.split(":")))
        build = struct.pack("<HBBBBB", 2026, 1, 1, 0, 0, 0)  # firmware build date and time
        return mac + bytes((2, 6, 0)) + build + bytes(4) + bytes(8) + b"XS-T02"  # v2.6.0, DOT v2

    def _device_control(self) -> bytes:
        body = bytearray(32)
        tag = self.name.encode()[:16]
        body[7] = len(tag)
        body[8:8 + len(tag)] = tag
        struct.pack_into("<H", body, 24, self.rate_hz)
        return bytes(body)

    def _on_device_control(self, _connection: Connection, value: bytes) -> None:
        if len(value) != 32:
            raise ATT_Error(ATT_APPLICATION_ERROR, message=f"device control is 32 bytes, got {len(value)}")
        if value[0] & 0x10:  # Visit Index bit 4: the output rate field applies
            (rate,) = struct.unpack_from("<H", value, 24)
            if rate not in RATES_HZ or self.device.state is DeviceState.STREAMING:
                raise ATT_Error(ATT_APPLICATION_ERROR, message=f"output rate {rate} Hz refused")
            self.rate_hz = rate
        if value[0] & 0x01:
            self.device.identify_count += 1

    def _on_control(self, _connection: Connection, value: bytes) -> None:
        self.control_writes.append(bytes(value))
        if len(value) != 3 or value[0] != 1 or value[1] not in (0, 1):
            raise ATT_Error(ATT_APPLICATION_ERROR, message=f"bad measurement control {bytes(value).hex()}")
        if value[1] == 0:
            self.device.stop(self.now_true_s())
            return
        if value[2] != RATE_QUANTITIES:
            raise ATT_Error(ATT_APPLICATION_ERROR, message=f"payload mode {value[2]} is not simulated")
        settings = StreamSettings(self.rate_hz, ACC_RANGE_G, GYR_RANGE_DPS, samples_per_packet=1)
        self.device.start(settings, self.now_true_s())

    # -- synchronisation messages -------------------------------------------------------------------

    def _on_message(self, connection: Connection, value: bytes) -> None:
        raw = bytes(value)
        if len(raw) < 3 or raw[1] != len(raw) - 3 or sum(raw) & 0xFF or raw[0] != 0x02:
            raise ATT_Error(ATT_APPLICATION_ERROR, message=f"not a sync message: {raw.hex()}")
        sync_id = raw[2]
        if sync_id == 0x01 and len(raw) == 10:  # StartSync with the root node's MAC
            self.synced = True
            self._ack = _message(0x02, bytes((0x03, 0x00)))
        elif sync_id == 0x02:  # StopSync: StopSyncResult notification
            self.synced = False
            self._notify_message(connection, _message(0x02, bytes((0x50, 0x00))))
        elif sync_id == 0x08:  # GetSyncStatus: SyncStatus notification
            status = SYNCED if self.synced else UNSYNCED
            self._notify_message(connection, _message(0x02, bytes((0x51, status))))
        else:
            raise ATT_Error(ATT_APPLICATION_ERROR, message=f"unknown sync message {raw.hex()}")

    def _notify_message(self, connection: Connection, data: bytes) -> None:
        assert self._bumble is not None and self._message_char is not None
        self.spawn(self._bumble.notify_subscriber(connection, self._message_char, data))

    # -- data --------------------------------------------------------------------------------------

    def notifications(self, packet: DevicePacket) -> list[tuple[gatt.Characteristic[bytes], bytes]]:
        assert self._data_char is not None
        s = self.device.settings
        acc = packet.raw[0, 0:3].astype(np.float64) * s.acc_range_g * GRAVITY_M_S2 / 32768.0
        gyr = packet.raw[0, 3:6].astype(np.float64) * s.gyr_range_dps / 32768.0
        body = struct.pack("<I3f3f", packet.t0_sensor_us & 0xFFFFFFFF, *acc, *gyr)
        return [(self._data_char, body + bytes(MEDIUM_PAYLOAD_LEN - len(body)))]

    def sent(self, packet: DevicePacket, payload: bytes) -> None:
        ts, ax, ay, az, gx, gy, gz = struct.unpack_from("<I3f3f", payload)
        self.samples.append(DotSample(ts, (ax, ay, az), (gx, gy, gz)))
