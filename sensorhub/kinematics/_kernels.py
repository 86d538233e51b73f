"""Numba kernels of the knee kinematics: joint-axis fit, gap holding, heading correction + joint angles.

Pure functions on float64 arrays. The per-sample loop (``knee_angles_loop``) carries its state in a flat
array so that a stream cut into arbitrary chunks gives bit-identical results to one batch call.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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


@njit(cache=True)
def _axis(phi: float, theta: float) -> tuple[float, float, float]:
    cp = math.cos(phi)
    return cp * math.cos(theta), cp * math.sin(theta), math.sin(phi)


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def _cost(gyr1: np.ndarray, gyr2: np.ndarray, params: np.ndarray) -> float:
    r = hinge_residuals(gyr1, gyr2, params)
    return float(np.sum(r * r))


@njit(cache=True)
def _solve4(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve the 4x4 system a x = b by Gaussian elimination with partial pivoting (a, b copied)."""
    m = a.copy()
    v = b.copy()
    for c in range(4):
        p = c
        for r in range(c + 1, 4):
            if abs(m[r, c]) > abs(m[p, c]):
                p = r
        if abs(m[p, c]) < 1e-300:
            return np.zeros(4)
        if p != c:
            for k in range(4):
                tmp = m[c, k]
                m[c, k] = m[p, k]
                m[p, k] = tmp
            tmp = v[c]
            v[c] = v[p]
            v[p] = tmp
        for r in range(c + 1, 4):
            f = m[r, c] / m[c, c]
            for k in range(c, 4):
                m[r, k] -= f * m[c, k]
            v[r] -= f * v[c]
    x = np.zeros(4)
    for c in range(3, -1, -1):
        s = v[c]
        for k in range(c + 1, 4):
            s -= m[c, k] * x[k]
        x[c] = s / m[c, c]
    return x


@njit(cache=True)
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
            step = _solve4(damped, -jte)
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


@njit(cache=True)
def _sinh_ratio(x: float, y: float) -> float:
    """sinh(x) / sinh(y) for 0 <= x <= y, without overflow."""
    if y < 1e-9:
        return x / max(y, 1e-300)
    return math.exp(x - y) * (1.0 - math.exp(-2.0 * x)) / (1.0 - math.exp(-2.0 * y))


@njit(cache=True)
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


@njit(cache=True)
def blend_after_gaps(q_slow: np.ndarray, q_fast: np.ndarray, missing: np.ndarray, params: np.ndarray,
                     state: np.ndarray, q_out: np.ndarray) -> None:
    """After a gap of >= params[0] samples the inclination (not the heading) comes from the fast filter
    until the slow one has agreed with it to within params[1] rad for params[4] samples in a row (or
    params[2] samples passed), then the weight fades with factor params[3] per sample. During the first
    params[5] samples after the gap the weight ramps up from 0 (a fresh recovery filter is averaging).
    state = [weight, open gap length, samples since the gap, samples in agreement].

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
        if w < 1e-3:
            state[0] = 0.0
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


@njit(cache=True)
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


@njit(cache=True)
def _wrap(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@njit(cache=True)
def decompose_knee(r: np.ndarray, side_sign: float) -> tuple[float, float, float]:
    """Grood & Suntay angles (flexion, valgus, rotation) of the shank-in-thigh rotation matrix.
    R = Ry(flexion) @ Rx(-side*valgus) @ Rz(side*rotation), see sensorhub.conventions."""
    flexion = math.atan2(r[0, 2], r[2, 2])
    s = -r[1, 2]
    s = min(1.0, max(-1.0, s))
    b = math.asin(s)
    c = math.atan2(r[1, 0], r[1, 1])
    return flexion, -side_sign * b, side_sign * c


@njit(cache=True)
def heading_of_axis(rmat: np.ndarray, col: int) -> tuple[float, float]:
    """Heading of a column's horizontal projection and the squared horizontal norm (its weight)."""
    vx = rmat[0, col]
    vy = rmat[1, col]
    return math.atan2(vy, vx), vx * vx + vy * vy


@njit(cache=True)
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
        rt[:, :] = qt @ c_thigh
        rs0[:, :] = qs @ c_shank
        delta = state[K_DELTA]
        cd = math.cos(delta)
        sd = math.sin(delta)
        for k in range(3):
            rs[0, k] = cd * rs0[0, k] - sd * rs0[1, k]
            rs[1, k] = sd * rs0[0, k] + cd * rs0[1, k]
            rs[2, k] = rs0[2, k]
        knee[:, :] = rt.T @ rs
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
