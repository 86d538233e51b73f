"""Offline repair of the seconds after a loss burst: the recording run backwards in time.

After a burst of lost samples the causal estimator carries the error of its bridge (a swing of 90 deg can
happen inside 0.3 s of lost data) until the filters re-converge, which takes seconds while the athlete
keeps running. Offline, the rows after a gap can also be reached from the other side: the same estimator
run over the time-reversed recording (gyroscopes negated, each rate on the interval it describes), whose
state there comes from the data after the gap. Per row the two are blended by how long each pass has run
since its last gap (forward: since the gap ended; backward: until the next one starts, or the recording's
end where the backward pass begins): ``w_fwd = 1 - exp(-since / tau)``, ``w_bwd = (1 - exp(-until / tau))
(1 - w_fwd)``, so rows far from any gap keep the forward angles exactly and the backward pass only fills
in where the forward one is still recovering. Flexion only (valgus and rotation need the relative
heading, which the backward pass does not know at its start).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from sensorhub.kinematics._kernels import FLAG_MISSING_INPUT as QUALITY_MISSING_INPUT
from sensorhub.kinematics._kernels import FLAG_RECOVERING as QUALITY_RECOVERING
from sensorhub.kinematics.calibration import KneeCalibration
from sensorhub.model import FloatArray, KneeAngles, LegSamples

if TYPE_CHECKING:
    from sensorhub.kinematics.knee import KneeParams

TAU_S = 1.0  # how fast a pass is trusted again after a gap (the filters' re-convergence in gait)


def reversed_samples(samples: LegSamples) -> LegSamples:
    """The recording backwards in time. A gyroscope row is the rate over the interval that ends at it;
    reversed, the interval that ends at row j is the one that ended at forward row j - 1 ... so each rate
    moves one row and changes sign."""

    def rows(a: FloatArray) -> FloatArray:
        return np.ascontiguousarray(a[::-1])

    def rates(g: FloatArray) -> FloatArray:
        r = -g[::-1]
        out = np.empty_like(r)
        out[1:] = r[:-1]
        out[:1] = r[:1]
        return np.ascontiguousarray(out)

    t = np.asarray(samples.t_s, dtype=np.float64)
    return LegSamples(samples.leg_id, np.ascontiguousarray(t[-1] - t[::-1]), rows(samples.thigh_acc_m_s2),
                      rates(samples.thigh_gyr_rad_s), rows(samples.shank_acc_m_s2),
                      rates(samples.shank_gyr_rad_s))


def backward_angles(samples: LegSamples, side: str, rate_hz: float, calibration: KneeCalibration,
                    params: KneeParams | None = None) -> KneeAngles:
    """The estimator over the reversed recording with the forward calibration (gyroscope biases negated
    with the rates), returned in forward order."""
    from sensorhub.kinematics.knee import KneeEstimator, KneeParams, concat_angles

    p = params or KneeParams()
    cal = replace(calibration, thigh_gyr_bias_rad_s=-calibration.thigh_gyr_bias_rad_s,
                  shank_gyr_bias_rad_s=-calibration.shank_gyr_bias_rad_s)
    est = KneeEstimator(side, rate_hz, samples.leg_id, replace(p, refine_axes=False), calibration=cal)
    parts = [est.step(reversed_samples(samples))[0], est.finish_step()[0]]
    a = concat_angles(parts, samples.leg_id)
    return KneeAngles(samples.leg_id, np.asarray(samples.t_s[: len(a.t_s)], dtype=np.float64),
                      a.flexion_rad[::-1].copy(), a.valgus_rad[::-1].copy(), a.rotation_rad[::-1].copy(),
                      a.quality[::-1].copy())


def _seconds_since_gap(missing: np.ndarray, dt_s: float, from_start: bool) -> FloatArray:
    """Per row, seconds since the last missing row; before the first one, since the start of the pass
    (``from_start``: the pass starts up there) or forever (it starts converged)."""
    idx = np.arange(missing.shape[0])
    last = np.maximum.accumulate(np.where(missing, idx, -1))
    return np.where(last >= 0, (idx - last) * dt_s, (idx + 1) * dt_s if from_start else np.inf)


def repair_after_gaps(samples: LegSamples, forward: KneeAngles, side: str, rate_hz: float,
                      calibration: KneeCalibration, params: KneeParams | None = None,
                      tau_s: float = TAU_S) -> KneeAngles:
    """``forward`` with the flexion after each gap blended toward the backward pass (see the module doc);
    unchanged when the recording has no lost rows. Quality flags stay the forward ones."""
    missing = (np.asarray(forward.quality).astype(np.int64) & QUALITY_MISSING_INPUT) != 0
    if not missing.any():
        return forward
    n = missing.shape[0]
    backward = backward_angles(samples.slice(slice(0, n)), side, rate_hz, calibration, params)
    if len(backward.t_s) != n:
        return forward  # the backward pass could not cover the same rows: keep the causal angles
    dt_s = 1.0 / rate_hz
    # each pass is trusted again once it has left its own gap recovery (QUALITY_RECOVERING: its filters
    # agree with the hinge again), with time constant tau_s; the forward pass starts calibrated on
    # standing, the backward one starts up at the recording's end
    unsure = QUALITY_MISSING_INPUT | QUALITY_RECOVERING
    f_bad = (np.asarray(forward.quality).astype(np.int64) & unsure) != 0
    b_bad = (np.asarray(backward.quality).astype(np.int64) & unsure) != 0
    w_fwd = 1.0 - np.exp(-_seconds_since_gap(f_bad, dt_s, from_start=False) / tau_s)
    w_bwd = (1.0 - np.exp(-_seconds_since_gap(b_bad[::-1], dt_s, from_start=True)[::-1] / tau_s)) * (
        1.0 - w_fwd)
    # inside a gap both passes bridge what was never measured: the pass closer to its own data there
    inside = w_fwd + w_bwd < 1e-9
    w_fwd = np.where(inside, np.exp(-_seconds_since_gap(~missing, dt_s, from_start=True)), w_fwd)
    w_bwd = np.where(inside, np.exp(-_seconds_since_gap(~missing[::-1], dt_s, from_start=True)[::-1]), w_bwd)
    total = np.maximum(w_fwd + w_bwd, 1e-12)

    def blend(f: FloatArray, b: FloatArray) -> FloatArray:
        return np.asarray((w_fwd * f + w_bwd * b) / total)

    # flexion only: the backward pass starts without a standing pose, so its relative heading (which
    # valgus and rotation need, and which the forward pass holds through its recovery) starts unknown
    return KneeAngles(forward.leg_id, forward.t_s, blend(forward.flexion_rad, backward.flexion_rad),
                      forward.valgus_rad, forward.rotation_rad, forward.quality)
