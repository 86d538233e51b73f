"""Movella DOT (``protocol = "movella-dot"``): the decoder and commands against the specification's own
numbers, and a leg of simulated DOTs streaming over Bumble (bleak's public API) into the live pipeline,
every decoded sample equal to what the peripheral sent."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.transports.movella_dot_peripheral import MovellaDotPeripheral
from sensorhub.errors import ProtocolError
from sensorhub.protocol import make_decoder, movella_dot
from sensorhub.protocol.spec import FLAG_RESTART
from tests.sources.commercial import run_leg


def _rate_quantities(ts_us: int, acc: tuple[float, ...], gyr_dps: tuple[float, ...]) -> bytes:
    body = struct.pack("<I3f3f", ts_us, *acc, *gyr_dps)
    return body + bytes(40 - len(body))  # the Medium Payload characteristic is 40 bytes, zero-padded


def test_rate_quantities_decode_to_si_units_numbered_by_timestamp() -> None:
    decoder = make_decoder("movella-dot")
    first = decoder.decode("d", 5.0, _rate_quantities(1_000_000, (0.5, -1.0, 9.75), (90.0, 0.0, -180.0)))
    assert first is not None and first.flags & FLAG_RESTART and first.seq == 0
    assert first.t0_sensor_us == 1_000_000 and first.period_us == 16_667  # 60 Hz
    assert np.array_equal(first.acc_m_s2, [[0.5, -1.0, 9.75]])
    assert np.allclose(first.gyr_rad_s, [[math.pi / 2, 0.0, -math.pi]])
    # One period later: the next number; three periods later (two notifications lost): +3.
    second = decoder.decode("d", 5.02, _rate_quantities(1_016_667, (0, 0, 9.8), (0, 0, 0)))
    third = decoder.decode("d", 5.07, _rate_quantities(1_066_667, (0, 0, 9.8), (0, 0, 0)))
    assert second is not None and third is not None and (second.seq, third.seq) == (1, 4)
    # the 32-bit microsecond timestamp wraps without a restart
    wrap = make_decoder("movella-dot")
    wrap.decode("d", 0.0, _rate_quantities(2**32 - 10_000, (0, 0, 9.8), (0, 0, 0)))
    after = wrap.decode("d", 0.02, _rate_quantities(6_667, (0, 0, 9.8), (0, 0, 0)))
    assert after is not None and after.seq == 1 and not after.flags & FLAG_RESTART


@pytest.mark.parametrize("payload", [b"", bytes(27), bytes(41)])
def test_wrong_lengths_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        make_decoder("movella-dot").decode("d", 0.0, payload)


def test_commands_are_the_documented_bytes() -> None:
    # Measurement control: type 1 (measurement), start/stop, payload mode 21 (Rate quantities).
    assert movella_dot.control_command(start=True) == bytes((1, 1, 21))
    assert movella_dot.control_command(start=False) == bytes((1, 0, 21))
    # Device control: 32 bytes, Visit Index bit 4 (output rate), the rate at offset 24.
    rate = movella_dot.output_rate_command(60)
    assert len(rate) == 32 and rate[0] == 0x10 and struct.unpack_from("<H", rate, 24) == (60,)
    with pytest.raises(ProtocolError):
        movella_dot.output_rate_command(120)  # recording only
    # The spec's own example (section 5.3.1): StartSync with root node D4:22:CD:AA:BB:CC.
    assert movella_dot.start_sync_command("D4:22:CD:AA:BB:CC") == bytes.fromhex("020701ccbbaacd22d402")
    assert movella_dot.get_sync_status_command() == bytes.fromhex("020108f5")
    assert movella_dot.stop_sync_command() == bytes.fromhex("020102fb")
    assert movella_dot.sync_ack_result(bytes.fromhex("02020300f9")) == "success"
    with pytest.raises(ProtocolError, match="checksum"):
        movella_dot.sync_ack_result(bytes.fromhex("02020300f8"))


def test_a_leg_of_dots_streams_over_bumble_into_the_pipeline(tmp_path: Path) -> None:
    run = run_leg("movella-dot", "Movella DOT", tmp_path)
    for sensor_id, peripheral in run.peripherals.items():
        assert isinstance(peripheral, MovellaDotPeripheral)
        # the documented start sequence reached the device: 60 Hz, then start Rate quantities
        assert peripheral.rate_hz == 60 and peripheral.control_writes[0] == bytes((1, 1, 21))
        decoder = make_decoder("movella-dot")
        decoded = [p for raw in run.packets[sensor_id] if (p := decoder.decode(sensor_id, raw.t_host_s,
                                                                              raw.payload)) is not None]
        sent = peripheral.samples
        assert len(decoded) >= 60 * 10, sensor_id  # >= 10 s of 60 Hz
        assert len(sent) - len(decoded) <= 60  # at most the last second was still in flight at the stop
        for packet, sample in zip(decoded, sent, strict=False):
            assert packet.t0_sensor_us == sample.timestamp_us
            assert np.array_equal(packet.acc_m_s2[0], np.array(sample.acc_m_s2, dtype=np.float64))
            assert np.allclose(packet.gyr_rad_s[0], np.radians(sample.gyr_dps), rtol=0, atol=1e-12)
        assert [p.seq for p in decoded] == list(range(len(decoded)))  # nothing lost, nothing reordered
        health = run.health["sensors"][sensor_id]
        assert health["state"] == "streaming" and health["lost"] == 0 and health["malformed"] == 0
        assert health["battery_pct"] is not None
    assert run.health["angle_samples"] > 200, "the pipeline computed knee angles from the DOTs"
