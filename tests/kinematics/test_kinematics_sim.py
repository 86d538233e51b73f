"""Knee kinematics against firmware_sim: the simulator's own body model, mounts, error model and link."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_sim.exceptions import FirmwareSimError
from sensorhub.kinematics import QUALITY_MISSING_INPUT, QUALITY_RECOVERING, estimate_knee_angles
from sensorhub.kinematics.joint_angles import quat_to_matrix
from sensorhub.model import FloatArray, KneeAngles, LegSamples
from sensorhub.offline.analyze import analyze_main

firmware_sim = pytest.importorskip("firmware_sim")
RATE_HZ = 200.0
BOUNDS = np.array([2.0, 2.0, 4.0])


def _arrays(drill: str, side: str, seed: int, errors: str, **kwargs: Any) -> Any:
    try:
        return firmware_sim.make_leg_csv_arrays(drill, side=side, seed=seed, errors=errors,
                                                mount_max_deg=30.0, **kwargs)
    except FirmwareSimError as exc:
        if "not implemented" in str(exc):
            pytest.skip(f"firmware_sim does not simulate {drill!r} yet")
        raise


def _samples(a: Any, side: str) -> LegSamples:
    x = a.data
    return LegSamples(side, a.t_s, x[:, 0:3].copy(), x[:, 3:6].copy(), x[:, 6:9].copy(), x[:, 9:12].copy())


def _rmse(angles: Any, truth_deg: FloatArray) -> FloatArray:
    est = np.degrees(np.column_stack([angles.flexion_rad, angles.valgus_rad, angles.rotation_rad]))
    return np.asarray(np.sqrt(np.mean((est - truth_deg) ** 2, axis=0)))


def _mount_error_deg(a: Any, side: str, segment: str, c_est: FloatArray) -> float:
    q = np.asarray(a.athlete.sensor(side, segment).mount.quat_sensor_to_segment)
    c_true = quat_to_matrix(q[None, :])[0].T  # segment -> sensor
    cosines = [float(np.clip(c_est[:, k] @ c_true[:, k], -1.0, 1.0)) for k in range(3)]
    return max(math.degrees(math.acos(c)) for c in cosines)


@pytest.mark.parametrize(("drill", "kwargs"),
                         [("calibration_bends", {}), ("walk", {"calibration_bends": False})])
def test_calibration_recovers_the_simulated_mounting(drill: str, kwargs: dict[str, Any]) -> None:
    for seed in range(3):
        side = ("right", "left")[seed % 2]
        a = _arrays(drill, side, seed, "clean", **kwargs)
        _, cal = estimate_knee_angles(_samples(a, side), side, RATE_HZ)
        for segment, c in (("thigh", cal.thigh_r_seg_to_sensor), ("shank", cal.shank_r_seg_to_sensor)):
            err = _mount_error_deg(a, side, segment, c)
            assert err < 2.0, (drill, seed, segment, err)


ALL_DRILLS = ["squat", "step_down", "lunge", "cmj", "drop_jump", "cut_45", "cut_90", "walk", "jog"]


@pytest.mark.parametrize("drill", ALL_DRILLS)
def test_drills_meet_the_bounds_with_realistic_errors(drill: str) -> None:
    """Noise, bias, scale errors, soft-tissue wobble, mounts up to 30 deg (lossless link)."""
    for seed in (100, 101):
        side = ("right", "left")[seed % 2]
        a = _arrays(drill, side, seed, "realistic", link="lossless")
        angles, _ = estimate_knee_angles(_samples(a, side), side, RATE_HZ)
        rmse = _rmse(angles, a.truth_deg)
        assert np.all(rmse <= BOUNDS), (drill, seed, rmse)


@pytest.mark.parametrize("drill", ["squat", "step_down", "lunge", "cmj", "walk"])
def test_drills_meet_the_bounds_over_a_lossy_link(drill: str) -> None:
    """The simulator's typical BLE link (random losses and ~0.3 s loss bursts): gaps are bridged, the
    inclination and the relative heading recover; the bounds still hold. (A burst in the swing phase of a
    jog or a cut loses tens of degrees of flexion for its duration: see docs/kinematics.md.)"""
    for seed in (100, 101):
        side = ("right", "left")[seed % 2]
        a = _arrays(drill, side, seed, "realistic", link="typical")
        angles, _ = estimate_knee_angles(_samples(a, side), side, RATE_HZ)
        rmse = _rmse(angles, a.truth_deg)
        assert np.all(rmse <= BOUNDS), (drill, seed, rmse)


def _errors_deg(angles: KneeAngles, truth_deg: FloatArray) -> FloatArray:
    est = np.degrees(np.column_stack([angles.flexion_rad, angles.valgus_rad, angles.rotation_rad]))
    return np.asarray(est - truth_deg)


@pytest.mark.parametrize("drill", ["cut_90", "jog"])
def test_typical_link_fast_drills_meet_the_bounds_on_received_rows(drill: str) -> None:
    """Cuts and jogging over the simulator's typical BLE link (iid losses plus ~0.3 s bursts), realistic
    sensor errors, mounts up to 30 deg. After every burst, flexion is re-anchored on the hinge and
    valgus/rotation are held, so every received row meets the bounds. Rows inside a gap are an
    interpolation of what was never transmitted (flagged QUALITY_MISSING_INPUT) and are not scored: a
    0.3 s burst in a 700 deg/s swing hides a whole flexion reversal that no estimator can reconstruct.
    (Before the hinge re-anchoring these recordings had up to 3.8 deg flexion RMSE on received rows.)"""
    recovered = 0
    for seed in (100, 101):
        side = ("right", "left")[seed % 2]
        a = _arrays(drill, side, seed, "realistic", link="typical")
        angles, _ = estimate_knee_angles(_samples(a, side), side, RATE_HZ)
        lost = ~np.all(np.isfinite(a.data), axis=1)
        assert np.array_equal((angles.quality & QUALITY_MISSING_INPUT) > 0, lost)
        received = ~lost
        err = _errors_deg(angles, a.truth_deg)
        rmse = np.sqrt(np.mean(err[received] ** 2, axis=0))
        assert np.all(rmse <= BOUNDS), (drill, seed, rmse)
        recovered += int(np.count_nonzero(angles.quality & QUALITY_RECOVERING))
    assert recovered > 0  # the link did lose bursts long enough to need the recovery


@pytest.mark.parametrize(("drill", "seed"), [("cut_90", 103), ("jog", 104), ("walk", 105)])
def test_flexion_is_back_within_50_ms_after_a_gap_in_a_fast_movement(drill: str, seed: int) -> None:
    """A 0.3 s gap centred on the fastest flexion of the recording (500-750 deg/s): from 50 ms after the
    gap on, flexion stays within 5 deg of the truth (and valgus/rotation within 3/5 deg) for the next 2 s.

    Why 50 ms: the first hinge anchor needs three received rows (a central difference for the angular
    acceleration in the lever terms), i.e. 10 ms at 200 Hz, and a single anchor already sets the flexion
    offset; the rest is margin for rows the anchor gates reject (impact jerk, magnitude mismatch of the
    two knee-centre accelerations). What happens in the gap itself is not observable and is not checked.
    Without the re-anchoring, flexion needed 1-1.9 s here (up to 100 deg off in between)."""
    side = ("right", "left")[seed % 2]
    a = _arrays(drill, side, seed, "realistic", link="lossless")
    rate_deg_s = np.abs(np.gradient(a.truth_deg[:, 0])) * RATE_HZ
    rate_deg_s[: int(20 * RATE_HZ)] = 0.0  # after calibration and some seconds of the drill
    rate_deg_s[-int(3 * RATE_HZ):] = 0.0
    centre = int(np.argmax(rate_deg_s))
    assert rate_deg_s[centre] > 400.0
    half = int(0.15 * RATE_HZ)
    s = _samples(a, side)
    for arr in (s.thigh_acc_m_s2, s.thigh_gyr_rad_s, s.shank_acc_m_s2, s.shank_gyr_rad_s):
        arr[centre - half:centre + half] = np.nan
    angles, _ = estimate_knee_angles(s, side, RATE_HZ)
    end = centre + half  # first received row
    err = np.abs(_errors_deg(angles, a.truth_deg))
    after = slice(end + int(0.05 * RATE_HZ), end + int(2.0 * RATE_HZ))
    assert err[after, 0].max() <= 5.0, (drill, err[after, 0].max())
    assert err[after, 1].max() <= 3.0 and err[after, 2].max() <= 5.0, err[after].max(axis=0)
    assert np.all(angles.quality[end:end + int(0.05 * RATE_HZ)] & QUALITY_RECOVERING)


def test_five_percent_dropped_rows_still_meet_the_bounds() -> None:
    a = _arrays("squat", "left", 102, "realistic")
    s = _samples(a, "left")
    rng = np.random.default_rng(5)
    lost = rng.random(len(s)) < 0.05
    for arr in (s.thigh_acc_m_s2, s.thigh_gyr_rad_s, s.shank_acc_m_s2, s.shank_gyr_rad_s):
        arr[lost] = np.nan
    angles, _ = estimate_knee_angles(s, "left", RATE_HZ)
    rmse = _rmse(angles, a.truth_deg)
    assert np.all(rmse <= BOUNDS), rmse


def test_analyze_a_recording_of_both_legs(tmp_path: Path) -> None:
    """The recorder's own file format: decode, clock mapping and grid alignment of the live front."""
    from firmware_sim.athletes import SimulatedAthlete, simulate_motion
    from firmware_sim.transports.inprocess import SimSession
    from firmware_sim.transports.recording import write_recording

    motion = simulate_motion("squat", reps=3, sides=("right", "left"), seed=5)
    athlete = SimulatedAthlete("ana", motion, errors="realistic", mount_max_deg=30.0, seed=5)
    write_recording(tmp_path / "rec.shrec", SimSession([athlete], seed=5))
    assert analyze_main(tmp_path / "rec.shrec", tmp_path / "out", None) == 0
    for side in ("right", "left"):
        table = np.loadtxt(tmp_path / "out" / f"ana_{side}" / "angles.csv", delimiter=",", skiprows=1)
        truth = motion.truth_angles_deg(side, table[:, 0])
        rmse = np.sqrt(np.mean((table[:, 1:] - truth) ** 2, axis=0))
        assert table.shape[0] > 25 * RATE_HZ and np.all(rmse <= BOUNDS), (side, rmse)
    analyze_main(tmp_path / "rec.shrec", tmp_path / "only_left", "left")
    assert (tmp_path / "only_left" / "angles.csv").exists()
