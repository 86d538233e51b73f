"""Streaming knee-angle estimator of one leg: the same code runs live (chunks) and offline (one batch).

Until it is calibrated the estimator buffers raw samples and tries to calibrate at fixed sample counts
(every ``attempt_every_s`` from the first sample), each time on the buffer up to that count, so the moment
of calibration never depends on how the stream was chunked. Once calibrated it runs the buffer and every
later sample through: gap holding, gyroscope bias removal, one 6-axis orientation filter per sensor, the
relative heading correction and the Grood & Suntay decomposition, all sample by sample with carried
state. Chunked and batch processing are therefore bit-identical.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from sensorhub.conventions import SIDE_SIGN, check_leg
from sensorhub.errors import CalibrationError, InputError
from sensorhub.kinematics import _kernels
from sensorhub.kinematics.calibration import (
    CalibrationParams,
    CalibrationPendingError,
    KneeCalibration,
    calibrate_knee,
    refine_axes,
)
from sensorhub.kinematics.heading import HeadingParams, initial_heading_offset, loop_params
from sensorhub.model import FloatArray, KneeAngles, LegMotion, LegSamples


class OrientationStream(Protocol):
    """A stateful 6-axis filter: quaternions [w, x, y, z] sensor -> earth (z up) for each new sample."""

    def update(self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray) -> FloatArray: ...


OrientationFactory = Callable[[float], OrientationStream]
"""Builds one filter for a sensor sampled at ``rate_hz``."""


def default_orientation_factory(rate_hz: float) -> OrientationStream:
    """sensorhub's own 6-axis filter (imported lazily: kinematics must not need it at import time)."""
    from sensorhub.kinematics._orientation_adapter import make_stream

    return make_stream(rate_hz)


def fast_orientation_factory(rate_hz: float) -> OrientationStream:
    """The same filter with a short accelerometer time constant, started fresh after a long gap: it
    averages gravity over its first second instead of carrying a pre-gap state that the gap made wrong."""
    from sensorhub.kinematics._orientation_adapter import make_stream

    return make_stream(rate_hz, tau_acc_s=GAP_RECOVERY_TAU_ACC_S)


GAP_RECOVERY_TAU_ACC_S = 0.7


@dataclass(frozen=True, slots=True)
class KneeParams:
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    heading: HeadingParams = field(default_factory=HeadingParams)
    refine_axes: bool = True  # refine the axes from the knee's relative motion once the filters run ...
    refine_max_deg: float = 10.0  # ... if that moves them by at most this much (else the first axes stay)
    # after a gap of >= gap_recovery_min_s the inclination comes from a fast-converging filter until the
    # normal one agrees with it within gap_recovery_agree_deg for 0.25 s (at most gap_recovery_max_s), then
    # fades
    gap_recovery_min_s: float = 0.06
    gap_gyr_stats_s: float = 1.0  # window of the rate statistics that shape the gap bridge (0: linear)
    gap_recovery_agree_deg: float = 1.0
    gap_recovery_max_s: float = 10.0
    gap_recovery_fade_s: float = 0.3
    # after such a gap, flexion = hinge rate integrated from the gap's end + an offset anchored on both
    # accelerometers (lever arms removed; see _kernels.recover_after_gaps), valgus/rotation held at their
    # pre-gap values, until the filters' blending is over and their flexion agrees with the anchored one
    # within gap_anchor_agree_deg for gap_recovery_agree_s (at most gap_recovery_max_s)
    gap_anchor_agree_deg: float = 2.0
    gap_hold_max_s: float = 2.0  # valgus/rotation are held at most this long (heading re-converged by then)
    gap_recovery_agree_s: float = 0.25
    gap_anchor_min_s: float = 0.05  # the anchors of this first period are averaged plainly; later ones...
    gap_anchor_tau_s: float = 0.5  # ...enter with this time constant...
    gap_anchor_clip_deg: float = 5.0  # ...each moving the offset by at most this much
    gap_anchor_min_proj_m_s2: float = 4.0  # knee-centre acceleration needed in both sagittal planes
    gap_anchor_norm_tol: float = 0.05  # relative mismatch of the two knee-centre acceleration magnitudes
    gap_anchor_max_jerk_m_s3: float = 1000.0  # impacts, soft-tissue transients: not a rigid lever
    gap_anchor_max_rate_rad_s: float = 15.0  # with fitted lever arms (a 1 cm lever error is 2 m/s^2 there)
    gap_anchor_static_rate_rad_s: float = 1.0  # before they are known (lever terms < 0.3 m/s^2 at 0.3 m)
    gap_anchor_follow_after_s: float = 0.5  # without anchors for this long, follow the filters' flexion...
    gap_anchor_follow_tau_s: float = 1.0  # ...with this time constant
    lever_fit_min_rate_rad_s: float = 1.0  # slower rows carry no lever-arm information
    lever_fit_min_s: float = 0.5  # of such rows before the lever arms are used...
    lever_fit_max_s: float = 60.0  # ...and after which the fit stops (a mounting's levers do not change)
    lever_max_m: float = 0.6  # a longer fitted lever arm is not on a leg: fit not used


def recovery_params(p: KneeParams, rate_hz: float, side_sign: float) -> FloatArray:
    """Parameter array of ``_kernels.recover_after_gaps``."""
    q = np.zeros(_kernels.Q_SIZE)
    q[_kernels.Q_MIN_GAP] = max(1, round(p.gap_recovery_min_s * rate_hz))
    q[_kernels.Q_DT_S] = 1.0 / rate_hz
    q[_kernels.Q_TAU_ANCHOR_S] = p.gap_anchor_tau_s
    q[_kernels.Q_AGREE_RAD] = math.radians(p.gap_anchor_agree_deg)
    q[_kernels.Q_AGREE_ROWS] = max(1, round(p.gap_recovery_agree_s * rate_hz))
    q[_kernels.Q_MAX_ROWS] = p.gap_recovery_max_s * rate_hz
    q[_kernels.Q_FADE] = math.exp(-1.0 / (p.gap_recovery_fade_s * rate_hz))
    q[_kernels.Q_MIN_PROJ_M_S2] = p.gap_anchor_min_proj_m_s2
    q[_kernels.Q_NORM_TOL] = p.gap_anchor_norm_tol
    q[_kernels.Q_MAX_RATE_RAD_S] = p.gap_anchor_max_rate_rad_s
    q[_kernels.Q_STATIC_RATE_RAD_S] = p.gap_anchor_static_rate_rad_s
    q[_kernels.Q_MIN_ANCHORS] = max(1, round(p.gap_anchor_min_s * rate_hz))
    q[_kernels.Q_CLIP_RAD] = math.radians(p.gap_anchor_clip_deg)
    q[_kernels.Q_MAX_JERK_M_S3] = p.gap_anchor_max_jerk_m_s3
    q[_kernels.Q_FOLLOW_AFTER_ROWS] = max(1, round(p.gap_anchor_follow_after_s * rate_hz))
    q[_kernels.Q_TAU_FOLLOW_S] = p.gap_anchor_follow_tau_s
    q[_kernels.Q_SIDE_SIGN] = side_sign
    q[_kernels.Q_FIT_MIN_RATE_RAD_S] = p.lever_fit_min_rate_rad_s
    q[_kernels.Q_FIT_MIN_ROWS] = max(1, round(p.lever_fit_min_s * rate_hz))
    q[_kernels.Q_FIT_MAX_ROWS] = max(1, round(p.lever_fit_max_s * rate_hz))
    q[_kernels.Q_HOLD_MAX_ROWS] = max(1, round(p.gap_hold_max_s * rate_hz))
    q[_kernels.Q_MAX_LEVER_M] = p.lever_max_m
    q[_kernels.Q_RIDGE] = 1.0  # only pins the solution where the fit has no information
    return q


def _empty_angles(leg_id: str) -> KneeAngles:
    e = np.empty(0)
    return KneeAngles(leg_id=leg_id, t_s=e, flexion_rad=e, valgus_rad=e.copy(), rotation_rad=e.copy(),
                      quality=np.empty(0, dtype=np.uint8))


def concat_angles(parts: list[KneeAngles], leg_id: str) -> KneeAngles:
    if not parts:
        return _empty_angles(leg_id)
    return KneeAngles(
        leg_id=leg_id,
        t_s=np.concatenate([p.t_s for p in parts]),
        flexion_rad=np.concatenate([p.flexion_rad for p in parts]),
        valgus_rad=np.concatenate([p.valgus_rad for p in parts]),
        rotation_rad=np.concatenate([p.rotation_rad for p in parts]),
        quality=np.concatenate([p.quality for p in parts]),
    )


class KneeEstimator:
    """Knee angles of one leg from its thigh and shank IMU, live or offline.

    ``push`` returns the angles of every sample it could process (none while calibrating, then the whole
    buffer at once); ``finish`` ends the stream and raises CalibrationError if calibration never succeeded.
    """

    def __init__(self, side: str, rate_hz: float, leg_id: str = "", params: KneeParams | None = None,
                 orientation_factory: OrientationFactory | None = None,
                 recovery_factory: OrientationFactory | None = None,
                 calibration: KneeCalibration | None = None) -> None:
        """``calibration``: a known one (no standing needed; the filters start from the first rows and the
        relative heading converges from zero), e.g. the offline backward pass of ``sensorhub.kinematics.
        gap_repair``."""
        check_leg(side, rate_hz)
        self.side = side
        self.rate_hz = float(rate_hz)
        self.leg_id = leg_id or side
        self.params = params or KneeParams()
        self._factory = orientation_factory or default_orientation_factory
        self._buf: list[LegSamples] = []
        self._n_buffered = 0
        self._next_attempt = self._attempt_step()
        self._last_not_ready: str = "no data"
        self._calibration: KneeCalibration | None = calibration
        self.calibrated_t_s = math.nan  # time of the last sample the calibration was solved on
        self._filters: tuple[OrientationStream, OrientationStream] | None = None
        self._recovery_factory = recovery_factory or fast_orientation_factory
        self._recovery: list[OrientationStream | None] = [None, None]
        self._gap_run = 0
        self._blend_state = np.zeros((2, 4))
        self._hold = np.full((4, 3), np.nan)  # last valid thigh acc, thigh gyr, shank acc, shank gyr
        self._tail: LegSamples | None = None  # rows inside a gap that is still open
        self._state = np.zeros(_kernels.K_SIZE)
        self._loop_params = loop_params(self.params.heading, self.rate_hz, SIDE_SIGN[side])
        p = self.params
        self._fill_stats = np.zeros((4, 3))
        self._blend_params = np.array([
            max(1, round(p.gap_recovery_min_s * self.rate_hz)), math.radians(p.gap_recovery_agree_deg),
            p.gap_recovery_max_s * self.rate_hz, math.exp(-1.0 / (p.gap_recovery_fade_s * self.rate_hz)),
            max(1, round(0.25 * self.rate_hz)), max(1.0, GAP_RECOVERY_TAU_ACC_S * self.rate_hz)])
        self._rec_state = np.zeros(_kernels.R_SIZE)
        self._rec_params = recovery_params(p, self.rate_hz, SIDE_SIGN[side])
        self._finished = False
        self._motion: list[LegMotion] = []  # segment kinematics of the rows processed since the last step

    @property
    def lever_arms_m(self) -> FloatArray | None:
        """(2, 3) knee centre -> thigh sensor, knee centre -> shank sensor, in the sensor frames (m); None
        until enough turning rows have been seen (fitted on every clean row so far, see
        ``_kernels.recover_after_gaps``)."""
        cal = self._calibration
        if cal is None:
            return None
        state = self._rec_state.copy()  # a look must not change the stream's state
        _kernels.solve_lever_arms(state, self._rec_params, np.ascontiguousarray(cal.thigh_r_seg_to_sensor),
                                  np.ascontiguousarray(cal.shank_r_seg_to_sensor))
        if state[_kernels.R_LEVERS_OK] < 0.5:
            return None
        return state[_kernels.R_LEVERS:_kernels.R_LEVERS + 6].reshape(2, 3).copy()

    @property
    def calibration(self) -> KneeCalibration | None:
        return self._calibration

    @property
    def pending_reason(self) -> str:
        """While calibrating: what the last attempt still missed (the movement to do)."""
        return self._last_not_ready

    @property
    def heading_offset_rad(self) -> float:
        return float(self._state[_kernels.K_DELTA])

    def _attempt_step(self) -> int:
        return max(1, round(self.params.calibration.attempt_every_s * self.rate_hz))

    def push(self, samples: LegSamples) -> KneeAngles:
        return self.step(samples)[0]

    def finish(self) -> KneeAngles:
        """End of stream: a last calibration attempt on everything buffered, if still uncalibrated."""
        return self.finish_step()[0]

    def step(self, samples: LegSamples) -> tuple[KneeAngles, LegMotion]:
        """The angles of every row it could process, and those rows' segment kinematics (the event
        detector's input)."""
        angles = self._push(samples)
        return angles, self._take_motion(len(angles.t_s))

    def finish_step(self) -> tuple[KneeAngles, LegMotion]:
        """``finish``, and the segment kinematics of the rows it returned."""
        angles = self._finish()
        return angles, self._take_motion(len(angles.t_s))

    def _take_motion(self, n: int) -> LegMotion:
        parts, self._motion = self._motion, []
        motion = concat_motion(parts) if parts else empty_motion()
        if len(motion) != n:
            raise AssertionError(f"{self.leg_id}: {len(motion)} motion rows for {n} angle rows")
        return motion

    def _push(self, samples: LegSamples) -> KneeAngles:
        if self._finished:
            raise InputError("push after finish: create a new KneeEstimator for a new recording")
        n = len(samples)
        if n == 0:
            return _empty_angles(self.leg_id)
        if self._calibration is not None:
            return self._process(samples)
        self._buf.append(samples)
        self._n_buffered += n
        while self._next_attempt <= self._n_buffered:
            if self._try_calibrate(self._next_attempt):
                return self._process_buffer()
            self._next_attempt += self._attempt_step()
        if self._n_buffered > self.params.calibration.max_buffer_s * self.rate_hz:
            limit_s = self.params.calibration.max_buffer_s
            raise CalibrationError(f"no usable calibration after {limit_s:.0f} s: {self._last_not_ready}")
        return _empty_angles(self.leg_id)

    def _finish(self) -> KneeAngles:
        self._finished = True
        if self._calibration is not None:
            if self._tail is None:
                return _empty_angles(self.leg_id)
            tail = self._tail
            self._tail = None
            return self._process(tail, final=True)
        if self._n_buffered == 0:
            return _empty_angles(self.leg_id)
        if self._try_calibrate(self._n_buffered):
            return self._process_buffer(final=True)
        raise CalibrationError(self._last_not_ready)

    def _joined(self, n: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        def cat(name: str) -> FloatArray:
            return np.concatenate([getattr(s, name) for s in self._buf], axis=0)[:n]

        return cat("thigh_acc_m_s2"), cat("thigh_gyr_rad_s"), cat("shank_acc_m_s2"), cat("shank_gyr_rad_s")

    def _try_calibrate(self, n: int) -> bool:
        try:
            self._calibration = calibrate_knee(*self._joined(n), self.rate_hz, self.params.calibration)
        except CalibrationPendingError as exc:
            self._last_not_ready = str(exc)
            return False
        self.calibrated_t_s = float(np.concatenate([s.t_s for s in self._buf])[n - 1])
        return True

    def _process_buffer(self, final: bool = False) -> KneeAngles:
        joined = LegSamples.concat(self._buf, self.leg_id)
        self._buf = []
        return self._process(joined, initialise=True, final=final)

    def _orientations(self, gyr_t: FloatArray, acc_t: FloatArray, gyr_s: FloatArray, acc_s: FloatArray,
                      missing: np.ndarray) -> tuple[FloatArray, FloatArray, np.ndarray]:
        """Both sensors' orientations: the normal filters, and after each long gap the inclination of a
        recovery filter started fresh at the gap's end (it averages gravity over the first second of
        data after the gap instead of carrying the pre-gap state)."""
        assert self._filters is not None
        ends, self._gap_run = _gap_ends(missing, self._gap_run, int(self._blend_params[0]))
        out = []
        blend_w = np.zeros((2, gyr_t.shape[0]))
        for k, (gyr, acc) in enumerate(((gyr_t, acc_t), (gyr_s, acc_s))):
            q_slow = np.ascontiguousarray(self._filters[k].update(gyr, acc), dtype=np.float64)
            q_fast = q_slow.copy()
            bounds = [0, *ends, gyr.shape[0]]
            for a, b in itertools.pairwise(bounds):
                if a in ends:
                    self._recovery[k] = self._recovery_factory(self.rate_hz)
                rec = self._recovery[k]
                if rec is not None and b > a:
                    q_fast[a:b] = rec.update(gyr[a:b], acc[a:b])
            q = np.empty_like(q_slow)
            _kernels.blend_after_gaps(q_slow, q_fast, missing, self._blend_params, self._blend_state[k], q,
                                      blend_w[k])
            if self._blend_state[k, 0] == 0.0:
                self._recovery[k] = None  # recovered: the next long gap starts a new one
            out.append(q)
        return out[0], out[1], np.any(blend_w > 0.0, axis=0)

    def _process(self, samples: LegSamples, initialise: bool = False, final: bool = False) -> KneeAngles:
        """Run every row that is no longer inside an open gap: rows after the last complete row wait for
        the next valid sample so that the gap can be interpolated (or, at ``final``, held)."""
        names = ("thigh_acc_m_s2", "thigh_gyr_rad_s", "shank_acc_m_s2", "shank_gyr_rad_s")
        if self._tail is not None:
            samples = LegSamples.concat([self._tail, samples], self.leg_id)
            self._tail = None
        n_all = len(samples)
        complete = np.ones(n_all, dtype=np.bool_)
        for name in names:
            values = np.asarray(getattr(samples, name))
            if values.shape != (n_all, 3):
                raise InputError(f"{name} must have shape ({n_all}, 3), got {values.shape}")
            complete &= np.all(np.isfinite(values), axis=1)
        n = n_all
        if not final:
            done = np.flatnonzero(complete)
            n = int(done[-1]) + 1 if done.size else 0
            if n < n_all:
                self._tail = samples.slice(slice(n, n_all))
        if n == 0:
            return _empty_angles(self.leg_id)
        cal = self._calibration
        assert cal is not None
        missing = np.zeros(n, dtype=np.bool_)
        arrays: list[FloatArray] = []
        for k, name in enumerate(names):
            values = np.array(getattr(samples, name)[:n], dtype=np.float64, order="C")
            bridge_s = self.params.gap_gyr_stats_s if name.endswith("gyr_rad_s") else 0.0
            _kernels.fill_gaps(values, self._hold[k], missing, self._fill_stats[k], 1.0 / self.rate_hz,
                               bridge_s, int(self._blend_params[0]))
            arrays.append(values)
        acc_t, gyr_t, acc_s, gyr_s = arrays
        gyr_t = gyr_t - cal.thigh_gyr_bias_rad_s
        gyr_s = gyr_s - cal.shank_gyr_bias_rad_s
        if self._filters is None:
            self._filters = (self._factory(self.rate_hz), self._factory(self.rate_hz))
        q_t, q_s, blending = self._orientations(gyr_t, acc_t, gyr_s, acc_s, missing)
        if initialise and self.params.refine_axes:
            # The relative motion sees the knee alone (a segment's own rotation also holds its other joint),
            # but leans on the filters' relative heading from standing: turning or real axial rotation in
            # the calibration movement can throw it far off. Kept only if it stays near the first axes.
            refined = refine_axes(cal, q_t, q_s, gyr_t, gyr_s)
            used = refined.report.refinement_deg <= self.params.refine_max_deg
            report = replace(refined.report, refinement_used=used)
            cal = replace(refined if used else cal, report=report)
            self._calibration = cal
        c_t = np.ascontiguousarray(cal.thigh_r_seg_to_sensor)
        c_s = np.ascontiguousarray(cal.shank_r_seg_to_sensor)
        if initialise:
            # zero rotation at standing: the heading offset that aligns the flexion axes there (second half
            # of the standing window, after the filters settled)
            i0 = (cal.standing_start_index + cal.standing_end_index) // 2
            i1 = max(i0 + 1, cal.standing_end_index - int(0.25 * self.rate_hz))
            self._state[_kernels.K_DELTA] = initial_heading_offset(q_t[i0:i1], q_s[i0:i1], c_t, c_s)
        out = np.empty((n, 3))
        flags = np.empty(n, dtype=np.uint8)
        _kernels.knee_angles_loop(q_t, q_s, c_t, c_s, missing, self._loop_params, self._state, out, flags)
        _kernels.recover_after_gaps(out, acc_t, gyr_t, acc_s, gyr_s, missing, blending, c_t, c_s,
                                    self._rec_params, self._rec_state, flags)
        self._motion.append(LegMotion(q_t, q_s, acc_t, gyr_t, acc_s, gyr_s, missing, c_t, c_s))
        return KneeAngles(leg_id=self.leg_id, t_s=np.asarray(samples.t_s[:n], dtype=np.float64).copy(),
                          flexion_rad=out[:, 0].copy(), valgus_rad=out[:, 1].copy(),
                          rotation_rad=out[:, 2].copy(), quality=flags)


def empty_motion() -> LegMotion:
    rows = np.empty((0, 3))
    eye = np.eye(3)
    return LegMotion(np.empty((0, 4)), np.empty((0, 4)), rows, rows, rows, rows, np.empty(0, dtype=np.bool_),
                     eye, eye)


def concat_motion(parts: list[LegMotion]) -> LegMotion:
    """Rows of ``parts`` in order; the calibration frames of the last part that has rows."""
    parts = [p for p in parts if len(p)] or parts[-1:]
    if not parts:
        return empty_motion()
    if len(parts) == 1:
        return parts[0]
    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    return LegMotion(cat("q_thigh"), cat("q_shank"), cat("thigh_acc_m_s2"), cat("thigh_gyr_rad_s"),
                     cat("shank_acc_m_s2"), cat("shank_gyr_rad_s"), cat("missing"), parts[-1].thigh_frame,
                     parts[-1].shank_frame)


def _gap_ends(missing: np.ndarray, open_run: int, min_gap: int) -> tuple[list[int], int]:
    """Rows where a gap of >= min_gap rows ends (the first valid row after it), and the open run after."""
    ends = []
    run = open_run
    for i, m in enumerate(missing):
        if m:
            run += 1
        else:
            if run >= min_gap:
                ends.append(i)
            run = 0
    return ends, run


@dataclass(frozen=True, slots=True)
class KneeRun:
    """A whole recording through the knee estimator: the angles, the same rows' segment kinematics (the
    event detector's input) and the calibration."""

    angles: KneeAngles
    motion: LegMotion
    calibration: KneeCalibration


HYPEREXTENSION_LIMIT_DEG = 15.0  # a knee extends only a few degrees past its standing pose (flexion 0):
# a calibration with a wrong axis sign makes the flexion swing tens of degrees both ways instead
BENT_BOTH_WAYS_SHARE = 0.01  # of the samples further past standing than that: the calibration is wrong
_REDO = "record again with 3 s of quiet standing, then 3-5 slow knee bends"


def _bends_both_ways(how_much: str) -> str:
    return (f"the knee angles bend both ways ({how_much}; a knee extends at most about "
            f"{HYPEREXTENSION_LIMIT_DEG:.0f} deg past standing): the calibration took a wrong flexion axis; ")


def check_one_sided(*flexion_rad: FloatArray) -> None:
    """Offline, the whole recording is an independent check of the calibration: refuse angles whose 1st
    percentile extends further than ``HYPEREXTENSION_LIMIT_DEG`` past standing (hinge residual and axis
    spread cannot see a flipped sign: both are sign-blind)."""
    f = np.concatenate([np.asarray(x, dtype=np.float64) for x in flexion_rad])
    f = f[np.isfinite(f)]
    if f.size == 0:
        return
    least_deg = float(np.degrees(np.percentile(f, 100.0 * BENT_BOTH_WAYS_SHARE)))
    if least_deg < -HYPEREXTENSION_LIMIT_DEG:
        raise CalibrationError(_bends_both_ways(f"1 % of samples at {least_deg:.0f} deg or less") + _REDO)


class OneSidedWatch:
    """Live, the same check over consecutive windows of a calibrated leg's flexion: ``push`` raises
    CalibrationError (the leg is then calibrated again) when more than ``BENT_BOTH_WAYS_SHARE`` of a
    window's samples lie further than ``HYPEREXTENSION_LIMIT_DEG`` past standing."""

    __slots__ = ("_below", "_limit_rad", "_seen", "_window")

    def __init__(self, rate_hz: float, window_s: float = 20.0) -> None:
        self._window = max(1, round(window_s * rate_hz))
        self._limit_rad = -math.radians(HYPEREXTENSION_LIMIT_DEG)
        self._seen = 0
        self._below = 0

    def push(self, flexion_rad: FloatArray) -> None:
        f = np.asarray(flexion_rad)
        self._seen += int(np.count_nonzero(np.isfinite(f)))
        self._below += int(np.count_nonzero(f < self._limit_rad))
        if self._seen < self._window:
            return
        share = self._below / self._seen
        self._seen = self._below = 0
        if share > BENT_BOTH_WAYS_SHARE:
            raise CalibrationError(_bends_both_ways(f"{100.0 * share:.0f} % of the last samples past that") +
                                   "stand still 3 s, then do 3-5 slow knee bends to calibrate again")


def estimate_knee(samples: LegSamples, side: str, rate_hz: float, params: KneeParams | None = None,
                  orientation_factory: OrientationFactory | None = None,
                  recovery_factory: OrientationFactory | None = None) -> KneeRun:
    """Offline: the streaming estimator on the whole recording (one step, then finish)."""
    est = KneeEstimator(side, rate_hz, samples.leg_id, params, orientation_factory, recovery_factory)
    first, last = est.step(samples), est.finish_step()
    assert est.calibration is not None
    check_one_sided(first[0].flexion_rad, last[0].flexion_rad)
    return KneeRun(concat_angles([first[0], last[0]], est.leg_id), concat_motion([first[1], last[1]]),
                   est.calibration)


def estimate_knee_angles(samples: LegSamples, side: str, rate_hz: float, params: KneeParams | None = None,
                         orientation_factory: OrientationFactory | None = None,
                         recovery_factory: OrientationFactory | None = None,
                         ) -> tuple[KneeAngles, KneeCalibration]:
    """Offline: the angles and the calibration of ``estimate_knee``."""
    run = estimate_knee(samples, side, rate_hz, params, orientation_factory, recovery_factory)
    return run.angles, run.calibration


def warmup() -> None:
    """Compile (or load from numba's cache) every kinematics kernel, so that the first live samples do
    not wait for the JIT. Call at start-up, next to ``sensorhub.orientation.warmup()``."""
    q = np.zeros((2, 4))
    q[:, 0] = 1.0
    eye = np.eye(3)
    missing = np.zeros(2, dtype=np.bool_)
    values = np.zeros((2, 3))
    values[1] = np.nan
    _kernels.fill_gaps(values, np.zeros(3), missing, np.zeros(3), 0.01, 1.0, 1)
    blend_state = np.zeros(4)
    _kernels.blend_after_gaps(q, q, missing, np.array([1.0, 0.01, 10.0, 0.9, 1.0, 1.0]), blend_state,
                              np.empty((2, 4)), np.zeros(2))
    params = loop_params(HeadingParams(), 100.0, 1.0)
    _kernels.knee_angles_loop(q, q, eye, eye, missing, params, np.zeros(_kernels.K_SIZE), np.empty((2, 3)),
                              np.empty(2, dtype=np.uint8))
    rec_params = recovery_params(KneeParams(), 100.0, 1.0)
    acc = np.zeros((2, 3))
    _kernels.recover_after_gaps(np.zeros((2, 3)), acc, acc, acc, acc, missing, missing, eye, eye, rec_params,
                                np.zeros(_kernels.R_SIZE), np.zeros(2, dtype=np.uint8))
    gyr = np.ones((3, 3))
    _kernels.hinge_residuals(gyr, gyr, np.zeros(4))
    _kernels.decompose_knee(eye, 1.0)
