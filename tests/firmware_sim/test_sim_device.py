"""firmware_sim's sensor side: encoder vs golden bytes, error model, device clock, link, CLI end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import welch

from firmware_sim.body import DRILLS
from firmware_sim.device import SensorClock, SimulatedDevice, StreamSettings
from firmware_sim.encoder import (
    FLAG_ACC_CLIPPED,
    FLAG_GYR_CLIPPED,
    FLAG_RESTART,
    CommandRejected,
    EncodeError,
    IdentifyCommand,
    StartCommand,
    StopCommand,
    clip_flags,
    encode_command,
    encode_data,
    encode_info,
    parse_command,
)
from firmware_sim.errors_model import (
    PRESETS,
    ImuErrorModel,
    ImuErrorParams,
    finish,
    from_raw,
    sensor_seed,
    to_raw,
)
from firmware_sim.link import BleLink, LinkParams, link_preset
from sensorhub.conventions import GRAVITY_M_S2, RAD_PER_DEG
from tests.helpers import GOLDEN_DIR

GOLDEN = json.loads((GOLDEN_DIR / "protocol_v1.json").read_text())


# --- encoder -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", GOLDEN["data"], ids=lambda v: v["name"])
def test_encoder_reproduces_golden_data_packets(vector: dict[str, Any]) -> None:
    payload = encode_data(
        flags=vector["flags"],
        seq=vector["seq"],
        t0_us=vector["t0_us"],
        period_us=vector["period_us"],
        acc_range_g=vector["acc_range_g"],
        gyr_range_dps=vector["gyr_range_dps"],
        raw=np.array(vector["raw"], dtype=np.int16),
    )
    assert payload.hex() == vector["hex"]


@pytest.mark.parametrize("vector", GOLDEN["data"], ids=lambda v: v["name"])
def test_raw_scaling_matches_golden_si_values(vector: dict[str, Any]) -> None:
    raw = np.array(vector["raw"], dtype=np.int16)
    gyr, acc = from_raw(raw, vector["acc_range_g"], vector["gyr_range_dps"])
    np.testing.assert_allclose(acc, vector["acc_m_s2"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(gyr, vector["gyr_rad_s"], rtol=0, atol=1e-12)
    # And the quantiser maps the SI values back onto exactly the same integers.
    assert np.array_equal(to_raw(gyr, acc, vector["acc_range_g"], vector["gyr_range_dps"]), raw)


def test_clip_flags_follow_full_scale_values() -> None:
    clipped = np.array(GOLDEN["data"][2]["raw"], dtype=np.int16)
    assert clip_flags(clipped) == FLAG_ACC_CLIPPED | FLAG_GYR_CLIPPED == GOLDEN["data"][2]["flags"]
    assert clip_flags(np.array(GOLDEN["data"][0]["raw"], dtype=np.int16)) == 0
    only_gyr = np.zeros((3, 6), dtype=np.int16)
    only_gyr[1, 4] = -32768
    assert clip_flags(only_gyr) == FLAG_GYR_CLIPPED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"raw": np.zeros((0, 6))},
        {"raw": np.zeros((20, 6))},
        {"raw": np.zeros((2, 5))},
        {"raw": np.full((1, 6), 40000)},
        {"flags": 0x08},
        {"acc_range_g": 3},
        {"gyr_range_dps": 300},
        {"period_us": 0},
    ],
)
def test_encoder_refuses_what_the_protocol_cannot_carry(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "flags": 0,
        "seq": 0,
        "t0_us": 0,
        "period_us": 5000,
        "acc_range_g": 16,
        "gyr_range_dps": 2000,
        "raw": np.zeros((1, 6)),
    }
    args.update(kwargs)
    with pytest.raises(EncodeError):
        encode_data(**args)


def test_encoder_wraps_seq_and_t0() -> None:
    payload = encode_data(
        flags=0,
        seq=65536 + 5,
        t0_us=2**32 + 77,
        period_us=5000,
        acc_range_g=16,
        gyr_range_dps=2000,
        raw=np.zeros((1, 6), dtype=np.int16),
    )
    assert int.from_bytes(payload[2:4], "little") == 5
    assert int.from_bytes(payload[4:8], "little") == 77


def test_golden_control_commands_parse_and_encode() -> None:
    start, stop, identify = GOLDEN["control"]
    parsed = parse_command(bytes.fromhex(start["hex"]))
    assert parsed == StartCommand(
        start["rate_hz"], start["acc_range_g"], start["gyr_range_dps"], start["samples_per_packet"]
    )
    assert encode_command(parsed).hex() == start["hex"]
    assert parse_command(bytes.fromhex(stop["hex"])) == StopCommand()
    assert parse_command(bytes.fromhex(identify["hex"])) == IdentifyCommand()
    assert encode_command(StopCommand()).hex() == stop["hex"]
    assert encode_command(IdentifyCommand()).hex() == identify["hex"]


@pytest.mark.parametrize(
    "hex_payload",
    [
        "",  # empty
        "04",  # unknown opcode
        "ff",
        "01c80010d007",  # START one byte short
        "01c80010d0070800",  # START one byte long
        "0200",  # STOP with payload
        "0301",  # IDENTIFY with payload
        "01c90010d00708",  # 201 Hz
        "01c80011d00708",  # 17 g
        "01c80010d10708",  # 2001 dps
        "01c80010d00700",  # 0 samples per packet
        "01c80010d00714",  # 20 samples per packet
    ],
)
def test_malformed_control_commands_are_rejected(hex_payload: str) -> None:
    with pytest.raises(CommandRejected) as info:
        parse_command(bytes.fromhex(hex_payload))
    assert info.value.att_error == 0x80


def test_info_payload_matches_golden() -> None:
    vector = GOLDEN["info"][0]
    payload = encode_info(
        streaming=vector["state"] == 1,
        rate_hz=vector["rate_hz"],
        acc_range_g=vector["acc_range_g"],
        gyr_range_dps=vector["gyr_range_dps"],
        samples_per_packet=vector["samples_per_packet"],
    )
    assert payload.hex() == vector["hex"]


@settings(max_examples=200, deadline=None)
@given(
    flags=st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]),
    seq=st.integers(0, 2**16 - 1),
    t0_us=st.integers(0, 2**32 - 1),
    period_us=st.integers(1, 2**16 - 1),
    acc_range_g=st.sampled_from([2, 4, 8, 16, 32]),
    gyr_range_dps=st.sampled_from([125, 250, 500, 1000, 2000, 4000]),
    raw=st.integers(1, 19).flatmap(
        lambda n: st.lists(
            st.lists(st.integers(-32768, 32767), min_size=6, max_size=6), min_size=n, max_size=n
        )
    ),
)
def test_encoder_fields_sit_at_the_spec_offsets(
    flags: int,
    seq: int,
    t0_us: int,
    period_us: int,
    acc_range_g: int,
    gyr_range_dps: int,
    raw: list[list[int]],
) -> None:
    payload = encode_data(
        flags=flags,
        seq=seq,
        t0_us=t0_us,
        period_us=period_us,
        acc_range_g=acc_range_g,
        gyr_range_dps=gyr_range_dps,
        raw=np.array(raw, dtype=np.int16),
    )
    n = len(raw)
    assert len(payload) == 14 + 12 * n
    le = lambda a, b: int.from_bytes(payload[a:b], "little")  # noqa: E731
    assert (payload[0], payload[1], le(2, 4), le(4, 8), le(8, 10)) == (1, flags, seq, t0_us, period_us)
    assert (payload[10], payload[11], le(12, 14)) == (acc_range_g, n, gyr_range_dps)
    for i, row in enumerate(raw):
        for j, value in enumerate(row):
            start = 14 + 12 * i + 2 * j
            assert int.from_bytes(payload[start : start + 2], "little", signed=True) == value


@settings(max_examples=300, deadline=None)
@given(
    payload=st.one_of(
        st.binary(max_size=9), st.builds(lambda b: b"\x01" + b, st.binary(min_size=7, max_size=7))
    )
)
def test_any_control_write_is_parsed_exactly_or_rejected(payload: bytes) -> None:
    try:
        command = parse_command(payload)
    except CommandRejected:
        return
    assert encode_command(command) == payload  # accepted writes are exactly the canonical encoding


# --- error model -----------------------------------------------------------------------------------------


def test_noise_density_matches_configuration() -> None:
    rate_hz = 200.0
    params = ImuErrorParams(
        gyr_noise_density_rad_s_rthz=0.007 * RAD_PER_DEG, acc_noise_density_m_s2_rthz=160e-6 * GRAVITY_M_S2
    )
    model = ImuErrorModel(params, sensor_seed(3, "noise"))
    n = 200 * 120
    gyr, acc = model.apply(np.zeros((n, 3)), np.zeros((n, 3)), rate_hz)
    for signal, density in (
        (gyr, params.gyr_noise_density_rad_s_rthz),
        (acc, params.acc_noise_density_m_s2_rthz),
    ):
        _, psd = welch(signal, fs=rate_hz, nperseg=1024, axis=0)  # one-sided PSD
        asd = np.sqrt(np.mean(psd[5:-5], axis=0))
        np.testing.assert_allclose(asd, density, rtol=0.03)
        assert abs(float(np.mean(signal))) < 0.05 * density * math.sqrt(rate_hz)


def test_bias_random_walk_and_constants_stay_within_configuration() -> None:
    params = PRESETS["realistic"]
    rate_hz = 100.0
    for k in range(20):
        draw = ImuErrorModel(params, sensor_seed(k, "s")).draw
        assert np.all(np.abs(draw.gyr_bias_rad_s) <= params.gyr_bias_max_rad_s)
        assert np.all(np.abs(draw.acc_bias_m_s2) <= params.acc_bias_max_m_s2)
        assert np.all(np.abs(np.diag(draw.gyr_matrix) - 1.0) <= params.gyr_scale_error_max)
        off = draw.acc_matrix - np.diag(np.diag(draw.acc_matrix))
        assert np.all(np.abs(off) <= params.misalignment_max)
    drift_only = ImuErrorParams(gyr_bias_rw_rad_s_rts=0.002 * RAD_PER_DEG)
    model = ImuErrorModel(drift_only, sensor_seed(1, "rw"))
    gyr, _ = model.apply(np.zeros((60_000, 3)), np.zeros((60_000, 3)), rate_hz)
    step_std = np.std(np.diff(gyr, axis=0), axis=0)
    np.testing.assert_allclose(step_std, drift_only.gyr_bias_rw_rad_s_rts / math.sqrt(rate_hz), rtol=0.03)
    np.testing.assert_allclose(model.gyr_bias_now_rad_s, gyr[-1], rtol=0, atol=1e-15)


def test_error_model_chunked_equals_batch_and_scale_is_applied() -> None:
    rng = np.random.default_rng(0)
    gyr_in, acc_in = rng.normal(size=(500, 3)), rng.normal(size=(500, 3))
    batch = ImuErrorModel(PRESETS["realistic"], sensor_seed(9, "x"))
    chunked = ImuErrorModel(PRESETS["realistic"], sensor_seed(9, "x"))
    gyr_b, acc_b = batch.apply(gyr_in, acc_in, 200.0)
    parts = [chunked.apply(gyr_in[a:b], acc_in[a:b], 200.0) for a, b in ((0, 7), (7, 300), (300, 500))]
    # Same random streams; only the drift's running sum may differ in the last bit.
    np.testing.assert_allclose(np.vstack([p[0] for p in parts]), gyr_b, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(np.vstack([p[1] for p in parts]), acc_b)
    clean = ImuErrorModel(PRESETS["clean"], sensor_seed(9, "x"))
    gyr_c, acc_c = clean.apply(gyr_in, acc_in, 200.0)
    np.testing.assert_array_equal(gyr_c, gyr_in)
    np.testing.assert_array_equal(acc_c, acc_in)
    # Realistic errors are small but present: scale/misalignment ~1 %, biases up to 1 deg/s and 20 mg.
    assert 1e-4 < float(np.max(np.abs(acc_b - acc_in))) < 0.25 + 0.1
    assert 1e-4 < float(np.max(np.abs(gyr_b - gyr_in))) < 0.02 + 0.05


def test_saturation_at_16_g_and_2000_dps() -> None:
    acc = np.array([[20.0, -20.0, 15.9], [-16.5, 0.0, 1.0]]) * GRAVITY_M_S2
    gyr = np.array([[2500.0, -2500.0, 1999.0], [0.0, -2000.0, 2000.0]]) * RAD_PER_DEG
    raw = to_raw(gyr, acc, 16, 2000)
    assert raw[0, 0] == 32767 and raw[0, 1] == -32768 and raw[1, 0] == -32768
    assert raw[0, 3] == 32767 and raw[0, 4] == -32768 and raw[1, 4] == -32768 and raw[1, 5] == 32767
    assert abs(int(raw[0, 2]) - round(15.9 / 16 * 32768)) <= 1
    gyr_back, acc_back = from_raw(raw, 16, 2000)
    assert np.max(np.abs(acc_back)) <= 16 * GRAVITY_M_S2
    assert np.max(np.abs(gyr_back)) <= 2000 * RAD_PER_DEG
    for quantise in (True, False):
        gyr_f, acc_f = finish(gyr, acc, 16, 2000, quantise)
        assert np.max(acc_f) < 16 * GRAVITY_M_S2 and np.min(acc_f) == pytest.approx(-16 * GRAVITY_M_S2)
        assert np.max(gyr_f) < 2000 * RAD_PER_DEG and np.min(gyr_f) == pytest.approx(-2000 * RAD_PER_DEG)


# --- device -------------------------------------------------------------------------------------------


class _RecordingSignal:
    """A smooth test motion that remembers the true times it was sampled at."""

    def __init__(self, amplitude_g: float = 1.0, gyr_amplitude_dps: float = 100.0) -> None:
        self.amplitude_g = amplitude_g
        self.gyr_amplitude_dps = gyr_amplitude_dps
        self.calls: list[np.ndarray] = []

    def __call__(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(np.array(t_s))
        phase = 2 * np.pi * 1.3 * t_s
        gyr = np.stack([np.sin(phase), np.cos(phase), 0.5 * np.sin(2 * phase)], axis=1)
        acc = np.stack([0.2 * np.sin(phase), 0.1 * np.cos(phase), np.ones_like(t_s)], axis=1)
        return gyr * self.gyr_amplitude_dps * RAD_PER_DEG, acc * self.amplitude_g * GRAVITY_M_S2


def _device(clock: SensorClock, signal: Any = None, errors: str = "clean", seed: int = 0) -> SimulatedDevice:
    return SimulatedDevice(
        sensor_id="dev",
        signal=signal or _RecordingSignal(),
        clock=clock,
        errors=ImuErrorModel.for_sensor(errors, seed, "dev"),
    )


def test_clock_drift_and_offset_are_injected_exactly() -> None:
    clock = SensorClock(offset_us=2**32 - 1_500_000.0, drift_ppm=37.5)  # the u32 counter wraps after 1.5 s
    signal = _RecordingSignal()
    device = _device(clock, signal)
    device.write_control(encode_command(StartCommand(200, 16, 2000, 8)), t_true_s=0.0)
    packets = [p for t in np.arange(0.05, 10.0, 0.05) for p in device.advance(float(t))]
    first_tick_us = math.ceil(clock.offset_us)
    n_ticks = math.floor((offset_plus_rate(np.array(9.95), clock) - first_tick_us) / 5000) + 1
    assert len(packets) == n_ticks // 8 == 248
    t_true = np.concatenate([p.t_true_s for p in packets])
    assert np.all(np.isin(t_true, np.concatenate(signal.calls)))  # the body is sampled at exactly these
    ticks_us = np.concatenate([p.t0_sensor_us + p.period_us * np.arange(p.n_samples) for p in packets])
    assert np.all(np.diff(ticks_us) == 5000)  # regular on the sensor clock
    np.testing.assert_allclose(offset_plus_rate(t_true, clock), ticks_us.astype(float), rtol=0, atol=1e-3)
    slope = np.polyfit(t_true, ticks_us.astype(float), 1)[0]
    assert slope == pytest.approx(1e6 * (1 + 37.5e-6), abs=1e-6)
    wire_t0 = [int.from_bytes(p.payload[4:8], "little") for p in packets]
    assert wire_t0 == [p.t0_sensor_us % 2**32 for p in packets]
    assert min(wire_t0) < 1_500_000 < max(wire_t0)  # the wrap happened on the wire
    assert [int.from_bytes(p.payload[2:4], "little") for p in packets] == list(range(len(packets)))
    assert [p.flags & FLAG_RESTART for p in packets] == [FLAG_RESTART] + [0] * (len(packets) - 1)


def offset_plus_rate(t_true_s: np.ndarray, clock: SensorClock) -> np.ndarray:
    return clock.offset_us + (1 + clock.drift_ppm * 1e-6) * t_true_s * 1e6


def test_device_control_settings_info_and_restart() -> None:
    device = _device(SensorClock(offset_us=12345.0, drift_ppm=-20.0))
    assert device.advance(1.0) == []  # idle: nothing
    assert device.read_info()[1] == 0
    device.write_control(encode_command(StartCommand(400, 8, 1000, 5)), t_true_s=1.0)
    assert device.read_info() == encode_info(
        streaming=True, rate_hz=400, acc_range_g=8, gyr_range_dps=1000, samples_per_packet=5
    )
    packets = device.advance(2.0)
    assert len(packets) == 400 // 5 or len(packets) == 400 // 5 - 1
    assert all(p.n_samples == 5 and p.period_us == 2500 for p in packets)
    assert all(p.payload[10] == 8 and int.from_bytes(p.payload[12:14], "little") == 1000 for p in packets)
    info_before = device.read_info()
    with pytest.raises(CommandRejected):
        device.write_control(bytes.fromhex("01c90010d00708"), t_true_s=2.0)  # 201 Hz
    assert device.read_info() == info_before
    device.write_control(encode_command(IdentifyCommand()), t_true_s=2.0)
    assert device.identify_count == 1
    device.write_control(encode_command(StopCommand()), t_true_s=2.0)
    assert device.advance(3.0) == [] and device.read_info()[1] == 0
    device.write_control(encode_command(StartCommand(200, 16, 2000, 19)), t_true_s=3.0)
    again = device.advance(3.5)
    assert again[0].seq == 0 and again[0].flags & FLAG_RESTART and not again[1].flags & FLAG_RESTART
    assert again[0].t_true_s[0] >= 3.0 and again[0].t_true_s[0] - 3.0 < 1e-6 + 1e-6
    assert all(len(p.payload) == 14 + 12 * 19 for p in again)
    assert device.battery_pct(0.0) == 100 and device.battery_pct(3600.0) == 94


def test_device_flags_clipping_in_packets() -> None:
    device = _device(SensorClock(), _RecordingSignal(amplitude_g=20.0, gyr_amplitude_dps=2100.0))
    device.write_control(encode_command(StartCommand(200, 16, 2000, 10)), t_true_s=0.0)
    packets = device.advance(2.0)
    raw = np.vstack([p.raw for p in packets])
    assert raw[:, 2].max() == 32767  # 20 g along z saturates at +16 g
    assert raw[:, 3].max() == 32767 and raw[:, 3].min() == -32768
    assert all(p.flags & FLAG_ACC_CLIPPED for p in packets)
    gyr_clipped = [bool(p.flags & FLAG_GYR_CLIPPED) for p in packets]
    expected = [bool(np.any(np.abs(p.raw[:, 3:6].astype(int)) >= 32767)) for p in packets]
    assert gyr_clipped == expected and any(expected) and not all(expected)


def test_device_is_deterministic_by_seed() -> None:
    def payloads(seed: int) -> list[bytes]:
        device = _device(SensorClock(offset_us=5.0, drift_ppm=3.0), errors="realistic", seed=seed)
        device.write_control(encode_command(StreamSettings().start_command()), t_true_s=0.0)
        return [p.payload for t in (0.3, 0.7, 2.0) for p in device.advance(t)]

    assert payloads(4) == payloads(4)
    assert payloads(4) != payloads(5)


# --- link ---------------------------------------------------------------------------------------------


def _packets(n: int) -> list[Any]:
    device = _device(SensorClock())
    device.write_control(encode_command(StartCommand(200, 16, 2000, 8)), t_true_s=0.0)
    packets = device.advance(n * 8 / 200 + 0.001)
    assert len(packets) == n
    return packets


def test_link_bookkeeping_latency_and_order() -> None:
    packets = _packets(5000)
    link = BleLink(link_preset("poor"), np.random.default_rng(2), host_epoch_s=1000.0)
    deliveries = [d for p in packets for d in link.transmit(p)] + link.flush()
    stats = link.stats
    assert stats.sent == 5000 and stats.delivered == len(deliveries) == 5000 - stats.lost
    delivered = {d.packet.index for d in deliveries}
    assert delivered.isdisjoint(stats.lost_indices) and len(delivered) + len(stats.lost_indices) == 5000
    assert 0.02 * 5000 < stats.lost < 0.2 * 5000  # iid 2 % plus bursts
    lost = np.zeros(5000, dtype=bool)
    lost[stats.lost_indices] = True
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, lost.astype(int), 0])))[::2]
    assert runs.max() >= 5  # bursts, not only single losses
    arrive = np.array([d.t_arrive_true_s for d in deliveries])
    assert np.all(np.diff(arrive) > 0)  # arrival order is the list order
    idx = np.array([d.packet.index for d in deliveries])
    assert 0 < np.sum(np.diff(idx) < 0) <= stats.reordered
    latency = arrive - np.array([d.packet.t_emit_true_s for d in deliveries])
    assert latency.min() > 0.0 and np.percentile(latency, 90) < link.conn_interval_s + 0.003
    assert 0.0075 <= link.conn_interval_s <= 0.030
    np.testing.assert_allclose([d.t_host_s - 1000.0 for d in deliveries], arrive, atol=1e-9)


def test_lossless_link_delivers_everything_in_order() -> None:
    packets = _packets(500)
    link = BleLink(LinkParams(loss_prob=0, burst_start_prob=0, reorder_prob=0), np.random.default_rng(0))
    deliveries = [d for p in packets for d in link.transmit(p)] + link.flush()
    assert [d.packet.index for d in deliveries] == list(range(500))
    assert link.stats.lost == 0


# --- athletes, session, transports, truth ----------------------------------------------------------------


class _StandInMotion:
    """A small analytic motion with the body model's interface (used where the body model is not needed)."""

    def __init__(self, duration_s: float = 6.0, sides: tuple[str, ...] = ("right",)) -> None:
        self.duration_s = duration_s
        self.sides = sides
        self.drill = "stand_in"
        self.events: list[dict[str, Any]] = [{"type": "rep", "t_s": 2.0, "depth_deg": np.float64(60.0)}]
        self.impacts_s: list[float] = []

    def imu(
        self, side: str, segment: str, mount: Any, t_s: np.ndarray, wobble: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        omega = 2 * np.pi * 0.5
        rate = (1.0 if segment == "shank" else 0.5) * np.sin(omega * t_s)
        gyr = np.stack([np.zeros_like(t_s), rate, np.zeros_like(t_s)], axis=1)
        acc = np.stack(
            [0.5 * np.cos(omega * t_s), np.zeros_like(t_s), np.full_like(t_s, GRAVITY_M_S2)], axis=1
        )
        return gyr, acc

    def truth_angles_deg(self, side: str, t_s: np.ndarray) -> np.ndarray:
        flexion = 30.0 * (1.0 - np.cos(2 * np.pi * 0.5 * t_s))
        return np.stack([flexion, 0.1 * flexion, -0.05 * flexion], axis=1)


def _stand_in_mount(side: str, segment: str, max_deg: float, rng: np.random.Generator) -> dict[str, Any]:
    return {"quaternion_wxyz": [1.0, 0.0, 0.0, 0.0], "tilt_deg": float(rng.uniform(0, max_deg))}


def _athlete(
    name: str = "ann", sides: tuple[str, ...] = ("right",), seed: int = 0, duration_s: float = 6.0, **kw: Any
) -> Any:
    from firmware_sim.athletes import SimulatedAthlete

    return SimulatedAthlete(
        name, _StandInMotion(duration_s, sides), seed=seed, mount_factory=_stand_in_mount, **kw
    )


def test_athlete_sensors_ids_refs_and_clocks() -> None:
    athlete = _athlete(sides=("left", "right"), seed=3)
    assert [s.sensor_id for s in athlete.sensors] == [
        "ann-left-thigh",
        "ann-left-shank",
        "ann-right-thigh",
        "ann-right-shank",
    ]
    assert athlete.sensor_refs()[1] == {
        "sensor_id": "ann-left-shank",
        "athlete": "ann",
        "side": "left",
        "segment": "shank",
        "protocol": "sensorhub-v1",
    }
    drifts = [s.clock.drift_ppm for s in athlete.sensors]
    assert all(abs(d) <= 50.0 for d in drifts) and len(set(drifts)) == 4
    again = _athlete(sides=("left", "right"), seed=3)
    assert [s.clock for s in again.sensors] == [s.clock for s in athlete.sensors]
    assert [s.clock for s in _athlete(sides=("left", "right"), seed=4).sensors] != drifts


def test_session_bookkeeping_equals_truth(tmp_path: Path) -> None:
    from firmware_sim.transports.inprocess import SimSession
    from firmware_sim.truth import write_truth

    athlete = _athlete(sides=("left", "right"), duration_s=30.0)
    session = SimSession([athlete], link="poor", seed=1, host_epoch_s=5000.0)
    deliveries = list(session.deliveries())
    stats = session.link_stats()
    for sensor in athlete.sensors:
        sid = sensor.sensor_id
        got = [d.packet.index for d in deliveries if d.packet.sensor_id == sid]
        device = session.devices[sid]
        assert device.packets_sent == stats[sid].sent == len(got) + stats[sid].lost
        assert sorted(got + stats[sid].lost_indices) == list(range(device.packets_sent))
        assert device.packets_sent == pytest.approx(30.0 * 200 / 8, abs=2)
    assert sum(s.lost for s in stats.values()) > 0
    arrive = [d.t_arrive_true_s for d in deliveries]
    assert arrive == sorted(arrive)
    write_truth(tmp_path, athlete, link_stats=stats, rate_hz=200.0, extra={"host_epoch_s": 5000.0})
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["drill"] == "stand_in" and truth["sides"] == ["left", "right"] and truth["seed"] == 0
    assert truth["error_model"]["name"] == "realistic"
    assert truth["events"] == [{"type": "rep", "t_s": 2.0, "depth_deg": 60.0}]
    for sensor in athlete.sensors:
        entry = truth["sensors"][sensor.sensor_id]
        assert entry["packets_sent"] == stats[sensor.sensor_id].sent
        assert entry["packets_lost"] == stats[sensor.sensor_id].lost
        assert entry["clock_drift_ppm"] == sensor.clock.drift_ppm
        assert entry["clock_offset_us"] == sensor.clock.offset_us
        assert entry["mount"]["tilt_deg"] == sensor.mount["tilt_deg"]
    lines = (tmp_path / "truth_angles.csv").read_text().splitlines()
    assert lines[0] == "time_s,side,flexion_deg,valgus_deg,rotation_deg"
    assert len(lines) == 1 + 2 * (30 * 200 + 1)
    t, side, flex, _, _ = lines[1 + 200].split(",")
    assert side == "left" and float(t) == 1.0 and float(flex) == pytest.approx(60.0)


def test_session_is_deterministic_by_seed() -> None:
    from firmware_sim.transports.inprocess import SimSession

    def run(seed: int) -> list[tuple[str, float, bytes]]:
        session = SimSession([_athlete(seed=seed)], seed=seed, link="poor")
        return [(d.packet.sensor_id, d.t_host_s, d.packet.payload) for d in session.deliveries()]

    assert run(7) == run(7)
    assert run(7) != run(8)


async def test_inprocess_transport_fast_and_realtime() -> None:
    import time

    from firmware_sim.transports import InProcessTransport
    from sensorhub.model import RawPacket

    async with InProcessTransport(
        [_athlete(duration_s=3.0)], realtime=False, seed=2, host_epoch_s=100.0
    ) as tr:
        fast = [p async for p in tr]
    assert all(isinstance(p, RawPacket) for p in fast)
    assert {p.sensor_id for p in fast} == {"ann-right-thigh", "ann-right-shank"}
    assert all(100.0 < p.t_host_s < 103.1 for p in fast)
    started_s = time.time()
    async with InProcessTransport([_athlete(duration_s=1.0)], realtime=True, seed=2) as tr:
        live = [p async for p in tr]
    elapsed_s = time.time() - started_s
    assert 0.95 < elapsed_s < 1.6
    assert started_s < live[0].t_host_s < live[-1].t_host_s <= started_s + elapsed_s
    async with InProcessTransport([_athlete(duration_s=1.0)], realtime=False, seed=2) as tr:
        same = [p async for p in tr]
    assert [p.payload for p in live] == [p.payload for p in same]  # pacing changes times, not content


async def test_realtime_transport_runs_the_body_model_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The body model of a realtime in-process simulation runs in a thread: on the loop, its block refills
    stalled the process it shares with the system under test (an MQTT gateway's keepalive went silent)."""
    import threading

    from firmware_sim.transports import InProcessTransport
    from firmware_sim.transports.inprocess import SimSession

    threads: set[int] = set()
    step_until = SimSession.step_until

    def recording(self: SimSession, t_true_s: float) -> Any:
        threads.add(threading.get_ident())
        return step_until(self, t_true_s)

    monkeypatch.setattr(SimSession, "step_until", recording)
    async with InProcessTransport([_athlete(duration_s=0.3)], realtime=True, seed=2) as tr:
        packets = [p async for p in tr]
    assert packets and threads and threading.get_ident() not in threads


def test_make_leg_csv_arrays_with_stand_in_motion() -> None:
    from firmware_sim import make_leg_csv_arrays

    motion = _StandInMotion(duration_s=20.0)
    clean = make_leg_csv_arrays(
        "stand_in", "right", 1, "clean", 0.0, motion=motion, link="lossless", mount_factory=_stand_in_mount
    )
    assert clean.data.shape == (20 * 200 + 1, 12) and not clean.lost.any()
    gyr, acc = motion.imu("right", "thigh", None, clean.t_s)
    np.testing.assert_array_equal(clean.data[:, 0:3], acc)
    np.testing.assert_array_equal(clean.data[:, 3:6], gyr)
    np.testing.assert_array_equal(clean.truth_deg, motion.truth_angles_deg("right", clean.t_s))
    noisy = make_leg_csv_arrays(
        "stand_in", "right", 1, "realistic", 10.0, motion=motion, link="poor", mount_factory=_stand_in_mount
    )
    assert noisy.lost.any() and np.all(np.isnan(noisy.data[noisy.lost]))
    assert not np.isnan(noisy.data[~noisy.lost]).any()
    diff = noisy.data[~noisy.lost] - clean.data[~noisy.lost]
    assert 0.0 < np.max(np.abs(diff[:, 0:3])) < 0.5 and 0.0 < np.max(np.abs(diff[:, 6:9])) < 0.5
    assert 0.0 < np.max(np.abs(diff[:, 3:6])) < 0.05
    # Quantised to the 16 g / 2000 dps int16 step.
    steps = noisy.data[~noisy.lost, 0] / (16 * GRAVITY_M_S2 / 32768)
    np.testing.assert_allclose(steps, np.rint(steps), rtol=0, atol=1e-6)


# --- the console script, end to end with the body model and the recorder -----------------------------------


def test_firmware_sim_drills_lists_every_drill(capsys: pytest.CaptureFixture[str]) -> None:
    from firmware_sim.cli import main

    assert main(["drills"]) == 0
    listed = capsys.readouterr().out.split()
    for drill in DRILLS:
        assert drill in listed


def test_firmware_sim_record_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from firmware_sim.cli import main
    from sensorhub.conventions import ANALYZE_CSV_HEADER
    from sensorhub.recording import read_recording

    out = tmp_path / "session"
    argv = [
        "record",
        "--drill",
        "drop_jump",
        "--out",
        str(out),
        "--reps",
        "2",
        "--seed",
        "3",
        "--sides",
        "both",
        "--faults",
        "valgus=0.3",
        "--link",
        "poor",
        "--csv",
    ]
    assert main(argv) == 0
    assert "drop_jump" in capsys.readouterr().out
    truth = json.loads((out / "truth.json").read_text())
    recording = read_recording(out / "recording.shrec")
    ids = [f"sim-{side}-{segment}" for side in ("left", "right") for segment in ("thigh", "shank")]
    assert [s["sensor_id"] for s in recording.meta["sensors"]] == ids
    assert all(s["protocol"] == "sensorhub-v1" for s in recording.meta["sensors"])
    packets = list(recording.packets())
    host_s = [p.t_host_s for p in packets]
    assert host_s == sorted(host_s) and host_s[0] >= truth["host_epoch_s"]
    assert truth["drill"] == "drop_jump" and truth["seed"] == 3 and truth["faults"] == {"valgus": 0.3}
    assert truth["events"], "the body model's events (with metrics) are exported"
    for sensor_id in ids:
        entry = truth["sensors"][sensor_id]
        mine = [p.payload for p in packets if p.sensor_id == sensor_id]
        assert len(mine) == entry["packets_sent"] - entry["packets_lost"] > 0
        assert len(entry["mount"]["quat_sensor_to_segment"]) == 4 and len(entry["mount"]["position_m"]) == 3
        assert abs(entry["clock_drift_ppm"]) <= 50.0
        # Every packet's t0 is exactly the injected clock: first tick + seq * 8 samples * 5000 us (mod 2**32).
        first_tick_us = math.ceil(entry["clock_offset_us"])
        for payload in mine:
            seq = int.from_bytes(payload[2:4], "little")
            assert int.from_bytes(payload[4:8], "little") == (first_tick_us + seq * 8 * 5000) % 2**32
            assert payload[0] == 1 and payload[11] == 8 and len(payload) == 14 + 12 * 8
    duration_s = truth["duration_s"]
    lines = (out / "truth_angles.csv").read_text().splitlines()
    assert lines[0] == "time_s,side,flexion_deg,valgus_deg,rotation_deg"
    n_grid = int(np.sum(np.arange(int(duration_s * 200) + 1) / 200 <= duration_s))
    assert len(lines) == 1 + 2 * n_grid
    first = [float(x) for x in lines[1].split(",")[2:]]
    assert max(abs(x) for x in first) < 1.0  # standing pose at the start
    for side in ("left", "right"):
        text = (out / f"imu_{side}.csv").read_text().splitlines()
        assert text[0] == ANALYZE_CSV_HEADER
        table = np.loadtxt(out / f"imu_{side}.csv", delimiter=",", skiprows=1)
        assert table.shape[1] == 13 and abs(table.shape[0] - duration_s * 200) <= 2
        ok = ~np.isnan(table[:, 1])
        assert ok.mean() > 0.8 and (~ok).any()  # the poor link lost some rows, whole rows
        assert np.all(np.isnan(table[~ok, 1:])) and not np.isnan(table[ok, 1:]).any()
        standing = ok & (table[:, 0] < 2.0)
        acc_norm = np.linalg.norm(table[standing, 1:4], axis=1)
        assert abs(float(np.median(acc_norm)) - GRAVITY_M_S2) < 0.3
    assert main(argv) == 2  # an existing recording is never overwritten


def test_session_bytes_do_not_depend_on_pacing() -> None:
    from firmware_sim.athletes import SimulatedAthlete, simulate_motion
    from firmware_sim.transports import SimSession

    motion = simulate_motion("squat", reps=1, sides=("right",), seed=5)

    def run(step_s: float, prefetch_s: float) -> list[tuple[str, float, bytes]]:
        athlete = SimulatedAthlete("bo", motion, seed=5)
        session = SimSession([athlete], seed=5, step_s=step_s, prefetch_s=prefetch_s)
        return [(d.packet.sensor_id, d.t_host_s, d.packet.payload) for d in session.deliveries()]

    fine = run(0.01, 0.1)
    assert len(fine) > 0.9 * 2 * motion.duration_s * 200 / 8
    assert fine == run(0.5, 5.0)


def test_firmware_sim_record_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from firmware_sim.cli import CliError, main, parse_faults

    assert parse_faults("valgus=0.3, stiff_landing=0.2") == {"valgus": 0.3, "stiff_landing": 0.2}
    for bad in ("valgus", "valgus=high", "=0.2"):
        with pytest.raises(CliError):
            parse_faults(bad)
    assert main(["record", "--drill", "moonwalk", "--out", str(tmp_path / "a")]) == 2
    assert main(["record", "--drill", "squat", "--out", str(tmp_path / "b"), "--faults", "valgus=x"]) == 2
    err = capsys.readouterr().err
    assert "moonwalk" in err and "valgus" in err
    assert not (tmp_path / "a" / "recording.shrec").exists()
