"""Knee kinematics against exact synthetic legs: calibration, invariances, mirroring, gaps, streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sensorhub.errors import CalibrationError
from sensorhub.kinematics import (
    QUALITY_MISSING_INPUT,
    KneeEstimator,
    calibrate_knee,
    concat_angles,
    estimate_knee_angles,
    knee_angles_from_rotation,
    knee_rotation,
)
from sensorhub.kinematics.joint_angles import matrix_to_quat, quat_to_matrix, rot_z
from sensorhub.kinematics.knee import OrientationStream, default_orientation_factory
from sensorhub.model import FloatArray, KneeAngles, LegSamples
from tests.kinematics.test_kinematics_synth import (
    RATE_HZ,
    SynthLeg,
    axis_angle_deg,
    make_leg,
    random_mounting,
)


def _angles_deg(a: KneeAngles) -> FloatArray:
    return np.degrees(np.column_stack([a.flexion_rad, a.valgus_rad, a.rotation_rad]))


def _rmse(a: KneeAngles, leg: SynthLeg) -> FloatArray:
    err = _angles_deg(a) - leg.truth_deg
    return np.asarray(np.sqrt(np.mean(err**2, axis=0)))


def _calibrate(leg: SynthLeg) -> tuple[float, float]:
    s = leg.samples
    cal = calibrate_knee(s.thigh_acc_m_s2, s.thigh_gyr_rad_s, s.shank_acc_m_s2, s.shank_gyr_rad_s, RATE_HZ)
    # every axis of the segment frame, thigh and shank (signs included: no abs)
    err_t = max(axis_angle_deg(cal.thigh_r_seg_to_sensor[:, k], leg.c_thigh[:, k]) for k in range(3))
    err_s = max(axis_angle_deg(cal.shank_r_seg_to_sensor[:, k], leg.c_shank[:, k]) for k in range(3))
    return err_t, err_s


@pytest.mark.parametrize("side", ["right", "left"])
def test_decomposition_round_trip(side: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        f, v, r = rng.uniform(-0.3, 2.2), rng.uniform(-0.5, 0.5), rng.uniform(-0.7, 0.7)
        got = knee_angles_from_rotation(knee_rotation(f, v, r, side), side)
        assert np.allclose(got, (f, v, r), atol=1e-12)


def test_left_leg_is_the_mirror_image_of_the_right() -> None:
    """Reflecting a right-knee rotation through the sagittal plane gives a left knee with equal angles."""
    mirror = np.diag([1.0, -1.0, 1.0])
    rng = np.random.default_rng(2)
    for _ in range(100):
        f, v, r = rng.uniform(0, 2), rng.uniform(-0.4, 0.4), rng.uniform(-0.6, 0.6)
        right = knee_rotation(f, v, r, "right")
        got = knee_angles_from_rotation(mirror @ right @ mirror, "left")
        assert np.allclose(got, (f, v, r), atol=1e-12)
    # valgus (knee towards the midline) of a right knee moves the shank's distal end to the right (-y)...
    assert (knee_rotation(0.0, 0.2, 0.0, "right") @ np.array([0.0, 0.0, -1.0]))[1] < 0
    # ...and that of a left knee to the left (+y)
    assert (knee_rotation(0.0, 0.2, 0.0, "left") @ np.array([0.0, 0.0, -1.0]))[1] > 0


@pytest.mark.parametrize("kind", ["bends", "walk"])
def test_calibration_recovers_a_known_mounting(kind: str) -> None:
    for seed in (11, 12, 13):
        leg = make_leg(kind, seed=seed, mount_max_deg=180.0, duration_s=25.0, hinge_only=True)
        err_t, err_s = _calibrate(leg)
        assert err_t < 2.0 and err_s < 2.0, (kind, seed, err_t, err_s)


def test_calibration_report_and_refusals() -> None:
    leg = make_leg("bends", seed=3, duration_s=25.0)
    s = leg.samples
    cal = calibrate_knee(s.thigh_acc_m_s2, s.thigh_gyr_rad_s, s.shank_acc_m_s2, s.shank_gyr_rad_s, RATE_HZ)
    r = cal.report
    assert 3.0 < r.standing_s < 4.0 and r.n_flexion_cycles >= 3 and 70.0 < r.flexion_range_deg < 95.0
    assert r.axis_spread_deg < 6.0 and r.relative_residual < 0.6
    # standing only: no bends
    still = make_leg("bends", seed=3, duration_s=25.0, standing_s=30.0)
    with pytest.raises(CalibrationError, match="knee bends"):
        estimate_knee_angles(still.samples, "right", RATE_HZ)
    # motion from the first second: the standing period is too short
    short = make_leg("bends", seed=3, duration_s=20.0, standing_s=1.0)
    with pytest.raises(CalibrationError, match="stand still for at least 3 s"):
        estimate_knee_angles(short.samples, "right", RATE_HZ)
    # a thigh sensor that never moves (lying on a table): its flexion axis is unobservable
    rng = np.random.default_rng(4)
    table_acc = s.thigh_acc_m_s2[:1] + rng.normal(0, 0.05, s.thigh_acc_m_s2.shape)
    table_gyr = rng.normal(0, 0.005, s.thigh_gyr_rad_s.shape)
    table = LegSamples("right", s.t_s, table_acc, table_gyr, s.shank_acc_m_s2, s.shank_gyr_rad_s)
    with pytest.raises(CalibrationError, match="thigh and shank must both move"):
        estimate_knee_angles(table, "right", RATE_HZ)


def test_fidgeting_before_the_standing_period_is_skipped() -> None:
    """Real recordings do not always start still: a quick half bend, then 4 s of standing, then bends."""
    leg = make_leg("bends", seed=91, duration_s=30.0, standing_s=5.5, fidget_s=1.5)
    angles, cal = estimate_knee_angles(leg.samples, "right", RATE_HZ)
    assert cal.standing_start_index > 1.5 * RATE_HZ and cal.report.standing_s > 3.0
    rmse = _rmse(angles, leg)
    assert rmse[0] <= 2.0 and rmse[1] <= 2.0 and rmse[2] <= 4.0, rmse


@pytest.mark.parametrize(("kind", "side"), [("bends", "right"), ("bends", "left"), ("walk", "right"),
                                            ("walk", "left")])
def test_angles_meet_the_accuracy_bounds(kind: str, side: str) -> None:
    """Unknown mounting up to 30 deg, noise, gyro bias, secondary knee motion coupled to flexion."""
    leg = make_leg(kind, side=side, seed=21, mount_max_deg=30.0, duration_s=40.0, gyr_bias_rad_s=0.02)
    angles, _ = estimate_knee_angles(leg.samples, side, RATE_HZ)
    rmse = _rmse(angles, leg)
    assert rmse[0] <= 2.0 and rmse[1] <= 2.0 and rmse[2] <= 4.0, rmse


def test_angles_do_not_depend_on_the_mounting() -> None:
    c_t = random_mounting(np.random.default_rng(5), 0.0)
    c_s = random_mounting(np.random.default_rng(6), 0.0)
    base = make_leg("bends", seed=31, noise=False, duration_s=30.0, c_thigh=c_t, c_shank=c_s)
    a0, _ = estimate_knee_angles(base.samples, "right", RATE_HZ)
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        other = make_leg("bends", seed=31, noise=False, duration_s=30.0, c_thigh=random_mounting(rng, 0.0),
                         c_shank=random_mounting(rng, 0.0))
        a1, _ = estimate_knee_angles(other.samples, "right", RATE_HZ)
        diff = _angles_deg(a1) - _angles_deg(a0)
        assert np.sqrt(np.mean(diff**2, axis=0)).max() < 0.5


class _HeadingOffsetFilter:
    """The real filter, its earth frame turned about the vertical by a constant angle."""

    def __init__(self, rate_hz: float, offset_rad: float) -> None:
        self._inner: OrientationStream = default_orientation_factory(rate_hz)
        self._q = matrix_to_quat(rot_z(offset_rad))

    def update(self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray) -> FloatArray:
        q = self._inner.update(gyr_rad_s, acc_m_s2)
        r = np.einsum("ij,njk->nik", quat_to_matrix(self._q[None, :])[0], quat_to_matrix(q))
        return np.array([matrix_to_quat(m) for m in r])


def test_angles_do_not_depend_on_a_heading_offset_between_the_sensors() -> None:
    leg = make_leg("bends", seed=41, duration_s=25.0)
    ref, _ = estimate_knee_angles(leg.samples, "right", RATE_HZ)
    made = iter([0.0, 2.3, 0.0, 2.3])  # thigh, shank filters alternate: only the shank's earth is turned

    def factory(rate_hz: float) -> OrientationStream:
        return _HeadingOffsetFilter(rate_hz, next(made))

    turned, _ = estimate_knee_angles(leg.samples, "right", RATE_HZ, orientation_factory=factory)
    assert np.abs(_angles_deg(turned) - _angles_deg(ref)).max() < 1e-6


def test_dropped_samples_still_meet_the_bounds() -> None:
    leg = make_leg("bends", seed=51, duration_s=40.0, gyr_bias_rad_s=0.02)
    s = leg.samples
    lost = np.random.default_rng(7).random(len(s)) < 0.05
    arrays = {name: getattr(s, name).copy() for name in
              ("thigh_acc_m_s2", "thigh_gyr_rad_s", "shank_acc_m_s2", "shank_gyr_rad_s")}
    for a in arrays.values():
        a[lost] = np.nan
    angles, _ = estimate_knee_angles(LegSamples(s.leg_id, s.t_s, **arrays), "right", RATE_HZ)
    assert np.array_equal((angles.quality & QUALITY_MISSING_INPUT) > 0, lost)
    rmse = _rmse(angles, leg)
    assert rmse[0] <= 2.0 and rmse[1] <= 2.0 and rmse[2] <= 4.0, rmse


def test_streaming_equals_batch_bit_for_bit() -> None:
    """Random chunk sizes, with single lost rows, loss bursts (gap recovery) and a gap at the very end."""
    leg = make_leg("walk", side="left", seed=61, duration_s=30.0)
    s = leg.samples
    rng = np.random.default_rng(8)
    lost = rng.random(len(s)) < 0.03
    for start in (1500, 2600, 4100):
        lost[start:start + int(rng.integers(20, 80))] = True
    lost[-7:] = True
    arrays = {name: getattr(s, name).copy() for name in
              ("thigh_acc_m_s2", "thigh_gyr_rad_s", "shank_acc_m_s2", "shank_gyr_rad_s")}
    for a in arrays.values():
        a[lost] = np.nan
    samples = LegSamples(s.leg_id, s.t_s, **arrays)
    batch, cal = estimate_knee_angles(samples, "left", RATE_HZ)
    assert len(batch.t_s) == len(s)
    for _ in range(3):
        est = KneeEstimator("left", RATE_HZ)
        parts, i = [], 0
        while i < len(samples):
            n = int(rng.integers(1, 400))
            parts.append(est.push(samples.slice(slice(i, i + n))))
            i += n
        parts.append(est.finish())
        live = concat_angles(parts, "left")
        assert est.calibration is not None
        assert np.array_equal(est.calibration.shank_r_seg_to_sensor, cal.shank_r_seg_to_sensor)
        for name in ("t_s", "flexion_rad", "valgus_rad", "rotation_rad", "quality"):
            assert np.array_equal(getattr(live, name), getattr(batch, name)), name


def test_no_drift_over_a_long_session_with_changing_gyro_bias() -> None:
    """5 minutes of walking while each gyroscope's bias wanders (temperature): the relative heading is
    held by the hinge constraint, so the last minute is as accurate as the first."""
    leg = make_leg("walk", seed=71, duration_s=300.0, gyr_bias_rad_s=0.01)
    s = leg.samples
    rng = np.random.default_rng(9)
    t = s.t_s[:, None]
    drift_t = rng.uniform(-1, 1, 3) * 0.003 * np.sin(2 * math.pi * t / 400.0)  # up to 0.17 deg/s
    drift_s = rng.uniform(-1, 1, 3) * 0.003 * np.sin(2 * math.pi * t / 300.0 + 1.0)
    drifting = LegSamples(s.leg_id, s.t_s, s.thigh_acc_m_s2, s.thigh_gyr_rad_s + drift_t, s.shank_acc_m_s2,
                          s.shank_gyr_rad_s + drift_s)
    angles, _ = estimate_knee_angles(drifting, "right", RATE_HZ)
    err = _angles_deg(angles) - leg.truth_deg
    minute = int(60 * RATE_HZ)
    first = np.sqrt(np.mean(err[int(5 * RATE_HZ):minute] ** 2, axis=0))
    last = np.sqrt(np.mean(err[-minute:] ** 2, axis=0))
    assert np.all(last <= first + 0.5), (first, last)
    assert last[0] <= 2.0 and last[1] <= 2.0 and last[2] <= 4.0
