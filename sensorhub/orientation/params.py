"""Parameters of the orientation filter (immutable, SI units) and the coefficients derived from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2, RAD_PER_DEG
from sensorhub.errors import InputError
from sensorhub.orientation import _kernels as k

# The bias covariance is kept in (0.01 deg/s)^2 like the paper, so the 3x3 determinant guard of the
# Kalman update stays far from rounding noise; this converts rad/s into that unit.
_P_UNIT_PER_RAD_S = 100.0 / RAD_PER_DEG


@dataclass(frozen=True, slots=True)
class FilterParams:
    """Tuning of the 6-axis orientation filter; the defaults are the ones reported in docs/orientation.md.

    The first block is the VQF method (defaults of the paper); the second is sensorhub's handling of
    impacts, clipping and gaps.
    """

    tau_acc_s: float = 3.0
    """Time constant of the low-pass on the accelerations in the almost-inertial frame (inclination gain)."""
    motion_bias_estimation: bool = True
    """Estimate the gyroscope bias during motion (from the inclination correction)."""
    rest_bias_estimation: bool = True
    """Estimate the gyroscope bias while at rest (from the low-passed angular rate)."""
    bias_sigma_init_rad_s: float = 0.5 * RAD_PER_DEG
    """Standard deviation of the initial bias estimate."""
    bias_forgetting_time_s: float = 100.0
    """Time in which the bias uncertainty grows from 0 to 0.1 deg/s without measurements."""
    bias_clip_rad_s: float = 2.0 * RAD_PER_DEG
    """Largest bias (and bias disagreement per update) the estimator accepts."""
    bias_sigma_motion_rad_s: float = 0.1 * RAD_PER_DEG
    """Measurement noise of the bias in motion (larger: slower, smoother estimate)."""
    bias_vertical_forgetting_factor: float = 1e-4
    """Relative weight of the (unobservable without magnetometer) vertical bias component in motion."""
    bias_sigma_rest_rad_s: float = 0.03 * RAD_PER_DEG
    """Measurement noise of the bias at rest."""
    rest_min_t_s: float = 1.5
    """Time the rest conditions must hold before the sensor counts as at rest."""
    rest_filter_tau_s: float = 0.5
    """Time constant of the low-pass used by rest detection."""
    rest_th_gyr_rad_s: float = 2.0 * RAD_PER_DEG
    """Rest: largest deviation of the angular rate from its low-pass."""
    rest_th_acc_m_s2: float = 0.5
    """Rest: largest deviation of the acceleration from its low-pass."""

    acc_rejection_m_s2: float = 3.0 * GRAVITY_M_S2
    """A sample whose norm differs from g by more than this is a shock; it is not used when it comes out
    of quiet (see acc_quiet_th_m_s2) or is clipped: a knock, a tap, a stomp on a standing leg."""
    acc_rejection_hold_s: float = 0.05
    """After the last shock sample the accelerometer stays unused this long (ringing)."""
    acc_quiet_th_m_s2: float = 1.0
    """A shock is rejected only if the recent dynamics (low-passed | |a| - g |) were below this: peaks
    of continuous motion are kept, as they average out in the almost-inertial frame."""
    acc_quiet_tau_s: float = 0.5
    """Time constant of the recent-dynamics low-pass."""
    acc_rejection_budget_s: float = 0.2
    """Longest stretch of rejected accelerometer data; sustained high acceleration is used again after it."""
    acc_rejection_recovery: float = 0.25
    """Budget refilled per second of accepted data (so at most ~20 % of the time is rejected for long)."""
    acc_range_m_s2: float = 16.0 * GRAVITY_M_S2
    """Full-scale range of the accelerometer (per axis)."""
    gyr_range_rad_s: float = 2000.0 * RAD_PER_DEG
    """Full-scale range of the gyroscope (per axis)."""
    clip_fraction: float = 0.995
    """A component at or above this fraction of its full-scale range counts as clipped."""
    gap_bridge_s: float = 0.1
    """Missing gyroscope samples up to this long are bridged with the last angular rate; beyond, held."""

    def validate(self) -> None:
        """Raise InputError naming the first parameter out of its domain."""
        positive = {
            "bias_forgetting_time_s": self.bias_forgetting_time_s,
            "rest_filter_tau_s": self.rest_filter_tau_s,
            "bias_sigma_init_rad_s": self.bias_sigma_init_rad_s,
            "bias_sigma_motion_rad_s": self.bias_sigma_motion_rad_s,
            "bias_sigma_rest_rad_s": self.bias_sigma_rest_rad_s,
            "acc_range_m_s2": self.acc_range_m_s2,
            "gyr_range_rad_s": self.gyr_range_rad_s,
            "acc_rejection_m_s2": self.acc_rejection_m_s2,
        }
        for name, value in positive.items():
            if not value > 0.0:
                raise InputError(f"FilterParams.{name} must be > 0, got {value!r}")
        non_negative = {
            "tau_acc_s": self.tau_acc_s,
            "bias_clip_rad_s": self.bias_clip_rad_s,
            "bias_vertical_forgetting_factor": self.bias_vertical_forgetting_factor,
            "rest_min_t_s": self.rest_min_t_s,
            "rest_th_gyr_rad_s": self.rest_th_gyr_rad_s,
            "rest_th_acc_m_s2": self.rest_th_acc_m_s2,
            "acc_rejection_hold_s": self.acc_rejection_hold_s,
            "gap_bridge_s": self.gap_bridge_s,
            "acc_rejection_budget_s": self.acc_rejection_budget_s,
            "acc_rejection_recovery": self.acc_rejection_recovery,
            "acc_quiet_th_m_s2": self.acc_quiet_th_m_s2,
            "acc_quiet_tau_s": self.acc_quiet_tau_s,
        }
        for name, value in non_negative.items():
            if not value >= 0.0:
                raise InputError(f"FilterParams.{name} must be >= 0, got {value!r}")
        if not 0.0 < self.clip_fraction <= 1.0:
            raise InputError(f"FilterParams.clip_fraction must be in (0, 1], got {self.clip_fraction!r}")


def make_coeffs(params: FilterParams, rate_hz: float) -> np.ndarray:
    """Derive the flat coefficient array the kernels read (see the C_* layout in _kernels)."""
    if not (math.isfinite(rate_hz) and rate_hz > 0.0):
        raise InputError(f"rate_hz must be a positive finite number, got {rate_hz!r}")
    params.validate()
    ts_s = 1.0 / rate_hz
    c = np.zeros(k.COEFF_SIZE, dtype=np.float64)
    c[k.C_TS] = ts_s
    c[k.C_INV_TS] = rate_hz
    c[k.C_ALP : k.C_ALP + 5] = k.butterworth_coeffs(params.tau_acc_s, ts_s)
    c[k.C_RLP : k.C_RLP + 5] = k.butterworth_coeffs(params.rest_filter_tau_s, ts_s)
    c[k.C_TAU_ACC] = params.tau_acc_s
    c[k.C_REST_TAU] = params.rest_filter_tau_s
    p0 = (params.bias_sigma_init_rad_s * _P_UNIT_PER_RAD_S) ** 2
    # process noise: the variance grows from 0 to (0.1 deg/s)^2 in bias_forgetting_time_s
    v = (0.1 * 100.0) ** 2 * ts_s / params.bias_forgetting_time_s
    p_motion = (params.bias_sigma_motion_rad_s * _P_UNIT_PER_RAD_S) ** 2
    p_rest = (params.bias_sigma_rest_rad_s * _P_UNIT_PER_RAD_S) ** 2
    # measurement noise chosen so that the steady-state uncertainty equals the stated sigma
    w_motion = p_motion**2 / v + p_motion
    c[k.C_BIAS_P0] = p0
    c[k.C_BIAS_V] = v
    c[k.C_BIAS_MOTION_W] = w_motion
    c[k.C_BIAS_VERTICAL_W] = w_motion / max(params.bias_vertical_forgetting_factor, 1e-10)
    c[k.C_BIAS_REST_W] = p_rest**2 / v + p_rest
    c[k.C_BIAS_CLIP] = params.bias_clip_rad_s
    c[k.C_REST_TH_GYR_SQ] = params.rest_th_gyr_rad_s**2
    c[k.C_REST_TH_ACC_SQ] = params.rest_th_acc_m_s2**2
    c[k.C_REST_MIN_T] = params.rest_min_t_s
    c[k.C_REJ_TH] = params.acc_rejection_m_s2
    c[k.C_REJ_HOLD] = params.acc_rejection_hold_s
    c[k.C_REJ_BUDGET] = params.acc_rejection_budget_s
    c[k.C_REJ_RECOVER] = params.acc_rejection_recovery
    c[k.C_QUIET_TH] = params.acc_quiet_th_m_s2
    c[k.C_QUIET_K] = -math.expm1(-ts_s / params.acc_quiet_tau_s) if params.acc_quiet_tau_s > 0.0 else 1.0
    c[k.C_ACC_CLIP] = params.clip_fraction * params.acc_range_m_s2
    c[k.C_GYR_CLIP] = params.clip_fraction * params.gyr_range_rad_s
    c[k.C_GRAVITY] = GRAVITY_M_S2
    c[k.C_GAP_MAX] = params.gap_bridge_s
    c[k.C_MOTION_BIAS] = 1.0 if params.motion_bias_estimation else 0.0
    c[k.C_REST_BIAS] = 1.0 if params.rest_bias_estimation else 0.0
    return c
