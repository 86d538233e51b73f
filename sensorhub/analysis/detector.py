"""Streaming event detector of one leg: landings, cuts and reps with their metrics, live and offline alike.

``EventDetector.step(angles, motion)`` takes what the knee estimator produced for a run of rows: the knee
angles and the segment kinematics of the same rows (its orientation filters, bias-free gyroscopes, the
calibration frames). Each row goes once through the numba feature and state-machine kernels
(``_kernels``), so the decisions do not depend on chunking. Metrics are computed from a bounded history
when an event closes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensorhub.conventions import DEG_PER_RAD, GRAVITY_M_S2, check_leg
from sensorhub.errors import InputError
from sensorhub.model import Event, FloatArray, KneeAngles, LegMotion

from . import _kernels as kern
from .metrics import (
    MetricWindows,
    Signals,
    cut_metrics,
    landing_in_gap,
    landing_metrics,
    landing_stops_the_fall,
    refine_rep_start,
    rep_metrics,
)
from .score import control_score

# knee-angle rows that are not a measurement: QUALITY_MISSING_INPUT | QUALITY_RECOVERING of
# sensorhub.kinematics (lost input rows, and rows re-anchored after a gap); a test checks the bits
UNRELIABLE_ANGLE = 1
HISTORY_S = 20.0  # longest rep (descent + ascent) plus margin; metrics read back this far at most
MAX_RECORDS = 64


@dataclass(frozen=True, slots=True)
class AnalysisParams:
    """Thresholds of the state machines (units in the names); physical, not fitted to one simulator."""

    # flight: the hip unloaded (its specific force, the thigh's minus what the thigh's rotation about the
    # hip makes at the sensor) and the shank off the ground (its ankle not at rest)
    air_enter_g: float = 0.5  # a flight candidate starts when the hip's support falls below this ...
    air_break_g: float = 1.2  # ... is abandoned when it is back above this, or the shank stays planted ...
    confirm_s: float = 0.08  # ... and is a flight when, after this long, the lever fitted over it
    air_rms_g: float = 0.4  # explains the thigh to within this (rms: free fall plus lever and rate noise),
    free_fall_g: float = 0.2  # and to within this on half of its samples (free fall reads 0 g; a lighter
    # moment of gait or a squat's dip does not get there), with the shank off the ground on 3 samples in 4
    planted_g: float = 0.3  # the shank is planted while its ankle's specific force is this close to 1 g up
    learn_g: float = 0.1  # samples this close teach the ankle lever ...
    learn_rate_rad_s: float = 1.0  # ... when the shank turns at least this fast (bends, stance)
    takeoff_g: float = 0.25  # take-off: back from the candidate to where the fitted lever leaves this much
    impact_g: float = 1.0  # in the air: support back above this may be the landing ...
    plant_confirm_s: float = 0.02  # ... which it is once the shank stays planted this long ...
    contact_wait_s: float = 0.15  # ... within this long (or support stays up that long)
    onset_g: float = 0.25  # contact = the first sample of the support's rise above this (or 3x the
    # flight's own noise)
    gap_support_g: float = 0.6  # first sample after a gap in a flight: support above this = landed in it
    lever_prior_m: float = 0.2  # prior hip -> thigh sensor distance along the thigh (a mid-thigh sensor)
    ankle_prior_m: float = 0.25  # prior ankle -> shank sensor distance along the shank
    lever_ridge_rad_s2: float = 5.0  # rotation below this (rad/s^2 scale) leaves a lever at its prior
    deriv_half_span_s: float = 0.005  # the angular acceleration: centred difference over +- this
    min_flight_s: float = 0.2  # a running stride's float is shorter (up to ~0.2 s in long-striding jogging,
    # 0.10-0.13 s sprinting); a jump of 5 cm or a drop of 20 cm is longer
    stride_flight_s: float = 0.3  # a flight shorter than this that takes off within ...
    stride_stance_s: float = 0.4  # ... this long of the previous flight's end is a running stride (floats of
    # fast or long-striding running reach 0.2-0.25 s; a stance between two of them lasts 0.15-0.3 s)
    float_min_s: float = 0.02  # a running float lasts 30-200 ms; an impact rings through 0 g for a few ms
    landing_min_yield_deg: float = 5.0  # a landing leg absorbs the fall by bending its knee (10-60 deg even
    # in a stiff landing); the free leg of a single-leg hop feels the jolt through the hip, barely bending
    landing_impulse_frac: float = 0.5  # the landing must stop at least this share of the fall's velocity
    max_flight_s: float = 1.5
    landing_window_s: float = 0.8  # peak flexion / valgus window after contact (ended by a rebound)
    quiet_rate_deg_s: float = 15.0  # the knee is "quiet" below this flexion rate ...
    quiet_min_s: float = 0.1  # ... for at least this long before a rep's descent
    rest_band_deg: float = 2.0  # at rest: within this above the resting flexion (a tempo descent leaves it)
    settle_s: float = 0.3  # ... which moves up where the knee stays this long within half the band
    rate_lag_s: float = 0.03  # flexion rate = difference over this lag
    rep_enter_deg: float = 10.0  # a descent is entered this far above the quiet flexion
    rep_min_excursion_deg: float = 15.0
    rep_min_eccentric_s: float = 0.28  # faster flexions are swing phases of gait, not controlled lowering
    rep_min_concentric_s: float = 0.5  # a faster extension is a push-off or a step, not a controlled rise
    rep_ascent_frac: float = 0.25  # ascent once flexion fell this fraction of the excursion from the peak
    rep_end_frac: float = 0.35  # end: quiet within this fraction of the excursion above the start
    rep_end_quiet_s: float = 0.08
    rep_max_s: float = 12.0
    rep_shank_range_g: tuple[float, float] = (0.5, 2.0)  # a planted foot keeps the shank |a| within this
    # during the descent; outside it the foot left the ground (a step up onto a box is not a rep)
    rep_holdoff_s: float = 0.6  # a rep is reported this long after its end unless a flight follows (jump)
    swing_min_deg: float = 70.0  # running: a swing flexes the knee beyond this (deeper than any stance) ...
    strike_rise_deg: float = 3.0  # ... and initial contact is the flexion minimum before it rises this much
    strike_is_landing_s: float = 0.15  # a strike this close to a landing's contact is that landing
    min_stride_s: float = 0.45  # one leg's strikes are a stride apart (0.6 s and more, even sprinting)
    max_stride_s: float = 1.0  # running strides take 0.6-0.8 s; a longer gap between strikes is a pause
    stride_default_s: float = 0.7  # the stride until the leg's own strides tell it (jogging cadence)
    cut_min_turn_deg: float = 25.0  # a cut turns the travel direction at the plant by more than this beyond
    # the steady turning (a curve's) of the strides before and after it; headings are thigh headings about
    # the vertical averaged over whole strides (the swing's own yaw cancels), see ``_heading_change_deg``
    cut_extra_flexion_deg: float = (
        8.0  # braking: stance flexion this much deeper than the leg's recent strides
    )
    cut_stance_flexion_s: float = 0.25  # stance flexion peak: strike .. strike + this
    cut_baseline_strides: int = (
        6  # recent strides (within cut_baseline_s) that give the running stance flexion
    )
    cut_baseline_s: float = 5.0
    cut_min_measured_frac: float = 0.5  # stance flexion rows that must be measured (the peak of measured rows
    # can only read low: a partly lost stance still shows braking, never invents it)
    windows: MetricWindows = field(default_factory=MetricWindows)

    def as_array(self, rate_hz: float, thigh_frame: FloatArray, shank_frame: FloatArray) -> FloatArray:
        p = np.zeros(kern.P_SIZE)
        p[kern.P_RATE_HZ] = rate_hz
        p[kern.P_AIR_ENTER_G] = self.air_enter_g
        p[kern.P_AIR_BREAK_G] = self.air_break_g
        p[kern.P_CONFIRM_S] = self.confirm_s
        p[kern.P_AIR_RMS_G] = self.air_rms_g
        p[kern.P_FREE_FALL_G] = self.free_fall_g
        p[kern.P_STRIDE_FLIGHT_S] = self.stride_flight_s
        p[kern.P_STRIDE_STANCE_S] = self.stride_stance_s
        p[kern.P_FLOAT_MIN_S] = self.float_min_s
        p[kern.P_PLANTED_G] = self.planted_g
        p[kern.P_LEARN_G] = self.learn_g
        p[kern.P_LEARN_RATE_RAD_S] = self.learn_rate_rad_s
        p[kern.P_TAKEOFF_G] = self.takeoff_g
        p[kern.P_IMPACT_G] = self.impact_g
        p[kern.P_PLANT_CONFIRM_S] = self.plant_confirm_s
        p[kern.P_CONTACT_WAIT_S] = self.contact_wait_s
        p[kern.P_ONSET_G] = self.onset_g
        p[kern.P_GAP_SUPPORT_G] = self.gap_support_g
        p[kern.P_LEVER_RIDGE] = self.lever_ridge_rad_s2**2
        # the hip is up the thigh's segment z axis from its sensor; the shank sensor up the shank's from
        # the ankle
        p[kern.P_LEVER_X : kern.P_LEVER_X + 3] = -self.lever_prior_m * thigh_frame[:, 2]
        p[kern.P_ANKLE_X : kern.P_ANKLE_X + 3] = self.ankle_prior_m * shank_frame[:, 2]
        p[kern.P_MIN_FLIGHT_S] = self.min_flight_s
        p[kern.P_MAX_FLIGHT_S] = self.max_flight_s
        p[kern.P_LANDING_WINDOW_S] = self.landing_window_s
        p[kern.P_QUIET_RATE_DEG_S] = self.quiet_rate_deg_s
        p[kern.P_QUIET_MIN_S] = self.quiet_min_s
        p[kern.P_REST_BAND_DEG] = self.rest_band_deg
        p[kern.P_SETTLE_S] = self.settle_s
        p[kern.P_RATE_LAG_S] = self.rate_lag_s
        p[kern.P_REP_ENTER_DEG] = self.rep_enter_deg
        p[kern.P_REP_MIN_EXC_DEG] = self.rep_min_excursion_deg
        p[kern.P_REP_MIN_ECC_S] = self.rep_min_eccentric_s
        p[kern.P_REP_MIN_CONC_S] = self.rep_min_concentric_s
        p[kern.P_REP_ASCENT_FRAC] = self.rep_ascent_frac
        p[kern.P_REP_END_FRAC] = self.rep_end_frac
        p[kern.P_REP_END_QUIET_S] = self.rep_end_quiet_s
        p[kern.P_REP_MAX_S] = self.rep_max_s
        p[kern.P_REP_HOLDOFF_S] = self.rep_holdoff_s
        p[kern.P_SWING_MIN_DEG] = self.swing_min_deg
        p[kern.P_STRIKE_RISE_DEG] = self.strike_rise_deg
        return p


@dataclass(frozen=True, slots=True)
class LivePhase:
    """A phase in progress (for live cues): today only ``rep_descent``.

    metrics: ``flexion_deg`` (now), ``excursion_deg`` (now - start), ``elapsed_s``, ``descent_rate_deg_s``
    (excursion / elapsed), ``peak_valgus_deg`` and ``valgus_excursion_deg`` since the start of descent.
    """

    leg_id: str
    kind: str
    t_s: float  # time of the newest sample (when the values were observed)
    t_start_s: float
    metrics: dict[str, float]


@dataclass(slots=True)
class DetectorOutput:
    events: list[Event]
    phase: LivePhase | None


class EventDetector:
    """Landings, cuts and reps of one leg, from the knee estimator's angles and segment kinematics."""

    def __init__(
        self, side: str, rate_hz: float, leg_id: str = "", params: AnalysisParams | None = None
    ) -> None:
        check_leg(side, rate_hz)
        self.side = side
        self.rate_hz = float(rate_hz)
        self.leg_id = leg_id or side
        self.params = params or AnalysisParams()
        self._p: FloatArray | None = None  # the kernel's parameters, once the calibration frames are known
        self._lag = max(1, min(kern.LAG_MAX, round(self.params.deriv_half_span_s * self.rate_hz)))
        self._state = kern.new_state()
        self._feature_state = kern.new_feature_state()
        self._out = np.zeros((MAX_RECORDS, kern.OUT_COLS))
        # history of per-sample signals: preallocated, compacted in place (no per-chunk reallocation)
        self._keep = int(HISTORY_S * self.rate_hz)
        self._buf: dict[str, FloatArray] = {name: np.empty(2 * self._keep) for name in _HIST_NAMES}
        self._n = 0
        self._base = 0
        self.phase: LivePhase | None = None
        self._finished = False
        self._strikes: list[int] = []  # foot strikes waiting for their turn window
        self._stance_peaks: list[tuple[float, float]] = []  # (time, stance flexion peak) of recent strides
        self._landed_t_s: list[float] = []  # contacts of recent landings: such a contact is not a cut plant
        self._last_strike_t_s = -math.inf
        self._stride_t_s: list[float] = []  # recent strikes that passed as strides (the stride period)
        self._last_cut_t_s = -math.inf

    # ---- public --------------------------------------------------------------------------------------
    def push(self, angles: KneeAngles, motion: LegMotion) -> list[Event]:
        return self.step(angles, motion).events

    def step(self, angles: KneeAngles, motion: LegMotion) -> DetectorOutput:
        """Rows the knee estimator produced (angles and the same rows' segment kinematics); returns closed
        events and the live phase."""
        if self._finished:
            raise InputError("push after finish: create a new EventDetector for a new recording")
        n = int(angles.t_s.shape[0])
        if len(motion) != n:
            raise InputError(f"{self.leg_id}: {n} angle rows but {len(motion)} motion rows")
        if n == 0:
            return DetectorOutput([], self.phase)
        events = self._run(angles, motion)
        self.phase = self._live_phase()
        return DetectorOutput(events, self.phase)

    def finish(self) -> list[Event]:
        """End of stream: close a landing or cut window still open (a rep in progress is dropped)."""
        self._finished = True
        s = self._state
        g_last = int(s[kern.S_N]) - 1
        events: list[Event] = []
        if s[kern.S_LAND_OPEN] > 0.0:
            record = [kern.K_LANDING, s[kern.S_LAND_CONTACT], s[kern.S_LAND_TAKEOFF], g_last, -1.0,
                      s[kern.S_LAND_GAP_LO]]
            events += self._events(np.array([record]))
            s[kern.S_LAND_OPEN] = 0.0
        if self._n:
            events += self._judge_strikes(final=True)
        self.phase = None
        return events

    # ---- internals -----------------------------------------------------------------------------------
    def _features(self, m: LegMotion) -> FloatArray:
        out = np.empty((len(m), kern.F_COLS))
        kern.features(
            np.ascontiguousarray(m.thigh_acc_m_s2), np.ascontiguousarray(m.thigh_gyr_rad_s),
            np.ascontiguousarray(m.shank_acc_m_s2), np.ascontiguousarray(m.shank_gyr_rad_s),
            np.ascontiguousarray(m.q_thigh), np.ascontiguousarray(m.q_shank),
            np.ascontiguousarray(m.missing, dtype=np.bool_), GRAVITY_M_S2, self.rate_hz, self._lag,
            self._feature_state, out,
        )  # fmt: skip
        return out

    def _run(self, angles: KneeAngles, motion: LegMotion) -> list[Event]:
        if self._p is None:
            self._p = self.params.as_array(self.rate_hz, motion.thigh_frame, motion.shank_frame)
            self._p[kern.P_FEAT_LAG] = self._lag
        f = self._features(motion)
        flex = np.ascontiguousarray(angles.flexion_rad * DEG_PER_RAD)
        valg = np.ascontiguousarray(angles.valgus_rad * DEG_PER_RAD)  # already mirrored per side
        self._append(
            {
                "t_s": np.asarray(angles.t_s, dtype=np.float64),
                "flex_deg": flex,
                "valg_deg": valg,
                "quality": np.asarray(angles.quality, dtype=np.float64),
            },
            {
                "at_g": f[:, kern.F_AT_G],
                "as_g": f[:, kern.F_AS_G],
                "ws_rad_s": f[:, kern.F_WS],
                "hacc_g": f[:, kern.F_HACC_G],
                "turn_rad_s": f[:, kern.F_TURN],
                "vacc_g": f[:, kern.F_VACC_G],
            },
        )
        n = flex.shape[0]
        if self._out.shape[0] < n // 8 + MAX_RECORDS:  # records are >= 0.15 s apart: never overflows
            self._out = np.zeros((n // 8 + MAX_RECORDS, kern.OUT_COLS))
        # the knee patterns (strikes, reps) only read measured flexion: rows bridged over lost samples are NaN
        measured = (np.asarray(angles.quality).astype(np.int64) & UNRELIABLE_ANGLE) == 0
        n_out = kern.detect(f, np.where(measured, flex, np.nan), self._p, self._state, self._out)
        events = self._events(self._out[:n_out].copy())
        events += self._judge_strikes()
        self._trim()
        return events

    def _append(self, rows: dict[str, FloatArray], lagged: dict[str, FloatArray]) -> None:
        """``rows``: this step's rows; ``lagged``: the features kernel's rows, which describe the samples
        ``self._lag`` rows earlier (the last rows of the history get theirs with the next step)."""
        m = int(rows["t_s"].shape[0])
        cap = self._buf["t_s"].shape[0]
        if self._n + m > cap and self._n > self._keep:  # compact: keep the last HISTORY_S
            drop = self._n - self._keep
            for name in _HIST_NAMES:
                b = self._buf[name]
                b[: self._keep] = b[drop : self._n]
            self._n = self._keep
            self._base += drop
        if self._n + m > cap:  # a chunk longer than the buffer (offline batch): grow
            for name in _HIST_NAMES:
                grown = np.empty(self._n + m + self._keep)
                grown[: self._n] = self._buf[name][: self._n]
                self._buf[name] = grown
        for name, values in rows.items():
            self._buf[name][self._n : self._n + m] = values
        lo = self._n - self._lag
        skip = max(0, -lo)  # the very first rows describe samples before the stream began
        for name, values in lagged.items():
            b = self._buf[name]
            b[self._n : self._n + m] = np.nan  # until the next step's rows describe them
            b[lo + skip : lo + m] = values[skip:]
        self._n += m

    def _trim(self) -> None:
        """Release the memory of a large offline batch once it has been analysed."""
        if self._buf["t_s"].shape[0] > 4 * self._keep and self._n > self._keep:
            drop = self._n - self._keep
            for name in _HIST_NAMES:
                self._buf[name] = np.concatenate([self._buf[name][drop : self._n], np.empty(self._keep)])
            self._n = self._keep
            self._base += drop

    @property
    def _hist(self) -> dict[str, FloatArray]:
        return {name: b[: self._n] for name, b in self._buf.items()}

    def _signals(self) -> Signals:
        h = self._hist
        return Signals(
            self._base,
            h["t_s"],
            h["at_g"],
            h["as_g"],
            h["ws_rad_s"],
            h["hacc_g"],
            h["flex_deg"],
            h["valg_deg"],
            h["turn_rad_s"],
            h["vacc_g"],
            h["quality"],
        )

    def _events(self, records: FloatArray) -> list[Event]:
        if records.shape[0] == 0:
            return []
        sig = self._signals()
        w = self.params.windows
        events: list[Event] = []
        for kind, a, b, c, d, e in records:
            ia, ib, ic, id_ = int(a), int(b), int(c), int(d)
            if kind == kern.K_LANDING and e >= 0.0:
                t_s, metrics = landing_in_gap(sig, ia, ib, int(e), self.rate_hz)
                if t_s - sig.t(ib) < self.params.min_flight_s:
                    continue  # the push-off was too weak for a flight (a running float lost in the gap)
                etype = "landing"
            elif kind == kern.K_LANDING:
                if not landing_stops_the_fall(sig, ia, ib, ic, self.params.landing_impulse_frac):
                    continue  # no fall was stopped: the "flight" was a lighter stance (gait), not one
                metrics = landing_metrics(sig, ia, ib, ic, id_, w)
                if not metrics["flexion_excursion_deg"] >= self.params.landing_min_yield_deg:
                    continue  # the knee did not bend under it: this leg was carried (a hop's free leg)
                etype, t_s = "landing", sig.t(ia)
            elif kind == kern.K_REP:
                shank = sig.as_g[sig.sl(ia, ib)]
                lo, hi = self.params.rep_shank_range_g
                if np.isfinite(shank).any() and (np.nanmin(shank) < lo or np.nanmax(shank) > hi):
                    continue
                start = refine_rep_start(sig, ia, ib, d, self.params.rest_band_deg)
                metrics = rep_metrics(sig, start, ib, ic)
                etype, t_s = "rep", sig.t(start)
            else:
                self._strikes.append(ia)  # judged once the turn after it is known
                continue
            events.append(Event(etype, self.leg_id, t_s, metrics, control_score(etype, metrics)))
            if etype == "landing":
                self._landed_t_s = [*self._landed_t_s, t_s][-4:]
        return events

    def _judge_strikes(self, final: bool = False) -> list[Event]:
        """A cut plant: a foot strike with a braking stance (knee flexion deeper than the leg's recent
        running strides) across which the travel direction changes (``_heading_change_deg``)."""
        pr = self.params
        g_last = int(self._state[kern.S_N]) - 1
        events: list[Event] = []
        sig = self._signals()
        while self._strikes:
            strike = self._strikes[0]
            t_strike = sig.t(strike)
            stride_s = self._stride_s(t_strike)
            n_stride = max(1, round(stride_s * self.rate_hz))
            # the heading windows end 3 strides after the strike; the turn rate of the last rows comes
            # with the next step's rows (the features lag)
            if not final and strike + 3 * n_stride + self._lag > g_last:
                break
            self._strikes.pop(0)
            if any(abs(t_strike - t) < pr.strike_is_landing_s for t in self._landed_t_s):
                continue  # the initial contact of a landing (a tuck jump's knee swings like a stride)
            if t_strike - self._last_strike_t_s < pr.min_stride_s:
                continue  # within the last strike's stance: a deep braking knee bends like a swing
            self._last_strike_t_s = t_strike
            self._stride_t_s = [*self._stride_t_s, t_strike][-5:]
            stance = sig.sl(strike, strike + round(pr.cut_stance_flexion_s * self.rate_hz))
            # the braking evidence must be measured: flexion of lost rows, or re-anchored just after a gap,
            # is the estimator's guess (a plant decision cannot rest on it)
            reliable = (sig.quality[stance].astype(np.int64) & UNRELIABLE_ANGLE) == 0
            flex = np.where(reliable, sig.flex_deg[stance], np.nan)
            measured = np.isfinite(flex).sum() >= pr.cut_min_measured_frac * max(flex.shape[0], 1)
            peak = float(np.nanmax(flex)) if measured else math.nan
            recent = [
                v for t, v in self._stance_peaks if t_strike - t <= pr.cut_baseline_s and math.isfinite(v)
            ]
            self._stance_peaks = [(t, v) for t, v in self._stance_peaks if t_strike - t <= pr.cut_baseline_s]
            self._stance_peaks = [*self._stance_peaks, (t_strike, peak)][-pr.cut_baseline_strides :]
            if len(recent) < 2 or not peak - float(np.median(recent)) >= pr.cut_extra_flexion_deg:
                continue
            if t_strike - self._last_cut_t_s < 2.0 * stride_s:
                continue  # the next stride of the last cut: its heading change is that plant's
            change_deg, excess_deg = self._heading_change_deg(sig, strike, n_stride)
            if abs(excess_deg) < pr.cut_min_turn_deg:
                continue
            self._last_cut_t_s = t_strike
            metrics = cut_metrics(sig, strike, math.radians(change_deg), pr.windows)
            events.append(Event("cut", self.leg_id, t_strike, metrics, control_score("cut", metrics)))
        return events

    def _stride_s(self, t_strike: float) -> float:
        """The leg's stride period before ``t_strike``: the median of its last strides of running."""
        pr = self.params
        times = [t for t in self._stride_t_s if t < t_strike] + [t_strike]
        strides = [b - a for a, b in itertools.pairwise(times)
                   if pr.min_stride_s <= b - a <= pr.max_stride_s]
        return float(np.median(strides[-4:])) if strides else pr.stride_default_s

    def _heading_change_deg(self, sig: Signals, strike: int, n: int) -> tuple[float, float]:
        """(change, excess) of the thigh's heading across the plant, degrees. Headings are means over whole
        strides of n rows (the swing's yaw cancels): B2, B and P over the 3rd, 2nd and 1st stride before the
        strike, A and A2 over the 1st and 2nd stride starting a stride after it. change = A - B; excess: what
        of it no steady turning explains, turning at a rate between the approach's (over the two strides
        into the plant, (P - B2) / 2) and the exit's (A2 - A) per stride over the 3 strides from B to A. A
        curve turns as steadily across the plant as in the strides around it (excess ~0); a cut runs
        straight into the plant and out of it (excess: most of the change)."""
        sl = sig.sl(strike - 3 * n, strike + 3 * n)
        heading = np.cumsum(np.nan_to_num(sig.turn_rad_s[sl])) * (DEG_PER_RAD / self.rate_hz)
        at = strike - 3 * n - (sig.base + sl.start)  # strike - 3n in heading's rows (< 0: clipped)

        def mean(k: int) -> float:  # mean heading over the stride starting k strides after strike - 3n
            lo, hi = max(at + k * n, 0), min(at + (k + 1) * n, heading.shape[0])
            return float(np.mean(heading[lo:hi])) if hi > lo else math.nan

        b2, b, p, a, a2 = mean(0), mean(1), mean(2), mean(4), mean(5)
        change = a - b
        if not math.isfinite(change):
            return 0.0, 0.0
        rates = [3.0 * r for r in (0.5 * (p - b2), a2 - a) if math.isfinite(r)] or [0.0]
        steady = min(max(change, min(rates)), max(rates))
        return change, change - steady

    def _live_phase(self) -> LivePhase | None:
        s = self._state
        if s[kern.S_REP] != 1.0:
            return None
        sig = self._signals()
        start = int(s[kern.S_REP_START])
        sl = sig.sl(start, int(s[kern.S_N]) - 1)
        valg = sig.valg_deg[sl]
        flex_now = float(sig.flex_deg[-1])
        elapsed = float(sig.t_s[-1]) - sig.t(start)
        exc = flex_now - float(s[kern.S_REP_START_FLEX])
        metrics = {
            "flexion_deg": flex_now,
            "excursion_deg": exc,
            "elapsed_s": elapsed,
            "descent_rate_deg_s": exc / elapsed if elapsed > 0 else 0.0,
            "peak_valgus_deg": float(np.nanmax(valg)) if valg.size else math.nan,
            "valgus_excursion_deg": float(np.nanmax(valg) - valg[0]) if valg.size else math.nan,
        }
        return LivePhase(self.leg_id, "rep_descent", float(sig.t_s[-1]), sig.t(start), metrics)


_HIST_NAMES = (
    "t_s",
    "at_g",
    "as_g",
    "ws_rad_s",
    "hacc_g",
    "flex_deg",
    "valg_deg",
    "turn_rad_s",
    "vacc_g",
    "quality",
)


def event_to_json(event: Event) -> dict[str, Any]:
    """The events.json / MQTT object: type, t_s, leg_id, metrics (NaN -> null), control_score."""
    out: dict[str, Any] = {"type": event.type, "t_s": round(event.t_s, 4), "leg_id": event.leg_id}
    for k, v in event.metrics.items():
        out[k] = round(v, 4) if math.isfinite(v) else None
    out["control_score"] = event.control_score if math.isfinite(event.control_score) else None
    return out


def detect_events(
    angles: KneeAngles, motion: LegMotion, side: str, rate_hz: float, params: AnalysisParams | None = None
) -> list[Event]:
    """Offline: the streaming detector over a whole recording (one push, then finish)."""
    det = EventDetector(side, rate_hz, angles.leg_id, params)
    return det.push(angles, motion) + det.finish()


def warmup() -> None:
    """Compile (or load from numba's cache) the detector kernels before the first live sample."""
    n = 8
    rows = np.zeros((n, 3))
    rows[:, 2] = GRAVITY_M_S2
    quat = np.zeros((n, 4))
    quat[:, 0] = 1.0
    zero = np.zeros(n)
    motion = LegMotion(quat, quat, rows, rows * 0.0, rows, rows * 0.0, np.zeros(n, dtype=np.bool_), np.eye(3),
                       np.eye(3))
    EventDetector("right", 200.0, "warmup").push(
        KneeAngles("warmup", np.arange(n) / 200.0, zero, zero, zero, np.zeros(n, dtype=np.uint8)), motion
    )
