"""Offline repair of the flexion after loss bursts (a backward pass), on population recordings (tuning
seeds) whose loss bursts fall in running."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_sim.population import draw_spec, simulate
from sensorhub.kinematics import QUALITY_MISSING_INPUT, estimate_knee, repair_after_gaps
from sensorhub.kinematics.gap_repair import reversed_samples
from sensorhub.model import LegSamples


def _recording(family: str, seed: int) -> tuple[LegSamples, np.ndarray, np.ndarray, str, float]:
    rec = simulate(draw_spec(seed, family))
    assert rec.spec.logger.drop_rows == "nan"  # the grid is the logger's rows: truth row = sample row
    d = rec.data
    samples = LegSamples(rec.spec.side, rec.true_t_s, d[:, 0:3], d[:, 3:6], d[:, 6:9], d[:, 9:12])
    received = np.all(np.isfinite(d), axis=1)
    return samples, rec.truth_deg[:, 0], received, rec.spec.side, rec.spec.logger.rate_hz


def test_reversing_twice_gives_the_recording_back() -> None:
    samples, _, _, _, _ = _recording("squat", 3)
    back = reversed_samples(reversed_samples(samples))
    np.testing.assert_allclose(back.thigh_acc_m_s2, samples.thigh_acc_m_s2)
    # a rate moves one row each way: all but the first row come back exactly
    np.testing.assert_allclose(back.shank_gyr_rad_s[1:], samples.shank_gyr_rad_s[1:])
    np.testing.assert_allclose(back.t_s - back.t_s[0], samples.t_s - samples.t_s[0], atol=1e-9)


@pytest.mark.parametrize(("family", "seed"), [("jog", 10), ("jog", 29), ("jog_curves", 8)])
def test_flexion_after_loss_bursts_in_running_is_repaired(family: str, seed: int) -> None:
    samples, truth_deg, received, side, rate_hz = _recording(family, seed)
    run = estimate_knee(samples, side, rate_hz)
    repaired = repair_after_gaps(samples, run.angles, side, rate_hz, run.calibration)

    def rmse(angles_rad: np.ndarray) -> float:
        e = np.degrees(angles_rad) - truth_deg
        return float(np.sqrt(np.mean(e[received] ** 2)))

    before, after = rmse(run.angles.flexion_rad), rmse(repaired.flexion_rad)
    assert before > 2.5 and after < 0.8 * before and after <= 2.5, (before, after)
    # far from every gap the forward angles are kept exactly; valgus and rotation are the forward ones
    missing = (run.angles.quality & QUALITY_MISSING_INPUT) != 0
    first_gap = int(np.flatnonzero(missing)[0])
    np.testing.assert_array_equal(repaired.flexion_rad[:first_gap], run.angles.flexion_rad[:first_gap])
    np.testing.assert_array_equal(repaired.valgus_rad, run.angles.valgus_rad)


def test_a_recording_without_gaps_is_unchanged() -> None:
    samples, _, received, side, rate_hz = _recording("squat", 3)

    def filled(a: np.ndarray) -> np.ndarray:  # the lost rows interpolated: nothing is missing
        idx = np.arange(a.shape[0])
        return np.column_stack([np.interp(idx, idx[received], a[received, k]) for k in range(3)])

    whole = LegSamples(side, samples.t_s, filled(samples.thigh_acc_m_s2), filled(samples.thigh_gyr_rad_s),
                       filled(samples.shank_acc_m_s2), filled(samples.shank_gyr_rad_s))
    run = estimate_knee(whole, side, rate_hz)
    assert repair_after_gaps(whole, run.angles, side, rate_hz, run.calibration) is run.angles
