"""Numba kernels of the event detector: one sample-by-sample state machine per leg, state carried in a
float64 array, so that chunked (live) and one-batch (offline) processing take identical decisions.

The kernel only finds WHEN things happen (global sample indices of take-off, contact, start of descent,
bottom, end, plant); ``sensorhub.analysis.metrics`` computes the metric values from the buffered signals.

Inputs per sample: thigh and shank specific-force magnitude (g) and knee flexion (deg). Magnitudes do not
depend on how a sensor is mounted.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sensorhub.model import FloatArray

RING = 64  # look-back of the impact onset search and of the flexion-rate lag (samples)

# ---- parameters (see AnalysisParams in detector.py for units and meaning) -----------------------------
P_RATE_HZ = 0
P_AIR_ENTER_G = 1
P_AIR_BREAK_G = 2
P_AIR_CONFIRM_S = 3
P_AIR_MEAN_MAX_G = 4
P_IMPACT_G = 5
P_MIN_FLIGHT_S = 6
P_MAX_FLIGHT_S = 7
P_LANDING_WINDOW_S = 8
P_RISE_G = 9
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
P_STRIKE_RISE_DEG = 22
P_REP_END_QUIET_S = 23
P_REP_MIN_CONC_S = 24
P_FLIGHT_SHANK_MAX_G = 25
P_REP_HOLDOFF_S = 26
P_IMPACT_WINDOW_S = 27
P_IMPACT_JERK_G_S = 28
P_SUPPORT_BAND_G = 29
P_SHANK_FREE_G = 30
P_SHANK_FREE_S = 31
P_SIZE = 32

# ---- state ----------------------------------------------------------------------------------------------
S_N = 0  # samples seen (global index of the next sample)
S_AIR = 1  # 1 while airborne (confirmed free fall)
S_CAND = 2  # global index where a free-fall candidate began, -1 if none
S_CAND_SUM = 3
S_CAND_N = 4
S_TAKEOFF = 5
S_LAND_OPEN = 6
S_LAND_CONTACT = 7
S_LAND_TAKEOFF = 8
S_LAST_AIR = 9  # global index of the last confirmed take-off (-1: none)
S_PREV_ABOVE = 10  # 1 if the previous valid thigh sample was >= air_enter_g
S_REP = 11  # 0 idle, 1 descent, 2 ascent
S_QUIET_RUN = 12
S_ONSET = 13
S_ONSET_FLEX = 14
S_REP_START = 15
S_REP_START_FLEX = 16
S_REP_PEAK = 17
S_REP_PEAK_IDX = 18
S_LAST_IMPACT = 19  # global index of the last ground impact of any kind (foot strike, landing)
S_SW = 20
S_SW_MIN = 21
S_SW_MIN_IDX = 22
S_REP_END = 24  # end of a rep waiting for its hold-off (a flight would make it a jump's dip)
S_ASC_MIN = 30
S_ASUM = 28  # running sum of the thigh |a| over the confirm window
S_SH_SUM = 29  # shank |a| summed since the candidate began
S_SH_N = 23
S_PREV_VALID = 31
S_CAND_CHECKS = 25  # confirmation checks made on the current candidate
S_IMP_END = 26  # while an impact is being examined: the sample at which it is decided, else -1
S_LAST_CONTACT = 27  # global index of the last landing's initial contact
S_LAND_GAP_LO = 32  # open landing whose contact fell in lost samples: last valid sample before them, else -1
S_LAST_VALID = 33  # global index of the last valid sample
S_SH_LOW_RUN = 34  # consecutive flight samples with the shank reading below SHANK_FREE_G
S_SH_LOW_MAX = 35  # longest such run of the current candidate / flight
S_RING_M = 36
S_RING_F = S_RING_M + RING
S_RING_A = S_RING_F + RING
S_SIZE = S_RING_A + RING

# ---- output records --------------------------------------------------------------------------------------
K_LANDING = 1.0  # a: contact, b: take-off, c: end of window, d: next take-off (-1), e: see S_LAND_GAP_LO
K_REP = 2.0  # a: start of descent, b: bottom, c: end
K_STRIKE = 3.0  # a: foot strike (initial contact) outside landings
OUT_COLS = 6


def new_state() -> FloatArray:
    s = np.zeros(S_SIZE)
    for k in (
        S_CAND,
        S_LAST_AIR,
        S_ONSET,
        S_LAST_IMPACT,
        S_LAST_CONTACT,
        S_IMP_END,
        S_LAND_GAP_LO,
        S_LAST_VALID,
    ):
        s[k] = -1.0
    s[S_RING_M:S_SIZE] = np.nan
    return s


@njit(cache=True)
def _emit(
    out: FloatArray, n_out: int, kind: float, a: float, b: float, c: float, d: float, e: float = -1.0
) -> int:
    if n_out < out.shape[0]:
        out[n_out, 0] = kind
        out[n_out, 1] = a
        out[n_out, 2] = b
        out[n_out, 3] = c
        out[n_out, 4] = d
        out[n_out, 5] = e
    return n_out + 1


@njit(cache=True)
def _shank_low(s: FloatArray, a_s: float, free_g: float) -> None:
    s[S_SH_LOW_RUN] = s[S_SH_LOW_RUN] + 1.0 if a_s < free_g else 0.0
    s[S_SH_LOW_MAX] = max(s[S_SH_LOW_MAX], s[S_SH_LOW_RUN])


@njit(cache=True)
def detect(
    at_g: FloatArray, as_g: FloatArray, flex_deg: FloatArray, p: FloatArray, s: FloatArray, out: FloatArray
) -> int:
    """Run the state machines over one chunk; returns the number of records written to ``out``."""
    n = at_g.shape[0]
    rate = p[P_RATE_HZ]
    dt = 1.0 / rate
    confirm_n = p[P_AIR_CONFIRM_S] * rate
    lag = max(1, int(p[P_RATE_LAG_S] * rate + 0.5))
    impact_n = max(2, int(p[P_IMPACT_WINDOW_S] * rate + 0.5))
    lag_imp = max(2, int(0.03 * rate + 0.5))  # searched before the trigger for the steepest rise
    quiet_min_n = p[P_QUIET_MIN_S] * rate
    win_n = p[P_LANDING_WINDOW_S] * rate
    n_out = 0
    for i in range(n):
        g = s[S_N]
        s[S_N] = g + 1.0
        a_t = at_g[i]
        a_s = as_g[i]
        m = max(a_t, a_s)
        slot = int(g) % RING
        s[S_RING_M + slot] = m if np.isfinite(m) else np.nan
        fl = flex_deg[i]
        s[S_RING_F + slot] = fl
        cn = int(confirm_n)
        old = s[S_RING_A + int(g - cn) % RING] if g >= cn else 0.0
        a_fill = a_t if np.isfinite(a_t) else 1.0  # a lost sample counts as 'not falling'
        s[S_ASUM] += a_fill - old
        s[S_RING_A + slot] = a_fill
        valid = np.isfinite(a_t) and np.isfinite(a_s)

        # ---- landing window closes (time out, or a new take-off was confirmed) -------------------------
        if s[S_LAND_OPEN] > 0.0 and g >= s[S_LAND_CONTACT] + win_n:
            n_out = _emit(
                out, n_out, K_LANDING, s[S_LAND_CONTACT], s[S_LAND_TAKEOFF], g, -1.0, s[S_LAND_GAP_LO]
            )
            s[S_LAND_OPEN] = 0.0

        # ---- free fall: both segments' specific force well below 1 g -----------------------------------
        was_air = s[S_AIR] > 0.5
        if valid:
            if not was_air:
                if s[S_CAND] < 0.0 and a_t < p[P_AIR_ENTER_G] and s[S_PREV_ABOVE] > 0.5:
                    s[S_CAND] = g
                    s[S_CAND_SUM] = 0.0
                    s[S_CAND_N] = 0.0
                    s[S_SH_SUM] = 0.0
                    s[S_SH_N] = 0.0
                    s[S_SH_LOW_RUN] = 0.0
                    s[S_SH_LOW_MAX] = 0.0
                    s[S_CAND_CHECKS] = 0.0
                if s[S_CAND] >= 0.0:
                    if a_t > p[P_AIR_BREAK_G] or g - s[S_CAND] > p[P_MAX_FLIGHT_S] * rate:
                        s[S_CAND] = -1.0
                    else:
                        s[S_CAND_SUM] += a_t
                        s[S_CAND_N] += 1.0
                        s[S_SH_SUM] += a_s
                        s[S_SH_N] += 1.0
                        _shank_low(s, a_s, p[P_SHANK_FREE_G])
                    age = g - s[S_CAND]
                    due = (s[S_CAND_CHECKS] == 0.0 and age >= confirm_n) or (
                        s[S_CAND_CHECKS] == 1.0 and age >= 2.0 * confirm_n
                    )  # ">=": a check may fall in a gap
                    if s[S_CAND] >= 0.0 and due:
                        s[S_CAND_CHECKS] += 1.0
                        # a flight when the mean thigh |a| since the candidate began is low; just after a
                        # push-off the leg may still swing (thigh > 1 g), so an ambiguous first window
                        # (below 0.95 g) gets a second look over twice the time
                        mean = s[S_CAND_SUM] / max(s[S_CAND_N], 1.0)
                        if mean < p[P_AIR_MEAN_MAX_G]:
                            s[S_AIR] = 1.0
                            s[S_TAKEOFF] = s[S_CAND]
                            if s[S_LAND_OPEN] > 0.0:  # rebound: ground contact ends at this take-off
                                n_out = _emit(
                                    out,
                                    n_out,
                                    K_LANDING,
                                    s[S_LAND_CONTACT],
                                    s[S_LAND_TAKEOFF],
                                    s[S_CAND],
                                    s[S_CAND],
                                    s[S_LAND_GAP_LO],
                                )
                                s[S_LAND_OPEN] = 0.0
                            s[S_CAND] = -1.0
                        elif mean >= 0.95 or s[S_CAND_CHECKS] >= 2.0:
                            s[S_CAND] = -1.0
                            s[S_PREV_ABOVE] = 2.0  # may restart at the next low sample (a gap may have
                            # hidden the start of a real flight)
            # a flight confirmed on the first sample after a gap is examined at once: it may have landed in it
            if was_air or (s[S_AIR] > 0.5 and s[S_PREV_VALID] < 0.5):
                early = (g - s[S_TAKEOFF]) * dt < p[P_MIN_FLIGHT_S]  # leg still swinging after push-off
                # contact hidden in a gap of lost samples: on the ground again after it, either still
                # loading (thigh well above 1 g) or already standing (both segments read ~1 g: supported,
                # a falling body reads ~0 g)
                gap_hit = s[S_PREV_VALID] < 0.5 and a_t > p[P_AIR_ENTER_G] + 0.3
                gap_stand = (
                    s[S_PREV_VALID] < 0.5
                    and abs(a_t - 1.0) <= p[P_SUPPORT_BAND_G]
                    and abs(a_s - 1.0) <= p[P_SUPPORT_BAND_G]
                )
                after_gap = (gap_hit or gap_stand) and not early
                pending = s[S_IMP_END] >= 0.0
                if not pending:
                    if m > p[P_IMPACT_G] and not early and not after_gap:
                        # the impact: decide its onset once the whole rise is in (a pre-contact swing of
                        # the shank can exceed the threshold just before the real, steeper impact)
                        s[S_IMP_END] = g + impact_n
                        pending = True
                    else:
                        s[S_SH_SUM] += a_s
                        s[S_SH_N] += 1.0
                        _shank_low(s, a_s, p[P_SHANK_FREE_G])
                        s[S_CAND_SUM] += a_t
                        s[S_CAND_N] += 1.0
                done = (pending and g >= s[S_IMP_END]) or after_gap
                if done or (not pending and g - s[S_TAKEOFF] > p[P_MAX_FLIGHT_S] * rate):
                    s[S_AIR] = 0.0
                    s[S_IMP_END] = -1.0
                    # a flight leaves the shank unloaded too (a fast squat drops the hips, not the foot): its
                    # mean is low, or it read near 0 g for a while (a planted shank never does; a leg stepping
                    # off a box swings first, which raises the mean)
                    shank_free = (
                        s[S_SH_SUM] / max(s[S_SH_N], 1.0) < p[P_FLIGHT_SHANK_MAX_G]
                        or s[S_SH_LOW_MAX] * dt >= p[P_SHANK_FREE_S]
                    ) and s[S_CAND_SUM] / max(s[S_CAND_N], 1.0) < p[P_AIR_MEAN_MAX_G]
                    if done and shank_free:
                        # initial contact: the steepest one-sample rise of the impact, then back down the
                        # monotonic rise to its last sample before it
                        k = g
                        if not after_gap:
                            # the first rise as steep as an impact (a swinging shank rises slower), else
                            # the steepest one in the window
                            j_lo = max(g - impact_n - lag_imp, g - RING + 2, s[S_TAKEOFF] + 1.0)
                            best = -1.0
                            j = j_lo + 1.0
                            while j <= g:
                                cur = s[S_RING_M + int(j) % RING]
                                prev = s[S_RING_M + int(j - 1.0) % RING]
                                if np.isfinite(cur) and np.isfinite(prev):
                                    if cur - prev >= p[P_IMPACT_JERK_G_S] * dt:
                                        k = j
                                        break
                                    if cur - prev > best:
                                        best = cur - prev
                                        k = j
                                j += 1.0
                            while k - 1.0 > g - RING + 1 and k - 1.0 > s[S_TAKEOFF]:
                                prev = s[S_RING_M + int(k - 1.0) % RING]
                                cur = s[S_RING_M + int(k) % RING]
                                if np.isfinite(prev) and prev < cur - p[P_RISE_G]:
                                    k -= 1.0
                                else:
                                    break
                        if (k - s[S_TAKEOFF]) * dt >= p[P_MIN_FLIGHT_S]:
                            s[S_LAST_AIR] = s[S_TAKEOFF]
                            s[S_LAST_CONTACT] = k
                            s[S_LAND_OPEN] = 1.0
                            s[S_LAND_CONTACT] = k
                            s[S_LAND_TAKEOFF] = s[S_TAKEOFF]
                            # the contact itself was lost: estimated in Python from the take-off velocity
                            s[S_LAND_GAP_LO] = s[S_LAST_VALID] if (after_gap and not gap_hit) else -1.0
                        s[S_LAST_IMPACT] = k
            if s[S_PREV_ABOVE] != 2.0 or s[S_CAND] >= 0.0:
                s[S_PREV_ABOVE] = 1.0 if a_t >= p[P_AIR_ENTER_G] else 0.0
        s[S_PREV_VALID] = 1.0 if valid else 0.0
        if valid:
            s[S_LAST_VALID] = g

        # ---- foot strikes of running (candidates for a cut plant, judged in Python): the knee extends
        # from a swing peak to a minimum at initial contact, then flexes again in the loading response
        if s[S_SW] == 0.0:
            if fl > p[P_SWING_MIN_DEG] and s[S_AIR] < 0.5:
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


@njit(cache=True)
def features(
    thigh_acc: FloatArray,
    thigh_gyr: FloatArray,
    shank_acc: FloatArray,
    shank_gyr: FloatArray,
    quat: FloatArray,
    g_m_s2: float,
    out: FloatArray,
) -> None:
    """Per sample: thigh |a| (g), shank |a| (g), shank |w| (rad/s), thigh turn rate about the vertical
    (rad/s), thigh horizontal acceleration (g) and thigh vertical specific force (g), from raw rows (NaN
    rows stay NaN) and the thigh's orientation ``quat`` (sensor -> earth)."""
    for i in range(thigh_acc.shape[0]):
        ax, ay, az = thigh_acc[i, 0], thigh_acc[i, 1], thigh_acc[i, 2]
        gx, gy, gz = thigh_gyr[i, 0], thigh_gyr[i, 1], thigh_gyr[i, 2]
        out[i, 0] = np.sqrt(ax * ax + ay * ay + az * az) / g_m_s2
        sx, sy, sz = shank_acc[i, 0], shank_acc[i, 1], shank_acc[i, 2]
        out[i, 1] = np.sqrt(sx * sx + sy * sy + sz * sz) / g_m_s2
        wx, wy, wz = shank_gyr[i, 0], shank_gyr[i, 1], shank_gyr[i, 2]
        out[i, 2] = np.sqrt(wx * wx + wy * wy + wz * wz)
        w, x, y, z = quat[i, 0], quat[i, 1], quat[i, 2], quat[i, 3]
        # rows of the rotation matrix sensor -> earth: third row for the vertical, first two horizontal
        r20, r21, r22 = 2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)
        r00, r01, r02 = 1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y)
        r10, r11, r12 = 2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x)
        out[i, 3] = r20 * gx + r21 * gy + r22 * gz
        hx = r00 * ax + r01 * ay + r02 * az
        hy = r10 * ax + r11 * ay + r12 * az
        out[i, 4] = np.sqrt(hx * hx + hy * hy) / g_m_s2
        out[i, 5] = (r20 * ax + r21 * ay + r22 * az) / g_m_s2
