"""Numba kernels of the event detector: per-sample features, then one sample-by-sample state machine per
leg whose state is carried in a float64 array, so chunked (live) and one-batch (offline) processing take
identical decisions.

The kernels only find WHEN things happen (global sample indices of take-off, contact, start of descent,
bottom, end, foot strike); ``sensorhub.analysis.metrics`` computes the metric values.

Flight is judged by physics, not by a signature of one kind of jump: in the air the hip falls freely, so
the thigh sensor's specific force is only what the thigh's rotation about the hip makes at the sensor,
``f = L(w, dw/dt) r`` (``L r = dw/dt x r + w x (w x r)``, r the hip -> sensor lever arm, constant). On the
ground the support adds about 1 g that no lever explains. The lever is fitted (least squares, pulled
towards a nominal one) over the flight itself, so legs that swing, tuck or flex in the air stay
"airborne"; the first sample the fit no longer explains is the return of support: initial contact.
A fast squat also unloads the hip for a moment, but its foot stays planted: a planted shank's ankle is at
rest, so the specific force there (the shank's, moved along its axis by the lever length) is 1 g up; a
flight needs the shank to be off the ground too.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sensorhub.model import FloatArray

RING = 64  # look-back of the contact onset search and of the flexion-rate lag (samples)

# ---- feature columns ------------------------------------------------------------------------------------
F_AT_G = 0  # thigh |specific force| / g
F_AS_G = 1  # shank |specific force| / g
F_WS = 2  # shank |angular rate|, rad/s
F_TURN = 3  # thigh angular rate about the vertical (earth frame), rad/s
F_HACC_G = 4  # thigh horizontal acceleration (earth frame) / g
F_VACC_G = 5  # thigh vertical specific force (earth frame) / g
F_L = 6  # thigh lever operator L (9, row major): L r = dw/dt x r + w x (w x r), sensor frame
F_FT = 15  # thigh specific force (3), sensor frame, m/s^2
F_PLANT_G = 18  # how far the shank's ankle is from "at rest on the ground" (g), best lever length
F_COLS = 19

# ---- parameters (see AnalysisParams in detector.py for units and meaning) -----------------------------
P_RATE_HZ = 0
P_AIR_ENTER_G = 1
P_AIR_BREAK_G = 2
P_CONFIRM_S = 3
P_AIR_RMS_G = 4
P_IMPACT_G = 5
P_MIN_FLIGHT_S = 6
P_MAX_FLIGHT_S = 7
P_LANDING_WINDOW_S = 8
P_ONSET_G = 9
P_QUIET_RATE_DEG_S = 10
P_QUIET_MIN_S = 11
P_RATE_LAG_S = 12
P_REP_ENTER_DEG = 13
P_REP_MIN_EXC_DEG = 14
P_REP_MIN_ECC_S = 15
P_REP_ASCENT_FRAC = 16
P_REP_END_FRAC = 17
P_REP_MAX_S = 18
P_SWING_MIN_DEG = 19
P_LEVER_RIDGE = 20  # (rad/s^2)^2 per sample: below this much rotation the lever stays at its prior
P_TAKEOFF_G = 21  # take-off: the first candidate sample whose unexplained force is below this
P_STRIKE_RISE_DEG = 22
P_REP_END_QUIET_S = 23
P_REP_MIN_CONC_S = 24
P_PLANTED_G = 25  # the shank counts as planted while its ankle's specific force is this close to 1 g up
P_REP_HOLDOFF_S = 26
P_LEVER_X = 27  # prior hip -> thigh sensor lever arm (3), sensor frame, m
P_GAP_SUPPORT_G = 30  # first sample after a gap in a flight: this much unexplained force = landed in it
P_SIZE = 31

# ---- state ----------------------------------------------------------------------------------------------
S_N = 0  # samples seen (global index of the next sample)
S_AIR = 1  # 0 on the ground, 1 candidate flight, 2 airborne
S_CAND = 2  # global index where the candidate began
S_TAKEOFF = 3  # take-off of the current flight / candidate
S_PLANTED_RUN = 4  # candidate samples with the shank planted
S_LAND_OPEN = 5
S_LAND_CONTACT = 6
S_LAND_TAKEOFF = 7
S_LAST_AIR = 8  # take-off of the last landing's flight (-1: none)
S_PREV_SUPPORT = 9  # unexplained force of the previous valid sample (prior lever), g
S_REP = 10  # 0 idle, 1 descent, 2 ascent, 3 waiting for the hold-off
S_QUIET_RUN = 11
S_ONSET = 12
S_ONSET_FLEX = 13
S_REP_START = 14
S_REP_START_FLEX = 15
S_REP_PEAK = 16
S_REP_PEAK_IDX = 17
S_SW = 18
S_SW_MIN = 19
S_SW_MIN_IDX = 20
S_REP_END = 21
S_ASC_MIN = 22
S_LAST_CONTACT = 23  # global index of the last landing's initial contact
S_LAND_GAP_LO = 24  # open landing whose contact fell in lost samples: last valid sample before them, else -1
S_LAST_VALID = 25  # global index of the last valid sample
S_PREV_VALID = 26
S_FIT_N = 27  # samples in the lever fit
S_FIT_C = 28  # sum f.f
S_FIT_B = 29  # sum L^T f (3)
S_FIT_A = 32  # sum L^T L (9)
S_NOISE = 41  # mean unexplained force^2 over the flight so far (g^2)
S_RING_F = 42
S_RING_S = S_RING_F + RING  # unexplained force per sample, for the onset search
S_SIZE = S_RING_S + RING

# ---- output records --------------------------------------------------------------------------------------
K_LANDING = 1.0  # a: contact, b: take-off, c: end of window, d: next take-off (-1), e: see S_LAND_GAP_LO
K_REP = 2.0  # a: start of descent, b: bottom, c: end
K_STRIKE = 3.0  # a: foot strike (initial contact) outside landings
OUT_COLS = 6

# ---- features state ---------------------------------------------------------------------------------------
FS_N = 0  # rows seen
FS_RING = 1  # the last DERIV_MAX rows of thigh and shank angular rate (6 each)
DERIV_MAX = 32
MAX_SHANK_LEVER_M = 0.5  # a shank sensor sits at most this far above the ankle


def new_state() -> FloatArray:
    s = np.zeros(S_SIZE)
    for k in (S_CAND, S_LAST_AIR, S_ONSET, S_LAST_CONTACT, S_LAND_GAP_LO, S_LAST_VALID, S_TAKEOFF):
        s[k] = -1.0
    s[S_PREV_SUPPORT] = 1.0
    s[S_RING_F:S_SIZE] = np.nan
    return s


def new_feature_state() -> FloatArray:
    s = np.zeros(FS_RING + 6 * DERIV_MAX)
    s[FS_RING:] = np.nan
    return s


@njit(cache=True)
def _quat_rows(q: FloatArray, i: int) -> tuple[float, float, float, float, float, float, float, float, float]:
    w, x, y, z = q[i, 0], q[i, 1], q[i, 2], q[i, 3]
    return (1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y),
            2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x),
            2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y))


@njit(cache=True)
def features(thigh_acc: FloatArray, thigh_gyr: FloatArray, shank_acc: FloatArray, shank_gyr: FloatArray,
             q_thigh: FloatArray, q_shank: FloatArray, missing: np.ndarray, shank_z: FloatArray,
             g_m_s2: float, rate_hz: float, deriv_n: int, state: FloatArray, out: FloatArray) -> None:
    """Per row (NaN where the row is missing): magnitudes, the thigh's turn rate and horizontal and
    vertical acceleration (earth frame), the thigh's lever operator and specific force, and the shank's
    distance from being planted. ``deriv_n``: rows of the angular-acceleration difference (about 10 ms:
    gyroscope noise differentiated per sample would swamp the lever term)."""
    nan = np.nan
    ls = np.empty((1, 9))  # the shank's lever operator, row by row
    for i in range(thigh_acc.shape[0]):
        n_seen = int(state[FS_N])
        state[FS_N] = n_seen + 1.0
        slot = FS_RING + 6 * (n_seen % DERIV_MAX)
        old = FS_RING + 6 * ((n_seen - deriv_n) % DERIV_MAX)
        have_old = n_seen >= deriv_n and not math.isnan(state[old])
        k = rate_hz / deriv_n
        wx, wy, wz = thigh_gyr[i, 0], thigh_gyr[i, 1], thigh_gyr[i, 2]
        vx, vy, vz = shank_gyr[i, 0], shank_gyr[i, 1], shank_gyr[i, 2]
        dx = (wx - state[old]) * k if have_old else 0.0
        dy = (wy - state[old + 1]) * k if have_old else 0.0
        dz = (wz - state[old + 2]) * k if have_old else 0.0
        ex_ = (vx - state[old + 3]) * k if have_old else 0.0
        ey_ = (vy - state[old + 4]) * k if have_old else 0.0
        ez_ = (vz - state[old + 5]) * k if have_old else 0.0
        if missing[i]:
            for c in range(6):
                state[slot + c] = nan
            for c in range(F_COLS):
                out[i, c] = nan
            continue
        state[slot] = wx
        state[slot + 1] = wy
        state[slot + 2] = wz
        state[slot + 3] = vx
        state[slot + 4] = vy
        state[slot + 5] = vz
        ax, ay, az = thigh_acc[i, 0], thigh_acc[i, 1], thigh_acc[i, 2]
        sx, sy, sz = shank_acc[i, 0], shank_acc[i, 1], shank_acc[i, 2]
        out[i, F_AT_G] = math.sqrt(ax * ax + ay * ay + az * az) / g_m_s2
        out[i, F_AS_G] = math.sqrt(sx * sx + sy * sy + sz * sz) / g_m_s2
        out[i, F_WS] = math.sqrt(vx * vx + vy * vy + vz * vz)
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = _quat_rows(q_thigh, i)
        out[i, F_TURN] = r20 * wx + r21 * wy + r22 * wz
        hx = r00 * ax + r01 * ay + r02 * az
        hy = r10 * ax + r11 * ay + r12 * az
        out[i, F_HACC_G] = math.sqrt(hx * hx + hy * hy) / g_m_s2
        out[i, F_VACC_G] = (r20 * ax + r21 * ay + r22 * az) / g_m_s2
        _lever_operator(wx, wy, wz, dx, dy, dz, out, i, F_L)
        out[i, F_FT] = ax
        out[i, F_FT + 1] = ay
        out[i, F_FT + 2] = az
        # planted shank: its ankle, d metres down the shank axis from the sensor, is at rest, so the specific
        # force there is 1 g up: f_s - g up = L_s (d z); the best d in [0, MAX_SHANK_LEVER_M] decides
        u20, u21, u22 = _quat_rows(q_shank, i)[6:]
        gx_ = sx - g_m_s2 * u20
        gy_ = sy - g_m_s2 * u21
        gz_ = sz - g_m_s2 * u22
        _lever_operator(vx, vy, vz, ex_, ey_, ez_, ls, 0, 0)
        zx, zy, zz = shank_z[0], shank_z[1], shank_z[2]
        cx = ls[0, 0] * zx + ls[0, 1] * zy + ls[0, 2] * zz  # L_s z
        cy = ls[0, 3] * zx + ls[0, 4] * zy + ls[0, 5] * zz
        cz = ls[0, 6] * zx + ls[0, 7] * zy + ls[0, 8] * zz
        cc = cx * cx + cy * cy + cz * cz
        d = 0.0
        if cc > 1e-9:
            d = min(MAX_SHANK_LEVER_M, max(0.0, (gx_ * cx + gy_ * cy + gz_ * cz) / cc))
        rx, ry, rz = gx_ - d * cx, gy_ - d * cy, gz_ - d * cz
        out[i, F_PLANT_G] = math.sqrt(rx * rx + ry * ry + rz * rz) / g_m_s2


@njit(cache=True)
def _lever_operator(wx: float, wy: float, wz: float, dx: float, dy: float, dz: float, out: FloatArray, i: int,
                    col: int) -> None:
    """L = [dw]x + [w]x [w]x, row major into out[i, col:col + 9]: L r = dw x r + w x (w x r)."""
    ww = wx * wx + wy * wy + wz * wz
    out[i, col + 0] = wx * wx - ww
    out[i, col + 1] = wx * wy - dz
    out[i, col + 2] = wx * wz + dy
    out[i, col + 3] = wy * wx + dz
    out[i, col + 4] = wy * wy - ww
    out[i, col + 5] = wy * wz - dx
    out[i, col + 6] = wz * wx - dy
    out[i, col + 7] = wz * wy + dx
    out[i, col + 8] = wz * wz - ww


@njit(cache=True)
def _emit(out: FloatArray, n_out: int, kind: float, a: float, b: float, c: float, d: float,
          e: float = -1.0) -> int:
    if n_out < out.shape[0]:
        out[n_out, 0] = kind
        out[n_out, 1] = a
        out[n_out, 2] = b
        out[n_out, 3] = c
        out[n_out, 4] = d
        out[n_out, 5] = e
    return n_out + 1


@njit(cache=True)
def _unexplained(feat: FloatArray, i: int, rx: float, ry: float, rz: float) -> float:
    """|f - L r| of row i, m/s^2."""
    ex = feat[i, F_FT] - (feat[i, F_L] * rx + feat[i, F_L + 1] * ry + feat[i, F_L + 2] * rz)
    ey = feat[i, F_FT + 1] - (feat[i, F_L + 3] * rx + feat[i, F_L + 4] * ry + feat[i, F_L + 5] * rz)
    ez = feat[i, F_FT + 2] - (feat[i, F_L + 6] * rx + feat[i, F_L + 7] * ry + feat[i, F_L + 8] * rz)
    return math.sqrt(ex * ex + ey * ey + ez * ez)


@njit(cache=True)
def _fit_reset(s: FloatArray) -> None:
    for k in range(S_FIT_N, S_FIT_A + 9):
        s[k] = 0.0
    s[S_NOISE] = 0.0


@njit(cache=True)
def _fit_add(s: FloatArray, feat: FloatArray, i: int) -> None:
    s[S_FIT_N] += 1.0
    fx, fy, fz = feat[i, F_FT], feat[i, F_FT + 1], feat[i, F_FT + 2]
    s[S_FIT_C] += fx * fx + fy * fy + fz * fz
    for c in range(3):
        s[S_FIT_B + c] += feat[i, F_L + c] * fx + feat[i, F_L + 3 + c] * fy + feat[i, F_L + 6 + c] * fz
        for k in range(3):
            acc = 0.0
            for row in range(3):
                acc += feat[i, F_L + 3 * row + c] * feat[i, F_L + 3 * row + k]
            s[S_FIT_A + 3 * c + k] += acc


@njit(cache=True)
def _det3(a: float, b: float, c: float, d: float, e: float, f: float, g: float, h: float, k: float) -> float:
    return a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g)


@njit(cache=True)
def _fit_solve(s: FloatArray, p: FloatArray) -> tuple[float, float, float, float]:
    """Lever (3) of the flight so far, ridge-pulled towards the prior, and the rms unexplained force (m/s^2)
    of the fitted samples."""
    n = max(s[S_FIT_N], 1.0)
    lam = p[P_LEVER_RIDGE] * n
    m = np.empty((3, 3))
    v = np.empty(3)
    for c in range(3):
        v[c] = s[S_FIT_B + c] + lam * p[P_LEVER_X + c]
        for k in range(3):
            m[c, k] = s[S_FIT_A + 3 * c + k] + (lam if c == k else 0.0)
    # 3x3 solve by Cramer's rule (the ridge keeps the matrix away from singular)
    det = _det3(m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2], m[2, 0], m[2, 1], m[2, 2])
    if abs(det) < 1e-30:
        return p[P_LEVER_X], p[P_LEVER_X + 1], p[P_LEVER_X + 2], math.inf
    rx = _det3(v[0], m[0, 1], m[0, 2], v[1], m[1, 1], m[1, 2], v[2], m[2, 1], m[2, 2]) / det
    ry = _det3(m[0, 0], v[0], m[0, 2], m[1, 0], v[1], m[1, 2], m[2, 0], v[2], m[2, 2]) / det
    rz = _det3(m[0, 0], m[0, 1], v[0], m[1, 0], m[1, 1], v[1], m[2, 0], m[2, 1], v[2]) / det
    # residual sum of squares: f.f - 2 r.b + r.A r (A without the ridge)
    rb = rx * s[S_FIT_B] + ry * s[S_FIT_B + 1] + rz * s[S_FIT_B + 2]
    r = (rx, ry, rz)
    rar = 0.0
    for c in range(3):
        for k in range(3):
            rar += r[c] * s[S_FIT_A + 3 * c + k] * r[k]
    rss = max(0.0, s[S_FIT_C] - 2.0 * rb + rar)
    return rx, ry, rz, math.sqrt(rss / n)


@njit(cache=True)
def detect(feat: FloatArray, flex_deg: FloatArray, p: FloatArray, s: FloatArray, out: FloatArray) -> int:
    """Run the state machines over one chunk; returns the number of records written to ``out``."""
    n = feat.shape[0]
    rate = p[P_RATE_HZ]
    dt = 1.0 / rate
    g_m_s2 = 9.80665
    confirm_n = max(2.0, p[P_CONFIRM_S] * rate)
    lag = max(1, int(p[P_RATE_LAG_S] * rate + 0.5))
    quiet_min_n = p[P_QUIET_MIN_S] * rate
    win_n = p[P_LANDING_WINDOW_S] * rate
    r0x, r0y, r0z = p[P_LEVER_X], p[P_LEVER_X + 1], p[P_LEVER_X + 2]
    n_out = 0
    for i in range(n):
        g = s[S_N]
        s[S_N] = g + 1.0
        slot = int(g) % RING
        fl = flex_deg[i]
        s[S_RING_F + slot] = fl
        s[S_RING_S + slot] = np.nan
        valid = not math.isnan(feat[i, F_AT_G])

        # ---- landing window closes (time out) ------------------------------------------------------------
        if s[S_LAND_OPEN] > 0.0 and g >= s[S_LAND_CONTACT] + win_n:
            n_out = _emit(out, n_out, K_LANDING, s[S_LAND_CONTACT], s[S_LAND_TAKEOFF], g, -1.0,
                          s[S_LAND_GAP_LO])
            s[S_LAND_OPEN] = 0.0

        # ---- flight: the hip in free fall and the shank off the ground --------------------------------
        if valid:
            support0 = _unexplained(feat, i, r0x, r0y, r0z) / g_m_s2  # with the prior lever
            planted = feat[i, F_PLANT_G] < p[P_PLANTED_G]
            air = s[S_AIR]
            if air == 0.0 and support0 < p[P_AIR_ENTER_G] and s[S_PREV_SUPPORT] >= p[P_AIR_ENTER_G]:
                s[S_AIR] = 1.0
                s[S_CAND] = g
                s[S_TAKEOFF] = -1.0
                s[S_PLANTED_RUN] = 0.0
                _fit_reset(s)
            if s[S_AIR] == 1.0:
                if support0 > p[P_AIR_BREAK_G] or (g - s[S_CAND]) > p[P_MAX_FLIGHT_S] * rate:
                    s[S_AIR] = 0.0
                else:
                    _fit_add(s, feat, i)
                    if s[S_TAKEOFF] < 0.0 and support0 < p[P_TAKEOFF_G]:
                        s[S_TAKEOFF] = g
                    if planted:
                        s[S_PLANTED_RUN] += 1.0
                    if s[S_FIT_N] >= confirm_n:
                        _, _, _, rms = _fit_solve(s, p)
                        if rms < p[P_AIR_RMS_G] * g_m_s2 and s[S_PLANTED_RUN] < 0.5 * s[S_FIT_N]:
                            s[S_AIR] = 2.0
                            if s[S_TAKEOFF] < 0.0:
                                s[S_TAKEOFF] = s[S_CAND]
                            s[S_NOISE] = (rms / g_m_s2) ** 2
                            if s[S_LAND_OPEN] > 0.0:  # rebound: the ground contact ends at this take-off
                                n_out = _emit(out, n_out, K_LANDING, s[S_LAND_CONTACT], s[S_LAND_TAKEOFF],
                                              s[S_TAKEOFF], s[S_TAKEOFF], s[S_LAND_GAP_LO])
                                s[S_LAND_OPEN] = 0.0
                        elif s[S_FIT_N] >= 2.0 * confirm_n:
                            s[S_AIR] = 0.0
            elif air == 2.0:
                rx, ry, rz, _ = _fit_solve(s, p)
                support = _unexplained(feat, i, rx, ry, rz) / g_m_s2
                s[S_RING_S + slot] = support
                after_gap = s[S_PREV_VALID] < 0.5
                if support > p[P_IMPACT_G] or (after_gap and support > p[P_GAP_SUPPORT_G]):
                    s[S_AIR] = 0.0
                    contact = g
                    if not after_gap:
                        # the onset: back to the last sample still explained by the flight (noise-scaled)
                        level = max(p[P_ONSET_G], 3.0 * math.sqrt(s[S_NOISE]))
                        j = g - 1.0
                        while j > s[S_TAKEOFF] and j > g - RING + 1:
                            v = s[S_RING_S + int(j) % RING]
                            if math.isnan(v) or v <= level:
                                break
                            j -= 1.0
                        contact = j + 1.0
                    if (contact - s[S_TAKEOFF]) * dt >= p[P_MIN_FLIGHT_S]:
                        s[S_LAST_AIR] = s[S_TAKEOFF]
                        s[S_LAST_CONTACT] = contact
                        s[S_LAND_OPEN] = 1.0
                        s[S_LAND_CONTACT] = contact
                        s[S_LAND_TAKEOFF] = s[S_TAKEOFF]
                        # contact hidden in lost samples (landed and already loading/standing after them)
                        s[S_LAND_GAP_LO] = s[S_LAST_VALID] if after_gap else -1.0
                elif (g - s[S_TAKEOFF]) > p[P_MAX_FLIGHT_S] * rate:
                    s[S_AIR] = 0.0
                elif support < 2.0 * p[P_ONSET_G]:
                    _fit_add(s, feat, i)
                    k = s[S_FIT_N]
                    s[S_NOISE] += (support * support - s[S_NOISE]) / k
            s[S_PREV_SUPPORT] = support0
            s[S_LAST_VALID] = g
        s[S_PREV_VALID] = 1.0 if valid else 0.0

        # ---- foot strikes of running (candidates for a cut plant, judged in Python): the knee extends
        # from a swing peak to a minimum at initial contact, then flexes again in the loading response
        if s[S_SW] == 0.0:
            if fl > p[P_SWING_MIN_DEG] and s[S_AIR] < 2.0:
                s[S_SW] = 1.0
                s[S_SW_MIN] = fl  # the swing peak while in state 1
        elif s[S_SW] == 1.0:
            if fl > s[S_SW_MIN]:
                s[S_SW_MIN] = fl
            elif fl < s[S_SW_MIN] - 4.0 * p[P_STRIKE_RISE_DEG]:  # terminal swing: the knee extends
                s[S_SW] = 2.0
                s[S_SW_MIN] = fl
                s[S_SW_MIN_IDX] = g
        else:
            if fl < s[S_SW_MIN]:
                s[S_SW_MIN] = fl
                s[S_SW_MIN_IDX] = g
            elif fl > s[S_SW_MIN] + p[P_STRIKE_RISE_DEG]:
                if s[S_LAND_OPEN] < 0.5 and g - s[S_LAST_AIR] > p[P_MAX_FLIGHT_S] * rate:
                    n_out = _emit(out, n_out, K_STRIKE, s[S_SW_MIN_IDX], 0.0, 0.0, 0.0)
                s[S_SW] = 0.0

        # ---- reps: quiet knee, descent, bottom, ascent, quiet again ---------------------------------------
        if g >= lag:
            fl_lag = s[S_RING_F + int(g - lag) % RING]
            rate_deg_s = (fl - fl_lag) / (lag * dt)
        else:
            rate_deg_s = 0.0
        quiet = abs(rate_deg_s) < p[P_QUIET_RATE_DEG_S]
        if quiet:
            s[S_QUIET_RUN] += 1.0
            if s[S_QUIET_RUN] >= quiet_min_n:
                s[S_ONSET] = g
                s[S_ONSET_FLEX] = fl
        else:
            s[S_QUIET_RUN] = 0.0
        state = s[S_REP]
        if state == 3.0:
            if s[S_LAST_CONTACT] >= s[S_REP_START]:
                s[S_REP] = 0.0  # the dip of a jump or a landing's absorption, not a rep
            elif g >= s[S_REP_END] + p[P_REP_HOLDOFF_S] * rate:
                n_out = _emit(out, n_out, K_REP, s[S_REP_START], s[S_REP_PEAK_IDX], s[S_REP_END], 0.0)
                s[S_REP] = 0.0
            state = s[S_REP]
        if state == 0.0:
            if s[S_ONSET] >= 0.0 and fl - s[S_ONSET_FLEX] > p[P_REP_ENTER_DEG] and rate_deg_s > 0.0:
                s[S_REP] = 1.0
                s[S_REP_START] = s[S_ONSET]
                s[S_REP_START_FLEX] = s[S_ONSET_FLEX]
                s[S_REP_PEAK] = fl
                s[S_REP_PEAK_IDX] = g
                s[S_ONSET] = -1.0
        elif state != 3.0:
            if fl > s[S_REP_PEAK] and s[S_REP] == 1.0:
                s[S_REP_PEAK] = fl
                s[S_REP_PEAK_IDX] = g
            exc = s[S_REP_PEAK] - s[S_REP_START_FLEX]
            if s[S_REP] == 1.0 and fl < s[S_REP_PEAK] - p[P_REP_ASCENT_FRAC] * exc:
                s[S_REP] = 2.0
                s[S_ASC_MIN] = fl
            if s[S_REP] == 2.0:
                s[S_ASC_MIN] = min(s[S_ASC_MIN], fl)
                if fl > s[S_ASC_MIN] + p[P_REP_ENTER_DEG]:  # bending again: gait or a bounce, not one rep
                    s[S_REP] = 0.0
                    continue
            if (
                s[S_REP] == 2.0
                and s[S_QUIET_RUN] >= p[P_REP_END_QUIET_S] * rate
                and fl < s[S_REP_START_FLEX] + p[P_REP_END_FRAC] * exc
            ):
                end = g - s[S_QUIET_RUN] + 1.0  # the rep ended where the knee became quiet
                ecc_s = (s[S_REP_PEAK_IDX] - s[S_REP_START]) * dt
                conc_s = (end - s[S_REP_PEAK_IDX]) * dt
                s[S_REP] = 0.0
                if (
                    exc >= p[P_REP_MIN_EXC_DEG]
                    and ecc_s >= p[P_REP_MIN_ECC_S]
                    and conc_s >= p[P_REP_MIN_CONC_S]
                    and s[S_LAST_CONTACT] < s[S_REP_START]
                ):
                    s[S_REP] = 3.0
                    s[S_REP_END] = end
            elif (g - s[S_REP_START]) * dt > p[P_REP_MAX_S] or s[S_LAST_CONTACT] >= s[S_REP_START]:
                s[S_REP] = 0.0
    return n_out
