"""Numba kernels of the knee kinematics: joint-axis fit, gap holding, heading correction + joint angles.

Pure functions on float64 arrays. The per-sample loop (``knee_angles_loop``) carries its state in a flat
array so that a stream cut into arbitrary chunks gives bit-identical results to one batch call.
Every kernel releases the GIL (``nogil``): a calibrating leg is stepped in a worker thread
(``sensorhub.runtime.offload``) while the event loop goes on.
"""

from __future__ import annotations

import math

import numpy as np

from sensorhub.jit import njit

# --- knee loop state layout --------------------------------------------------------------------------
K_DELTA = 0  # relative heading correction (rotates shank-filter earth into thigh-filter earth), rad
K_STALE_S = 1  # time since the last informative heading update, s
K_GAP_RUN = 2  # length of the current run of missing samples
K_BOOST_S = 3  # remaining time of fast heading correction after a long gap, s
K_SIZE = 4

# --- knee loop parameter layout ----------------------------------------------------------------------
P_DT_S = 0  # sample period, s
P_TAU_S = 1  # time constant of the heading correction at full weight, s
P_FLEX_SCALE_RAD = 2  # flexion scale of the update weight (updates trust the near-extended knee)
P_STALE_AFTER_S = 3  # quality flag HEADING_STALE after this long without an informative update
P_SIDE_SIGN = 4  # +1 right, -1 left
P_MIN_GAP = 5  # a gap of at least this many samples triggers the fast correction
P_TAU_FAST_S = 6  # time constant of the heading correction right after such a gap, s
P_BOOST_S = 7  # how long the fast correction lasts after the gap, s
P_SIZE = 8

FLAG_MISSING_INPUT = 1
FLAG_HEADING_STALE = 2
FLAG_IMPLAUSIBLE = 4


# Small products written out: numba's ``@`` goes through BLAS, which needs scipy at run time and costs
# ~80 ns per 3x3 product against ~8 ns for these loops (measured, see the 2026-12 issue-14 note).
@njit(cache=True, nogil=True)
def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a b (out must not alias a or b)."""
    for r in range(a.shape[0]):
        for c in range(b.shape[1]):
            acc = 0.0
            for k in range(a.shape[1]):
                acc += a[r, k] * b[k, c]
            out[r, c] = acc


@njit(cache=True, nogil=True)
def _matmul_tn(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out = a^T b (out must not alias a or b)."""
    for r in range(a.shape[1]):
        for c in range(b.shape[1]):
            acc = 0.0
            for k in range(a.shape[0]):
                acc += a[k, r] * b[k, c]
            out[r, c] = acc


@njit(cache=True, nogil=True)
def _matvec(a: np.ndarray, v: np.ndarray, out: np.ndarray, transpose: bool) -> None:
    """out = a v, or a^T v when ``transpose``."""
    rows = a.shape[1] if transpose else a.shape[0]
    inner = a.shape[0] if transpose else a.shape[1]
    for r in range(rows):
        acc = 0.0
        for k in range(inner):
            acc += (a[k, r] if transpose else a[r, k]) * v[k]
        out[r] = acc


@njit(cache=True, nogil=True)
def _axis(phi: float, theta: float) -> tuple[float, float, float]:
    cp = math.cos(phi)
    return cp * math.cos(theta), cp * math.sin(theta), math.sin(phi)


@njit(cache=True, nogil=True)
def _cross_norm_grad(gx: float, gy: float, gz: float, jx: float, jy: float, jz: float,
                     phi: float, theta: float) -> tuple[float, float, float]:
    """|g x j| and its derivatives with respect to the spherical angles of j."""
    ux = gy * jz - gz * jy
    uy = gz * jx - gx * jz
    uz = gx * jy - gy * jx
    n = math.sqrt(ux * ux + uy * uy + uz * uz)
    if n < 1e-12:
        return n, 0.0, 0.0
    # d|u|/dj = (u x g) / |u|
    dx = (uy * gz - uz * gy) / n
    dy = (uz * gx - ux * gz) / n
    dz = (ux * gy - uy * gx) / n
    sp = math.sin(phi)
    cp = math.cos(phi)
    st = math.sin(theta)
    ct = math.cos(theta)
    d_phi = dx * (-sp * ct) + dy * (-sp * st) + dz * cp
    d_theta = dx * (-cp * st) + dy * (cp * ct)
    return n, d_phi, d_theta


@njit(cache=True, nogil=True)
def hinge_residuals(gyr1: np.ndarray, gyr2: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Seel's hinge residual |w1 x j1| - |w2 x j2| per sample for spherical axis angles ``params``."""
    n = gyr1.shape[0]
    out = np.empty(n)
    j1x, j1y, j1z = _axis(params[0], params[1])
    j2x, j2y, j2z = _axis(params[2], params[3])
    for i in range(n):
        a, _, _ = _cross_norm_grad(gyr1[i, 0], gyr1[i, 1], gyr1[i, 2], j1x, j1y, j1z, params[0], params[1])
        b, _, _ = _cross_norm_grad(gyr2[i, 0], gyr2[i, 1], gyr2[i, 2], j2x, j2y, j2z, params[2], params[3])
        out[i] = a - b
    return out


@njit(cache=True, nogil=True)
def _cost(gyr1: np.ndarray, gyr2: np.ndarray, params: np.ndarray) -> float:
    r = hinge_residuals(gyr1, gyr2, params)
    return float(np.sum(r * r))


@njit(cache=True, nogil=True)
def fit_hinge_axes(gyr1: np.ndarray, gyr2: np.ndarray, params0: np.ndarray, max_iter: int) -> tuple[
        np.ndarray, float]:
    """Levenberg-Marquardt on Seel's hinge constraint; returns the spherical angles and the mean squared
    residual (rad/s)^2. Only the directions of the axes are identifiable, not their signs."""
    n = gyr1.shape[0]
    x = params0.copy()
    lam = 1e-3
    jtj = np.zeros((4, 4))
    jte = np.zeros(4)
    cost = _cost(gyr1, gyr2, x)
    for _ in range(max_iter):
        jtj[:, :] = 0.0
        jte[:] = 0.0
        j1x, j1y, j1z = _axis(x[0], x[1])
        j2x, j2y, j2z = _axis(x[2], x[3])
        for i in range(n):
            a, a_p, a_t = _cross_norm_grad(gyr1[i, 0], gyr1[i, 1], gyr1[i, 2], j1x, j1y, j1z, x[0], x[1])
            b, b_p, b_t = _cross_norm_grad(gyr2[i, 0], gyr2[i, 1], gyr2[i, 2], j2x, j2y, j2z, x[2], x[3])
            e = a - b
            row = (a_p, a_t, -b_p, -b_t)
            for r in range(4):
                jte[r] += row[r] * e
                for c in range(4):
                    jtj[r, c] += row[r] * row[c]
        improved = False
        for _try in range(8):
            damped = jtj.copy()
            for r in range(4):
                damped[r, r] += lam * (jtj[r, r] + 1e-9)
            # A singular system gives a NaN step, whose cost is never an improvement: more damping.
            step = _solve_n(damped, -jte)
            cand = x + step
            c_new = _cost(gyr1, gyr2, cand)
            if c_new < cost:
                x = cand
                small = c_new > cost * (1.0 - 1e-10)
                cost = c_new
                lam = max(lam * 0.3, 1e-9)
                improved = True
                if small:
                    return x, cost / max(n, 1)
                break
            lam *= 10.0
        if not improved:
            break
    return x, cost / max(n, 1)


@njit(cache=True, nogil=True)
def _sinh_ratio(x: float, y: float) -> float:
    """sinh(x) / sinh(y) for 0 <= x <= y, without overflow."""
    if y < 1e-9:
        return x / max(y, 1e-300)
    return math.exp(x - y) * (1.0 - math.exp(-2.0 * x)) / (1.0 - math.exp(-2.0 * y))


@njit(cache=True, nogil=True)
def fill_gaps(values: np.ndarray, prev: np.ndarray, missing: np.ndarray, stats: np.ndarray, dt: float,
              stats_tau_s: float, bridge_min_gap: int) -> None:
    """Fill NaN rows of ``values`` (N, 3) in place; ``prev`` is the last valid row before this block (NaN if
    none) and is updated; ``missing`` is OR-ed. A gap with no valid row after it holds the last value, one
    with none before takes the first.

    Between two valid rows the fill is the mean of an Ornstein-Uhlenbeck bridge: weights
    sinh((T - t) / tau) / sinh(T / tau) and sinh(t / tau) / sinh(T / tau) for the two ends. Its correlation
    time tau is estimated from the signal itself before the gap, tau = rms(x) / rms(dx/dt) (exponential
    averages over ``stats_tau_s``; ``stats`` = [mean square of x, of dx/dt, previous row valid]): a slow
    bend (long tau) is interpolated almost linearly, a gap in a swing phase or a cut (short tau, the
    rate may have reversed inside the gap) fades both ends out instead of drawing a straight line whose
    integral can be far off. With ``stats_tau_s`` <= 0, or in gaps shorter than ``bridge_min_gap``, the
    fill is linear. The weights only depend on data before the gap, its end and the position inside
    it, so a stream cut anywhere gives the same numbers."""
    n = values.shape[0]
    alpha = dt / stats_tau_s if stats_tau_s > 0.0 else 0.0
    i = 0
    while i < n:
        if not (math.isnan(values[i, 0]) or math.isnan(values[i, 1]) or math.isnan(values[i, 2])):
            if alpha > 0.0:
                x2 = values[i, 0] ** 2 + values[i, 1] ** 2 + values[i, 2] ** 2
                stats[0] += alpha * (x2 - stats[0])
                if stats[2] > 0.5:
                    d2 = ((values[i, 0] - prev[0]) ** 2 + (values[i, 1] - prev[1]) ** 2
                          + (values[i, 2] - prev[2]) ** 2) / (dt * dt)
                    stats[1] += alpha * (d2 - stats[1])
                stats[2] = 1.0
            prev[0] = values[i, 0]
            prev[1] = values[i, 1]
            prev[2] = values[i, 2]
            i += 1
            continue
        stats[2] = 0.0
        a = i
        while i < n and (math.isnan(values[i, 0]) or math.isnan(values[i, 1]) or math.isnan(values[i, 2])):
            i += 1
        has_left = not math.isnan(prev[0])
        has_right = i < n
        span = float(i - a + 1)
        theta_t = 0.0  # T / tau of the bridge; 0 means linear
        if alpha > 0.0 and i - a >= bridge_min_gap and stats[1] > 0.0:
            tau = math.sqrt(stats[0] / stats[1])
            theta_t = span * dt / max(tau, 1e-6)
        for r in range(a, i):
            missing[r] = True
            k = float(r - a + 1)
            if theta_t > 1e-6:
                wr = _sinh_ratio(theta_t * k / span, theta_t)
                wl = _sinh_ratio(theta_t * (span - k) / span, theta_t)
            else:
                wr = k / span
                wl = 1.0 - wr
            for c in range(3):
                if has_left and has_right:
                    values[r, c] = prev[c] * wl + values[i, c] * wr
                elif has_left:
                    values[r, c] = prev[c]
                elif has_right:
                    values[r, c] = values[i, c]


@njit(cache=True, nogil=True)
def blend_after_gaps(q_slow: np.ndarray, q_fast: np.ndarray, missing: np.ndarray, params: np.ndarray,
                     state: np.ndarray, q_out: np.ndarray, w_out: np.ndarray) -> None:
    """After a gap of >= params[0] samples the inclination (not the heading) comes from the fast filter
    until the slow one has agreed with it to within params[1] rad for params[4] samples in a row (or
    params[2] samples passed), then the weight fades with factor params[3] per sample. During the first
    params[5] samples after the gap the weight ramps up from 0 (a fresh recovery filter is averaging).
    state = [weight, open gap length, samples since the gap, samples in agreement]; w_out gets the weight of
    the fast filter per row (0 outside recoveries).

    The output is the slow orientation turned by the smallest earth-frame rotation that makes the blended
    sensor-frame vertical point up, so the heading stays the slow filter's."""
    rs = np.empty((3, 3))
    rf = np.empty((3, 3))
    min_gap, agree_rad, max_hold, decay, agree_for = params[0], params[1], params[2], params[3], params[4]
    ramp = params[5]
    cos_agree = math.cos(agree_rad)
    for i in range(q_slow.shape[0]):
        if missing[i]:
            state[1] += 1.0
        else:
            if state[1] >= min_gap:
                state[0] = 1.0
                state[2] = 0.0
                state[3] = 0.0
            state[1] = 0.0
        for k in range(4):
            q_out[i, k] = q_slow[i, k]
        w = state[0]
        w_out[i] = w
        if w < 1e-3:
            state[0] = 0.0
            w_out[i] = 0.0
            continue
        _quat_matrix(q_slow, i, rs)
        _quat_matrix(q_fast, i, rf)
        state[2] += 1.0
        ramped = state[2] >= ramp
        if ramped and rs[2, 0] * rf[2, 0] + rs[2, 1] * rf[2, 1] + rs[2, 2] * rf[2, 2] > cos_agree:
            state[3] += 1.0
        else:
            state[3] = 0.0
        if state[3] >= agree_for or state[2] > max_hold or w < 1.0:
            state[0] = w * decay
        if not ramped:
            w *= state[2] / ramp  # the recovery filter is still averaging its first samples
        # sensor-frame verticals (third rows), blended and normalised
        zx = (1.0 - w) * rs[2, 0] + w * rf[2, 0]
        zy = (1.0 - w) * rs[2, 1] + w * rf[2, 1]
        zz = (1.0 - w) * rs[2, 2] + w * rf[2, 2]
        # that vertical in the slow filter's earth frame
        vx = rs[0, 0] * zx + rs[0, 1] * zy + rs[0, 2] * zz
        vy = rs[1, 0] * zx + rs[1, 1] * zy + rs[1, 2] * zz
        vz = rs[2, 0] * zx + rs[2, 1] * zy + rs[2, 2] * zz
        n = math.sqrt(vx * vx + vy * vy + vz * vz)
        vx /= n
        vy /= n
        vz /= n
        # smallest rotation taking v to e_z: quaternion [1 + vz, vy, -vx, 0] (normalised)
        cw = 1.0 + vz
        cx = vy
        cy = -vx
        cn = math.sqrt(cw * cw + cx * cx + cy * cy)
        if cn < 1e-9:
            continue
        cw /= cn
        cx /= cn
        cy /= cn
        sw, sx, sy, sz = q_slow[i, 0], q_slow[i, 1], q_slow[i, 2], q_slow[i, 3]
        q_out[i, 0] = cw * sw - cx * sx - cy * sy
        q_out[i, 1] = cw * sx + cx * sw + cy * sz
        q_out[i, 2] = cw * sy - cx * sz + cy * sw
        q_out[i, 3] = cw * sz + cx * sy - cy * sx


@njit(cache=True, nogil=True)
def _quat_matrix(q: np.ndarray, i: int, out: np.ndarray) -> None:
    w = q[i, 0]
    x = q[i, 1]
    y = q[i, 2]
    z = q[i, 3]
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w /= n
    x /= n
    y /= n
    z /= n
    out[0, 0] = 1.0 - 2.0 * (y * y + z * z)
    out[0, 1] = 2.0 * (x * y - w * z)
    out[0, 2] = 2.0 * (x * z + w * y)
    out[1, 0] = 2.0 * (x * y + w * z)
    out[1, 1] = 1.0 - 2.0 * (x * x + z * z)
    out[1, 2] = 2.0 * (y * z - w * x)
    out[2, 0] = 2.0 * (x * z - w * y)
    out[2, 1] = 2.0 * (y * z + w * x)
    out[2, 2] = 1.0 - 2.0 * (x * x + y * y)


@njit(cache=True, nogil=True)
def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@njit(cache=True, nogil=True)
def decompose_knee(r: np.ndarray, side_sign: float) -> tuple[float, float, float]:
    """Grood & Suntay angles (flexion, valgus, rotation) of the shank-in-thigh rotation matrix.
    R = Ry(flexion) @ Rx(-side*valgus) @ Rz(side*rotation), see sensorhub.conventions."""
    flexion = math.atan2(r[0, 2], r[2, 2])
    s = -r[1, 2]
    s = min(1.0, max(-1.0, s))
    b = math.asin(s)
    c = math.atan2(r[1, 0], r[1, 1])
    return flexion, -side_sign * b, side_sign * c


@njit(cache=True, nogil=True)
def heading_of_axis(rmat: np.ndarray, col: int) -> tuple[float, float]:
    """Heading of a column's horizontal projection and the squared horizontal norm (its weight)."""
    vx = rmat[0, col]
    vy = rmat[1, col]
    return math.atan2(vy, vx), vx * vx + vy * vy


@njit(cache=True, nogil=True)
def knee_angles_loop(q_thigh: np.ndarray, q_shank: np.ndarray, c_thigh: np.ndarray, c_shank: np.ndarray,
                     missing: np.ndarray, params: np.ndarray, state: np.ndarray, out_rad: np.ndarray,
                     out_flags: np.ndarray) -> None:
    """Per sample: segment orientations, causal relative-heading correction, Grood & Suntay angles.

    q_*: (N, 4) sensor->earth of each 6-axis filter (each with its own heading); c_*: segment->sensor.
    The shank filter's earth is rotated about z by delta; delta follows the heading difference of the two
    segments' flexion (y) axes, weighted by how horizontal both axes are and by how extended the knee is
    (hinge constraint: both segments share the flexion axis; near extension the knee cannot rotate much),
    with a shorter time constant for a while after a long gap in the data.
    """
    n = q_thigh.shape[0]
    dt = params[P_DT_S]
    gain_normal = min(1.0, dt / params[P_TAU_S])
    gain_fast = min(1.0, dt / params[P_TAU_FAST_S])
    flex_scale = params[P_FLEX_SCALE_RAD]
    side = params[P_SIDE_SIGN]
    qt = np.empty((3, 3))
    qs = np.empty((3, 3))
    rt = np.empty((3, 3))
    rs0 = np.empty((3, 3))
    rs = np.empty((3, 3))
    knee = np.empty((3, 3))
    for i in range(n):
        _quat_matrix(q_thigh, i, qt)
        _quat_matrix(q_shank, i, qs)
        _matmul(qt, c_thigh, rt)
        _matmul(qs, c_shank, rs0)
        delta = state[K_DELTA]
        cd = math.cos(delta)
        sd = math.sin(delta)
        for k in range(3):
            rs[0, k] = cd * rs0[0, k] - sd * rs0[1, k]
            rs[1, k] = sd * rs0[0, k] + cd * rs0[1, k]
            rs[2, k] = rs0[2, k]
        _matmul_tn(rt, rs, knee)
        flexion, valgus, rotation = decompose_knee(knee, side)
        out_rad[i, 0] = flexion
        out_rad[i, 1] = valgus
        out_rad[i, 2] = rotation
        # relative heading correction (after the output: causal, the sample's own angles use old delta)
        psi_t, h_t = heading_of_axis(rt, 1)
        psi_s, h_s = heading_of_axis(rs0, 1)
        w = h_t * h_s * math.exp(-(flexion / flex_scale) ** 2)
        if missing[i] or math.isnan(w):
            w = 0.0
        # a long gap lets the two headings diverge (e.g. the body turns during a lost cut): re-converge fast
        if missing[i]:
            state[K_GAP_RUN] += 1.0
        else:
            if state[K_GAP_RUN] >= params[P_MIN_GAP]:
                state[K_BOOST_S] = params[P_BOOST_S]
            state[K_GAP_RUN] = 0.0
        gain = gain_normal
        if state[K_BOOST_S] > 0.0:
            gain = gain_fast
            state[K_BOOST_S] -= dt
        err = _wrap(psi_t - psi_s - delta)
        state[K_DELTA] = _wrap(delta + gain * w * err)
        if w > 0.5:
            state[K_STALE_S] = 0.0
        else:
            state[K_STALE_S] += dt
        flags = 0
        if missing[i]:
            flags |= FLAG_MISSING_INPUT
        if state[K_STALE_S] > params[P_STALE_AFTER_S]:
            flags |= FLAG_HEADING_STALE
        if flexion < -0.35 or flexion > 2.8 or abs(valgus) > 0.6 or abs(rotation) > 0.8:
            flags |= FLAG_IMPLAUSIBLE
        out_flags[i] = flags



# --- gap recovery: state / parameter layout --------------------------------------------------------------
R_GAP_RUN = 0  # length of the current run of missing samples
R_ACTIVE = 1  # 1 while recovering after a long gap, 0 otherwise
R_WEIGHT = 2  # weight of the recovery corrections (1 while active, then fading to 0)
R_OFFSET = 3  # anchored (hinge-accelerometer) flexion minus the hinge-rate-integrated flexion, rad
R_ANCHORS = 4  # anchors seen since the gap
R_ROWS = 5  # measured rows since the gap
R_AGREE = 6  # rows in a row with the filters' flexion within the agreement limit of the anchored one
R_PRE_VALGUS = 7  # valgus and rotation before the gap (held while recovering), rad
R_PRE_ROTATION = 8
R_PREV_VALID = 9  # how many of the previous rows (up to 2) were measured, not filled
R_PREV_ANGLES = 10  # the filters' flexion, valgus, rotation of the previous row (3), rad
R_PREV_CLEAN = 13  # 1 if the previous row was measured and outside any recovery
R_PREV = 14  # previous row: acc thigh, gyr thigh, acc shank, gyr shank (12)
R_PREV2 = 26  # the row before that: gyr thigh, gyr shank, acc thigh, acc shank (12)
R_LEVERS = 38  # lever arms knee centre -> thigh sensor, -> shank sensor, sensor frames (6), m
R_LEVERS_OK = 44  # 1 when the lever arms have been fitted
R_NFIT = 45  # rows in the lever-arm fit
R_ATB = 46  # normal equations of the lever-arm fit: A^T b (6), A^T A (36)
R_ATA = 52
R_FLEX_GYRO = 88  # flexion integrated from the hinge rate since the gap, and its value at the previous row
R_PREV_FLEX_GYRO = 89
R_SINCE_ANCHOR = 90  # measured rows since the last anchor
R_HOLD = 91  # weight of the held valgus/rotation (1 while held, then fading to 0)
R_SIZE = 92

Q_MIN_GAP = 0  # a gap of at least this many rows starts a recovery
Q_DT_S = 1
Q_TAU_ANCHOR_S = 2  # averaging time constant of the flexion offset
Q_AGREE_RAD = 3  # the recovery ends when the filters' flexion is within this of the anchored one...
Q_AGREE_ROWS = 4  # ...for this many rows (and the filters' own gap blending is over)...
Q_MAX_ROWS = 5  # ...or after this many measured rows
Q_FADE = 6  # per-row factor of the fade-out of the corrections
Q_MIN_PROJ_M_S2 = 7  # an anchor needs this much knee-centre acceleration in both sagittal planes
Q_NORM_TOL = 8  # relative mismatch allowed between the two knee-centre acceleration magnitudes
Q_MAX_RATE_RAD_S = 9  # no anchor above this angular rate with fitted lever arms...
Q_STATIC_RATE_RAD_S = 10  # ...nor above this one without them
Q_MIN_ANCHORS = 11  # the first anchors are averaged plainly, later ones...
Q_SIDE_SIGN = 12
Q_FIT_MIN_RATE_RAD_S = 13  # rows turning slower than this carry no lever-arm information
Q_FIT_MIN_ROWS = 14
Q_MAX_LEVER_M = 15  # a longer fitted lever arm is implausible on a leg: not used
Q_RIDGE = 16  # Tikhonov weight of the fit (units of A^T A)
Q_CLIP_RAD = 17  # ...move the offset by at most this innovation (impacts, soft-tissue wobble)
Q_MAX_JERK_M_S3 = 18  # no anchor where either accelerometer changes faster (impacts, tissue transients)
Q_FOLLOW_AFTER_ROWS = 19  # without an anchor for this long, the offset follows the filters' flexion...
Q_TAU_FOLLOW_S = 20  # ...with this time constant (flight, long impacts)
Q_FIT_MAX_ROWS = 21  # the lever arms of a mounting do not change: stop accumulating after this many rows
Q_HOLD_MAX_ROWS = 22  # valgus/rotation are held at most this many rows (the heading re-converges by then)
Q_SIZE = 23

FLAG_RECOVERING = 8


@njit(cache=True, nogil=True)
def _solve_n(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve a x = b (square, copied) by Gaussian elimination with partial pivoting; NaN if singular."""
    n = b.shape[0]
    m = a.copy()
    v = b.copy()
    for c in range(n):
        p = c
        for r in range(c + 1, n):
            if abs(m[r, c]) > abs(m[p, c]):
                p = r
        if abs(m[p, c]) < 1e-300:
            return np.full(n, np.nan)
        if p != c:
            for k in range(n):
                tmp = m[c, k]
                m[c, k] = m[p, k]
                m[p, k] = tmp
            tmp = v[c]
            v[c] = v[p]
            v[p] = tmp
        for r in range(c + 1, n):
            f = m[r, c] / m[c, c]
            for k in range(c, n):
                m[r, k] -= f * m[c, k]
            v[r] -= f * v[c]
    x = np.zeros(n)
    for c in range(n - 1, -1, -1):
        s = v[c]
        for k in range(c + 1, n):
            s -= m[c, k] * x[k]
        x[c] = s / m[c, c]
    return x


@njit(cache=True, nogil=True)
def solve_lever_arms(state: np.ndarray, params: np.ndarray, c_thigh: np.ndarray, c_shank: np.ndarray) -> None:
    """Lever arms from the accumulated normal equations into the state (R_LEVERS_OK = 0 if implausible).

    A point's position along the flexion axis is not observable (a rotation about the axis does not move
    the points on it), so each lever arm is sought in its segment's x-z plane: the knee centre is the point
    of the axis closest to the sensor."""
    state[R_LEVERS_OK] = 0.0
    if state[R_NFIT] < params[Q_FIT_MIN_ROWS]:
        return
    basis = np.zeros((6, 4))  # r = basis @ p, p = (x, z) of each lever arm in segment coordinates
    for r in range(3):
        basis[r, 0] = c_thigh[r, 0]
        basis[r, 1] = c_thigh[r, 2]
        basis[3 + r, 2] = c_shank[r, 0]
        basis[3 + r, 3] = c_shank[r, 2]
    ata = np.empty((6, 6))
    atb = np.empty(6)
    for r in range(6):
        atb[r] = state[R_ATB + r]
        for c in range(6):
            ata[r, c] = state[R_ATA + 6 * r + c]
    ab = np.empty((6, 4))
    _matmul(ata, basis, ab)
    m = np.empty((4, 4))
    _matmul_tn(basis, ab, m)
    for r in range(4):
        m[r, r] += params[Q_RIDGE]
    rhs = np.empty(4)
    _matvec(basis, atb, rhs, True)
    x = np.empty(6)
    _matvec(basis, _solve_n(m, rhs), x, False)
    for k in range(2):
        n2 = x[3 * k] ** 2 + x[3 * k + 1] ** 2 + x[3 * k + 2] ** 2
        if not n2 <= params[Q_MAX_LEVER_M] ** 2:  # also catches NaN
            return
    for r in range(6):
        state[R_LEVERS + r] = x[r]
    state[R_LEVERS_OK] = 1.0


@njit(cache=True, nogil=True)
def _lever_matrix(state: np.ndarray, gyr_at: int, gyr_prev2_at: int, gyr_now: np.ndarray, inv_2dt: float,
                  g: np.ndarray) -> None:
    """G with G r = w x (w x r) + dw/dt x r for the previous row (dw/dt: central difference over the rows
    before and after it)."""
    wx, wy, wz = state[gyr_at], state[gyr_at + 1], state[gyr_at + 2]
    dx = (gyr_now[0] - state[gyr_prev2_at]) * inv_2dt
    dy = (gyr_now[1] - state[gyr_prev2_at + 1]) * inv_2dt
    dz = (gyr_now[2] - state[gyr_prev2_at + 2]) * inv_2dt
    w2 = wx * wx + wy * wy + wz * wz
    g[0, 0] = wx * wx - w2
    g[0, 1] = wx * wy - dz
    g[0, 2] = wx * wz + dy
    g[1, 0] = wy * wx + dz
    g[1, 1] = wy * wy - w2
    g[1, 2] = wy * wz - dx
    g[2, 0] = wz * wx - dy
    g[2, 1] = wz * wy + dx
    g[2, 2] = wz * wz - w2


@njit(cache=True, nogil=True)
def _knee_matrix(flexion: float, valgus: float, rotation: float, side: float, out: np.ndarray) -> None:
    """Ry(flexion) Rx(-side valgus) Rz(side rotation): shank segment -> thigh segment."""
    cf, sf = math.cos(flexion), math.sin(flexion)
    cb, sb = math.cos(-side * valgus), math.sin(-side * valgus)
    cc, sc = math.cos(side * rotation), math.sin(side * rotation)
    # Rx(b) Rz(c)
    m00, m01, m02 = cc, -sc, 0.0
    m10, m11, m12 = cb * sc, cb * cc, -sb
    m20, m21, m22 = sb * sc, sb * cc, cb
    out[0, 0] = cf * m00 + sf * m20
    out[0, 1] = cf * m01 + sf * m21
    out[0, 2] = cf * m02 + sf * m22
    out[1, 0] = m10
    out[1, 1] = m11
    out[1, 2] = m12
    out[2, 0] = -sf * m00 + cf * m20
    out[2, 1] = -sf * m01 + cf * m21
    out[2, 2] = -sf * m02 + cf * m22


@njit(cache=True, nogil=True)
def recover_after_gaps(angles_rad: np.ndarray, acc_t: np.ndarray, gyr_t: np.ndarray, acc_s: np.ndarray,
                       gyr_s: np.ndarray, missing: np.ndarray, blending: np.ndarray, c_thigh: np.ndarray,
                       c_shank: np.ndarray, params: np.ndarray, state: np.ndarray, flags: np.ndarray) -> None:
    """After a long gap, re-anchor flexion on the hinge and hold valgus/rotation (in place on ``angles_rad``
    (N, 3) from ``knee_angles_loop``; gyroscopes bias-free, gaps filled, ``missing`` marks filled rows,
    ``blending`` the rows where either orientation still comes partly from its gap-recovery filter).

    Flexion after the gap = the hinge rate j_s.w_s - j_t.w_t integrated from the gap's end (exact for a
    hinge, independent of the orientation filters' state) + an offset from anchors. Anchor: without the
    lever terms w x (w x r) + dw/dt x r, both accelerometers measure the same vector, the specific force of
    the knee centre, each in its own segment frame; a hinge turns one into the other about the flexion (y)
    axis, so flexion is the difference of that vector's angles in the two sagittal (x-z) planes. It needs
    neither a quiet phase nor the pre-gap state, only that the vector is not along the axis; an anchor is
    used when the two magnitudes agree (lever-arm, soft-tissue and off-hinge errors make them differ) and
    the accelerations change slowly (no impact). The lever arms come from a linear least-squares fit of the
    same relation over every clean, turning row so far (the knee rotation known from the filters there).
    The anchor of row i-1 is formed at row i (central difference for dw/dt), so everything stays causal.
    The first anchors are averaged, later ones enter with time constant Q_TAU_ANCHOR_S and clipped
    innovations; before the first anchor (no lever arms yet, flight) the offset makes flexion equal the
    filters' (their own gap recovery), and after Q_FOLLOW_AFTER_ROWS without anchors it follows them slowly.

    While recovering, valgus and rotation are held at their pre-gap values (the filters' inclination and
    heading errors leak into them, and a hinge's valgus/rotation change little). The recovery ends when the
    filters' blending is over and their flexion agrees with the anchored one, then the corrections fade out.
    Recovering rows get FLAG_RECOVERING (until the fade is mostly done)."""
    n = angles_rad.shape[0]
    dt = params[Q_DT_S]
    inv_2dt = 0.5 / dt
    g_tau = min(1.0, dt / params[Q_TAU_ANCHOR_S])
    g_follow = min(1.0, dt / params[Q_TAU_FOLLOW_S])
    side = params[Q_SIDE_SIGN]
    fit_rate2 = params[Q_FIT_MIN_RATE_RAD_S] ** 2
    min_proj2 = params[Q_MIN_PROJ_M_S2] ** 2
    max_jerk2 = params[Q_MAX_JERK_M_S3] ** 2
    g1 = np.empty((3, 3))
    g2 = np.empty((3, 3))
    knee = np.empty((3, 3))
    rel = np.empty((3, 3))
    rg2 = np.empty((3, 3))
    tmp3 = np.empty((3, 3))
    a_row = np.empty((3, 6))
    b_row = np.empty(3)
    u1 = np.empty(3)
    u2 = np.empty(3)
    for i in range(n):
        raw_flex = angles_rad[i, 0]
        raw_valgus = angles_rad[i, 1]
        raw_rotation = angles_rad[i, 2]
        if missing[i]:
            state[R_GAP_RUN] += 1.0
        else:
            if state[R_GAP_RUN] >= params[Q_MIN_GAP]:
                if state[R_WEIGHT] < 1e-3:
                    # no recovery running: start integrating from the filters' (post-gap) flexion
                    state[R_OFFSET] = 0.0
                    state[R_FLEX_GYRO] = raw_flex
                    state[R_PREV_FLEX_GYRO] = raw_flex
                state[R_ACTIVE] = 1.0
                state[R_WEIGHT] = 1.0
                state[R_HOLD] = 1.0
                state[R_ANCHORS] = 0.0
                state[R_ROWS] = 0.0
                state[R_AGREE] = 0.0
                state[R_SINCE_ANCHOR] = params[Q_FOLLOW_AFTER_ROWS]
                solve_lever_arms(state, params, c_thigh, c_shank)
            state[R_GAP_RUN] = 0.0
        # the previous row, now that dw/dt is known there (needs rows i-2, i-1, i measured)
        if not missing[i] and state[R_PREV_VALID] >= 2.0:
            p = R_PREV
            _lever_matrix(state, p + 3, R_PREV2, gyr_t[i], inv_2dt, g1)
            _lever_matrix(state, p + 9, R_PREV2 + 3, gyr_s[i], inv_2dt, g2)
            w_t2 = state[p + 3] ** 2 + state[p + 4] ** 2 + state[p + 5] ** 2
            w_s2 = state[p + 9] ** 2 + state[p + 10] ** 2 + state[p + 11] ** 2
            if (state[R_PREV_CLEAN] > 0.5 and state[R_NFIT] < params[Q_FIT_MAX_ROWS]
                    and (w_t2 > fit_rate2 or w_s2 > fit_rate2)):
                # lever-arm fit: G1 r1 - R G2 r2 = a1 - R a2, R = shank sensor -> thigh sensor
                _knee_matrix(state[R_PREV_ANGLES], state[R_PREV_ANGLES + 1], state[R_PREV_ANGLES + 2], side,
                             knee)
                _matmul(knee, c_shank.T, tmp3)
                _matmul(c_thigh, tmp3, rel)
                _matmul(rel, g2, rg2)
                for r in range(3):
                    b_row[r] = state[p + r] - (rel[r, 0] * state[p + 6] + rel[r, 1] * state[p + 7]
                                               + rel[r, 2] * state[p + 8])
                    for c in range(3):
                        a_row[r, c] = g1[r, c]
                        a_row[r, 3 + c] = -rg2[r, c]
                for r in range(6):
                    s = 0.0
                    for k in range(3):
                        s += a_row[k, r] * b_row[k]
                    state[R_ATB + r] += s
                    for c in range(6):
                        s = 0.0
                        for k in range(3):
                            s += a_row[k, r] * a_row[k, c]
                        state[R_ATA + 6 * r + c] += s
                state[R_NFIT] += 1.0
            ok = state[R_LEVERS_OK] > 0.5
            max_rate = params[Q_MAX_RATE_RAD_S] if ok else params[Q_STATIC_RATE_RAD_S]
            jerk_t2 = 0.0  # squared jerk of each accelerometer at the previous row (central difference)
            jerk_s2 = 0.0
            for k in range(3):
                jerk_t2 += ((acc_t[i, k] - state[R_PREV2 + 6 + k]) * inv_2dt) ** 2
                jerk_s2 += ((acc_s[i, k] - state[R_PREV2 + 9 + k]) * inv_2dt) ** 2
            jerk2 = max(jerk_t2, jerk_s2)
            if (state[R_ACTIVE] > 0.5 and w_t2 < max_rate * max_rate and w_s2 < max_rate * max_rate
                    and jerk2 < max_jerk2):
                for r in range(3):
                    s1 = state[p + r]
                    s2 = state[p + 6 + r]
                    if ok:
                        for c in range(3):
                            s1 -= g1[r, c] * state[R_LEVERS + c]
                            s2 -= g2[r, c] * state[R_LEVERS + 3 + c]
                    u1[r] = s1
                    u2[r] = s2
                # into segment coordinates: x (anterior) and z (up) components
                tx = c_thigh[0, 0] * u1[0] + c_thigh[1, 0] * u1[1] + c_thigh[2, 0] * u1[2]
                tz = c_thigh[0, 2] * u1[0] + c_thigh[1, 2] * u1[1] + c_thigh[2, 2] * u1[2]
                sx = c_shank[0, 0] * u2[0] + c_shank[1, 0] * u2[1] + c_shank[2, 0] * u2[2]
                sz = c_shank[0, 2] * u2[0] + c_shank[1, 2] * u2[1] + c_shank[2, 2] * u2[2]
                n1 = math.sqrt(u1[0] ** 2 + u1[1] ** 2 + u1[2] ** 2)
                n2 = math.sqrt(u2[0] ** 2 + u2[1] ** 2 + u2[2] ** 2)
                if (abs(n1 - n2) < params[Q_NORM_TOL] * max(n1, n2)
                        and tx * tx + tz * tz > min_proj2 and sx * sx + sz * sz > min_proj2):
                    e = _wrap(math.atan2(tx, tz) - math.atan2(sx, sz) - state[R_PREV_FLEX_GYRO])
                    state[R_ANCHORS] += 1.0
                    innovation = e - state[R_OFFSET]
                    if state[R_ANCHORS] > params[Q_MIN_ANCHORS]:
                        innovation = min(params[Q_CLIP_RAD], max(-params[Q_CLIP_RAD], innovation))
                    state[R_OFFSET] += max(g_tau, 1.0 / state[R_ANCHORS]) * innovation
                    state[R_SINCE_ANCHOR] = -1.0
        if state[R_ACTIVE] > 0.5 and not missing[i]:
            state[R_SINCE_ANCHOR] += 1.0
            if state[R_ANCHORS] == 0.0:
                # nothing anchored yet (no lever arms yet, flight): the filters' flexion, own recovery
                state[R_OFFSET] = _wrap(raw_flex - state[R_FLEX_GYRO])
            elif state[R_SINCE_ANCHOR] >= params[Q_FOLLOW_AFTER_ROWS]:
                # no anchor for a while: converge with the filters again, slowly
                state[R_OFFSET] += g_follow * (_wrap(raw_flex - state[R_FLEX_GYRO]) - state[R_OFFSET])
        hinge_flex = state[R_FLEX_GYRO] + state[R_OFFSET]
        if state[R_ACTIVE] > 0.5:
            if not missing[i]:
                state[R_ROWS] += 1.0
                if abs(_wrap(hinge_flex - raw_flex)) < params[Q_AGREE_RAD]:
                    state[R_AGREE] += 1.0
                else:
                    state[R_AGREE] = 0.0
                agreed = state[R_AGREE] >= params[Q_AGREE_ROWS] and not blending[i]
                if agreed or state[R_ROWS] >= params[Q_MAX_ROWS]:
                    state[R_ACTIVE] = 0.0
                if state[R_AGREE] >= params[Q_AGREE_ROWS] or state[R_ROWS] >= params[Q_HOLD_MAX_ROWS]:
                    state[R_HOLD] = min(state[R_HOLD], 1.0 - 1e-9)  # released: fades below
        elif state[R_WEIGHT] > 0.0:
            state[R_WEIGHT] *= params[Q_FADE]
            if state[R_WEIGHT] < 1e-3:
                state[R_WEIGHT] = 0.0
        if state[R_HOLD] < 1.0:
            state[R_HOLD] = state[R_HOLD] * params[Q_FADE] if state[R_WEIGHT] > 0.0 else 0.0
        w = state[R_WEIGHT]
        wh = state[R_HOLD]
        if missing[i]:
            pass
        elif w > 0.0:
            angles_rad[i, 0] = raw_flex + w * _wrap(hinge_flex - raw_flex)
            angles_rad[i, 1] = (1.0 - wh) * raw_valgus + wh * state[R_PRE_VALGUS]
            angles_rad[i, 2] = (1.0 - wh) * raw_rotation + wh * state[R_PRE_ROTATION]
            if state[R_ACTIVE] > 0.5 or w > 0.1:
                flags[i] |= FLAG_RECOVERING
        else:
            state[R_PRE_VALGUS] = raw_valgus
            state[R_PRE_ROTATION] = raw_rotation
        # shift the row history
        state[R_PREV_VALID] = 0.0 if missing[i] else min(2.0, state[R_PREV_VALID] + 1.0)
        state[R_PREV_CLEAN] = 1.0 if (not missing[i] and w == 0.0) else 0.0
        for k in range(3):
            state[R_PREV2 + k] = state[R_PREV + 3 + k]
            state[R_PREV2 + 3 + k] = state[R_PREV + 9 + k]
            state[R_PREV2 + 6 + k] = state[R_PREV + k]
            state[R_PREV2 + 9 + k] = state[R_PREV + 6 + k]
            state[R_PREV + k] = acc_t[i, k]
            state[R_PREV + 3 + k] = gyr_t[i, k]
            state[R_PREV + 6 + k] = acc_s[i, k]
            state[R_PREV + 9 + k] = gyr_s[i, k]
        state[R_PREV_ANGLES] = raw_flex
        state[R_PREV_ANGLES + 1] = raw_valgus
        # hinge flexion rate j_s.w_s - j_t.w_t (the segments' y axes), integrated while a recovery runs
        state[R_PREV_FLEX_GYRO] = state[R_FLEX_GYRO]
        if w > 0.0:
            state[R_FLEX_GYRO] += dt * (c_shank[0, 1] * gyr_s[i, 0] + c_shank[1, 1] * gyr_s[i, 1]
                                        + c_shank[2, 1] * gyr_s[i, 2] - c_thigh[0, 1] * gyr_t[i, 0]
                                        - c_thigh[1, 1] * gyr_t[i, 1] - c_thigh[2, 1] * gyr_t[i, 2])
        state[R_PREV_ANGLES + 2] = raw_rotation
