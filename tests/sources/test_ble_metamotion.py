"""MbientLab MetaMotion (``protocol = "metamotion"``): the decoder and start commands against MbientLab's
published register values and BMI160 scales, and a leg of simulated boards streaming over Bumble (bleak's
public API) into the live pipeline, every decoded sample equal to what the peripheral sent."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.transports.metamotion_peripheral import MetaMotionPeripheral
from sensorhub.errors import ProtocolError
from sensorhub.protocol import make_decoder, metamotion
from sensorhub.protocol.spec import FLAG_RESTART
from tests.sources.commercial import run_leg

G = 9.80665


def _packed(module: int, register: int, rows: list[tuple[int, int, int]]) -> bytes:
    return bytes((module, register)) + np.array(rows, dtype="<i2").tobytes()


def test_acceleration_and_rotation_are_paired_and_scaled() -> None:
    decoder = make_decoder("metamotion")
    # +-16 g: 2048 LSB per g; +-2000 deg/s: 16.4 LSB per deg/s (BMI160 tables)
    acc = _packed(0x03, 0x1C, [(0, 0, 2048), (1024, 0, 2048), (0, -2048, 0)])
    assert decoder.decode("m", 1.000, acc) is None  # waits for its rotation samples
    packet = decoder.decode("m", 1.001, _packed(0x13, 0x07, [(164, 0, 0), (0, -1640, 0), (0, 0, 0)]))
    assert packet is not None and packet.n_samples == 3 and packet.flags & FLAG_RESTART
    assert np.allclose(packet.acc_m_s2, [[0, 0, G], [G / 2, 0, G], [0, -G, 0]])
    assert np.allclose(packet.gyr_rad_s, [[math.radians(10), 0, 0], [0, math.radians(-100), 0], [0, 0, 0]])
    assert (packet.seq, packet.t0_sensor_us, packet.period_us) == (0, 0, 10_000)  # 100 Hz sample clock
    # single-sample registers too; the sample clock continues
    assert decoder.decode("m", 1.03, _packed(0x13, 0x05, [(0, 0, 0)])) is None
    nxt = decoder.decode("m", 1.031, _packed(0x03, 0x04, [(0, 0, 2048)]))
    assert nxt is not None and (nxt.seq, nxt.t0_sensor_us, nxt.flags) == (1, 30_000, 0)
    # a silence longer than a reconnect: a new run
    later = make_decoder("metamotion")
    later.decode("m", 0.0, _packed(0x03, 0x04, [(0, 0, 2048)]))
    later.decode("m", 0.0, _packed(0x13, 0x05, [(0, 0, 0)]))
    later.decode("m", 3.0, _packed(0x03, 0x04, [(0, 0, 2048)]))
    restarted = later.decode("m", 3.0, _packed(0x13, 0x05, [(0, 0, 0)]))
    assert restarted is not None and restarted.flags & FLAG_RESTART and restarted.seq == 0


@pytest.mark.parametrize(
    "payload", [b"", b"\x03", b"\x11\x0c\x50", b"\x03\x04" + bytes(5), b"\x03\x1c" + bytes(12)]
)
def test_other_notifications_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        make_decoder("metamotion").decode("m", 0.0, payload)


def test_start_commands_are_mbientlabs_register_writes() -> None:
    assert metamotion.start_commands() == [
        bytes.fromhex("0303280c"),  # accelerometer config: ODR 100 Hz (8) | bandwidth normal (2 << 4), +-16 g
        bytes.fromhex("031c01"),  # subscribe: packed acceleration
        bytes.fromhex("03020100"),  # enable acceleration sampling
        bytes.fromhex("030101"),  # accelerometer on
        bytes.fromhex("13032800"),  # gyroscope config: ODR 100 Hz, +-2000 deg/s
        bytes.fromhex("130701"),  # subscribe: packed rotation
        bytes.fromhex("13020100"),  # enable rotation sampling
        bytes.fromhex("130101"),  # gyroscope on
    ]


def test_a_leg_of_metamotions_streams_over_bumble_into_the_pipeline(tmp_path: Path) -> None:
    run = run_leg("metamotion", "MetaWear", tmp_path)
    for sensor_id, peripheral in run.peripherals.items():
        assert isinstance(peripheral, MetaMotionPeripheral)
        assert peripheral.commands[: len(metamotion.start_commands())] == metamotion.start_commands()
        decoder = make_decoder("metamotion")
        decoded = [p for raw in run.packets[sensor_id]
                   if (p := decoder.decode(sensor_id, raw.t_host_s, raw.payload)) is not None]
        acc = np.vstack([p.acc_m_s2 for p in decoded])
        gyr = np.vstack([p.gyr_rad_s for p in decoded])
        sent = peripheral.samples
        assert len(acc) >= 100 * 10, sensor_id  # >= 10 s of 100 Hz
        assert len(sent) - len(acc) <= 100  # at most the last second was still in flight at the stop
        sent_acc = np.array([s.acc_raw for s in sent[: len(acc)]]) / 2048.0 * G
        sent_gyr = np.radians(np.array([s.gyr_raw for s in sent[: len(acc)]]) / 16.4)
        assert np.allclose(acc, sent_acc, rtol=0, atol=1e-12)
        assert np.allclose(gyr, sent_gyr, rtol=0, atol=1e-12)
        assert [p.seq for p in decoded] == list(range(len(decoded)))
        health = run.health["sensors"][sensor_id]
        assert health["state"] == "streaming" and health["lost"] == 0 and health["malformed"] == 0
    assert run.health["angle_samples"] > 200, "the pipeline computed knee angles from the MetaMotions"
