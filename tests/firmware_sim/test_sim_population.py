"""firmware_sim.population: the seed split, determinism, variety, truth by the design's definitions, the
sensor front-end (interval-mean gyro, low-pass, rest) and the logger's time column."""

from __future__ import annotations

import dataclasses
import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.body.contact import Stance
from firmware_sim.body.rotations import quat_conjugate, quat_from_axis_angle, quat_multiply, rotate
from firmware_sim.cli import main as firmware_sim_main
from firmware_sim.errors_model import ImuErrorModel, ImuErrorParams, sensor_seed
from firmware_sim.frontend import FrontEnd, butterworth2, sample_sensor
from firmware_sim.logger import LoggerSpec, dropped, sample_instants, time_column
from firmware_sim.population import (
    FAMILIES,
    RATES_HZ,
    TEST_SEEDS,
    TUNING_SEEDS,
    PopulationError,
    PopulationRecording,
    RecordingSpec,
    draw_spec,
    simulate,
    split_of,
)
from sensorhub.conventions import ANALYZE_CSV_HEADER, ANGLES_CSV_HEADER, GRAVITY_M_S2

SEED = TEST_SEEDS.start  # tests look at test-split recordings: checking truth is not tuning


@cache
def recording(seed: int, family: str) -> PopulationRecording:
    return simulate(draw_spec(seed, family))


def _events(rec: PopulationRecording, kind: str) -> list[dict]:
    return [e for e in rec.events if e["type"] == kind]


def _clean(
    spec: RecordingSpec, rate_hz: float, sampling: str = "instant", bandwidth_hz: float = 0.0
) -> RecordingSpec:
    """The same recording with an ideal sensor and logger (no errors, jitter, drops, sway)."""
    return dataclasses.replace(
        spec,
        errors=ImuErrorParams(name="clean"),
        frontend=FrontEnd(sampling, bandwidth_hz, 16, 2000),
        logger=LoggerSpec(rate_hz=rate_hz),
        style=dataclasses.replace(spec.style, sway_rms_m=0.0),
    )


def test_the_split_is_disjoint_and_named() -> None:
    assert not set(TUNING_SEEDS) & set(TEST_SEEDS)
    assert len(TUNING_SEEDS) >= 100_000 and len(TEST_SEEDS) >= 100_000
    assert split_of(TUNING_SEEDS[5]) == "tuning" and split_of(TEST_SEEDS[5]) == "test"
    assert split_of(TEST_SEEDS.stop) is None
    assert draw_spec(TEST_SEEDS[3]).split == "test"
    assert draw_spec(TUNING_SEEDS[3]).split == "tuning"


def test_a_seed_fixes_the_recording() -> None:
    a, b = simulate(draw_spec(SEED, "squat")), simulate(draw_spec(SEED, "squat"))
    np.testing.assert_array_equal(a.t_s, b.t_s)
    np.testing.assert_array_equal(a.data, b.data)  # NaN rows in the same places compare equal
    np.testing.assert_array_equal(a.truth_deg, b.truth_deg)
    assert a.events == b.events and a.spec == b.spec
    assert json.dumps(a.truth_json()) == json.dumps(b.truth_json())
    c = draw_spec(SEED + 1, "squat")
    assert c != a.spec and c.to_json() != a.spec.to_json()


def test_fixing_the_family_changes_nothing_else() -> None:
    for seed in (SEED + 20, TUNING_SEEDS[20]):
        free = draw_spec(seed)
        fixed = draw_spec(seed, next(f for f in FAMILIES if f != free.family))
        same = (
            "side",
            "height_m",
            "geometry",
            "standing_s",
            "faults",
            "style",
            "sites",
            "frontend",
            "errors",
            "logger",
        )
        assert all(getattr(fixed, name) == getattr(free, name) for name in same)
        assert fixed.family != free.family


def test_draws_vary_across_seeds() -> None:
    specs = [draw_spec(s) for s in TEST_SEEDS[:300]]
    assert {s.family for s in specs} == set(FAMILIES)
    assert len({s.rate_hz for s in specs}) >= 10 and {s.rate_hz for s in specs} <= set(RATES_HZ)
    assert {s.side for s in specs} == {"left", "right"}
    assert {s.frontend.sampling for s in specs} == {"instant", "interval_mean"}
    assert {s.sites[0].site for s in specs} == {"lateral", "anterolateral", "anterior", "posterolateral"}
    assert {s.sites[1].site for s in specs} == {"anteromedial", "lateral", "posterior"}
    assert {s.sites[0].level for s in specs} == {"proximal", "mid", "distal"}
    assert {s.sites[0].in_plane_deg for s in specs} == {0.0, 90.0, 180.0, 270.0}
    assert {s.calibration for s in specs} == {"bends", "walk", "jog", None}
    assert {s.logger.drop_rows for s in specs} == {"nan", "missing"}
    assert {s.frontend.acc_range_g for s in specs} == {8, 16} and {
        s.frontend.gyr_range_dps for s in specs
    } == {
        1000,
        2000,
    }
    heights = [s.height_m for s in specs]
    assert min(heights) < 1.55 and max(heights) > 1.95
    assert any(s.logger.batch_samples > 1 for s in specs) and any(s.logger.batch_samples == 1 for s in specs)
    assert max(abs(s.logger.clock_ppm) for s in specs) > 180.0
    assert all(0.1e-3 <= s.logger.jitter_sigma_s <= 0.5e-3 and s.logger.jitter_max_s <= 1.5e-3 for s in specs)
    bias = [s.errors.gyr_bias_max_rad_s for s in specs]
    assert min(bias) < math.radians(0.4) and max(bias) > math.radians(2.0)
    for s in specs:
        if s.frontend.sampling == "instant":
            assert s.rate_hz / 4.0 <= s.frontend.bandwidth_hz <= s.rate_hz / 2.0
    forefoot = [s.style.landing.forefoot_prob for s in specs]
    assert min(forefoot) == 0.0 and max(forefoot) > 0.8


@pytest.mark.parametrize("family", ["cmj", "drop_jump", "tuck_jump", "hop"])
def test_a_landing_is_the_first_ground_contact(family: str) -> None:
    """t_s is the instant the foot touches down after a flight: moving down before, at rest after the
    impact (with a forefoot landing, after the heel strike); metrics follow their definitions."""
    rec = recording(SEED + 4, family)
    lands = _events(rec, "landing")
    assert lands, family
    for e in lands:
        side, t_c = e["side"], e["t_s"]
        assert side == rec.spec.side
        leg = rec.motion._body.legs[side]
        stance = next(p for p in leg.phases if isinstance(p, Stance) and p.t0_s == t_c)
        flight = next(f for f in rec.motion.flights(side) if f[1] == t_c)
        assert e["flight_time_s"] == pytest.approx(t_c - flight[0], abs=1e-9)
        _, v_air, _ = rec.motion.joint_kinematics(side, "ankle", np.array([t_c - 0.03, t_c - 1e-4]))
        assert (v_air[:, 2] < -0.3).all()
        settled = t_c + stance.impact_end_s + np.array([1e-4, 0.05])
        _, v_down, _ = rec.motion.joint_kinematics(side, "ankle", settled)
        assert np.abs(v_down).max() < 1e-9
        if "t_heel_strike_s" in e:  # forefoot first: the ankle still sinks until the heel strikes
            _, v_mid, _ = rec.motion.joint_kinematics(side, "ankle", np.array([e["t_heel_strike_s"] - 1e-3]))
            assert v_mid[0, 2] < -0.05
        off = e["t_takeoff_s"]
        assert e["ground_contact_time_s"] == (None if off is None else pytest.approx(off - t_c))
        if e["exercise"] != "drop_landing":  # stepping off a box is not a jump
            assert e["jump_height_m"] == pytest.approx(GRAVITY_M_S2 * e["flight_time_s"] ** 2 / 8.0)


def test_tuck_jumps_flex_the_knee_in_flight_and_extend_before_contact() -> None:
    rec = recording(SEED + 6, "tuck_jump")
    lands = _events(rec, "landing")
    assert len(lands) >= 2
    for e in lands:
        t = np.linspace(e["t_s"] - e["flight_time_s"], e["t_s"], 400)
        flexion = rec.motion.truth_angles_deg(e["side"], t)[:, 0]
        assert flexion.max() >= 70.0
        assert e["flight_peak_flexion_deg"] == pytest.approx(flexion.max(), abs=0.5)
        assert e["flexion_at_contact_deg"] < flexion.max() - 40.0  # extended again before contact


def test_jog_curves_turn_gradually_without_cut_events() -> None:
    for seed in (SEED + 8, SEED + 9):
        rec = recording(seed, "jog_curves")
        assert not _events(rec, "cut") and rec.curves
        stride_s = 2.0 * rec.spec.style.jog.step_s
        for t0, t1, turn_deg in rec.curves:
            assert abs(turn_deg) >= 30.0
            assert t1 - t0 >= 3.0 * rec.spec.style.jog.step_s  # over several steps, not one plant
            hip = rec.motion.joint_kinematics(
                rec.spec.side, "hip", np.array([t0 - stride_s, t0, t1, t1 + stride_s])
            )[0]
            d0, d1 = hip[1] - hip[0], hip[3] - hip[2]
            travel_change = math.degrees(math.atan2(d0[0] * d1[1] - d0[1] * d1[0], d0 @ d1))
            assert travel_change == pytest.approx(turn_deg, abs=10.0)


def test_cuts_plant_the_recorded_foot_and_change_direction() -> None:
    rec = recording(SEED + 10, "cut")
    cuts = _events(rec, "cut")
    assert cuts
    starts = [t0 for t0, _ in rec.motion.contact_phases(rec.spec.side)]
    for e in cuts:
        assert e["t_s"] in starts and e["side"] == rec.spec.side
        assert 45.0 <= e["direction_change_deg"] <= 135.0
        assert e["cut_style"] in ("sidestep", "crossover")
        assert 0.0 < e["braking_time_s"] < e["ground_contact_time_s"]


@pytest.mark.parametrize("family", ["squat", "step_down", "lunge"])
def test_a_rep_starts_where_the_knee_leaves_rest(family: str) -> None:
    rec = recording(SEED + 12, family)
    reps = [e for e in _events(rec, "rep") if e["exercise"] == family]
    assert reps
    for e in reps:
        before = rec.motion.truth_angles_deg(e["side"], np.linspace(e["t_s"] - 0.2, e["t_s"], 50))[:, 0]
        rest = before[-1]
        assert np.abs(before - rest).max() < 1e-9  # quiet up to t_s
        early = e["t_s"] + 0.25 * (e["t_bottom_s"] - e["t_s"])
        assert rec.motion.truth_angles_deg(e["side"], np.array([early]))[0, 0] > rest + 0.5  # and leaving it
        assert e["t_s"] < e["t_bottom_s"] < e["t_end_s"]


def test_standing_then_calibration_then_the_drill() -> None:
    for seed in range(SEED + 30, SEED + 36):
        spec = draw_spec(seed, "cmj")
        rec = recording(seed, "cmj")
        quiet = rec.motion.truth_angles_deg(spec.side, np.linspace(0.0, spec.standing_s, 100))
        assert np.abs(quiet).max() == 0.0  # weight shifts tilt the legs, never bend the knee
        first = min(e["t_s"] for e in rec.events)
        assert first >= spec.standing_s - 1e-9
        bends = [e for e in rec.events if e.get("calibration")]
        if spec.calibration == "bends":
            assert len(bends) == spec.style.n_bends
            assert all(40.0 - 1e-6 <= e["depth_deg"] <= 90.0 + 1e-6 for e in bends)
        else:
            assert not bends and rec.steps  # calibration from a walking or jogging bout
            assert rec.steps[0]["t_s"] < min(e["t_s"] for e in _events(rec, "landing"))


def test_time_column_follows_the_logger_spec() -> None:
    rng = np.random.default_rng(1)
    single = LoggerSpec(rate_hz=200.0, clock_ppm=150.0, jitter_sigma_s=3e-4, jitter_max_s=9e-4)
    t = sample_instants(single, 120.0, rng)
    np.testing.assert_allclose(np.diff(t), 1.0 / (200.0 * (1.0 + 150e-6)), rtol=1e-9)
    dev = time_column(single, t, rng) - t
    assert 0.9 * 3e-4 < dev.std() < 1.05 * 3e-4
    assert dev.min() >= -1e-5 and dev.max() <= 2 * 9e-4 + 1e-5  # never stamped before it was taken
    batched = dataclasses.replace(single, batch_samples=4, time_resolution_s=1e-3)
    col = time_column(batched, t, rng)
    assert (np.diff(col) >= 0.0).all()
    assert (col - t).min() >= -5e-4  # millisecond rounding
    assert (col - t).max() <= 3.0 / 200.0 + 2 * 9e-4 + 5e-4  # a batch waits for its last sample
    np.testing.assert_allclose(col / 1e-3, np.round(col / 1e-3), atol=1e-6)  # millisecond clock
    for seed in (SEED + 40, SEED + 41, SEED + 42):
        rec = recording(seed, "squat")
        lg = rec.spec.logger
        dev = rec.t_s - rec.true_t_s
        assert (np.diff(rec.t_s) >= 0.0).all()
        assert dev.min() >= -lg.time_resolution_s - 1e-6
        wait_s = (lg.batch_samples - 1) * 1.01 / lg.rate_hz + 1e-4  # a batch's first sample waits longest
        assert dev.max() <= wait_s + 2 * lg.jitter_max_s + lg.time_resolution_s + 1e-6


def test_dropped_samples_are_nan_rows_or_missing_rows() -> None:
    spec = LoggerSpec(rate_hz=100.0, drop_prob=0.01, bursts_per_min=30.0, burst_s=(0.1, 0.4))
    t = sample_instants(spec, 60.0, np.random.default_rng(2))
    lost = dropped(spec, t, np.random.default_rng(3))
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, lost.astype(int), 0])))[::2]
    assert runs.max() >= 10 and lost.mean() < 0.3  # bursts of 100-400 ms and single drops
    for seed in range(SEED + 40, SEED + 80):
        spec = draw_spec(seed, "squat")
        if spec.logger.drop_rows == "missing" and spec.logger.batch_samples == 1:
            break
    missing = recording(seed, "squat")
    as_nan = simulate(dataclasses.replace(spec, logger=dataclasses.replace(spec.logger, drop_rows="nan")))
    lost = ~np.isfinite(as_nan.data).all(axis=1)
    assert lost.sum() == as_nan.n_dropped == missing.n_dropped > 0
    assert np.isfinite(missing.data).all()
    np.testing.assert_array_equal(missing.true_t_s, as_nan.true_t_s[~lost])
    np.testing.assert_array_equal(missing.t_s, as_nan.t_s[~lost])  # the time column has the gaps
    np.testing.assert_array_equal(missing.data, as_nan.data[~lost])
    gaps = np.round(np.diff(missing.true_t_s) / spec.logger.period_s).astype(int) - 1
    assert gaps.max() >= 1 and gaps.sum() <= missing.n_dropped
    np.testing.assert_allclose(
        missing.truth_deg, missing.motion.truth_angles_deg(spec.side, missing.true_t_s)
    )


def test_interval_mean_gyro_integrates_to_the_orientation_change() -> None:
    """Xsens-style samples: one rotation at the sample's rate over the interval that ends at it is the
    true orientation change over that interval, even in tuck jumps at 100 Hz."""
    rec = recording(SEED + 6, "tuck_jump")
    period = 1.0 / 100.0
    t = rec.spec.standing_s + np.arange(1500) * period
    for segment in ("thigh", "shank"):
        mount = rec.mounts[segment]
        clean = ImuErrorModel(ImuErrorParams(), sensor_seed(1, segment))
        gyr, _ = sample_sensor(rec.motion, rec.spec.side, segment, mount, t, FrontEnd("interval_mean"), clean)
        q, _ = rec.motion.sensor_pose(rec.spec.side, segment, mount, np.r_[t[0] - period, t])
        true_step = quat_multiply(quat_conjugate(q[:-1]), q[1:])
        angle = np.linalg.norm(gyr, axis=1) * period
        step = quat_from_axis_angle(np.where(angle[:, None] > 0.0, gyr, [1.0, 0.0, 0.0]), angle)
        diff = quat_multiply(quat_conjugate(step), true_step)
        assert 2.0 * np.abs(diff[:, 1:]).max() < 1e-9  # rad
        assert np.degrees(np.abs(gyr).max()) > 200.0
        ideal, _ = rec.motion.imu(rec.spec.side, segment, mount, t)
        assert np.degrees(np.abs(gyr - ideal).max()) > 5.0  # not the instantaneous rate


def test_instant_sampling_is_the_ideal_imu_through_the_low_pass() -> None:
    rec = recording(SEED + 6, "tuck_jump")
    t = rec.spec.standing_s + np.arange(2000) / 400.0
    side, mount = rec.spec.side, rec.mounts["shank"]
    ideal_gyr, ideal_acc = rec.motion.imu(side, "shank", mount, t)
    clean = ImuErrorModel(ImuErrorParams(), sensor_seed(1, "shank"))
    gyr, acc = sample_sensor(rec.motion, side, "shank", mount, t, FrontEnd("instant", 0.0, 32, 4000), clean)
    np.testing.assert_allclose(gyr, ideal_gyr, atol=1e-9)
    np.testing.assert_allclose(acc, ideal_acc, atol=1e-8)
    filtered, _ = sample_sensor(
        rec.motion, side, "shank", mount, t, FrontEnd("instant", 100.0, 32, 4000), clean
    )
    lag = int(np.argmax(np.correlate(filtered[:, 1], ideal_gyr[:, 1], "full"))) - (t.size - 1)
    assert 0 <= lag <= 2  # a 100 Hz Butterworth delays by ~2 ms: up to one 2.5 ms sample
    assert 0.0 < np.abs(filtered - ideal_gyr).max() < np.abs(ideal_gyr).max()


def test_low_pass_has_its_bandwidth() -> None:
    b0, b1, b2, a1, a2 = butterworth2(100.0, 1600.0)
    for f_hz, gain in ((0.0, 1.0), (100.0, 1.0 / math.sqrt(2.0))):
        z = np.exp(-2j * math.pi * f_hz / 1600.0)
        assert abs((b0 + b1 * z + b2 * z * z) / (1.0 + a1 * z + a2 * z * z)) == pytest.approx(gain, abs=1e-9)


def test_a_sensor_at_rest_reads_gravity_along_up() -> None:
    for sampling in ("instant", "interval_mean"):
        spec = _clean(draw_spec(SEED + 3, "squat"), 208.0, sampling, 80.0 if sampling == "instant" else 0.0)
        rec = simulate(spec)
        quiet = rec.true_t_s < 2.9
        for k, segment in enumerate(("thigh", "shank")):
            acc, gyr = rec.data[quiet, 6 * k : 6 * k + 3], rec.data[quiet, 6 * k + 3 : 6 * k + 6]
            q, _ = rec.motion.sensor_pose(spec.side, segment, rec.mounts[segment], rec.true_t_s[quiet])
            up = rotate(quat_conjugate(q), np.array([0.0, 0.0, 1.0]))
            np.testing.assert_allclose(acc, GRAVITY_M_S2 * up, atol=1e-9)
            assert np.abs(gyr).max() < 1e-12


def test_bias_instability_has_its_spread() -> None:
    params = ImuErrorParams(gyr_bias_instability_rad_s=0.01, gyr_bias_corr_s=1.0)
    model = ImuErrorModel(params, sensor_seed(4, "x"))
    zeros = np.zeros((50_000, 3))
    first, _ = model.apply(zeros, zeros, 50.0)
    second, _ = model.apply(zeros, zeros, 50.0)  # chunks continue the same process
    series = np.vstack([first, second])
    assert series.std() == pytest.approx(0.01, rel=0.1)
    lag1 = np.corrcoef(series[:-50, 0], series[50:, 0])[0, 1]  # 1 s apart: exp(-1)
    assert lag1 == pytest.approx(math.exp(-1.0), abs=0.05)


def test_a_mixed_session_is_ten_minutes_of_everything() -> None:
    spec = draw_spec(SEED, "mixed")
    assert spec.min_duration_s >= 600.0
    assert {d for d, _ in spec.plan} == set(FAMILIES) - {"mixed"}


def test_write_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert firmware_sim_main(["population", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "tuning seeds: 0..99999" in listed and "test seeds: 1000000..1099999" in listed
    assert all(f in listed for f in FAMILIES)
    out = tmp_path / "rec"
    assert (
        firmware_sim_main(["population", "--seed", str(SEED + 40), "--family", "squat", "--out", str(out)])
        == 0
    )
    rec = recording(SEED + 40, "squat")
    lines = (out / "imu.csv").read_text().splitlines()
    assert lines[0] == ANALYZE_CSV_HEADER
    table = np.loadtxt(out / "imu.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 0], rec.t_s, atol=1e-6)
    np.testing.assert_allclose(table[:, 1:], rec.data, rtol=1e-8, atol=1e-6)  # NaN rows stay NaN
    assert (out / "truth_angles.csv").read_text().splitlines()[0] == ANGLES_CSV_HEADER
    angles = np.loadtxt(out / "truth_angles.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(angles[:, 0], rec.true_t_s, atol=1e-9)
    truth = json.loads((out / "truth.json").read_text())
    assert truth["spec"]["seed"] == SEED + 40 and truth["spec"]["split"] == "test"
    assert len(truth["events"]) == len(rec.events) and truth["curves"] == []
    assert firmware_sim_main(["population", "--seed", "1", "--family", "skating", "--out", str(out)]) == 2
    assert "unknown family" in capsys.readouterr().err


def test_bad_input_is_refused() -> None:
    with pytest.raises(PopulationError, match="families"):
        draw_spec(1, "skating")
    with pytest.raises(PopulationError, match=">= 0"):
        draw_spec(-1)
