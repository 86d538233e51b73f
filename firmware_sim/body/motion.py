"""``simulate`` / ``session`` build drills; ``Motion`` evaluates them at any time (poses, ideal IMU, truth).

Ideal IMU signals are exact (no finite differences): every pose carries analytic first and second time
derivatives (``jets``). Gyro = angular velocity of the sensor frame expressed in the sensor frame
(2 q* dq/dt of q_sensor = q_segment ⊗ q_wobble ⊗ q_mount). Accelerometer = R_sensor^T (d2p/dt2 + g z),
p the sensor's position, g = 9.80665 m/s^2 (at rest: +g along the sensor's up direction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sensorhub.conventions import DEG_PER_RAD, GRAVITY_M_S2, SEGMENTS, SIDES

from ..exceptions import FirmwareSimError
from . import drills as dr
from . import jets as jt
from .contact import Air, Stance
from .jets import FloatArray, Quat, Vec
from .mount import Mount
from .rotations import quat_conjugate, rotate
from .skeleton import Body, Geometry, LegState, Sway
from .style import Style
from .truth import complete_events
from .wobble import Wobble

DRILLS = (
    "standing",
    "calibration_bends",
    "squat",
    "step_down",
    "lunge",
    "cmj",
    "drop_jump",
    "cut_45",
    "cut_90",
    "walk",
    "jog",
    "tuck_jump",
    "hop",
    "cut",
    "jog_curves",
)
"""Drill names (used everywhere: CLI, recordings, tests)."""

CALIBRATIONS = ("bends", "walk", "jog")
"""Calibration movements ``session`` can put after the first standing (besides none)."""
QUIET_START_S = 3.0  # the recording's first seconds are quiet standing (the analyze input contract)


class SimulationError(FirmwareSimError):
    """Bad simulate()/session() arguments (the message lists the allowed values)."""


class Motion:
    """A simulated drill: smooth kinematics of both legs, evaluable at any time, with its ground truth.

    Both legs are always simulated; ``sides`` are the legs the caller asked for (events are reported for
    those). Segments: ``"thigh"``, ``"shank"``. Times in seconds from the start of the recording (the
    athlete stands still in the calibration pose from t = 0 for at least ``standing_s``).
    """

    def __init__(
        self,
        drill: str,
        sides: tuple[str, ...],
        seed: int,
        body: Body,
        duration_s: float,
        skeleton_events: list[dict[str, Any]],
        gait_events: list[dict[str, Any]],
        curves: list[tuple[float, float, float]] | None = None,
    ) -> None:
        self.drill = drill
        self.sides = sides
        self.seed = seed
        self.duration_s = duration_s
        self._body = body
        self._wobble = {(s, g): Wobble.for_sensor(seed, s, g) for s in SIDES for g in SEGMENTS}
        self.impacts_by_side: dict[str, list[tuple[float, float]]] = {}
        for side, leg in body.legs.items():
            self.impacts_by_side[side] = [
                (p.t0_s, float(np.linalg.norm(p.v_in_m_s)))
                for p in leg.phases
                if isinstance(p, Stance) and p.impact_s > 0.0
            ]
        self.gait_events = gait_events
        self.curves = list(curves or [])  # jogging curves: (start, end, heading change deg; + = left)
        self.events: list[dict[str, Any]] = complete_events(self, skeleton_events)

    # ---- truth --------------------------------------------------------------------------------------
    @property
    def impacts_s(self) -> list[float]:
        """Initial-contact times with an impact (landings, foot strikes) of the simulated sides, sorted."""
        return sorted({t for side in self.sides for t, _ in self.impacts_by_side[side]})

    def truth_angles_deg(self, side: str, t_s: FloatArray) -> FloatArray:
        """(N, 3) knee flexion, valgus, rotation in degrees (bone angles, Grood & Suntay)."""
        t = self._times(t_s)
        leg = self._body.legs[self._side(side)]
        return (
            np.stack([leg.coordinate(n, t).v for n in ("flexion", "valgus", "rotation")], axis=-1)
            * DEG_PER_RAD
        )

    def contact_phases(self, side: str) -> list[tuple[float, float]]:
        """Stance intervals (initial contact, take-off) of one leg; the first starts at -inf, the last
        ends at +inf."""
        leg = self._body.legs[self._side(side)]
        return [(p.t0_s, p.t1_s) for p in leg.phases if isinstance(p, Stance)]

    def flights(self, side: str) -> list[tuple[float, float]]:
        """Ballistic flight intervals (take-off, initial contact) of one leg (jumps, drops)."""
        leg = self._body.legs[self._side(side)]
        return [(p.t0_s, p.t1_s) for p in leg.phases if isinstance(p, Air) and p.kind == "ballistic"]

    # ---- kinematics ---------------------------------------------------------------------------------
    def _state(self, side: str, t_s: FloatArray) -> LegState:
        return self._body.state(self._side(side), self._times(t_s))

    @staticmethod
    def _segment(state: LegState, segment: str) -> tuple[Quat, Vec]:
        if segment == "thigh":
            return state.posture.q_thigh, state.hip
        if segment == "shank":
            return state.posture.q_shank, state.knee
        raise SimulationError(f"segment must be one of {SEGMENTS}, got {segment!r}")

    def segment_pose(self, side: str, segment: str, t_s: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(quat segment -> earth (N, 4), segment origin in earth (N, 3) m). Origins: hip centre (thigh),
        knee centre (shank)."""
        q, p = self._segment(self._state(side, t_s), segment)
        return jt.values(q), jt.values(p)

    def joint_positions(self, side: str, t_s: FloatArray) -> dict[str, FloatArray]:
        """Hip, knee and ankle centres (N, 3) in earth (m)."""
        st = self._state(side, t_s)
        return {"hip": jt.values(st.hip), "knee": jt.values(st.knee), "ankle": jt.values(st.ankle)}

    def joint_kinematics(
        self, side: str, joint: str, t_s: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Position, velocity, acceleration (N, 3) each of the ``"hip"``, ``"knee"`` or ``"ankle"``
        centre (the ankle is the foot's contact point: at rest in stance after the impact)."""
        state = self._state(side, t_s)
        if joint not in ("hip", "knee", "ankle"):
            raise SimulationError(f"joint must be 'hip', 'knee' or 'ankle', got {joint!r}")
        v: Vec = getattr(state, joint)
        return jt.values(v), jt.first_derivatives(v), jt.second_derivatives(v)

    def hip_kinematics(self, side: str, t_s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Hip centre position, velocity, acceleration (N, 3) each."""
        return self.joint_kinematics(side, "hip", t_s)

    def sensor_kinematics(
        self, side: str, segment: str, mount: Mount, t_s: FloatArray, wobble: bool = True
    ) -> tuple[Quat, Vec]:
        """Jets of the sensor's orientation (sensor -> earth) and position (earth)."""
        t = self._times(t_s)
        state = self._state(side, t)
        q_seg, origin = self._segment(state, segment)
        n = t.shape[0]
        q_mount: Quat = tuple(jt.Jet.const(float(c), n) for c in mount.quat_sensor_to_segment)  # type: ignore[assignment]
        offset = jt.vconst(mount.position_m, n)
        if wobble:
            impacts = self.impacts_by_side[self._side(side)]
            if mount.tissue is not None:
                q_w, disp = mount.tissue.motion(t, impacts, state.posture.flexion)
            else:
                q_w, disp = self._wobble[(self._side(side), segment)].motion(t, impacts)
            q_mount = jt.qmul(q_w, q_mount)
            offset = jt.vadd(offset, disp)
        q_sensor = jt.qmul(q_seg, q_mount)
        return q_sensor, jt.vadd(origin, jt.qrotate(q_seg, offset))

    def sensor_pose(
        self, side: str, segment: str, mount: Mount, t_s: FloatArray, wobble: bool = True
    ) -> tuple[FloatArray, FloatArray]:
        """(quat sensor -> earth (N, 4), sensor position (N, 3))."""
        q, p = self.sensor_kinematics(side, segment, mount, t_s, wobble)
        return jt.values(q), jt.values(p)

    def imu(
        self, side: str, segment: str, mount: Mount, t_s: FloatArray, wobble: bool = True
    ) -> tuple[FloatArray, FloatArray]:
        """Ideal, noise-free IMU at true times ``t_s``: (gyro rad/s (N, 3), specific force m/s^2 (N, 3)),
        both in the sensor frame."""
        gyr, acc, _ = self.imu_and_orientation(side, segment, mount, t_s, wobble)
        return gyr, acc

    def imu_and_orientation(
        self, side: str, segment: str, mount: Mount, t_s: FloatArray, wobble: bool = True
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """``imu`` plus the sensor's orientation (quat sensor -> earth (N, 4)) from the same evaluation."""
        q, p = self.sensor_kinematics(side, segment, mount, t_s, wobble)
        gyr, _ = jt.body_rate(q)
        acc_earth = jt.second_derivatives(p)
        acc_earth[:, 2] += GRAVITY_M_S2
        q_values = jt.values(q)
        return gyr, rotate(quat_conjugate(q_values), acc_earth), q_values

    # ---- helpers ------------------------------------------------------------------------------------
    @staticmethod
    def _times(t_s: FloatArray | Sequence[float] | float) -> FloatArray:
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        if t.ndim != 1 or not np.isfinite(t).all():
            raise SimulationError("times must be a finite 1-D array of seconds")
        return t

    @staticmethod
    def _side(side: str) -> str:
        if side not in SIDES:
            raise SimulationError(f"side must be one of {SIDES}, got {side!r}")
        return side


def _check_args(drill: str, sides: Sequence[str], faults: Mapping[str, float]) -> tuple[str, ...]:
    if drill not in DRILLS:
        raise SimulationError(f"unknown drill {drill!r}; drills: {', '.join(DRILLS)}")
    sides_t = tuple(sides)
    if not sides_t or any(s not in SIDES for s in sides_t) or len(set(sides_t)) != len(sides_t):
        raise SimulationError(f"sides must be distinct values of {SIDES}, got {sides!r}")
    for name, p in faults.items():
        if name not in dr.FAULTS or not 0.0 <= p <= 1.0:
            raise SimulationError(f"faults: {name!r}={p!r}; names {dr.FAULTS}, probabilities in [0, 1]")
    return sides_t


def _check_standing(standing_s: float) -> None:
    if standing_s < QUIET_START_S:
        raise SimulationError(f"standing_s must be >= 3 s (calibration needs it), got {standing_s}")


def _run_drill(b: dr.Builder, drill: str, reps: int, duration_s: float | None) -> None:
    if drill == "standing":
        b.stand(duration_s if duration_s is not None else 10.0 * max(reps, 1))
        return
    if drill == "calibration_bends":
        dr.calibration_bends(b, reps)
        return
    if drill in ("walk", "jog") and duration_s is not None:
        # one bout lasting about duration_s (start and stop included)
        step_s = (b.style.walk if drill == "walk" else b.style.jog).step_s
        (dr.walk if drill == "walk" else dr.jog)(b, 1, int(max(duration_s - 3.0, 0.0) / step_s))
        return
    fn = dr.DRILL_FUNCTIONS.get(drill)
    if fn is None:
        raise SimulationError(f"drill {drill!r} is not implemented yet")
    fn(b, reps)


def _finish(
    b: dr.Builder, drill: str, sides: tuple[str, ...], seed: int, sway: bool, tail_s: float
) -> Motion:
    b.stand(tail_s)
    if sway:
        sw = Sway.random(np.random.default_rng([seed, 7]), b.style.sway_rms_m)
        for leg in b.legs.values():
            leg.sway = sw
    body = Body(b.legs)
    events = [e for e in b.events if e["side"] in sides]
    for e in events:
        e.setdefault("drill", drill)
    gait = [e for e in b.gait_events if e["side"] in sides]
    return Motion(drill, sides, seed, body, b.t_s, events, gait, b.curves)


def simulate(
    drill: str,
    reps: int = 5,
    sides: Sequence[str] = ("right",),
    seed: int = 0,
    faults: Mapping[str, float] | None = None,
    calibration_bends: bool = False,
    standing_s: float = 4.0,
    *,
    duration_s: float | None = None,
    sway: bool = True,
    geometry: Geometry | None = None,
    style: Style | None = None,
) -> Motion:
    """Simulate one drill (see ``DRILLS``), deterministic for a given seed.

    The recording starts with ``standing_s`` (>= 3) of quiet standing in the calibration pose, then
    optionally three calibration knee bends, then ``reps`` repetitions (``standing``: ``duration_s``
    of standing; ``walk``/``jog``: one bout of about ``duration_s`` if given), and ends with 2 s of
    standing. ``faults`` maps 'valgus', 'stiff_landing', 'fast_eccentric' to the
    probability that a rep has that fault (drawn per rep, so sets mix good and faulty reps).
    ``sway`` adds about 2 mm of postural sway of the hips (angles stay exactly zero when standing).
    ``geometry``: segment lengths; ``style``: the ranges the drills draw from (``Style()``: the original
    design).
    """
    faults = dict(faults or {})
    sides_t = _check_args(drill, sides, faults)
    _check_standing(standing_s)
    b = dr.Builder(
        geometry or Geometry(),
        np.random.default_rng([seed, 0x5EED]),
        faults,
        sides_t,
        drill=drill,
        style=style or Style(),
    )
    dr.standing(b, standing_s, QUIET_START_S)
    if calibration_bends and drill != "calibration_bends":
        dr.calibration_bends(b, b.style.n_bends)
        b.stand(1.0)
    _run_drill(b, drill, reps, duration_s)
    return _finish(b, drill, sides_t, seed, sway, 2.0)


DEFAULT_SESSION = (
    ("calibration_bends", 3),
    ("squat", 5),
    ("walk", 2),
    ("step_down", 4),
    ("cmj", 4),
    ("lunge", 4),
    ("jog", 2),
    ("drop_jump", 3),
    ("cut_45", 3),
    ("cut_90", 3),
    ("standing", 1),
)


def session(
    plan: Sequence[tuple[str, int]] | None = None,
    sides: Sequence[str] = ("right", "left"),
    seed: int = 0,
    faults: Mapping[str, float] | None = None,
    standing_s: float = 4.0,
    rest_s: float = 5.0,
    *,
    min_duration_s: float = 0.0,
    sway: bool = True,
    geometry: Geometry | None = None,
    style: Style | None = None,
    calibration: str | None = None,
) -> Motion:
    """Several drills back to back, separated by ``rest_s`` of standing: ``plan`` is a list of
    (drill, reps); by default ``DEFAULT_SESSION``, repeated until ``min_duration_s`` is reached
    (e.g. 600 s for a 10-minute session). Events carry the ``drill`` they belong to.
    ``calibration`` (one of ``CALIBRATIONS``): after the first standing, ``style.n_bends`` knee bends
    or a walking or jogging bout (events of drill ``"calibration"``); None: none (the default plan
    starts with bends). Standing periods (the first after 3 quiet seconds) carry the style's weight
    shifts."""
    faults = dict(faults or {})
    steps = list(plan or DEFAULT_SESSION)
    sides_t = tuple(sides)
    for drill, _ in steps:
        _check_args(drill, sides_t, faults)
    _check_standing(standing_s)
    if calibration is not None and calibration not in CALIBRATIONS:
        raise SimulationError(f"calibration must be one of {CALIBRATIONS} or None, got {calibration!r}")
    b = dr.Builder(
        geometry or Geometry(),
        np.random.default_rng([seed, 0x5E55]),
        faults,
        sides_t,
        drill="session",
        style=style or Style(),
    )
    dr.standing(b, standing_s, QUIET_START_S)
    if calibration == "bends":
        dr.calibration_bends(b, b.style.n_bends)
    elif calibration is not None:
        (dr.walk if calibration == "walk" else dr.jog)(b, 1)
    if calibration is not None:
        for e in b.events:
            e["drill"] = "calibration"
        b.stand(1.0)
    k = 0
    while k < len(steps) or b.t_s < min_duration_s:
        drill, reps = steps[k % len(steps)]
        n_before = len(b.events)
        _run_drill(b, drill, reps, None)
        for e in b.events[n_before:]:
            e["drill"] = drill
        dr.standing(b, rest_s)
        k += 1
        if k > 10_000:
            raise SimulationError("session plan makes no progress")
    return _finish(b, "session", sides_t, seed, sway, 2.0)
