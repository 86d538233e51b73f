"""Sensor-to-segment calibration from the recording itself: quiet standing, then knee bends or gait.

What is observable, and used:
- quiet standing: each sensor's gravity direction is its segment's z axis (segments are vertical in the
  standing pose, by the definition of the zero pose), and the mean gyroscope reading is its bias;
- knee bends, walking or jogging: the knee's flexion axis in each sensor frame, j1 (thigh) and j2
  (shank), the segment's y axis made orthogonal to z. Two independent estimates per segment:
  * gyroscope: the dominant rotation axis orthogonal to z (bends and gait turn both segments mostly about
    their flexion axes);
  * inclination: each segment tilts forward and back in its sagittal plane, so the gravity direction seen
    by the sensor (from its own 6-axis filter: drift-free) moves along the segment's x axis; the flexion
    axis is orthogonal to that movement. Turning about the vertical and axial rotation do not move it.
  They must agree (both wrong the same way would need the segment to tilt mainly about the axis it
  rotates about least): a disagreement refuses the calibration with the movement to redo.
The signs follow from flexion being one-sided (a knee bends one way from the standing pose), judged on
the inclination-based flexion (thigh and shank pitch in their sagittal planes: no drift, no heading).
(T. Seel, J. Raisch, T. Schauer, "IMU-based joint angle measurement for gait analysis", Sensors 14, 2014
give the hinge residual reported with every calibration.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from sensorhub.conventions import DEG_PER_RAD, GRAVITY_M_S2
from sensorhub.errors import CalibrationError
from sensorhub.kinematics import _kernels
from sensorhub.model import FloatArray


@dataclass(frozen=True, slots=True)
class CalibrationParams:
    """Thresholds of the automatic calibration (units in the names)."""

    standing_min_s: float = 2.0  # the design asks for >= 3 s; accept a little less before refusing
    steady_deg: float = 6.0  # gravity directions must stay this steady over the standing window (sway and
    # weight shifts stay within a few degrees; a held squat or lunge is tens of degrees away)
    still_gyr_rad_s: float = 0.35  # above this either sensor is moving (bias of cheap gyros stays below)
    still_acc_dev_m_s2: float = 1.5  # | |acc| - g | above this: moving
    motion_min_gyr_rad_s: float = 0.25  # samples quieter than this carry no axis information
    cycle_rise_deg: float = 20.0  # a flexion cycle swings up this far from its low point and back down
    min_flexion_cycles: int = 3
    max_axis_spread_deg: float = 6.0  # agreement of the axes fitted on separate thirds of the motion
    max_axis_disagreement_deg: float = 15.0  # gyroscope vs inclination flexion axis, per segment
    min_tilt_deg: float = 10.0  # rms sagittal tilt a segment needs for its inclination axis to count
    max_relative_residual: float = 0.6  # rms hinge residual / rms flexion rate
    min_sign_contrast: float = 1.5  # one-sidedness of the chosen axis signs over the alternative
    attempt_every_s: float = 1.0
    max_fit_samples: int = 3000
    max_buffer_s: float = 180.0


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    standing_s: float
    motion_s: float
    n_flexion_cycles: int
    flexion_range_deg: float
    residual_rms_rad_s: float
    relative_residual: float
    axis_spread_deg: float
    n_fit_samples: int
    refinement_deg: float = 0.0  # how far the knee-relative refinement moved the flexion axes
    axis_disagreement_deg: float = 0.0  # gyroscope vs inclination flexion axis (worse segment)
    refinement_used: bool = False  # the refinement is kept only when it agrees with the first axes
    least_flexion_deg: float = 0.0  # 1st percentile of the inclination flexion over the movement (reported
    # only: with hip rotation in gait the pitch difference strays 20 deg from the knee angle on good data)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "standing_s": self.standing_s,
            "motion_s": self.motion_s,
            "n_flexion_cycles": self.n_flexion_cycles,
            "flexion_range_deg": self.flexion_range_deg,
            "residual_rms_rad_s": self.residual_rms_rad_s,
            "relative_residual": self.relative_residual,
            "axis_spread_deg": self.axis_spread_deg,
            "n_fit_samples": self.n_fit_samples,
            "refinement_deg": self.refinement_deg,
            "axis_disagreement_deg": self.axis_disagreement_deg,
            "refinement_used": int(self.refinement_used),
            "least_flexion_deg": self.least_flexion_deg,
        }


@dataclass(frozen=True, slots=True)
class KneeCalibration:
    """Rotations segment -> sensor (columns: segment x, y, z in sensor coordinates) and gyroscope biases."""

    thigh_r_seg_to_sensor: FloatArray
    shank_r_seg_to_sensor: FloatArray
    thigh_gyr_bias_rad_s: FloatArray
    shank_gyr_bias_rad_s: FloatArray
    standing_start_index: int
    standing_end_index: int  # first sample of the motion after the quiet standing
    end_index: int  # the calibration used samples [0, end_index)
    report: CalibrationReport


def _finite_rows(a: FloatArray) -> np.ndarray:
    return np.all(np.isfinite(a), axis=1)


def _sustained_motion(thigh_acc_m_s2: FloatArray, thigh_gyr_rad_s: FloatArray, shank_acc_m_s2: FloatArray,
                      shank_gyr_rad_s: FloatArray, rate_hz: float, params: CalibrationParams) -> np.ndarray:
    moving = np.zeros(thigh_acc_m_s2.shape[0], dtype=bool)
    for acc, gyr in ((thigh_acc_m_s2, thigh_gyr_rad_s), (shank_acc_m_s2, shank_gyr_rad_s)):
        with np.errstate(invalid="ignore"):
            m = (np.linalg.norm(gyr, axis=1) > params.still_gyr_rad_s) | (
                np.abs(np.linalg.norm(acc, axis=1) - GRAVITY_M_S2) > params.still_acc_dev_m_s2)
        moving |= m & _finite_rows(acc) & _finite_rows(gyr)
    # sustained: at least half of the next 0.1 s moves (a single spike is not the start of the motion)
    win = max(1, round(0.1 * rate_hz))
    counts = np.convolve(moving.astype(np.float64), np.ones(win), mode="full")[win - 1:]
    return np.asarray(moving & (counts >= 0.5 * win))


def _steady_since(thigh_acc_m_s2: FloatArray, shank_acc_m_s2: FloatArray, start: int, end: int,
                  rate_hz: float, params: CalibrationParams) -> int:
    """First index of the quiet window [start, end) from which both gravity directions stay within
    ``steady_deg`` of those of its last 0.5 s: a quiet pause in another posture (a squat held before
    standing up) is not part of the standing pose."""
    first = start
    cos_lim = math.cos(math.radians(params.steady_deg))
    win = max(1, round(0.1 * rate_hz))
    for acc in (thigh_acc_m_s2, shank_acc_m_s2):
        a = np.array(acc[start:end], dtype=np.float64)
        fin = _finite_rows(a)
        tail = fin.copy()
        tail[: max(0, a.shape[0] - max(1, round(0.5 * rate_hz)))] = False
        use = tail if np.any(tail) else fin
        if not np.any(use):
            continue
        ref_vec = np.mean(a[use], axis=0)
        a[~fin] = ref_vec  # a missing sample says nothing against steadiness
        ref = _unit(ref_vec)
        smooth = np.cumsum(np.vstack([np.zeros((1, 3)), a]), axis=0)
        smooth = (smooth[win:] - smooth[:-win]) / win  # moving mean over 0.1 s
        cosines = (smooth @ ref) / np.maximum(np.linalg.norm(smooth, axis=1), 1e-9)
        off = np.flatnonzero(cosines < cos_lim)
        if off.size:
            first = max(first, start + int(off[-1]) + win)
    return first


def find_standing(thigh_acc_m_s2: FloatArray, thigh_gyr_rad_s: FloatArray, shank_acc_m_s2: FloatArray,
                  shank_gyr_rad_s: FloatArray, rate_hz: float,
                  params: CalibrationParams) -> tuple[int, int, int] | str:
    """The first quiet standing period of >= standing_min_s that is followed by motion:
    (start, end, motion onset) indices, or a message saying what is missing. Fidgeting before it is
    skipped (the design asks recordings to start with standing; real ones sometimes do not quite)."""
    active = _sustained_motion(thigh_acc_m_s2, thigh_gyr_rad_s, shank_acc_m_s2, shank_gyr_rad_s, rate_hz,
                               params)
    n = active.shape[0]
    onsets = np.flatnonzero(active & ~np.concatenate(([False], active[:-1])))  # first sample of each motion
    settle = round(0.2 * rate_hz)  # the first samples after switching on
    margin = round(0.25 * rate_hz)  # the last instants before motion are often not still
    quiet_start = 0
    longest_s = 0.0  # the longest quiet, steady stretch before a movement
    for onset in onsets:
        start = quiet_start + (settle if quiet_start == 0 else margin)
        end = onset - margin
        if (end - start) / rate_hz >= params.standing_min_s:
            start = _steady_since(thigh_acc_m_s2, shank_acc_m_s2, int(start), int(end), rate_hz, params)
        if (end - start) / rate_hz >= params.standing_min_s:
            return int(start), int(end), int(onset)
        longest_s = max(longest_s, (end - start) / rate_hz)
        rest = np.flatnonzero(~active[onset:])
        if rest.size == 0:
            break
        quiet_start = int(onset + rest[0])
    before = (f"the movement so far had no quiet, steady standing of at least {params.standing_min_s:.0f} s "
              f"before it (longest {longest_s:.1f} s, gravity steady within {params.steady_deg:.0f} deg)")
    if onsets.size == 0:
        return ("no movement after the standing period yet: do 3-5 slow knee bends (or walk for 10 s) "
                "after standing still")
    if not active[-1] and (n - quiet_start) / rate_hz >= params.standing_min_s:
        return (f"no movement after the last standing period yet ({before}): do 3-5 slow knee bends (or "
                "walk for 10 s) after standing still")
    return f"{before}: stand still for at least 3 s before moving, then do 3-5 slow knee bends"


def _unit(v: FloatArray) -> FloatArray:
    return np.asarray(v / np.linalg.norm(v), dtype=np.float64)


def _spherical(v: FloatArray) -> tuple[float, float]:
    u = _unit(v)
    return math.asin(max(-1.0, min(1.0, float(u[2])))), math.atan2(float(u[1]), float(u[0]))


def _axis_from(phi: float, theta: float) -> FloatArray:
    return np.array([math.cos(phi) * math.cos(theta), math.cos(phi) * math.sin(theta), math.sin(phi)])


def fit_flexion_axes(thigh_gyr_rad_s: FloatArray, shank_gyr_rad_s: FloatArray,
                     prior_weight: float = 0.02, max_iter: int = 60) -> tuple[FloatArray, FloatArray, float]:
    """Seel's joint-axis fit from two gyroscopes: (j1 thigh frame, j2 shank frame, rms residual rad/s).

    Starts from the dominant rotation axis of each gyroscope plus a few spread-out guesses and keeps the
    best local optimum. Signs are arbitrary here."""
    g1 = np.ascontiguousarray(thigh_gyr_rad_s, dtype=np.float64)
    g2 = np.ascontiguousarray(shank_gyr_rad_s, dtype=np.float64)
    starts: list[tuple[FloatArray, FloatArray]] = []
    e1 = np.linalg.eigh(g1.T @ g1)[1]
    e2 = np.linalg.eigh(g2.T @ g2)[1]
    # Planar motion where both segments turn about the flexion axis at proportional rates (a squat) makes
    # the hinge constraint degenerate (a valley of equally good axes). A weak prior towards each gyroscope's
    # dominant rotation axis picks the right point of that valley and barely moves a well-posed fit:
    # two pseudo-samples whose residual is weight * sin(angle between j and that axis).
    ms = float(np.mean(np.sum(g1 * g1, axis=1) + np.sum(g2 * g2, axis=1))) * 0.5
    s = math.sqrt(prior_weight * g1.shape[0] * ms)
    g1 = np.vstack([g1, s * e1[:, 2][None, :], np.zeros((1, 3))])
    g2 = np.vstack([g2, np.zeros((1, 3)), s * e2[:, 2][None, :]])
    starts.append((e1[:, 2], e2[:, 2]))
    starts.append((e1[:, 1], e2[:, 1]))
    for d in (np.array([1.0, 0.2, 0.1]), np.array([0.1, 1.0, 0.2]), np.array([0.2, 0.1, 1.0])):
        starts.append((d, d))
        starts.append((d, e2[:, 2]))
    best: tuple[float, np.ndarray] | None = None
    for a, b in starts:
        p0 = np.array([*_spherical(a), *_spherical(b)])
        p, cost = _kernels.fit_hinge_axes(g1, g2, p0, max_iter)
        if best is None or cost < best[0]:
            best = (cost, p)
    assert best is not None
    cost, p = best
    return _axis_from(p[0], p[1]), _axis_from(p[2], p[3]), math.sqrt(cost)


def dominant_axis(gyr_rad_s: FloatArray, z_sensor: FloatArray) -> FloatArray:
    """The segment's dominant rotation axis orthogonal to its vertical z (sign arbitrary).

    During bends and gait both segments turn mostly about the flexion axis, which is horizontal in the
    standing pose; rotations about z (axial rotation, turning) are removed by the projection, and rotations
    uncorrelated with flexion only add spread orthogonal to the principal direction."""
    z = _unit(z_sensor)
    proj = np.eye(3) - np.outer(z, z)
    g = gyr_rad_s @ proj
    vecs = np.linalg.eigh(g.T @ g)[1]
    return _unit(vecs[:, 2] - float(vecs[:, 2] @ z) * z)


def hinge_residual_rms(thigh_gyr_rad_s: FloatArray, shank_gyr_rad_s: FloatArray, j1: FloatArray,
                       j2: FloatArray) -> float:
    """Seel's hinge residual |w1 x j1| - |w2 x j2| (rms, rad/s): how hinge-like the movement was."""
    params = np.array([*_spherical(j1), *_spherical(j2)])
    r = _kernels.hinge_residuals(np.ascontiguousarray(thigh_gyr_rad_s), np.ascontiguousarray(shank_gyr_rad_s),
                                 params)
    return float(np.sqrt(np.mean(r * r)))


def segment_frame(z_sensor: FloatArray, axis_sensor: FloatArray) -> FloatArray:
    """Segment -> sensor rotation from the segment z (up) and its flexion axis (roughly y, left)."""
    z = _unit(z_sensor)
    y = axis_sensor - float(axis_sensor @ z) * z
    y = _unit(y)
    x = np.cross(y, z)
    return np.column_stack((x, y, z))


def gravity_directions(acc_m_s2: FloatArray, gyr_rad_s: FloatArray, rate_hz: float) -> FloatArray:
    """Unit "up" in the sensor frame per sample, from the sensor's own 6-axis filter (gyroscope bias
    removed by the caller): drift-free, and blind to turning about the vertical. NaN rows are bridged."""
    from sensorhub.orientation import estimate  # lazy: calibration loads without the filter

    q = estimate(np.ascontiguousarray(gyr_rad_s), np.ascontiguousarray(acc_m_s2), rate_hz)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    # third row of the sensor -> earth rotation matrix: earth z seen in the sensor frame
    return np.column_stack((2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)))


def inclination_axis(up_sensor: FloatArray, z_sensor: FloatArray) -> tuple[FloatArray, float]:
    """The flexion axis from how the segment tilts: the up direction's movement in the plane orthogonal to
    the standing z is along the segment's x axis (sagittal tilt), the axis is z cross x. Also the rms tilt
    (deg) that the estimate rests on."""
    z = _unit(z_sensor)
    h = up_sensor - np.outer(up_sensor @ z, z)
    vals, vecs = np.linalg.eigh(h.T @ h)
    x = _unit(vecs[:, 2] - float(vecs[:, 2] @ z) * z)
    tilt_deg = math.degrees(math.asin(min(1.0, math.sqrt(max(0.0, float(vals[2])) / max(1, h.shape[0])))))
    return _unit(np.cross(z, x)), tilt_deg


def pitch_deg(up_sensor: FloatArray, frame: FloatArray) -> FloatArray:
    """Tilt of the segment about its y axis (deg, + = its top forward), from "up" in the sensor frame."""
    up = up_sensor @ frame  # in segment coordinates
    return np.asarray(np.degrees(np.arctan2(-up[:, 0], up[:, 2])), dtype=np.float64)


def count_flexion_cycles(flexion_rad: FloatArray, rate_hz: float, params: CalibrationParams) -> int:
    """Bends / strides: swings of the flexion up by >= cycle_rise_deg from the lowest point since the last
    swing, each counted once it has come back down by as much (hysteresis on the swing itself: a running
    stride never returns to the standing knee, and slow drift does not add cycles)."""
    f = flexion_rad[np.isfinite(flexion_rad)] * DEG_PER_RAD
    step = max(1, int(rate_hz // 50))  # 50 Hz is plenty to count cycles
    n = 0
    rising = True
    lo = hi = float(f[0]) if f.size else 0.0
    for v in f[::step]:
        if rising:
            lo = min(lo, v)
            if v - lo >= params.cycle_rise_deg:
                rising, hi = False, v
        else:
            hi = max(hi, v)
            if hi - v >= params.cycle_rise_deg:
                n += 1
                rising, lo = True, v
    return n


def _angle_deg(a: FloatArray, b: FloatArray) -> float:
    c = float(np.clip(abs(_unit(a) @ _unit(b)), -1.0, 1.0))
    return math.degrees(math.acos(c))


class CalibrationPendingError(CalibrationError):
    """Not enough movement yet; the streaming estimator keeps buffering (the message says what's missing)."""


def calibrate_knee(thigh_acc_m_s2: FloatArray, thigh_gyr_rad_s: FloatArray, shank_acc_m_s2: FloatArray,
                   shank_gyr_rad_s: FloatArray, rate_hz: float,
                   params: CalibrationParams | None = None) -> KneeCalibration:
    """Calibrate both segments from standing + bends/gait (NaN rows allowed).

    Raises CalibrationPendingError while the data is still insufficient or inconsistent (no standing
    followed by motion yet, too few bends, axes that disagree); its message says what to do."""
    p = params or CalibrationParams()
    dt_s = 1.0 / rate_hz
    found = find_standing(thigh_acc_m_s2, thigh_gyr_rad_s, shank_acc_m_s2, shank_gyr_rad_s, rate_hz, p)
    if isinstance(found, str):
        raise CalibrationPendingError(found)
    start, stand_end, onset = found
    standing_s = (stand_end - start) * dt_s
    sl = slice(start, stand_end)
    valid = (_finite_rows(thigh_acc_m_s2[sl]) & _finite_rows(thigh_gyr_rad_s[sl])
             & _finite_rows(shank_acc_m_s2[sl]) & _finite_rows(shank_gyr_rad_s[sl]))
    if np.count_nonzero(valid) < 0.5 * (stand_end - start):
        raise CalibrationError("more than half of the standing period is missing samples: check that both "
                               "sensors stream, then record again (stand still 3 s, then 3-5 knee bends)")
    z_t = _unit(np.mean(thigh_acc_m_s2[sl][valid], axis=0))
    z_s = _unit(np.mean(shank_acc_m_s2[sl][valid], axis=0))
    bias_t = np.mean(thigh_gyr_rad_s[sl][valid], axis=0)
    bias_s = np.mean(shank_gyr_rad_s[sl][valid], axis=0)

    g1 = thigh_gyr_rad_s[onset:] - bias_t
    g2 = shank_gyr_rad_s[onset:] - bias_s
    ok = _finite_rows(g1) & _finite_rows(g2) & _finite_rows(thigh_acc_m_s2[onset:]) & _finite_rows(
        shank_acc_m_s2[onset:])
    motion_s = float(np.count_nonzero(ok)) * dt_s
    g1z = np.where(ok[:, None], g1, 0.0)
    g2z = np.where(ok[:, None], g2, 0.0)
    informative = ok & ((np.linalg.norm(g1z, axis=1) > p.motion_min_gyr_rad_s)
                        | (np.linalg.norm(g2z, axis=1) > p.motion_min_gyr_rad_s))
    idx = np.flatnonzero(informative)
    if idx.size < int(1.0 * rate_hz):
        raise CalibrationPendingError("not enough movement yet: do 3-5 slow knee bends (or walk for 10 s)")
    if idx.size > p.max_fit_samples:
        idx = idx[np.linspace(0, idx.size - 1, p.max_fit_samples).astype(np.int64)]
    j1 = dominant_axis(g1z[idx], z_t)
    j2 = dominant_axis(g2z[idx], z_s)

    # inclination of each segment from its own filter, run from the standing start (converged there)
    motion = slice(onset - start, None)
    up_t = gravity_directions(thigh_acc_m_s2[start:], thigh_gyr_rad_s[start:] - bias_t, rate_hz)[motion][ok]
    up_s = gravity_directions(shank_acc_m_s2[start:], shank_gyr_rad_s[start:] - bias_s, rate_hz)[motion][ok]
    disagreement = 0.0
    for name, j, up, z in (("thigh", j1, up_t, z_t), ("shank", j2, up_s, z_s)):
        j_incl, tilt_deg = inclination_axis(up, z)
        if tilt_deg >= p.min_tilt_deg:
            off = _angle_deg(j, j_incl)
            disagreement = max(disagreement, off)
            if off > p.max_axis_disagreement_deg:
                raise CalibrationPendingError(
                    f"the {name} sensor's flexion axis from its rotation and from its tilt disagree by "
                    f"{off:.0f} deg (limit {p.max_axis_disagreement_deg:.0f}): the sensor may be loose or "
                    "the movement not a knee bend; strap the sensors tight, stand still 3 s, then do 3-5 "
                    "slow knee bends in place (or walk straight for 10 s)")

    # signs: the knee bends one way from the standing pose. Of the two relative signs the right one makes
    # the flexion (shank pitch - thigh pitch, drift-free) one-sided; the wrong one gives their sum, which
    # swings both ways in gait and stays the smaller in bends (thigh and shank tilt opposite ways there)
    options: list[tuple[float, float, FloatArray, FloatArray, FloatArray]] = []
    pitch_t = pitch_deg(up_t, segment_frame(z_t, j1))
    pitch_s = pitch_deg(up_s, segment_frame(z_s, j2))
    for s_rel in (1.0, -1.0):
        flexion_deg = s_rel * pitch_s - pitch_t
        lo, hi = np.percentile(flexion_deg, [1.0, 99.0])
        sign = 1.0 if hi + lo >= 0 else -1.0
        options.append((abs(hi + lo), sign, sign * j1, sign * s_rel * j2, sign * flexion_deg))
    options.sort(key=lambda o: -o[0])
    if options[0][0] < p.min_sign_contrast * options[1][0]:
        raise CalibrationPendingError(
            "the movement does not show which way the knee bends (thigh and shank must both move): "
            "do 3-5 slow standing knee bends (squats) or walk for 10 s")
    _, _, j1, j2, flexion_deg = options[0]
    n_cycles = count_flexion_cycles(np.radians(flexion_deg), rate_hz, p)
    lo, hi = np.percentile(flexion_deg, [1.0, 99.0])
    residual = hinge_residual_rms(g1z[idx], g2z[idx], j1, j2)
    flex_rate = (g2z[idx] @ j2 - g1z[idx] @ j1)
    rel_res = residual / max(1e-9, float(np.sqrt(np.mean(flex_rate ** 2))))

    c_t = segment_frame(z_t, j1)
    c_s = segment_frame(z_s, j2)
    spread = 0.0
    for block in np.array_split(idx, 3):
        if block.size < 50:
            continue
        spread = max(spread, _angle_deg(dominant_axis(g1z[block], z_t), j1),
                     _angle_deg(dominant_axis(g2z[block], z_s), j2))

    report = CalibrationReport(
        standing_s=standing_s, motion_s=motion_s, n_flexion_cycles=n_cycles,
        flexion_range_deg=float(hi - lo), residual_rms_rad_s=residual,
        relative_residual=rel_res, axis_spread_deg=spread, n_fit_samples=int(idx.size),
        axis_disagreement_deg=disagreement, least_flexion_deg=float(lo))
    if n_cycles < p.min_flexion_cycles:
        raise CalibrationPendingError(
            f"no knee bends found after standing ({n_cycles} flexion cycles of >= "
            f"{p.cycle_rise_deg:.0f} deg, need {p.min_flexion_cycles}): do 3-5 slow knee bends or walk "
            "for 10 s after standing still")
    if spread > p.max_axis_spread_deg or rel_res > p.max_relative_residual:
        raise CalibrationPendingError(
            f"the knee axis calibration is unreliable (axis spread {spread:.1f} deg, limit "
            f"{p.max_axis_spread_deg:.0f}; relative residual {rel_res:.2f}, "
            f"limit {p.max_relative_residual}): "
            "redo 3-5 slow, deep knee bends with the feet flat and the sensors strapped tight")
    return KneeCalibration(
        thigh_r_seg_to_sensor=c_t, shank_r_seg_to_sensor=c_s,
        thigh_gyr_bias_rad_s=bias_t, shank_gyr_bias_rad_s=bias_s,
        standing_start_index=start, standing_end_index=onset, end_index=int(thigh_acc_m_s2.shape[0]),
        report=report)


def refine_axes(cal: KneeCalibration, q_thigh: FloatArray, q_shank: FloatArray, thigh_gyr_rad_s: FloatArray,
                shank_gyr_rad_s: FloatArray, min_rate_rad_s: float = 0.25,
                iterations: int = 10) -> KneeCalibration:
    """Re-estimate both flexion axes from the knee's own motion: the angular velocity of the shank relative
    to the thigh (from the two orientation filters, their relative heading set by the current axes in
    the standing window), expressed in each sensor frame. A segment's own rotation also contains its
    other joint (the ankle moves the shank in a squat, about an oblique axis); the relative rotation is
    the knee's alone. The heading depends on the axes, so this is a fixed-point iteration; it contracts
    because the heading error enters only through the thigh's share of the motion.

    Inputs cover samples [0, n) with n >= cal.end_index (gaps filled, gyroscopes bias-free); only samples up
    to ``cal.end_index`` are used, so the result does not depend on what arrived later."""
    from sensorhub.kinematics.heading import initial_heading_offset
    from sensorhub.kinematics.joint_angles import quat_to_matrix, rot_z

    a, b = cal.standing_end_index, cal.end_index
    mid = (cal.standing_start_index + cal.standing_end_index) // 2
    stand = slice(mid, max(mid + 1, cal.standing_end_index - 1))
    r_t = quat_to_matrix(q_thigh[a:b])
    r_s = quat_to_matrix(q_shank[a:b])
    w_t = np.einsum("nij,nj->ni", r_t, thigh_gyr_rad_s[a:b])  # earth frame of the thigh filter
    w_s = np.einsum("nij,nj->ni", r_s, shank_gyr_rad_s[a:b])  # earth frame of the shank filter
    c_t, c_s = cal.thigh_r_seg_to_sensor, cal.shank_r_seg_to_sensor
    z_t, z_s = c_t[:, 2], c_s[:, 2]
    for _ in range(iterations):
        delta = initial_heading_offset(q_thigh[stand], q_shank[stand], c_t, c_s)
        rz = rot_z(delta)
        w_rel = w_s @ rz.T - w_t
        ok = np.linalg.norm(w_rel, axis=1) > min_rate_rad_s
        if np.count_nonzero(ok) < 50:
            return cal
        rel_t = np.einsum("nji,nj->ni", r_t[ok], w_rel[ok])
        rel_s = np.einsum("nji,nj->ni", r_s[ok], w_rel[ok] @ rz)
        j1 = dominant_axis(rel_t, z_t)
        j2 = dominant_axis(rel_s, z_s)
        j1 = j1 if j1 @ c_t[:, 1] >= 0 else -j1
        j2 = j2 if j2 @ c_s[:, 1] >= 0 else -j2
        c_t, c_s = segment_frame(z_t, j1), segment_frame(z_s, j2)
    moved = max(_angle_deg(c_t[:, 1], cal.thigh_r_seg_to_sensor[:, 1]),
                _angle_deg(c_s[:, 1], cal.shank_r_seg_to_sensor[:, 1]))
    report = replace(cal.report, refinement_deg=moved)
    return replace(cal, thigh_r_seg_to_sensor=c_t, shank_r_seg_to_sensor=c_s, report=report)


__all__ = [
    "CalibrationParams",
    "CalibrationPendingError",
    "CalibrationReport",
    "KneeCalibration",
    "calibrate_knee",
    "count_flexion_cycles",
    "find_standing",
    "fit_flexion_axes",
    "refine_axes",
    "segment_frame",
]
