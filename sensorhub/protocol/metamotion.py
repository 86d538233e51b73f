"""MbientLab MetaMotion (MetaMotionR, MetaMotionRL, MetaMotionC: the BMI160 boards): GATT UUIDs, the
documented start commands and a decoder that pairs the accelerometer's and the gyroscope's streams.

Written from MbientLab's public MetaWear protocol as its C++ SDK (MetaWear-SDK-Cpp) defines it: the
register headers ``accelerometer_bosch_register.h`` and ``gyro_bosch_register.h``, the data signals'
subscribe command (``datasignal.cpp``) and the BMI160 scale tables (``accelerometer_bosch.cpp``,
``gyro_bosch.cpp``). Every command is written to the MetaWear service's command characteristic
``326a9001-...`` and every reply or data sample arrives on ``326a9006-...`` as ``module, register,
data...`` (little-endian).

Streaming, for each of the accelerometer (module 0x03) and the gyroscope (module 0x13):
configure (register 0x03: output rate and range), subscribe to the packed data register
(``[module, register, 1]``; packed: three samples per notification), enable sampling
(register 0x02: ``01 00``) and power on (register 0x01: ``01``). sensorhub uses 100 Hz (the boards'
default rate), +-16 g (2048 LSB/g) and +-2000 deg/s (16.4 LSB per deg/s).

MetaWear data carry neither a sequence number nor a timestamp, and acceleration and rotation come in
separate notifications. The decoder keeps each stream's samples until the other stream has the same
ones, then releases them as one packet timed by sample count on the boards' own rate (so the host-clock
mapping learns the board's crystal drift); a silence of ``RESTART_GAP_S`` (a reconnect) starts a new run.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2, RAD_PER_DEG
from sensorhub.errors import ProtocolError
from sensorhub.model import ImuPacket
from sensorhub.protocol.spec import FLAG_RESTART, SEQ_MODULUS, T0_MODULUS_US

PROTOCOL_NAME = "metamotion"
SPEC_VERSION = "MetaWear protocol of MbientLab's MetaWear-SDK-Cpp (BMI160 accelerometer and gyroscope)"

SERVICE_UUID = "326a9000-85cb-9195-d9dd-464cfbbae75a"
COMMAND_UUID = "326a9001-85cb-9195-d9dd-464cfbbae75a"
NOTIFY_UUID = "326a9006-85cb-9195-d9dd-464cfbbae75a"
NAME_PREFIXES = ("MetaWear", "MetaMotion")

ACC_MODULE = 0x03
GYR_MODULE = 0x13
REG_POWER = 0x01
REG_INTERRUPT_ENABLE = 0x02
REG_CONFIG = 0x03
ACC_DATA, ACC_PACKED = 0x04, 0x1C
GYR_DATA, GYR_PACKED = 0x05, 0x07

STREAM_RATE_HZ = 100
PERIOD_US = round(1e6 / STREAM_RATE_HZ)
ACC_RANGE_G = 16
GYR_RANGE_DPS = 2000
# BMI160 register values: ODR code 8 = 100 Hz (both sensors), filter bandwidth "normal" (2) in bits 4-6.
ACC_CONFIG = bytes((0x28, 0x0C))  # 100 Hz, +-16 g
GYR_CONFIG = bytes((0x28, 0x00))  # 100 Hz, +-2000 deg/s
ACC_LSB_PER_G = 2048.0
GYR_LSB_PER_DPS = 16.4

SAMPLE_SIZE = 6  # x, y, z as i16
# Notifications stopped this long: the board was reconnected (a new run); a busy host loop stalls less.
RESTART_GAP_S = 1.0
MAX_UNPAIRED = 64  # samples one stream may run ahead of the other before it is called broken


def start_commands() -> list[bytes]:
    """Configure, subscribe (packed registers), enable and power both sensors, in the SDK's order."""
    out = []
    sensors = ((ACC_MODULE, ACC_CONFIG, ACC_PACKED), (GYR_MODULE, GYR_CONFIG, GYR_PACKED))
    for module, config, packed in sensors:
        out += [bytes((module, REG_CONFIG)) + config, bytes((module, packed, 1)),
                bytes((module, REG_INTERRUPT_ENABLE, 1, 0)), bytes((module, REG_POWER, 1))]
    return out


def stop_commands() -> list[bytes]:
    out = []
    for module, packed in ((ACC_MODULE, ACC_PACKED), (GYR_MODULE, GYR_PACKED)):
        out += [bytes((module, REG_POWER, 0)), bytes((module, REG_INTERRUPT_ENABLE, 0, 1)),
                bytes((module, packed, 0))]
    return out


_STREAMS = {(ACC_MODULE, ACC_DATA): "acc", (ACC_MODULE, ACC_PACKED): "acc",
            (GYR_MODULE, GYR_DATA): "gyr", (GYR_MODULE, GYR_PACKED): "gyr"}
_ACC_M_S2 = GRAVITY_M_S2 / ACC_LSB_PER_G
_GYR_RAD_S = RAD_PER_DEG / GYR_LSB_PER_DPS
_I16_LE = np.dtype("<i2")


class MetaMotionDecoder:
    """One board's acceleration and rotation notifications -> packets of paired samples (or None while
    a sample waits for its partner)."""

    protocol = PROTOCOL_NAME

    def __init__(self) -> None:
        self._fifo: dict[str, deque[np.ndarray]] = {"acc": deque(), "gyr": deque()}
        self._last_host_s = -math.inf
        self._released = 0  # samples released in this run: the sample clock
        self._seq = 0
        self._new_run = True

    def decode(self, sensor_id: str, t_host_s: float, payload: bytes) -> ImuPacket | None:
        if len(payload) < 2 or (stream := _STREAMS.get((payload[0], payload[1]))) is None:
            head = payload[:2].hex() or "empty"
            raise ProtocolError(f"MetaWear notification {head} is not acceleration or rotation data")
        n, rest = divmod(len(payload) - 2, SAMPLE_SIZE)
        if rest or n not in (1, 3):
            raise ProtocolError(f"MetaWear {stream} notification of {len(payload)} bytes: expected 1 or 3 "
                                "samples of 6 bytes after the 2-byte header")
        if t_host_s - self._last_host_s > RESTART_GAP_S:
            self._restart()
        self._last_host_s = t_host_s
        raw = np.frombuffer(payload, dtype=_I16_LE, offset=2).reshape(n, 3)
        fifo = self._fifo[stream]
        fifo.extend(raw)
        if len(fifo) > MAX_UNPAIRED:
            fifo.clear()
            raise ProtocolError(f"MetaWear: {stream} samples without their partner stream (is the "
                                "other sensor subscribed?); dropped")
        k = min(len(self._fifo["acc"]), len(self._fifo["gyr"]))
        if k == 0:
            return None
        acc = np.array([self._fifo["acc"].popleft() for _ in range(k)], dtype=np.float64) * _ACC_M_S2
        gyr = np.array([self._fifo["gyr"].popleft() for _ in range(k)], dtype=np.float64) * _GYR_RAD_S
        flags = FLAG_RESTART if self._new_run else 0
        packet = ImuPacket(
            sensor_id=sensor_id,
            t_host_s=t_host_s,
            seq=self._seq % SEQ_MODULUS,
            t0_sensor_us=(self._released * PERIOD_US) % T0_MODULUS_US,
            period_us=PERIOD_US,
            acc_m_s2=acc,
            gyr_rad_s=gyr,
            acc_range_m_s2=ACC_RANGE_G * GRAVITY_M_S2,
            gyr_range_rad_s=GYR_RANGE_DPS * RAD_PER_DEG,
            flags=flags,
        )
        self._new_run = False
        self._seq += 1
        self._released += k
        return packet

    def _restart(self) -> None:
        for fifo in self._fifo.values():
            fifo.clear()
        self._released = self._seq = 0
        self._new_run = True

    def clipped_samples(self, packet: ImuPacket, payload: bytes) -> int:
        acc = np.abs(packet.acc_m_s2) >= (32767 / ACC_LSB_PER_G) * GRAVITY_M_S2
        gyr = np.abs(packet.gyr_rad_s) >= (32767 / GYR_LSB_PER_DPS) * RAD_PER_DEG
        return int(np.count_nonzero(acc.any(axis=1) | gyr.any(axis=1)))
