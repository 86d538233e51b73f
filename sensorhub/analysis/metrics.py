"""Metric values of detected events, from the buffered per-sample signals (windows: docs/events.md).

Every function takes the detector's history (``Signals``, arrays on one grid, index 0 = ``base``) and
the global sample indices the state machine found; values are in degrees, seconds, g and metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2, LANDING_KEYS
from sensorhub.model import FloatArray

NAN = float("nan")
REST_S = 0.25  # the resting level before a rep's descent: median over this long


@dataclass(frozen=True, slots=True)
class Signals:
    base: int  # global index of row 0
    t_s: FloatArray
    at_g: FloatArray  # thigh |specific force| / g
    as_g: FloatArray  # shank |specific force| / g
    ws_rad_s: FloatArray  # shank |angular rate|
    hacc_g: FloatArray  # thigh horizontal acceleration magnitude (earth frame, gravity removed) / g
    flex_deg: FloatArray
    valg_deg: FloatArray
    turn_rad_s: FloatArray  # thigh angular rate about the vertical (earth frame)
    vacc_g: FloatArray  # thigh vertical specific force (earth frame, 1 g standing still) / g
    quality: FloatArray  # knee-angle quality bits (sensorhub.kinematics QUALITY_*), as floats

    def sl(self, a: int, b: int) -> slice:
        """Rows of global indices [a, b] (inclusive), clipped to the buffer."""
        lo = max(0, a - self.base)
        hi = min(self.t_s.shape[0], b - self.base + 1)
        return slice(lo, max(lo, hi))

    def t(self, g: int) -> float:
        return float(self.t_s[min(max(g - self.base, 0), self.t_s.shape[0] - 1)])


@dataclass(frozen=True, slots=True)
class MetricWindows:
    """Window lengths of the metrics (seconds); documented in docs/events.md."""

    shank_peak_s: float = 0.1  # peak_shank_accel_g: contact .. contact + this
    stable_band_g: float = 0.2  # time_to_stabilization: |shank |a| - 1 g| stays within this ...
    stable_gyr_rad_s: float = 1.0  # ... and the shank turns slower than this ...
    stable_min_s: float = 0.1  # ... until the end of the landing window, for at least this long
    cut_stance_s: float = 0.3  # cut: valgus, deceleration and braking within plant .. plant + this


def _nanmax_idx(x: FloatArray) -> int:
    if x.size == 0 or not np.isfinite(x).any():
        return -1
    return int(np.nanargmax(x))


def landing_metrics(
    s: Signals, contact: int, takeoff: int, end: int, next_takeoff: int, w: MetricWindows
) -> dict[str, float]:
    sl = s.sl(contact, end)
    t_c = s.t(contact)
    flex = s.flex_deg[sl]
    valg = s.valg_deg[sl]
    i_pk = _nanmax_idx(flex)
    flight_s = t_c - s.t(takeoff)
    out = {
        "flexion_at_contact_deg": float(flex[0]),
        "peak_flexion_deg": float(flex[i_pk]),
        "flexion_excursion_deg": float(flex[i_pk] - flex[0]),
        "time_to_peak_flexion_s": float(s.t_s[sl][i_pk] - t_c),
        "peak_valgus_deg": float(np.nanmax(valg)),
        "valgus_excursion_deg": float(np.nanmax(valg) - valg[0]),
        "flight_time_s": flight_s,
        "jump_height_m": GRAVITY_M_S2 * flight_s**2 / 8.0,
        "ground_contact_time_s": s.t(next_takeoff) - t_c if next_takeoff >= 0 else NAN,
    }
    sp = s.as_g[s.sl(contact, contact + max(1, round(w.shank_peak_s / _dt(s))))]
    out["peak_shank_accel_g"] = float(np.nanmax(sp)) if np.isfinite(sp).any() else NAN
    out["time_to_stabilization_s"] = _time_to_stabilization(s, contact, end, w)
    return out




def landing_stops_the_fall(s: Signals, contact: int, takeoff: int, end: int, frac: float,
                           window_s: float = 0.5) -> bool:
    """A flight of T seconds ends in a fall at about g T / 2 (more after a drop): a landing stops it. The
    thigh's vertical velocity change from contact (its vertical specific force minus 1 g, integrated over
    up to ``window_s``, or to the next take-off) must reach ``frac`` of g T / 2; a light stretch of gait
    taken for a flight stops nothing."""
    dt = _dt(s)
    flight_s = s.t(contact) - s.t(takeoff)
    vacc = s.vacc_g[s.sl(contact, min(end, contact + round(window_s / dt)))]
    if not np.isfinite(vacc).any():
        return True  # nothing measured after contact: the flight alone has to decide
    stopped_m_s = float(np.nansum(vacc - 1.0)) * GRAVITY_M_S2 * dt
    return stopped_m_s >= frac * GRAVITY_M_S2 * flight_s / 2.0


def landing_in_gap(
    s: Signals, after: int, takeoff: int, before: int, rate_hz: float, push_off_s: float = 1.0
) -> tuple[float, dict[str, float]]:
    """A flight whose contact fell in lost samples (``before`` = last valid sample, ``after`` = first one
    after the gap, already supported): contact time from ballistics, metrics null (not observed).

    Take-off vertical velocity v0 = integral of the thigh's vertical acceleration (specific force - 1 g)
    from the deepest knee flexion before take-off (the lowest point of the push-off, v ~ 0) to take-off;
    landing at the take-off level after 2 v0 / g. The estimate is kept inside the gap (a drop from a box
    lands later than ballistics on level ground: it is then placed at the gap's end)."""
    lo = takeoff - max(1, round(push_off_s * rate_hz))
    push = s.sl(lo, takeoff - 1)
    flex = s.flex_deg[push]
    t_gap_lo, t_gap_hi = s.t(before), s.t(after)
    t_est = 0.5 * (t_gap_lo + t_gap_hi)
    if np.isfinite(flex).any():
        i_low = int(np.nanargmax(flex))
        acc = s.vacc_g[push][i_low:] - 1.0
        v0_m_s = float(np.nansum(acc)) * GRAVITY_M_S2 / rate_hz
        if v0_m_s > 0.0:
            t_est = s.t(takeoff) + 2.0 * v0_m_s / GRAVITY_M_S2
    t_est = min(max(t_est, t_gap_lo + 1.0 / rate_hz), t_gap_hi)
    return t_est, {k: NAN for k in LANDING_KEYS}


def _dt(s: Signals) -> float:
    return float(np.median(np.diff(s.t_s[:64]))) if s.t_s.shape[0] > 1 else 0.005


def _time_to_stabilization(s: Signals, contact: int, end: int, w: MetricWindows) -> float:
    """From contact to the start of the final stretch of the window in which the shank is steady."""
    sl = s.sl(contact, end)
    steady = (np.abs(s.as_g[sl] - 1.0) <= w.stable_band_g) & (s.ws_rad_s[sl] <= w.stable_gyr_rad_s)
    steady |= ~np.isfinite(s.as_g[sl])  # a lost sample does not break a steady stretch
    unsteady = np.flatnonzero(~steady)
    first = int(unsteady[-1]) + 1 if unsteady.size else 0
    if first >= steady.shape[0] or (steady.shape[0] - first) * _dt(s) < w.stable_min_s:
        return NAN
    return float(s.t_s[sl][first] - s.t(contact))


def refine_rep_start(s: Signals, start: int, bottom: int, rest_deg: float, band_deg: float,
                     lookback_s: float = 2.0) -> int:
    """The instant the knee leaves rest, found by looking back from the descent.

    The state machine's start is the last sample within ``band_deg`` of the resting flexion ``rest_deg``,
    after a smooth lowering has begun (a movement from rest accelerates from zero: its first degrees take
    a large share of the eccentric time). The excursion above rest rises from zero as a power of the time
    since onset, e(t) = c (t - t0)^k with k about 2-3 for a jerk-limited start (Flash & Hogan's
    minimum-jerk movement: k = 3). t0 is fitted to the excursion's first part (from a few noise levels
    above rest to a tenth of the depth), k free in [1.5, 4]; the state machine's start is kept when the
    fit has too little to go on."""
    dt = _dt(s)
    lo = max(start - max(8, round(lookback_s / dt)), s.base)
    pre = s.flex_deg[s.sl(lo, start)]
    if pre.shape[0] < 8 or not np.isfinite(pre).all():
        return start
    # the stretch at rest before the descent: back from the start while within the band
    at_rest = np.abs(pre - rest_deg) < band_deg
    q0 = pre.shape[0]
    while q0 > 0 and at_rest[q0 - 1]:
        q0 -= 1
    quiet = pre[q0:]
    if quiet.shape[0] < 4:
        return start
    noise = max(float(np.median(np.abs(np.diff(quiet)))), 0.02)
    flex = s.flex_deg[s.sl(lo, bottom)]
    t = s.t_s[s.sl(lo, bottom)]
    if flex.shape[0] < 8 or not np.isfinite(flex).all():
        return start
    e_lo = max(4.0 * noise, 0.5)
    # the resting level just before the descent: an estimate still creeping after a fast movement has
    # moved on from where it first rested, so the level is taken again over the last REST_S before the
    # first departure found, while that stretch slows down (a creep settling); a stretch that speeds up
    # is the descent itself starting slowly (a tempo squat) and ends the search
    rest = float(np.median(quiet[: max(2, quiet.shape[0] // 2)]))
    n_rest = max(4, round(REST_S / dt))
    first = -1
    for _ in range(3):
        below = np.flatnonzero(flex[: start - lo + 1] - rest <= e_lo)
        if not below.size:
            return start
        first = int(below[-1]) + 1
        window = flex[max(q0, first - n_rest):first]
        half = window.shape[0] // 2
        if half < 2 or window[-1] - window[half] > window[half] - window[0]:
            break
        rest = float(np.median(window))
    rise = flex - rest
    depth = float(rise.max())
    e_hi = max(e_lo * 4.0, depth / 10.0)  # the first tenth: still a power of time since onset
    if depth < 3.0 * e_lo:
        return start
    use = first + np.flatnonzero(rise[first:] < e_hi)
    use = use[rise[use] > e_lo]
    if use.size < 5:
        return start
    t_use, log_e = t[use], np.log(rise[use])
    t_first = float(t[first])
    t_min = min(float(t[q0]), t_first - dt)
    best: tuple[float, float] | None = None
    for t0 in np.linspace(t_min, t_first - 0.5 * dt, 60):
        x = np.log(t_use - t0)
        xm, ym = float(x.mean()), float(log_e.mean())
        sxx = float(np.sum((x - xm) ** 2))
        if sxx <= 0.0:
            continue
        k = float(np.sum((x - xm) * (log_e - ym))) / sxx  # least-squares line log e = k log(t - t0) + c
        if not 1.5 <= k <= 4.0:
            continue
        res = float(np.sum((log_e - ym - k * (x - xm)) ** 2))
        if best is None or res < best[0]:
            best = (res, float(t0))
    if best is None:
        return start
    onset = int(np.searchsorted(t, best[1]))
    return min(start, lo + onset)


def rep_metrics(s: Signals, start: int, bottom: int, end: int) -> dict[str, float]:
    """``start``: the refined start of descent (``refine_rep_start``)."""
    sl = s.sl(start, end)
    valg = s.valg_deg[sl]
    t0, tb, te = s.t(start), s.t(bottom), s.t(end)
    return {
        "depth_deg": float(s.flex_deg[s.sl(bottom, bottom)][0]),
        "eccentric_s": tb - t0,
        "concentric_s": te - tb,
        "peak_valgus_deg": float(np.nanmax(valg)),
        "valgus_excursion_deg": float(np.nanmax(valg) - valg[0]),
        "t_bottom_s": tb,
        "t_end_s": te,
    }


def cut_metrics(s: Signals, plant: int, turn_rad: float, w: MetricWindows) -> dict[str, float]:
    n = max(1, round(w.cut_stance_s / _dt(s)))
    sl = s.sl(plant, plant + n)
    h = s.hacc_g[sl]
    i_pk = _nanmax_idx(h)
    peak = float(h[i_pk]) if i_pk >= 0 else NAN
    braking_s = NAN
    if i_pk >= 0:
        below = np.flatnonzero(h[i_pk:] < 0.5 * peak)
        j = i_pk + int(below[0]) if below.size else h.shape[0] - 1
        braking_s = float(s.t_s[sl][j] - s.t(plant))
    return {
        "flexion_at_plant_deg": float(s.flex_deg[sl][0]),
        "peak_valgus_deg": float(np.nanmax(s.valg_deg[sl])),
        "direction_change_deg": abs(math.degrees(turn_rad)),
        "peak_decel_g": peak,
        "braking_time_s": braking_s,
    }
