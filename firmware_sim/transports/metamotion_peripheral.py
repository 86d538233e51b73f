"""A simulated MbientLab MetaMotion (BMI160 board) served as a BLE peripheral (Bumble), written from
MbientLab's public MetaWear protocol (MetaWear-SDK-Cpp: register headers, the BMI160 configuration bytes
and scale tables).

Commands arrive on ``326a9001`` as ``module, register, data``; the accelerometer (module 0x03) and the
gyroscope (0x13) each take a configuration (register 0x03: output data rate code and range), a data
subscription (acceleration 0x04 or packed 0x1c; rotation 0x05 or packed 0x07; ``1`` on, ``0`` off),
sampling enable (0x02: ``01 00`` on, ``00 01`` off) and power (0x01). Sampling runs once both sensors
are powered and enabled at the same rate; each subscribed stream is notified on ``326a9006`` as
``module, register, x y z (i16)...``, packed registers with three samples per notification.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from bumble import gatt
from bumble.att import ATT_Error
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection

from firmware_sim.device import DevicePacket, DeviceState, StreamSettings
from firmware_sim.encoder import ATT_APPLICATION_ERROR
from firmware_sim.transports.ble_peripheral import BlePeripheral

log = logging.getLogger(__name__)

SERVICE_UUID = "326a9000-85cb-9195-d9dd-464cfbbae75a"
COMMAND_UUID = "326a9001-85cb-9195-d9dd-464cfbbae75a"
NOTIFY_UUID = "326a9006-85cb-9195-d9dd-464cfbbae75a"
ACC, GYR = 0x03, 0x13
POWER, ENABLE, CONFIG = 0x01, 0x02, 0x03
DATA_REGISTERS = {ACC: (0x04, 0x1C), GYR: (0x05, 0x07)}  # (one sample, packed: three samples)
ODR_HZ = {6: 25, 7: 50, 8: 100, 9: 200, 10: 400, 11: 800}  # BMI160 ODR codes (both sensors)
ACC_LSB_PER_G = {0x3: 16384.0, 0x5: 8192.0, 0x8: 4096.0, 0xC: 2048.0}  # by range code: 2, 4, 8, 16 g
GYR_LSB_PER_DPS = (16.4, 32.8, 65.6, 131.2, 262.4)  # by range code: 2000 ... 125 deg/s
PACKED = 3
# The simulated IMU samples at its widest ranges; each stream is re-quantised to the configured one.
SAMPLE_ACC_G, SAMPLE_GYR_DPS = 16, 2000


@dataclass
class _Sensor:
    rate_hz: int = 100
    range_code: int = 0
    subscribed: set[int] = field(default_factory=set)
    enabled: bool = False
    powered: bool = False


@dataclass(frozen=True, slots=True)
class MetaMotionSample:
    """One sample as the wire carried it (raw i16 in the configured ranges) and its scale."""

    acc_raw: tuple[int, int, int]
    gyr_raw: tuple[int, int, int]
    acc_lsb_per_g: float
    gyr_lsb_per_dps: float


@dataclass(eq=False)
class MetaMotionPeripheral(BlePeripheral):
    """One simulated MetaMotion; ``samples`` logs the samples whose acceleration and rotation both
    reached the radio, ``commands`` every command written."""

    commands: list[bytes] = field(default_factory=list)
    samples: list[MetaMotionSample] = field(default_factory=list)
    _acc: _Sensor = field(default_factory=lambda: _Sensor(range_code=0xC))
    _gyr: _Sensor = field(default_factory=_Sensor)
    _pending: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)

    def services(self) -> list[gatt.Service]:
        props = gatt.Characteristic.Properties
        command: gatt.Characteristic[bytes] = gatt.Characteristic(
            COMMAND_UUID, props.WRITE | props.WRITE_WITHOUT_RESPONSE, gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(write=self._on_command))
        self._data_char = gatt.Characteristic(NOTIFY_UUID, props.NOTIFY, gatt.Characteristic.READABLE, b"")
        return [gatt.Service(SERVICE_UUID, [command, self._data_char])]

    def advertised(self) -> list[tuple[int, bytes]]:
        return [(AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, UUID(SERVICE_UUID).to_bytes())]

    def _on_command(self, _connection: Connection, value: bytes) -> None:
        raw = bytes(value)
        self.commands.append(raw)
        if len(raw) < 3 or raw[0] not in (ACC, GYR):
            log.info("sensor %s: ignored MetaWear command %s", self.name, raw.hex())
            return
        sensor = self._acc if raw[0] == ACC else self._gyr
        register = raw[1]
        if register == CONFIG and len(raw) == 4:
            odr = ODR_HZ.get(raw[2] & 0x0F)
            ranges = ACC_LSB_PER_G if raw[0] == ACC else range(len(GYR_LSB_PER_DPS))
            if odr is None or raw[3] not in ranges or self.device.state is DeviceState.STREAMING:
                raise ATT_Error(ATT_APPLICATION_ERROR, message=f"configuration {raw.hex()} refused")
            sensor.rate_hz, sensor.range_code = odr, raw[3]
        elif register in DATA_REGISTERS[raw[0]]:
            (sensor.subscribed.add if raw[2] else sensor.subscribed.discard)(register)
        elif register == ENABLE and len(raw) == 4:
            sensor.enabled = bool(raw[2])
        elif register == POWER:
            sensor.powered = bool(raw[2])
        self._follow()

    def _follow(self) -> None:
        """Sample while both sensors are powered and enabled (the board's two streams share its clock)."""
        running = all(s.powered and s.enabled for s in (self._acc, self._gyr))
        streaming = self.device.state is DeviceState.STREAMING
        if running and not streaming:
            if self._acc.rate_hz != self._gyr.rate_hz:
                raise ATT_Error(ATT_APPLICATION_ERROR, message="the simulator needs equal rates")
            settings = StreamSettings(self._acc.rate_hz, SAMPLE_ACC_G, SAMPLE_GYR_DPS, PACKED)
            self._pending = {}
            self.device.start(settings, self.now_true_s())
        elif streaming and not running:
            self.device.stop(self.now_true_s())

    def notifications(self, packet: DevicePacket) -> list[tuple[gatt.Characteristic[bytes], bytes]]:
        assert self._data_char is not None
        acc_g = packet.raw[:, 0:3].astype(np.float64) * SAMPLE_ACC_G / 32768.0
        gyr_dps = packet.raw[:, 3:6].astype(np.float64) * SAMPLE_GYR_DPS / 32768.0
        out = []
        for module, values, lsb in ((ACC, acc_g, ACC_LSB_PER_G[self._acc.range_code]),
                                    (GYR, gyr_dps, GYR_LSB_PER_DPS[self._gyr.range_code])):
            raw = np.clip(np.round(values * lsb), -32768, 32767).astype("<i2")
            single, packed = DATA_REGISTERS[module]
            subscribed = self._acc.subscribed if module == ACC else self._gyr.subscribed
            if packed in subscribed:
                out.append((self._data_char, bytes((module, packed)) + raw.tobytes()))
            elif single in subscribed:
                out += [(self._data_char, bytes((module, single)) + row.tobytes()) for row in raw]
        return out

    def sent(self, packet: DevicePacket, payload: bytes) -> None:
        module = payload[0]
        rows = np.frombuffer(payload, dtype="<i2", offset=2).reshape(-1, 3)
        self._pending.setdefault(module, []).extend((int(x), int(y), int(z)) for x, y, z in rows)
        acc, gyr = self._pending.get(ACC, []), self._pending.get(GYR, [])
        while acc and gyr:
            scales = ACC_LSB_PER_G[self._acc.range_code], GYR_LSB_PER_DPS[self._gyr.range_code]
            self.samples.append(MetaMotionSample(acc.pop(0), gyr.pop(0), *scales))

