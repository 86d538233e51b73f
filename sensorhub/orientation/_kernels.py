"""Numba kernels of the orientation filter: one fused per-sample step, three loops around it.

The method is VQF (D. Laidig, T. Seel, "VQF: Highly accurate IMU orientation estimation with bias
estimation and magnetic disturbance rejection", Information Fusion 91, 2023), 6-axis only, written from
the paper: gyroscope strapdown integration into an almost-inertial frame I, a second-order Butterworth
low-pass of the accelerations expressed in I (so linear accelerations average out), an inclination
correction that aligns the filtered acceleration with the vertical, rest detection and a Kalman filter
for the gyroscope bias. sensorhub adds impact/clipping rejection and gap bridging.

State and coefficients are flat float64 arrays (layouts below) so that many sensors are a 2-D array.
Every loop calls the same ``_step`` without fast-math, so chunked, batch and many-sensor results are
bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np

from sensorhub.jit import njit

_F = TypeVar("_F", bound=Callable[..., Any])

# Options of every kernel: cached on disk; numpy's error model (no zero-division checks); no reference
# counting (the kernels never allocate, and an incref/decref pair per array argument of every inner call
# costs about a tenth of a step); the GIL released (a calibrating leg is stepped in a worker thread while
# the event loop goes on). Fast-math stays off: it would break chunked == batch bit-equality.
_JIT_OPTIONS: dict[str, Any] = {"cache": True, "error_model": "numpy", "_nrt": False, "nogil": True}


def _kernel(fn: _F) -> _F:
    return cast(_F, njit(**_JIT_OPTIONS)(fn))


def _inlined_kernel(fn: _F) -> _F:
    # inlined into each loop at numba IR level: the step is too large for LLVM's own inliner
    return cast(_F, njit(inline="always", **_JIT_OPTIONS)(fn))

# --- state layout ------------------------------------------------------------------------------------
S_QG = 0  # quaternion of the almost-inertial frame I (gyroscope strapdown), 4
S_QA = 4  # inclination correction quaternion I -> E, 4
S_BIAS = 8  # gyroscope bias estimate, rad/s, 3
S_P = 11  # bias estimate covariance (row-major 3x3), (0.01 deg/s)^2 units as in the paper, 9
S_ALP_Y = 20  # last low-pass filtered acceleration in I, m/s^2, 3
S_ALP_Z = 23  # acceleration low-pass filter states, 3 x 2
S_RLP_Y = 29  # low-pass filtered rotation matrix (bias estimation), 9
S_RLP_Z = 38  # its filter states, 9 x 2
S_BLP_Y = 56  # low-pass filtered R @ bias (x, y), 2
S_BLP_Z = 58  # its filter states, 2 x 2
S_LP_SUM = 62  # running sums while the tau_acc filters initialise: acc 3, R 9, R @ bias 2
S_LP_N = 76  # samples seen by the tau_acc filters (they average until n * Ts >= tau_acc)
S_RG_Y = 77  # rest detection: low-pass filtered gyroscope, rad/s, 3
S_RG_Z = 80  # 3 x 2
S_RG_SUM = 86  # 3
S_RG_N = 89
S_RA_Y = 90  # rest detection: low-pass filtered accelerometer, m/s^2, 3
S_RA_Z = 93  # 3 x 2
S_RA_SUM = 99  # 3
S_RA_N = 102
S_REST_T = 103  # time the rest conditions have held, s
S_REST = 104  # 1.0 while at rest
S_GYR_LAST = 105  # last valid bias-free angular rate, rad/s, 3 (bridges short gaps)
S_GAP_T = 108  # time since the last valid gyroscope sample, s
S_REJ_T = 109  # remaining accelerometer rejection hold time, s
S_Q6 = 110  # last output quaternion sensor -> earth, 4
S_REJ_USED = 114  # rejection budget in use, s (leaky: refills at C_REJ_RECOVER s per s of accepted data)
S_DYN = 115  # recent dynamics: low-passed | |a| - g |, m/s^2
STATE_SIZE = 116

# --- coefficient layout ------------------------------------------------------------------------------
C_TS = 0  # sample period, s
C_ALP = 1  # b0, b1, b2, a1, a2 of the tau_acc Butterworth low-pass
C_RLP = 6  # b0, b1, b2, a1, a2 of the rest detection low-pass
C_TAU_ACC = 11
C_REST_TAU = 12
C_BIAS_P0 = 13
C_BIAS_V = 14
C_BIAS_MOTION_W = 15
C_BIAS_VERTICAL_W = 16
C_BIAS_REST_W = 17
C_BIAS_CLIP = 18  # rad/s
C_REST_TH_GYR_SQ = 19  # (rad/s)^2
C_REST_TH_ACC_SQ = 20  # (m/s^2)^2
C_REST_MIN_T = 21  # s
C_REJ_TH = 22  # accelerometer rejected when | |a| - g | exceeds this, m/s^2
C_REJ_HOLD = 23  # and for this long afterwards, s
C_ACC_CLIP = 24  # a component at or above this magnitude is clipped, m/s^2
C_GYR_CLIP = 25  # rad/s
C_GRAVITY = 26  # m/s^2
C_GAP_MAX = 27  # longest gap bridged with the last angular rate, s
C_MOTION_BIAS = 28  # 1.0 to estimate the bias during motion
C_REST_BIAS = 29  # 1.0 to estimate the bias at rest
C_INV_TS = 30  # 1 / Ts
C_REJ_BUDGET = 31  # longest stretch of rejected accelerometer data, s
C_REJ_RECOVER = 32  # budget refilled per second of accepted data, s/s
C_QUIET_TH = 33  # a shock counts as an impact when the recent dynamics were below this, m/s^2
C_QUIET_K = 34  # gain of the recent-dynamics low-pass (1 - exp(-Ts / tau))
COEFF_SIZE = 35

# --- per-sample diagnostic flags (uint8 bits) ----------------------------------------------------------
FLAG_INITIALISING = 1
FLAG_AT_REST = 2
FLAG_ACC_REJECTED = 4
FLAG_CLIPPED = 8
FLAG_GAP = 16

_EPS = 2.220446049250313e-16


# --- coefficient helpers (plain Python: run once per filter) -----------------------------------------
def butterworth_coeffs(tau_s: float, ts_s: float) -> tuple[float, float, float, float, float]:
    """Second-order Butterworth low-pass (b0, b1, b2, a1, a2); tau is its non-oscillating time constant.

    Passthrough when tau < Ts / 2 (cut-off above 90 % of Nyquist), where the filter would be unstable.
    """
    if tau_s < ts_s / 2.0:
        return 1.0, 0.0, 0.0, 0.0, 0.0
    fc_hz = (math.sqrt(2.0) / (2.0 * math.pi)) / tau_s
    c = math.tan(math.pi * fc_hz * ts_s)
    d = c * c + math.sqrt(2.0) * c + 1.0
    b0 = c * c / d
    return b0, 2.0 * b0, b0, 2.0 * (c * c - 1.0) / d, (1.0 - math.sqrt(2.0) * c + c * c) / d


def initial_state(coeffs: np.ndarray) -> np.ndarray:
    """A fresh state (STATE_SIZE,): identity orientations, zero bias, filters waiting for first samples."""
    st = np.zeros(STATE_SIZE, dtype=np.float64)
    st[S_QG] = 1.0
    st[S_QA] = 1.0
    st[S_Q6] = 1.0
    p0 = coeffs[C_BIAS_P0]
    st[S_P + 0] = p0
    st[S_P + 4] = p0
    st[S_P + 8] = p0
    return st


# --- small maths on scalars and tuples (inlined by LLVM) ----------------------------------------------
@_kernel
def _lp_step(st: np.ndarray, i_z: int, i_y: int, x: float, b0: float, b1: float, b2: float, a1: float,
             a2: float) -> float:
    # transposed direct form II, as scipy.signal.lfilter
    y = b0 * x + st[i_z]
    st[i_z] = b1 * x - a1 * y + st[i_z + 1]
    st[i_z + 1] = b2 * x - a2 * y
    st[i_y] = y
    return y


@_kernel
def _lp_init_step(st: np.ndarray, i_z: int, i_y: int, i_sum: int, n: float, done: bool, x: float,
                  b0: float, b2: float, a2: float) -> float:
    # while initialising, the output is the running mean; at the end the filter starts in steady state
    s = st[i_sum] + x
    st[i_sum] = s
    y = s / n
    st[i_y] = y
    if done:
        st[i_z] = y * (1.0 - b0)
        st[i_z + 1] = y * (b2 - a2)
    return y




@_inlined_kernel
def _rest_lp3_step(st: np.ndarray, i_n: int, i_z: int, i_y: int, i_sum: int, x: float, y: float, z: float,
                   tau_s: float, ts: float, b0: float, b1: float, b2: float, a1: float,
                   a2: float) -> tuple[float, float, float]:
    """One sample of a rest detector's 3-vector low-pass: the initial mean over ``tau_s`` (samples counted
    in st[i_n]), then the Butterworth recursion. State: z (6 at i_z), y (3 at i_y), sums (3 at i_sum)."""
    n = st[i_n]
    if n * ts < tau_s:
        n += 1.0
        st[i_n] = n
        done = n * ts >= tau_s
        return (
            _lp_init_step(st, i_z, i_y, i_sum, n, done, x, b0, b2, a2),
            _lp_init_step(st, i_z + 2, i_y + 1, i_sum + 1, n, done, y, b0, b2, a2),
            _lp_init_step(st, i_z + 4, i_y + 2, i_sum + 2, n, done, z, b0, b2, a2),
        )
    return (
        _lp_step(st, i_z, i_y, x, b0, b1, b2, a1, a2),
        _lp_step(st, i_z + 2, i_y + 1, y, b0, b1, b2, a1, a2),
        _lp_step(st, i_z + 4, i_y + 2, z, b0, b1, b2, a1, a2),
    )
@_kernel
def _quat_rotate(qw: float, qx: float, qy: float, qz: float, vx: float, vy: float,
                 vz: float) -> tuple[float, float, float]:
    # v' = q v q*, via t = 2 (q_vec x v); v' = v + w t + q_vec x t
    tx = 2.0 * (qy * vz - qz * vy)
    ty = 2.0 * (qz * vx - qx * vz)
    tz = 2.0 * (qx * vy - qy * vx)
    return (vx + qw * tx + (qy * tz - qz * ty),
            vy + qw * ty + (qz * tx - qx * tz),
            vz + qw * tz + (qx * ty - qy * tx))


@_kernel
def _bias_update(st: np.ndarray, c: np.ndarray, e0: float, e1: float, e2: float,
                 r: tuple[float, float, float, float, float, float, float, float, float],
                 w0: float, w1: float, w2: float) -> None:
    """Kalman measurement update of the bias: K = P R^T (R P R^T + W)^-1, b += K e, P -= K R P."""
    clip = c[C_BIAS_CLIP]
    e0 = min(max(e0, -clip), clip)
    e1 = min(max(e1, -clip), clip)
    e2 = min(max(e2, -clip), clip)
    p = S_P
    p00 = st[p]
    p01 = st[p + 1]
    p02 = st[p + 2]
    p10 = st[p + 3]
    p11 = st[p + 4]
    p12 = st[p + 5]
    p20 = st[p + 6]
    p21 = st[p + 7]
    p22 = st[p + 8]
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = r
    # M = P R^T
    m00 = p00 * r00 + p01 * r01 + p02 * r02
    m01 = p00 * r10 + p01 * r11 + p02 * r12
    m02 = p00 * r20 + p01 * r21 + p02 * r22
    m10 = p10 * r00 + p11 * r01 + p12 * r02
    m11 = p10 * r10 + p11 * r11 + p12 * r12
    m12 = p10 * r20 + p11 * r21 + p12 * r22
    m20 = p20 * r00 + p21 * r01 + p22 * r02
    m21 = p20 * r10 + p21 * r11 + p22 * r12
    m22 = p20 * r20 + p21 * r21 + p22 * r22
    # S = R M + W, symmetric: six entries
    s00 = r00 * m00 + r01 * m10 + r02 * m20 + w0
    s01 = r00 * m01 + r01 * m11 + r02 * m21
    s02 = r00 * m02 + r01 * m12 + r02 * m22
    s11 = r10 * m01 + r11 * m11 + r12 * m21 + w1
    s12 = r10 * m02 + r11 * m12 + r12 * m22
    s22 = r20 * m02 + r21 * m12 + r22 * m22 + w2
    # inverse of the symmetric S by cofactors
    a00 = s11 * s22 - s12 * s12
    a01 = s02 * s12 - s01 * s22
    a02 = s01 * s12 - s02 * s11
    det = s00 * a00 + s01 * a01 + s02 * a02
    if abs(det) <= _EPS:
        return
    inv_det = 1.0 / det
    i00 = a00 * inv_det
    i01 = a01 * inv_det
    i02 = a02 * inv_det
    i11 = (s00 * s22 - s02 * s02) * inv_det
    i12 = (s01 * s02 - s00 * s12) * inv_det
    i22 = (s00 * s11 - s01 * s01) * inv_det
    # K = M S^-1
    k00 = m00 * i00 + m01 * i01 + m02 * i02
    k01 = m00 * i01 + m01 * i11 + m02 * i12
    k02 = m00 * i02 + m01 * i12 + m02 * i22
    k10 = m10 * i00 + m11 * i01 + m12 * i02
    k11 = m10 * i01 + m11 * i11 + m12 * i12
    k12 = m10 * i02 + m11 * i12 + m12 * i22
    k20 = m20 * i00 + m21 * i01 + m22 * i02
    k21 = m20 * i01 + m21 * i11 + m22 * i12
    k22 = m20 * i02 + m21 * i12 + m22 * i22
    b = S_BIAS
    st[b] = min(max(st[b] + k00 * e0 + k01 * e1 + k02 * e2, -clip), clip)
    st[b + 1] = min(max(st[b + 1] + k10 * e0 + k11 * e1 + k12 * e2, -clip), clip)
    st[b + 2] = min(max(st[b + 2] + k20 * e0 + k21 * e1 + k22 * e2, -clip), clip)
    # P -= K R P = K M^T (M = P R^T, P symmetric)
    st[p] = p00 - (k00 * m00 + k01 * m01 + k02 * m02)
    st[p + 1] = p01 - (k00 * m10 + k01 * m11 + k02 * m12)
    st[p + 2] = p02 - (k00 * m20 + k01 * m21 + k02 * m22)
    st[p + 3] = p10 - (k10 * m00 + k11 * m01 + k12 * m02)
    st[p + 4] = p11 - (k10 * m10 + k11 * m11 + k12 * m12)
    st[p + 5] = p12 - (k10 * m20 + k11 * m21 + k12 * m22)
    st[p + 6] = p20 - (k20 * m00 + k21 * m01 + k22 * m02)
    st[p + 7] = p21 - (k20 * m10 + k21 * m11 + k22 * m12)
    st[p + 8] = p22 - (k20 * m20 + k21 * m21 + k22 * m22)


# --- the step ---------------------------------------------------------------------------------------
@_inlined_kernel
def _step(st: np.ndarray, c: np.ndarray, gx: float, gy: float, gz: float, ax: float, ay: float,
          az: float) -> int:
    """Advance one sample (NaN/inf input is a gap); output quaternion to st[S_Q6:]; returns the flags."""
    # coefficients read once, before any store to st (the compiler must assume the arrays alias)
    ts = c[C_TS]
    bias_clip = c[C_BIAS_CLIP]
    rb0 = c[C_RLP]
    rb1 = c[C_RLP + 1]
    rb2 = c[C_RLP + 2]
    ra1 = c[C_RLP + 3]
    ra2 = c[C_RLP + 4]
    rest_tau = c[C_REST_TAU]
    th_gyr_sq = c[C_REST_TH_GYR_SQ]
    th_acc_sq = c[C_REST_TH_ACC_SQ]
    rest_min_t = c[C_REST_MIN_T]
    gap_max = c[C_GAP_MAX]
    p0 = c[C_BIAS_P0]
    v = c[C_BIAS_V]
    aclip = c[C_ACC_CLIP]
    gclip = c[C_GYR_CLIP]
    gravity = c[C_GRAVITY]
    rej_th = c[C_REJ_TH]
    rej_hold = c[C_REJ_HOLD]
    rej_budget = c[C_REJ_BUDGET]
    rej_recover = c[C_REJ_RECOVER]
    quiet_th = c[C_QUIET_TH]
    quiet_k = c[C_QUIET_K]
    tau_acc = c[C_TAU_ACC]
    flags = 0
    # non-finite input is a gap; an all-zero accelerometer sample is a placeholder (as in VQF)
    gyr_ok = math.isfinite(gx) and math.isfinite(gy) and math.isfinite(gz)
    acc_ok = (math.isfinite(ax) and math.isfinite(ay) and math.isfinite(az)
              and not (ax == 0.0 and ay == 0.0 and az == 0.0))

    # --- gyroscope: rest detection, bias removal, strapdown integration
    if gyr_ok:
        if abs(gx) >= gclip or abs(gy) >= gclip or abs(gz) >= gclip:
            flags |= FLAG_CLIPPED
        lx, ly, lz = _rest_lp3_step(st, S_RG_N, S_RG_Z, S_RG_Y, S_RG_SUM, gx, gy, gz,
                                    rest_tau, ts, rb0, rb1, rb2, ra1, ra2)
        dev_sq = (gx - lx) * (gx - lx) + (gy - ly) * (gy - ly) + (gz - lz) * (gz - lz)
        if (dev_sq >= th_gyr_sq or abs(lx) > bias_clip or abs(ly) > bias_clip
                or abs(lz) > bias_clip):
            st[S_REST_T] = 0.0
            st[S_REST] = 0.0
        wx = gx - st[S_BIAS]
        wy = gy - st[S_BIAS + 1]
        wz = gz - st[S_BIAS + 2]
        st[S_GYR_LAST] = wx
        st[S_GYR_LAST + 1] = wy
        st[S_GYR_LAST + 2] = wz
        st[S_GAP_T] = 0.0
    else:
        flags |= FLAG_GAP
        gap_t = st[S_GAP_T] + ts
        st[S_GAP_T] = gap_t
        if gap_t <= gap_max:
            wx = st[S_GYR_LAST]
            wy = st[S_GYR_LAST + 1]
            wz = st[S_GYR_LAST + 2]
        else:
            wx = 0.0
            wy = 0.0
            wz = 0.0
        st[S_REST_T] = 0.0
        st[S_REST] = 0.0

    qw = st[S_QG]
    qx = st[S_QG + 1]
    qy = st[S_QG + 2]
    qz = st[S_QG + 3]
    rate_sq = wx * wx + wy * wy + wz * wz
    if rate_sq > _EPS * _EPS:
        half_ts = 0.5 * ts
        h2 = rate_sq * half_ts * half_ts  # (half rotation angle)^2
        if h2 < 0.01:
            # Taylor series of cos(h) and sin(h) / h, exact to rounding for h < 0.1 rad; saves sqrt/sin/cos
            dw = 1.0 + h2 * (-1.0 / 2.0 + h2 * (1.0 / 24.0 + h2 * (-1.0 / 720.0 + h2 * (1.0 / 40320.0))))
            s = half_ts * (1.0 + h2 * (-1.0 / 6.0 + h2 * (1.0 / 120.0 + h2 * (-1.0 / 5040.0 + h2 * (
                1.0 / 362880.0)))))
        else:
            rate = math.sqrt(rate_sq)
            half = half_ts * rate
            dw = math.cos(half)
            s = math.sin(half) / rate
        dx = s * wx
        dy = s * wy
        dz = s * wz
        nw = qw * dw - qx * dx - qy * dy - qz * dz
        nx = qw * dx + qx * dw + qy * dz - qz * dy
        ny = qw * dy - qx * dz + qy * dw + qz * dx
        nz = qw * dz + qx * dy - qy * dx + qz * dw
        # the product of unit quaternions has norm 1 up to rounding: one Newton step of 1/sqrt suffices
        inv = 1.5 - 0.5 * (nw * nw + nx * nx + ny * ny + nz * nz)
        qw = nw * inv
        qx = nx * inv
        qy = ny * inv
        qz = nz * inv
        st[S_QG] = qw
        st[S_QG + 1] = qx
        st[S_QG + 2] = qy
        st[S_QG + 3] = qz

    # --- bias covariance grows every sample, with or without a measurement
    if st[S_P] < p0:
        st[S_P] += v
    if st[S_P + 4] < p0:
        st[S_P + 4] += v
    if st[S_P + 8] < p0:
        st[S_P + 8] += v

    # --- accelerometer: rejection, rest detection, inclination correction, bias estimation
    if acc_ok:
        # Impacts. Linear accelerations average out in the frame I only if every sample is used, so
        # real motion (sprints, landings after a push-off) must not lose its peaks. What is rejected is a
        # shock out of quiet: | |a| - g | above the threshold while the recent dynamics (low-passed
        # | |a| - g |) were small -- a knock, a tap, a clipped reading -- and then until the shock has
        # stayed below the threshold for the hold time. A leaky budget caps the rejected stretch.
        clipped = abs(ax) >= aclip or abs(ay) >= aclip or abs(az) >= aclip
        if clipped:
            flags |= FLAG_CLIPPED
        a_sq = ax * ax + ay * ay + az * az
        lo = max(gravity - rej_th, 0.0)
        hi = gravity + rej_th
        over = clipped or a_sq > hi * hi or a_sq < lo * lo
        # | a^2 - g^2 | / 2g: | |a| - g | near g without a sqrt (only gates "quiet", so exactness away
        # from g does not matter)
        a_dev = abs(a_sq - gravity * gravity) * (0.5 / gravity)
        in_shock = st[S_REJ_T] > 0.0
        candidate = False
        if over and (in_shock or clipped or st[S_DYN] < quiet_th):
            st[S_REJ_T] = rej_hold + ts  # counts down from the next sample
            candidate = True
        elif in_shock:
            st[S_REJ_T] -= ts
            candidate = st[S_REJ_T] > 0.0
        st[S_DYN] += quiet_k * (a_dev - st[S_DYN])
        used = st[S_REJ_USED]
        reject = candidate and used < rej_budget
        if reject:
            st[S_REJ_USED] = used + ts
        else:
            if candidate:  # budget spent: this is sustained motion, not an impact; end the shock
                st[S_REJ_T] = 0.0
            if used > 0.0:
                st[S_REJ_USED] = max(used - ts * rej_recover, 0.0)

        lx, ly, lz = _rest_lp3_step(st, S_RA_N, S_RA_Z, S_RA_Y, S_RA_SUM, ax, ay, az,
                                    rest_tau, ts, rb0, rb1, rb2, ra1, ra2)
        dev_sq = (ax - lx) * (ax - lx) + (ay - ly) * (ay - ly) + (az - lz) * (az - lz)
        if dev_sq >= th_acc_sq or not gyr_ok:
            st[S_REST_T] = 0.0
            st[S_REST] = 0.0
        else:
            rest_t = st[S_REST_T] + ts
            st[S_REST_T] = rest_t
            if rest_t >= rest_min_t:
                st[S_REST] = 1.0

        if reject:
            flags |= FLAG_ACC_REJECTED
        else:
            _acc_update(st, c, ax, ay, az, qw, qx, qy, qz)
    else:
        flags |= FLAG_GAP

    # --- output: q6 = q_acc * q_gyr
    cw = st[S_QA]
    cx = st[S_QA + 1]
    cy = st[S_QA + 2]
    cz = st[S_QA + 3]
    st[S_Q6] = cw * qw - cx * qx - cy * qy - cz * qz
    st[S_Q6 + 1] = cw * qx + cx * qw + cy * qz - cz * qy
    st[S_Q6 + 2] = cw * qy - cx * qz + cy * qw + cz * qx
    st[S_Q6 + 3] = cw * qz + cx * qy - cy * qx + cz * qw
    if st[S_LP_N] * ts < tau_acc:
        flags |= FLAG_INITIALISING
    if st[S_REST] != 0.0:
        flags |= FLAG_AT_REST
    return flags


@_kernel
def _acc_update(st: np.ndarray, c: np.ndarray, ax: float, ay: float, az: float, qw: float, qx: float,
                qy: float, qz: float) -> None:
    """Inclination correction from the low-passed acceleration in I, then the bias Kalman update."""
    ts = c[C_TS]
    # acceleration in the almost-inertial frame I, low-passed (tau_acc); same initialisation for R, R b
    ix, iy, iz = _quat_rotate(qw, qx, qy, qz, ax, ay, az)
    b0 = c[C_ALP]
    b1 = c[C_ALP + 1]
    b2 = c[C_ALP + 2]
    a1 = c[C_ALP + 3]
    a2 = c[C_ALP + 4]
    n = st[S_LP_N]
    init = n * ts < c[C_TAU_ACC]
    done = False
    if init:
        n += 1.0
        st[S_LP_N] = n
        done = n * ts >= c[C_TAU_ACC]
        lx = _lp_init_step(st, S_ALP_Z, S_ALP_Y, S_LP_SUM, n, done, ix, b0, b2, a2)
        ly = _lp_init_step(st, S_ALP_Z + 2, S_ALP_Y + 1, S_LP_SUM + 1, n, done, iy, b0, b2, a2)
        lz = _lp_init_step(st, S_ALP_Z + 4, S_ALP_Y + 2, S_LP_SUM + 2, n, done, iz, b0, b2, a2)
    else:
        lx = _lp_step(st, S_ALP_Z, S_ALP_Y, ix, b0, b1, b2, a1, a2)
        ly = _lp_step(st, S_ALP_Z + 2, S_ALP_Y + 1, iy, b0, b1, b2, a1, a2)
        lz = _lp_step(st, S_ALP_Z + 4, S_ALP_Y + 2, iz, b0, b1, b2, a1, a2)

    # into the earth frame with the current correction, normalised
    cw = st[S_QA]
    cx = st[S_QA + 1]
    cy = st[S_QA + 2]
    cz = st[S_QA + 3]
    ex, ey, ez = _quat_rotate(cw, cx, cy, cz, lx, ly, lz)
    e_sq = ex * ex + ey * ey + ez * ez
    if e_sq <= _EPS * _EPS:  # no usable gravity direction (cannot happen with |a| near g): no correction
        return
    e_norm = math.sqrt(e_sq)
    # shortest rotation taking e to +z, applied on the left of the correction quaternion; unnormalised
    # it is [|e| + ez, ey, -ex, 0], so one normalisation of the product replaces normalising e and it
    kw = e_norm + ez
    if kw > 2e-12 * e_norm:
        nw = kw * cw - ey * cx + ex * cy
        nx = kw * cx + ey * cw - ex * cz
        ny = kw * cy - ey * cz - ex * cw
        nz = kw * cz + ey * cy + ex * cx
        inv = 1.0 / math.sqrt(nw * nw + nx * nx + ny * ny + nz * nz)
    else:  # filtered acceleration points straight down: turn 180 deg about x
        nw = -cx
        nx = cw
        ny = -cz
        nz = cy
        inv = 1.0
    cw = nw * inv
    cx = nx * inv
    cy = ny * inv
    cz = nz * inv
    inv = 1.0 / e_norm
    ex *= inv
    ey *= inv
    st[S_QA] = cw
    st[S_QA + 1] = cx
    st[S_QA + 2] = cy
    st[S_QA + 3] = cz

    # --- gyroscope bias estimation (measurement model of the paper, section "bias estimation")
    # R: rotation matrix of the corrected 6D quaternion; R and R @ bias are low-passed like the acc
    ow = cw * qw - cx * qx - cy * qy - cz * qz
    ox = cw * qx + cx * qw + cy * qz - cz * qy
    oy = cw * qy - cx * qz + cy * qw + cz * qx
    oz = cw * qz + cx * qy - cy * qx + cz * qw
    bx = st[S_BIAS]
    by = st[S_BIAS + 1]
    bz = st[S_BIAS + 2]
    r00 = 1.0 - 2.0 * (oy * oy + oz * oz)
    r01 = 2.0 * (ox * oy - ow * oz)
    r02 = 2.0 * (ow * oy + ox * oz)
    r10 = 2.0 * (ow * oz + ox * oy)
    r11 = 1.0 - 2.0 * (ox * ox + oz * oz)
    r12 = 2.0 * (oy * oz - ow * ox)
    r20 = 2.0 * (ox * oz - ow * oy)
    r21 = 2.0 * (ow * ox + oy * oz)
    r22 = 1.0 - 2.0 * (ox * ox + oy * oy)
    rb_x = r00 * bx + r01 * by + r02 * bz
    rb_y = r10 * bx + r11 * by + r12 * bz
    r = S_RLP_Y
    z = S_RLP_Z
    if init:
        m = S_LP_SUM + 3
        r00 = _lp_init_step(st, z, r, m, n, done, r00, b0, b2, a2)
        r01 = _lp_init_step(st, z + 2, r + 1, m + 1, n, done, r01, b0, b2, a2)
        r02 = _lp_init_step(st, z + 4, r + 2, m + 2, n, done, r02, b0, b2, a2)
        r10 = _lp_init_step(st, z + 6, r + 3, m + 3, n, done, r10, b0, b2, a2)
        r11 = _lp_init_step(st, z + 8, r + 4, m + 4, n, done, r11, b0, b2, a2)
        r12 = _lp_init_step(st, z + 10, r + 5, m + 5, n, done, r12, b0, b2, a2)
        r20 = _lp_init_step(st, z + 12, r + 6, m + 6, n, done, r20, b0, b2, a2)
        r21 = _lp_init_step(st, z + 14, r + 7, m + 7, n, done, r21, b0, b2, a2)
        r22 = _lp_init_step(st, z + 16, r + 8, m + 8, n, done, r22, b0, b2, a2)
        rb_x = _lp_init_step(st, S_BLP_Z, S_BLP_Y, m + 9, n, done, rb_x, b0, b2, a2)
        rb_y = _lp_init_step(st, S_BLP_Z + 2, S_BLP_Y + 1, m + 10, n, done, rb_y, b0, b2, a2)
    else:
        r00 = _lp_step(st, z, r, r00, b0, b1, b2, a1, a2)
        r01 = _lp_step(st, z + 2, r + 1, r01, b0, b1, b2, a1, a2)
        r02 = _lp_step(st, z + 4, r + 2, r02, b0, b1, b2, a1, a2)
        r10 = _lp_step(st, z + 6, r + 3, r10, b0, b1, b2, a1, a2)
        r11 = _lp_step(st, z + 8, r + 4, r11, b0, b1, b2, a1, a2)
        r12 = _lp_step(st, z + 10, r + 5, r12, b0, b1, b2, a1, a2)
        r20 = _lp_step(st, z + 12, r + 6, r20, b0, b1, b2, a1, a2)
        r21 = _lp_step(st, z + 14, r + 7, r21, b0, b1, b2, a1, a2)
        r22 = _lp_step(st, z + 16, r + 8, r22, b0, b1, b2, a1, a2)
        rb_x = _lp_step(st, S_BLP_Z, S_BLP_Y, rb_x, b0, b1, b2, a1, a2)
        rb_y = _lp_step(st, S_BLP_Z + 2, S_BLP_Y + 1, rb_y, b0, b1, b2, a1, a2)

    if st[S_REST] != 0.0 and c[C_REST_BIAS] != 0.0:
        # at rest the low-passed gyroscope is a direct measurement of the bias
        w = c[C_BIAS_REST_W]
        _bias_update(st, c, st[S_RG_Y] - bx, st[S_RG_Y + 1] - by, st[S_RG_Y + 2] - bz,
                     (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), w, w, w)
    elif c[C_MOTION_BIAS] != 0.0:
        # in motion the correction rate (ex, ey) / Ts measures the horizontal part of R @ bias
        inv_ts = c[C_INV_TS]
        e0 = -ey * inv_ts + rb_x - (r00 * bx + r01 * by + r02 * bz)
        e1 = ex * inv_ts + rb_y - (r10 * bx + r11 * by + r12 * bz)
        e2 = -(r20 * bx + r21 * by + r22 * bz)
        w = c[C_BIAS_MOTION_W]
        _bias_update(st, c, e0, e1, e2, (r00, r01, r02, r10, r11, r12, r20, r21, r22), w, w,
                     c[C_BIAS_VERTICAL_W])


# --- loops: every entry point runs _step --------------------------------------------------------------
# A filter is one flat record [state (STATE_SIZE) | coefficients (COEFF_SIZE)]: one array argument less
# per call matters when a call carries only a few samples.
RECORD_SIZE = STATE_SIZE + COEFF_SIZE


@_kernel
def filter_batch(rec: np.ndarray, n_missing: int, gyr: np.ndarray, acc: np.ndarray, out_quat: np.ndarray,
                 out_flags: np.ndarray) -> int:
    """Bridge ``n_missing`` lost samples (sequence gap: no input, no NaN enters the state), then run rows of
    gyr (N, 3) rad/s and acc (N, 3) m/s^2; quaternions to out_quat (N, 4), flags (N,).

    The one kernel the step is inlined in (``filter_many`` runs each sensor through it), so a cold start
    compiles the step once. Returns 0, or -1 (nothing done) when the shapes do not fit: checked here,
    where it costs nothing.
    """
    n = gyr.shape[0]
    if (gyr.shape[1] != 3 or acc.shape[0] != n or acc.shape[1] != 3 or out_quat.shape[0] < n
            or out_quat.shape[1] != 4 or out_flags.shape[0] < n or rec.shape[0] != RECORD_SIZE
            or n_missing < 0):
        return -1
    nan = np.nan
    st = rec[:STATE_SIZE]
    c = rec[STATE_SIZE:]
    for j in range(n_missing + n):
        i = j - n_missing
        if i < 0:
            _step(st, c, nan, nan, nan, nan, nan, nan)
            continue
        out_flags[i] = _step(st, c, gyr[i, 0], gyr[i, 1], gyr[i, 2], acc[i, 0], acc[i, 1], acc[i, 2])
        out_quat[i, 0] = st[S_Q6]
        out_quat[i, 1] = st[S_Q6 + 1]
        out_quat[i, 2] = st[S_Q6 + 2]
        out_quat[i, 3] = st[S_Q6 + 3]
    return 0


@_kernel
def filter_many(recs: np.ndarray, gyr: np.ndarray, acc: np.ndarray, counts: np.ndarray,
                n_missing: np.ndarray, out_quat: np.ndarray, out_flags: np.ndarray) -> int:
    """Advance S sensors in one call: records (S, RECORD_SIZE), gyr/acc (S, K, 3) padded, counts (S,)
    valid rows per sensor, n_missing (S,) lost samples before each sensor's rows.

    Returns 0, or -1 (nothing done) when shapes or counts do not fit.
    """
    n_s = recs.shape[0]
    k_max = gyr.shape[1]
    if (recs.shape[1] != RECORD_SIZE or gyr.shape[0] != n_s or gyr.shape[2] != 3 or acc.shape[0] != n_s
            or acc.shape[1] != k_max or acc.shape[2] != 3 or counts.shape[0] != n_s
            or n_missing.shape[0] != n_s or out_quat.shape[0] != n_s or out_quat.shape[1] < k_max
            or out_quat.shape[2] != 4 or out_flags.shape[0] != n_s or out_flags.shape[1] < k_max):
        return -1
    for s in range(n_s):
        if counts[s] < 0 or counts[s] > k_max or n_missing[s] < 0:
            return -1
    for s in range(n_s):
        m = counts[s]
        filter_batch(recs[s], n_missing[s], gyr[s, :m], acc[s, :m], out_quat[s, :m], out_flags[s, :m])
    return 0
