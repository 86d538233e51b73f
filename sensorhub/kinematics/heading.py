"""Relative heading between thigh and shank without a magnetometer.

Each 6-axis filter has its own, arbitrary and slowly drifting heading. The knee is close to a hinge: the
thigh's and the shank's flexion (y) axes are the same physical axis, so in a common earth frame their
horizontal projections point the same way. The correction rotates the shank filter's earth frame about the
vertical by ``delta`` and pulls ``delta`` towards the heading difference of the two y axes with a first
order filter whose gain grows with how horizontal both axes are (a vertical axis has no heading) and with
how extended the knee is (near extension the knee can hardly rotate axially, so a heading difference there
is drift, not anatomy). This is the idea of D. Laidig, T. Seel et al., "Exploiting kinematic constraints to
compensate magnetic disturbances when calculating joint angles of approximate hinge joints from
orientation estimates of inertial sensors" (ICORR 2017), written as a causal per-sample update.

Limits: a real axial rotation held for much longer than ``tau_s`` with the knee extended is slowly
treated as drift; while the knee stays bent for long periods (e.g. long sits) the correction pauses and
the quality flag HEADING_STALE is raised once ``stale_after_s`` passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensorhub.conventions import RAD_PER_DEG
from sensorhub.kinematics import _kernels
from sensorhub.kinematics.joint_angles import quat_to_matrix
from sensorhub.model import FloatArray


@dataclass(frozen=True, slots=True)
class HeadingParams:
    tau_s: float = 4.0  # time constant at full weight: a drift of 6 deg/min leaves a 0.4 deg lag
    flexion_scale_deg: float = 20.0  # update weight exp(-(flexion / scale)^2)
    stale_after_s: float = 30.0
    gap_min_s: float = 0.06  # after a gap this long...
    gap_tau_s: float = 0.3  # ...the correction runs with this time constant...
    gap_boost_s: float = 2.0  # ...for this long (headings diverge when the body turns during a gap)


def heading_differences(q_thigh: FloatArray, q_shank: FloatArray, c_thigh: FloatArray,
                        c_shank: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per sample: heading of the thigh y axis minus heading of the shank y axis (rad), and the weight."""
    yt = quat_to_matrix(q_thigh) @ c_thigh[:, 1]
    ys = quat_to_matrix(q_shank) @ c_shank[:, 1]
    diff = np.arctan2(yt[:, 1], yt[:, 0]) - np.arctan2(ys[:, 1], ys[:, 0])
    weight = (yt[:, 0] ** 2 + yt[:, 1] ** 2) * (ys[:, 0] ** 2 + ys[:, 1] ** 2)
    return np.asarray((diff + math.pi) % (2 * math.pi) - math.pi), np.asarray(weight)


def initial_heading_offset(q_thigh: FloatArray, q_shank: FloatArray, c_thigh: FloatArray,
                           c_shank: FloatArray) -> float:
    """Weighted circular mean of the y-axis heading differences over a standing window: the knee's
    rotation is zero there by definition."""
    diff, weight = heading_differences(q_thigh, q_shank, c_thigh, c_shank)
    ok = np.isfinite(diff) & np.isfinite(weight)
    if not np.any(ok):
        return 0.0
    w, d = weight[ok], diff[ok]
    return math.atan2(float(np.sum(w * np.sin(d))), float(np.sum(w * np.cos(d))))


def loop_params(params: HeadingParams, rate_hz: float, side_sign: float) -> FloatArray:
    p = np.zeros(_kernels.P_SIZE)
    p[_kernels.P_DT_S] = 1.0 / rate_hz
    p[_kernels.P_TAU_S] = params.tau_s
    p[_kernels.P_FLEX_SCALE_RAD] = params.flexion_scale_deg * RAD_PER_DEG
    p[_kernels.P_STALE_AFTER_S] = params.stale_after_s
    p[_kernels.P_SIDE_SIGN] = side_sign
    p[_kernels.P_MIN_GAP] = max(1, round(params.gap_min_s * rate_hz))
    p[_kernels.P_TAU_FAST_S] = params.gap_tau_s
    p[_kernels.P_BOOST_S] = params.gap_boost_s
    return p
