"""Numba kernels of the event detector: per-sample features, then one sample-by-sample state machine per
leg whose state is carried in a float64 array, so chunked (live) and one-batch (offline) processing take
identical decisions.
Every kernel releases the GIL (``nogil``): a calibrating leg is stepped in a worker thread
(``sensorhub.runtime.offload``) while the event loop goes on.

The kernels only find WHEN things happen (global sample indices of take-off, contact, start of descent,
bottom, end, foot strike); ``sensorhub.analysis.metrics`` computes the metric values.

Flight and ground contact are judged by physics, not by a signature of one kind of jump:
- **the hip falls freely in the air**: the thigh sensor's specific force is then only what the thigh's
  rotation about the hip makes at the sensor, ``f = L r`` (``L r = dw/dt x r + w x (w x r)``, r the
  hip -> sensor lever arm, fixed by the mounting). On the ground the support adds about 1 g that no lever
  explains. The lever is fitted by least squares over the flights (pulled towards a nominal one until
  they say more), so legs that swing, tuck or flex in the air stay "airborne";
- **a planted foot's ankle is at rest**: the specific force there is 1 g up, so the shank sensor reads
  ``f - g up = L_s r_a`` (r_a the ankle -> sensor lever arm, fitted on samples that are clearly planted and
  turning: bends, stance). A fast squat unloads the hip for a moment, but its shank stays planted.
A flight is a stretch where the hip is unloaded and the shank is not planted; initial contact is the
first sample of the return of support that ends in a planted shank (a mid-air burst of leg motion that
the lever does not explain returns to free fall and is not a contact).
"""

from __future__ import annotations

import math

import numpy as np

from sensorhub.jit import njit
from sensorhub.model import FloatArray

RING = 64  # look-back of the contact onset search and of the flexion-rate lag (samples)

# ---- feature columns ------------------------------------------------------------------------------------
F_AT_G = 0  # thigh |specific force| / g
F_AS_G = 1  # shank |specific force| / g
F_WS = 2  # shank |angular rate|, rad/s
F_TURN = 3  # thigh angular rate about the vertical (earth frame), rad/s
F_HACC_G = 4  # thigh horizontal acceleration (earth frame) / g
F_VACC_G = 5  # thigh vertical specific force (earth frame) / g
F_L = 6  # thigh lever operator (9, row major): L r = dw/dt x r + w x (w x r), sensor frame
F_FT = 15  # thigh specific force (3), sensor frame, m/s^2
F_LS = 18  # shank lever operator (9)
F_SE = 27  # shank specific force minus 1 g up (3), sensor frame, m/s^2
F_COLS = 30

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
P_LEVER_RIDGE = 20  # (rad/s^2)^2 per sample: rotation below this leaves a lever at its prior
P_TAKEOFF_G = 21
P_STRIKE_RISE_DEG = 22
P_REP_END_QUIET_S = 23
P_REP_MIN_CONC_S = 24
P_PLANTED_G = 25
P_REP_HOLDOFF_S = 26
P_LEVER_X = 27  # prior hip -> thigh sensor lever arm (3), sensor frame, m
P_GAP_SUPPORT_G = 30
P_ANKLE_X = 31  # prior ankle -> shank sensor lever arm (3), sensor frame, m
P_LEARN_G = 34  # planted samples within this of the model teach the ankle lever ...
P_LEARN_RATE_RAD_S = 35  # ... when the shank turns at least this fast
P_PLANT_CONFIRM_S = 36  # a contact is confirmed once the shank stays planted this long ...
P_CONTACT_WAIT_S = 37  # ... within this long after the support returned
P_FEAT_LAG = 38  # rows by which the features trail the flexion (see ``features``)
P_FREE_FALL_G = 39  # a flight candidate's samples count as free fall within this of 0 g
P_STRIDE_FLIGHT_S = 40  # a flight shorter than this ...
P_STRIDE_STANCE_S = 41  # ... taking off within this long of the previous flight's end is a running stride
P_FLOAT_MIN_S = 42  # an unloading shorter than this is an impact's ringing, not a float of gait
P_REST_BAND_DEG = 43  # a knee at rest wanders within this of where it came to rest
P_SETTLE_S = 44  # ... and settles at a new rest level once it stays this long within half that
P_SIZE = 45

# ---- state ----------------------------------------------------------------------------------------------
S_N = 0  # samples seen (global index of the next sample)
S_AIR = 1  # 0 on the ground, 1 candidate flight, 2 airborne
S_CAND = 2  # global index where the candidate began
S_TAKEOFF = 3  # take-off of the current flight
S_PLANTED_RUN = 4  # consecutive samples with the shank planted
S_LAND_OPEN = 5
S_LAND_CONTACT = 6
S_LAND_TAKEOFF = 7
S_LAST_AIR = 8  # take-off of the last landing's flight (-1: none)
S_PREV_SUPPORT = 9  # support of the previous valid sample, g
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
S_UNPLANTED = 27  # candidate samples with the shank not planted
S_FREE_RUN = 27  # (airborne, the same slot) consecutive free-fall samples since a return of support
S_PENDING = 28  # airborne: onset of a return of support waiting for the shank to plant (-1: none)
S_NOISE = 29  # mean unexplained force^2 over the flight so far (g^2)
S_PREV_FLIGHT_END = 30  # the end of the last flight of any length (a running stride's float too)
S_SETTLE_REF = 31  # flexion where the knee last settled (stays within half the rest band) ...
S_SETTLE_N = 32  # ... and for how many samples
S_MOVE_RUN = 33  # consecutive samples with the knee turning faster than the quiet rate
S_MOVED = 34  # 1 once such a run lasted the quiet time: a real movement, not a noise spike
SUMS = 14  # a block of least-squares sums of a lever fit: n, f.f, L^T f (3), L^T L (9)
S_FIT = 35  # the current flight's (or candidate's) sums
S_LEVER = S_FIT + SUMS  # every confirmed flight's sums: the mounting's lever does not change
S_ANKLE = S_LEVER + SUMS  # planted, turning samples' sums of the ankle lever
S_HELD = S_ANKLE + SUMS  # a landing held until the next flight says whether it was a stride: 1, record (4)
S_RING_F = S_HELD + 5
S_RING_S = S_RING_F + RING  # support per sample, for the onset search
S_RING_FL = S_RING_S + RING  # thigh f (3) and L (9) of the last ROWS_KEPT samples: take-off search
ROWS_KEPT = 512
S_SIZE = S_RING_FL + 12 * ROWS_KEPT

# ---- output records --------------------------------------------------------------------------------------
K_LANDING = 1.0  # a: contact, b: take-off, c: end of window, d: next take-off (-1), e: see S_LAND_GAP_LO
K_REP = 2.0  # a: start of descent, b: bottom, c: end
K_STRIKE = 3.0  # a: foot strike (initial contact) outside landings
OUT_COLS = 6

# ---- features state: the rows of the last 2 lag + 1 samples ------------------------------------------------
FS_N = 0  # rows seen
FS_RING = 1
ROW = 21  # thigh gyr 3, shank gyr 3, thigh acc 3, shank acc 3, q thigh 4, q shank 4, missing 1
LAG_MAX = 16  # rows of lag at most (the centred difference spans 2 lag rows)

def new_state() -> FloatArray:
    s = np.zeros(S_SIZE)
    for k in (S_CAND, S_LAST_AIR, S_ONSET, S_LAST_CONTACT, S_LAND_GAP_LO, S_LAST_VALID, S_TAKEOFF, S_PENDING):
        s[k] = -1.0
    s[S_PREV_FLIGHT_END] = -1e9
    s[S_ONSET_FLEX] = np.nan  # no resting knee yet
    s[S_PREV_SUPPORT] = 1.0
    s[S_RING_F:S_SIZE] = np.nan
    return s


def new_feature_state() -> FloatArray:
    s = np.zeros(FS_RING + ROW * (2 * LAG_MAX + 1))
    s[FS_RING:] = np.nan
    return s


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def features(thigh_acc: FloatArray, thigh_gyr: FloatArray, shank_acc: FloatArray, shank_gyr: FloatArray,
             q_thigh: FloatArray, q_shank: FloatArray, missing: np.ndarray, g_m_s2: float, rate_hz: float,
             lag: int, state: FloatArray, out: FloatArray) -> None:
    """Row i of ``out`` describes the sample ``lag`` rows earlier (NaN where it, or a neighbour its
    angular acceleration needs, is missing): magnitudes, the thigh's turn rate and horizontal and vertical
    acceleration (earth frame), and both segments' lever operators and specific forces (the shank's with
    1 g up removed). The angular acceleration is the centred difference over +-``lag`` rows (about 5 ms):
    a one-sided one lags the fast leg motions of a flight by half its span, and that error alone left
    half a g unexplained in tuck jumps."""
    nan = np.nan
    span = 2 * lag + 1
    kd = rate_hz / (2.0 * lag)
    for i in range(thigh_acc.shape[0]):
        n_seen = int(state[FS_N])
        state[FS_N] = n_seen + 1.0
        slot = FS_RING + ROW * (n_seen % span)
        for c in range(3):
            state[slot + c] = thigh_gyr[i, c]
            state[slot + 3 + c] = shank_gyr[i, c]
            state[slot + 6 + c] = thigh_acc[i, c]
            state[slot + 9 + c] = shank_acc[i, c]
        for c in range(4):
            state[slot + 12 + c] = q_thigh[i, c]
            state[slot + 16 + c] = q_shank[i, c]
        state[slot + 20] = 1.0 if missing[i] else 0.0
        mid = FS_RING + ROW * ((n_seen - lag) % span)  # the sample this row describes
        old = FS_RING + ROW * ((n_seen - 2 * lag) % span)
        if n_seen < 2 * lag or state[mid + 20] > 0.5 or state[old + 20] > 0.5 or missing[i]:
            for c in range(F_COLS):
                out[i, c] = nan
            continue
        wx, wy, wz = state[mid], state[mid + 1], state[mid + 2]
        vx, vy, vz = state[mid + 3], state[mid + 4], state[mid + 5]
        ax, ay, az = state[mid + 6], state[mid + 7], state[mid + 8]
        sx, sy, sz = state[mid + 9], state[mid + 10], state[mid + 11]
        out[i, F_AT_G] = math.sqrt(ax * ax + ay * ay + az * az) / g_m_s2
        out[i, F_AS_G] = math.sqrt(sx * sx + sy * sy + sz * sz) / g_m_s2
        out[i, F_WS] = math.sqrt(vx * vx + vy * vy + vz * vz)
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = _rows(state, mid + 12)
        out[i, F_TURN] = r20 * wx + r21 * wy + r22 * wz
        hx = r00 * ax + r01 * ay + r02 * az
        hy = r10 * ax + r11 * ay + r12 * az
        out[i, F_HACC_G] = math.sqrt(hx * hx + hy * hy) / g_m_s2
        out[i, F_VACC_G] = (r20 * ax + r21 * ay + r22 * az) / g_m_s2
        now = slot  # the newest row: the centred difference's other end
        _lever_operator(wx, wy, wz, (state[now] - state[old]) * kd, (state[now + 1] - state[old + 1]) * kd,
                        (state[now + 2] - state[old + 2]) * kd, out, i, F_L)
        out[i, F_FT] = ax
        out[i, F_FT + 1] = ay
        out[i, F_FT + 2] = az
        _lever_operator(vx, vy, vz, (state[now + 3] - state[old + 3]) * kd,
                        (state[now + 4] - state[old + 4]) * kd, (state[now + 5] - state[old + 5]) * kd,
                        out, i, F_LS)
        u20, u21, u22 = _rows(state, mid + 16)[6:]  # earth up in the shank sensor frame (third row)
        out[i, F_SE] = sx - g_m_s2 * u20
        out[i, F_SE + 1] = sy - g_m_s2 * u21
        out[i, F_SE + 2] = sz - g_m_s2 * u22


@njit(cache=True, nogil=True)
def _rows(state: FloatArray, at: int) -> tuple[float, float, float, float, float, float, float, float, float]:
    """Rotation matrix (row major) of the quaternion stored at state[at:at + 4]."""
    w, x, y, z = state[at], state[at + 1], state[at + 2], state[at + 3]
    return (1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y),
            2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x),
            2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y))


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _unexplained(f: FloatArray, lever: FloatArray, r: FloatArray) -> float:
    """|f - L r| of one row (f: 3, lever: L row major, 9), m/s^2."""
    ex = f[0] - (lever[0] * r[0] + lever[1] * r[1] + lever[2] * r[2])
    ey = f[1] - (lever[3] * r[0] + lever[4] * r[1] + lever[5] * r[2])
    ez = f[2] - (lever[6] * r[0] + lever[7] * r[1] + lever[8] * r[2])
    return math.sqrt(ex * ex + ey * ey + ez * ez)


@njit(cache=True, nogil=True)
def _sums_reset(s: FloatArray, at: int) -> None:
    for k in range(at, at + SUMS):
        s[k] = 0.0


@njit(cache=True, nogil=True)
def _sums_add(s: FloatArray, at: int, f: FloatArray, lever: FloatArray) -> None:
    s[at] += 1.0
    s[at + 1] += f[0] * f[0] + f[1] * f[1] + f[2] * f[2]
    for c in range(3):
        s[at + 2 + c] += lever[c] * f[0] + lever[3 + c] * f[1] + lever[6 + c] * f[2]
        for k in range(3):
            s[at + 5 + 3 * c + k] += (lever[c] * lever[k] + lever[3 + c] * lever[3 + k]
                                      + lever[6 + c] * lever[6 + k])


@njit(cache=True, nogil=True)
def _det3(a: float, b: float, c: float, d: float, e: float, f: float, g: float, h: float, k: float) -> float:
    return a * (e * k - f * h) - b * (d * k - f * g) + c * (d * h - e * g)


@njit(cache=True, nogil=True)
def _lever(s: FloatArray, at: int, extra: int, p: FloatArray, prior: int, out: FloatArray) -> None:
    """The lever (into ``out``) from the sums at ``at`` (plus those at ``extra`` when >= 0), ridge-pulled
    towards the prior lever p[prior:prior + 3]: the data decide once they hold enough rotation."""
    n_all = s[at] + (s[extra] if extra >= 0 else 0.0)
    lam = p[P_LEVER_RIDGE] * max(n_all, 1.0)
    m = np.empty((3, 3))
    v = np.empty(3)
    for c in range(3):
        v[c] = s[at + 2 + c] + (s[extra + 2 + c] if extra >= 0 else 0.0) + lam * p[prior + c]
        for k in range(3):
            a = s[at + 5 + 3 * c + k] + (s[extra + 5 + 3 * c + k] if extra >= 0 else 0.0)
            m[c, k] = a + (lam if c == k else 0.0)
    det = _det3(m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2], m[2, 0], m[2, 1], m[2, 2])
    if abs(det) < 1e-30:  # not with a positive ridge; the prior then
        for c in range(3):
            out[c] = p[prior + c]
        return
    out[0] = _det3(v[0], m[0, 1], m[0, 2], v[1], m[1, 1], m[1, 2], v[2], m[2, 1], m[2, 2]) / det
    out[1] = _det3(m[0, 0], v[0], m[0, 2], m[1, 0], v[1], m[1, 2], m[2, 0], v[2], m[2, 2]) / det
    out[2] = _det3(m[0, 0], m[0, 1], v[0], m[1, 0], m[1, 1], v[1], m[2, 0], m[2, 1], v[2]) / det


@njit(cache=True, nogil=True)
def _rms(s: FloatArray, at: int, r: FloatArray) -> float:
    """RMS of |f - L r| over the samples summed at ``at`` (m/s^2): f.f - 2 r.b + r.A r."""
    rss = s[at + 1]
    for c in range(3):
        rss -= 2.0 * r[c] * s[at + 2 + c]
        for k in range(3):
            rss += r[c] * s[at + 5 + 3 * c + k] * r[k]
    return math.sqrt(max(0.0, rss) / max(s[at], 1.0))


@njit(cache=True, nogil=True)
def detect(feat: FloatArray, flex_deg: FloatArray, p: FloatArray, s: FloatArray, out: FloatArray) -> int:
    """Run the state machines over one chunk; returns the number of records written to ``out``."""
    n = feat.shape[0]
    rate = p[P_RATE_HZ]
    dt = 1.0 / rate
    g_m_s2 = 9.80665
    confirm_n = max(2.0, p[P_CONFIRM_S] * rate)
    plant_n = max(2.0, p[P_PLANT_CONFIRM_S] * rate)
    lag = max(1, int(p[P_RATE_LAG_S] * rate + 0.5))
    quiet_min_n = float(math.ceil(p[P_QUIET_MIN_S] * rate))
    band = p[P_REST_BAND_DEG]
    settle_n = p[P_SETTLE_S] * rate
    win_n = p[P_LANDING_WINDOW_S] * rate
    lag_f = p[P_FEAT_LAG]
    hip = np.empty(3)
    ankle = np.empty(3)
    n_out = 0
    for i in range(n):
        g = s[S_N]
        s[S_N] = g + 1.0
        slot = int(g) % RING
        fl = flex_deg[i]
        s[S_RING_F + slot] = fl
        # the features describe the sample lag_f rows back (their angular acceleration is centred)
        gf = g - lag_f
        slot_f = int(gf) % RING
        s[S_RING_S + slot_f] = np.nan
        valid = gf >= 0.0 and not math.isnan(feat[i, F_AT_G])
        kept = S_RING_FL + 12 * (int(gf) % ROWS_KEPT)
        if not valid:
            s[kept] = np.nan  # a lost row stops the take-off search

        # ---- landing window closes (time out) ------------------------------------------------------------
        if s[S_LAND_OPEN] > 0.0 and gf >= s[S_LAND_CONTACT] + win_n:
            n_out = _emit(out, n_out, K_LANDING, s[S_LAND_CONTACT], s[S_LAND_TAKEOFF], gf, -1.0,
                          s[S_LAND_GAP_LO])
            s[S_LAND_OPEN] = 0.0

        # ---- flight: the hip unloaded, the shank off the ground ------------------------------------------
        if valid:
            f_row = feat[i, F_FT : F_FT + 3]
            l_row = feat[i, F_L : F_L + 9]
            # element by element: a slice assignment compiles numba's shape-mismatch error message (its
            # string formatting is a fifth of this module's compile time)
            for c in range(3):
                s[kept + c] = f_row[c]
            for c in range(9):
                s[kept + 3 + c] = l_row[c]
            # planted shank: the ankle model, taught by planted turning samples while on the ground
            _lever(s, S_ANKLE, -1, p, P_ANKLE_X, ankle)
            se_row = feat[i, F_SE : F_SE + 3]
            ls_row = feat[i, F_LS : F_LS + 9]
            off_rest = _unexplained(se_row, ls_row, ankle) / g_m_s2
            planted = off_rest < p[P_PLANTED_G]
            s[S_PLANTED_RUN] = s[S_PLANTED_RUN] + 1.0 if planted else 0.0
            if (s[S_AIR] == 0.0 and off_rest < p[P_LEARN_G]
                    and feat[i, F_WS] > p[P_LEARN_RATE_RAD_S]):
                _sums_add(s, S_ANKLE, se_row, ls_row)
            air = s[S_AIR]
            if air < 2.0:
                _lever(s, S_LEVER, S_FIT if air == 1.0 else -1, p, P_LEVER_X, hip)
                support = _unexplained(f_row, l_row, hip) / g_m_s2
                if air == 0.0 and support < p[P_AIR_ENTER_G] and not planted:
                    s[S_AIR] = 1.0
                    s[S_CAND] = gf
                    s[S_UNPLANTED] = 0.0
                    _sums_reset(s, S_FIT)
                    if (s[S_LAND_OPEN] > 0.0
                            and (s[S_LAND_CONTACT] - s[S_LAND_TAKEOFF]) * dt < p[P_STRIDE_FLIGHT_S]
                            and (gf - s[S_LAND_CONTACT]) * dt < p[P_STRIDE_STANCE_S]):
                        # a short flight, and unloaded again soon: a run's first stride, or a low jump's
                        # landing and rebound. Held until this unloading says: a short float (gait) drops it
                        s[S_HELD] = 1.0
                        s[S_HELD + 1] = s[S_LAND_CONTACT]
                        s[S_HELD + 2] = s[S_LAND_TAKEOFF]
                        s[S_HELD + 3] = gf
                        s[S_HELD + 4] = s[S_LAND_GAP_LO]
                        s[S_LAND_OPEN] = 0.0
                if s[S_AIR] == 1.0:
                    if (support > p[P_AIR_BREAK_G] or s[S_PLANTED_RUN] >= plant_n
                            or (gf - s[S_CAND]) > p[P_MAX_FLIGHT_S] * rate):
                        s[S_AIR] = 0.0  # loaded again, or the foot on the ground (a squat's fast dip)
                        if s[S_HELD] > 0.0:
                            if (gf - s[S_CAND]) * dt < p[P_FLOAT_MIN_S]:
                                s[S_HELD] = 0.0  # the ringing of the impact, not a float: still landing
                                s[S_LAND_OPEN] = 1.0
                            else:
                                s[S_HELD] = 0.0  # a float too short for a flight: the held one was a stride
                    else:
                        _sums_add(s, S_FIT, f_row, l_row)
                        s[S_UNPLANTED] += 0.0 if planted else 1.0
                        if s[S_FIT] >= confirm_n:
                            _lever(s, S_LEVER, S_FIT, p, P_LEVER_X, hip)
                            rms = _rms(s, S_FIT, hip) / g_m_s2
                            # free fall, not a lighter moment of gait or a squat's dip: on most samples
                            # the thigh is explained to within FREE_FALL_G
                            n_free = 0.0
                            k = s[S_CAND]
                            while k <= gf:
                                at = S_RING_FL + 12 * (int(k) % ROWS_KEPT)
                                if (not math.isnan(s[at])
                                        and _unexplained(s[at : at + 3], s[at + 3 : at + 12], hip)
                                        < p[P_FREE_FALL_G] * g_m_s2):
                                    n_free += 1.0
                                k += 1.0
                            if (rms < p[P_AIR_RMS_G] and s[S_UNPLANTED] >= 0.75 * s[S_FIT]
                                    and n_free >= 0.5 * s[S_FIT]):
                                s[S_AIR] = 2.0
                                s[S_PENDING] = -1.0
                                s[S_NOISE] = rms * rms
                                # take-off: back from the candidate's start while the fitted lever still
                                # explains the thigh (the leg turning after push-off), to where support ends
                                to = s[S_CAND]
                                oldest = max(gf - ROWS_KEPT + 1.0, s[S_LAST_CONTACT], -1.0)
                                while to - 1.0 > oldest:
                                    at = S_RING_FL + 12 * (int(to - 1.0) % ROWS_KEPT)
                                    if math.isnan(s[at]):
                                        break
                                    if _unexplained(s[at : at + 3], s[at + 3 : at + 12], hip) / g_m_s2 > p[
                                            P_TAKEOFF_G]:
                                        break
                                    _sums_add(s, S_FIT, s[at : at + 3], s[at + 3 : at + 12])
                                    to -= 1.0
                                s[S_TAKEOFF] = to
                                if s[S_HELD] > 0.0:
                                    s[S_HELD + 3] = to  # the held landing's contact ends here
                                if s[S_LAND_OPEN] > 0.0:  # rebound: the ground contact ends at this take-off
                                    n_out = _emit(out, n_out, K_LANDING, s[S_LAND_CONTACT], s[S_LAND_TAKEOFF],
                                                  to, to, s[S_LAND_GAP_LO])
                                    s[S_LAND_OPEN] = 0.0
                            elif s[S_FIT] >= 3.0 * confirm_n:
                                s[S_AIR] = 0.0
                                s[S_HELD] = 0.0
                s[S_PREV_SUPPORT] = support
            else:
                _lever(s, S_LEVER, S_FIT, p, P_LEVER_X, hip)
                support = _unexplained(f_row, l_row, hip) / g_m_s2
                s[S_RING_S + slot_f] = support
                after_gap = s[S_PREV_VALID] < 0.5
                level = max(p[P_ONSET_G], 3.0 * math.sqrt(s[S_NOISE]))
                contact = -1.0
                if s[S_PENDING] < 0.0 and after_gap and support > p[P_GAP_SUPPORT_G]:
                    contact = gf  # landed in the lost samples (loading or standing by now)
                elif s[S_PENDING] >= 0.0:
                    s[S_FREE_RUN] = s[S_FREE_RUN] + 1.0 if support < level else 0.0
                    if s[S_FREE_RUN] >= plant_n + confirm_n / 2.0:
                        s[S_PENDING] = -1.0  # free fall again: a burst of leg motion in the air
                    elif planted and s[S_PLANTED_RUN] >= plant_n:
                        contact = s[S_PENDING]  # the shank came to rest: it was the ground
                    elif (gf - s[S_PENDING]) > p[P_CONTACT_WAIT_S] * rate:
                        contact = s[S_PENDING]  # no return to free fall: on the ground
                elif support > p[P_IMPACT_G]:
                    # the onset: back down the impact's monotonic rise, to the last sample still explained by
                    # the flight or to the rise's foot (a burst of leg motion just before contact is not it)
                    j = gf - 1.0
                    while j > s[S_TAKEOFF] and j > gf - RING + 2:
                        v = s[S_RING_S + int(j) % RING]
                        before = s[S_RING_S + int(j - 1.0) % RING]
                        if math.isnan(v) or v <= level or not before < v:
                            break
                        j -= 1.0
                    s[S_PENDING] = j + 1.0
                    s[S_FREE_RUN] = 0.0
                elif support < 2.0 * p[P_ONSET_G]:
                    _sums_add(s, S_FIT, f_row, l_row)
                    s[S_NOISE] += (support * support - s[S_NOISE]) / s[S_FIT]
                if contact >= 0.0:
                    s[S_AIR] = 0.0
                    s[S_PENDING] = -1.0
                    s[S_PREV_SUPPORT] = support
                    flight_s = (contact - s[S_TAKEOFF]) * dt
                    # a running stride: a short float that took off soon after the last one ended
                    stride = (flight_s < p[P_STRIDE_FLIGHT_S]
                              and (s[S_TAKEOFF] - s[S_PREV_FLIGHT_END]) * dt < p[P_STRIDE_STANCE_S])
                    s[S_PREV_FLIGHT_END] = contact
                    if s[S_HELD] > 0.0:  # the landing before this flight: a stride if this flight is short
                        if flight_s >= p[P_STRIDE_FLIGHT_S]:
                            n_out = _emit(out, n_out, K_LANDING, s[S_HELD + 1], s[S_HELD + 2], s[S_HELD + 3],
                                          s[S_HELD + 3], s[S_HELD + 4])
                        s[S_HELD] = 0.0
                        stride = stride or flight_s < p[P_STRIDE_FLIGHT_S]
                    if flight_s >= p[P_MIN_FLIGHT_S] and not stride:
                        for k in range(SUMS):  # a real flight: its samples tell the mounting's lever
                            s[S_LEVER + k] += s[S_FIT + k]
                        s[S_LAST_AIR] = s[S_TAKEOFF]
                        s[S_LAST_CONTACT] = contact
                        s[S_LAND_OPEN] = 1.0
                        s[S_LAND_CONTACT] = contact
                        s[S_LAND_TAKEOFF] = s[S_TAKEOFF]
                        # contact hidden in lost samples (landed and already loading/standing after them)
                        s[S_LAND_GAP_LO] = s[S_LAST_VALID] if contact == gf and after_gap else -1.0
                elif (gf - s[S_TAKEOFF]) > p[P_MAX_FLIGHT_S] * rate:
                    s[S_AIR] = 0.0
                    if s[S_HELD] > 0.0:  # no landing after all: the held one was one
                        n_out = _emit(out, n_out, K_LANDING, s[S_HELD + 1], s[S_HELD + 2], s[S_HELD + 3],
                                      s[S_HELD + 3], s[S_HELD + 4])
                        s[S_HELD] = 0.0
            s[S_LAST_VALID] = gf
        s[S_PREV_VALID] = 1.0 if valid else 0.0

        if math.isnan(fl):
            continue  # a flexion the estimator could not measure (lost rows): the knee patterns wait

        # ---- foot strikes of running (candidates for a cut plant, judged in Python): the knee extends
        # from a swing peak to a minimum at initial contact, then flexes again in the loading response
        if s[S_SW] == 0.0:
            if fl > p[P_SWING_MIN_DEG]:
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
                n_out = _emit(out, n_out, K_STRIKE, s[S_SW_MIN_IDX], 0.0, 0.0, 0.0)
                s[S_SW] = 0.0

        # ---- reps: quiet knee, descent, bottom, ascent, quiet again ---------------------------------------
        if g >= lag:
            fl_lag = s[S_RING_F + int(g - lag) % RING]
            rate_deg_s = (fl - fl_lag) / (lag * dt)
        else:
            rate_deg_s = 0.0
        quiet = abs(rate_deg_s) < p[P_QUIET_RATE_DEG_S]
        s[S_QUIET_RUN] = s[S_QUIET_RUN] + 1.0 if quiet else 0.0
        s[S_MOVE_RUN] = 0.0 if quiet else s[S_MOVE_RUN] + 1.0
        if s[S_MOVE_RUN] >= quiet_min_n:
            s[S_MOVED] = 1.0
        if abs(fl - s[S_SETTLE_REF]) < 0.5 * band:
            s[S_SETTLE_N] += 1.0
        else:
            s[S_SETTLE_REF] = fl
            s[S_SETTLE_N] = 0.0
        # the resting knee (S_ONSET_FLEX) and the last moment at rest (S_ONSET): at rest is within the band
        # above the resting flexion, whatever the rate (a slow tempo descent leaves it, sensor noise does
        # not). The rest level is where the knee came to rest after a movement (a lunge's step); it follows
        # the knee down, and moves up where the knee settles for a while (a slow change of posture)
        if s[S_QUIET_RUN] >= quiet_min_n and (math.isnan(s[S_ONSET_FLEX]) or s[S_MOVED] > 0.0):
            s[S_MOVED] = 0.0
            if s[S_REP] == 0.0:
                s[S_ONSET_FLEX] = fl
                s[S_ONSET] = g
        elif fl < s[S_ONSET_FLEX] + band:
            s[S_ONSET] = g
            s[S_ONSET_FLEX] = min(s[S_ONSET_FLEX], fl)
        elif s[S_SETTLE_N] >= settle_n and s[S_REP] == 0.0:
            s[S_ONSET_FLEX] = s[S_SETTLE_REF]
            s[S_ONSET] = g
        state = s[S_REP]
        if state == 3.0:
            if s[S_LAST_CONTACT] >= s[S_REP_START]:
                s[S_REP] = 0.0  # the dip of a jump or a landing's absorption, not a rep
            elif g >= s[S_REP_END] + p[P_REP_HOLDOFF_S] * rate:
                n_out = _emit(out, n_out, K_REP, s[S_REP_START], s[S_REP_PEAK_IDX], s[S_REP_END],
                              s[S_REP_START_FLEX])
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
                and abs(fl - s[S_REP_START_FLEX]) < p[P_REP_END_FRAC] * exc  # back where it started
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
