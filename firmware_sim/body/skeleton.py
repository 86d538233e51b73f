"""The leg's kinematic chain: generalised coordinates -> segment orientations and positions.

Generalised coordinates of one leg (each a C2 ``Track``, evaluable at any t):

* knee flexion, valgus, rotation (rad): the joint angles of ``sensorhub.conventions`` (Grood & Suntay),
  which are also the ground truth;
* leg heading psi (rad): the leg's rotation about the vertical (foot/shank direction);
* hip offset o = (o_x, o_y) (m, earth frame): horizontal position of the hip centre relative to the ankle.

Posture: with the knee angles, the ankle-to-hip vector in the shank frame is w = Ls z + Lt R_knee^T z.
The shank is oriented so that w points along D = (o_x, o_y, sqrt(|w|^2 - |o|^2)) (the hip sits at
horizontal offset o above the ankle), twisted by psi about that axis:
q_shank = q_min(z -> D/|D|) ⊗ q_z(psi) ⊗ q_min(w/|w| -> z);  q_thigh = q_shank ⊗ q_knee^-1.
Segment frames: origin at the proximal joint (thigh: hip centre, shank: knee centre), x anterior, y left,
z up; all equal to the earth frame when standing upright facing +x with zero angles. The pelvis is not
a rigid segment here: each hip centre follows its own leg (stance: from the foot up; air: see
``contact``); double-leg drills are designed symmetric so the two hips move together (the sensors are on
thigh and shank only). Positions come from ``contact``: H = A + D.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sensorhub.conventions import SIDE_SIGN

from . import jets as jt
from .contact import Air, Phase, Stance, eval_vector_quintic
from .jets import FloatArray, Jet, Quat, Vec
from .trajectory import Spline, Track, TrajectoryError, quintic_segment

COORDINATES = ("flexion", "valgus", "rotation", "heading", "ox", "oy")
REFERENCE_LEG_M = 0.44 + 0.42  # thigh + shank of the default Geometry
REACH_SOFT = 0.9  # hip offsets beyond this share of the leg's reach are limited smoothly
SWING_CLEARANCE_M = 0.04  # ankle above its flat-foot height at mid-swing, when a swing needs help


@dataclass(frozen=True, slots=True)
class Geometry:
    """Segment lengths of the simulated athlete (m)."""

    thigh_length_m: float = 0.44  # hip centre to knee centre
    shank_length_m: float = 0.42  # knee centre to ankle centre
    ankle_height_m: float = 0.08  # ankle centre above the ground with the foot flat
    hip_half_width_m: float = 0.10  # lateral distance of each hip centre from the body midline

    @property
    def standing_hip_height_m(self) -> float:
        return self.thigh_length_m + self.shank_length_m + self.ankle_height_m

    @property
    def size_scale(self) -> float:
        """Leg length (thigh + shank) relative to the default athlete's: drills scale distances by it."""
        return (self.thigh_length_m + self.shank_length_m) / REFERENCE_LEG_M

    @staticmethod
    def for_height(
        height_m: float, thigh_scale: float = 1.0, shank_scale: float = 1.0, width_scale: float = 1.0
    ) -> Geometry:
        """Segment lengths of an athlete ``height_m`` tall from Winter's anthropometric proportions
        (thigh 0.245 H, shank 0.246 H, ankle height 0.039 H; Winter 2009, Biomechanics and Motor Control
        of Human Movement, fig. 4.1; hip centres ~0.114 H apart), each scaled by its own factor since
        people are not built in proportion."""
        return Geometry(
            thigh_length_m=0.245 * height_m * thigh_scale,
            shank_length_m=0.246 * height_m * shank_scale,
            ankle_height_m=0.039 * height_m,
            hip_half_width_m=0.057 * height_m * width_scale,
        )


@dataclass(frozen=True, slots=True)
class Sway:
    """Postural sway added to the hip offset of both legs: sums of slow sinusoids (m, Hz, rad)."""

    amp_m: FloatArray  # (2, K)
    freq_hz: FloatArray  # (2, K)
    phase_rad: FloatArray  # (2, K)

    @staticmethod
    def random(rng: np.random.Generator, rms_m: float) -> Sway:
        k = 3
        amp = rng.uniform(0.5, 1.0, (2, k))
        amp *= rms_m * math.sqrt(2.0) / np.sqrt((amp**2).sum(axis=1, keepdims=True))
        return Sway(amp, rng.uniform(0.08, 0.6, (2, k)), rng.uniform(0.0, 2.0 * math.pi, (2, k)))

    def __call__(self, axis: int, t_s: FloatArray) -> Jet:
        v = np.zeros_like(t_s)
        d1 = np.zeros_like(t_s)
        d2 = np.zeros_like(t_s)
        for a, f, p in zip(self.amp_m[axis], self.freq_hz[axis], self.phase_rad[axis], strict=True):
            w = 2.0 * math.pi * f
            arg = w * t_s + p
            s, c = np.sin(arg), np.cos(arg)
            v += a * s
            d1 += a * w * c
            d2 -= a * w * w * s
        return Jet(v, d1, d2)


@dataclass(slots=True)
class Posture:
    """Orientation part of a leg's state at N instants (jets)."""

    q_thigh: Quat
    q_shank: Quat
    hip_from_ankle: Vec  # D (earth)
    flexion: Jet
    valgus: Jet
    rotation: Jet


@dataclass(slots=True)
class LegState:
    posture: Posture
    ankle: Vec
    knee: Vec
    hip: Vec


def _within_reach(ox: Jet, oy: Jet, w_norm2: Jet) -> tuple[Jet, Jet]:
    """The hip offset, limited to the leg's reach |w|: unchanged up to ``REACH_SOFT`` |w|, beyond it
    r -> r0 + (1 - r0) tanh((r - r0) / (1 - r0)) (r = |o| / |w|; slope 1 and curvature 0 at r0, so the
    pose stays C2 and the IMU smooth). A safety net for extreme designs (short, fast athletes cutting
    sharply): without it such a pose has no solution."""
    r0 = REACH_SOFT
    ratio2 = (ox.v * ox.v + oy.v * oy.v) / w_norm2.v
    far = ratio2 > r0 * r0
    if not far.any():
        return ox, oy
    sx, sy = ox.take(far), oy.take(far)
    r = jt.sqrt(sx * sx + sy * sy) / jt.sqrt(w_norm2.take(far))
    tanh = 1.0 - 2.0 * (jt.exp((r - r0) * (2.0 / (1.0 - r0))) + 1.0).reciprocal()
    scale = (tanh * (1.0 - r0) + r0) / r
    out_x = Jet(ox.v.copy(), ox.d1.copy(), ox.d2.copy())
    out_y = Jet(oy.v.copy(), oy.d1.copy(), oy.d2.copy())
    out_x.put(far, sx * scale)
    out_y.put(far, sy * scale)
    return out_x, out_y


class Leg:
    """One leg: tracks of its coordinates, its contact phases and the geometry; evaluable at any t."""

    def __init__(
        self,
        side: str,
        geometry: Geometry,
        ankle_xy_m: tuple[float, float],
        ground_z_m: float,
        heading_rad: float = 0.0,
    ) -> None:
        self.side = side
        self.geometry = geometry
        self.tracks = {name: Track(f"{side}.{name}") for name in COORDINATES}
        self.tracks["heading"] = Track(f"{side}.heading", heading_rad)
        rest = np.array([ankle_xy_m[0], ankle_xy_m[1], ground_z_m + geometry.ankle_height_m])
        self.phases: list[Phase] = [Stance(-math.inf, math.inf, ground_z_m, rest_m=rest)]
        self._splines: dict[str, Spline] = {}
        self.sway: Sway | None = None

    # ---- design time -------------------------------------------------------------------------------
    @property
    def stance(self) -> Stance:
        last = self.phases[-1]
        assert isinstance(last, Stance)
        return last

    def lift(
        self,
        t0_s: float,
        t1_s: float,
        kind: str,
        *,
        ground_z_m: float,
        rest_xy_m: tuple[float, float] | None = None,
        step_xy_m: tuple[float, float] | None = None,
        v_in_m_s: FloatArray | None = None,
        impact_s: float = 0.0,
        pushoff_s: float = 0.0,
        v_out_m_s: FloatArray | None = None,
        hip_vel_xy_m_s: tuple[float, float] = (0.0, 0.0),
        follow_side: str | None = None,
        heel: tuple[float, float, float] | None = None,
        keep_clear: bool = False,
    ) -> None:
        """End the current stance at ``t0_s`` (take-off), fly/swing, and make contact at ``t1_s``.

        ``ballistic``: the contact point results from the flight; ``bridge``/``follow``: the foot comes to
        rest at ``rest_xy_m`` on ground ``ground_z_m``, arriving with ankle velocity ``v_in_m_s``.
        ``heel``: a forefoot-first contact, (heel delay s, heel pulse s, heel fraction); see ``contact``.
        ``keep_clear``: a stepping swing (``follow``) that must keep the foot above the floor
        (``_keep_foot_clear``).
        """
        current = self.stance
        if not current.t0_s + current.impact_end_s + pushoff_s <= t0_s < t1_s:
            raise TrajectoryError(
                f"{self.side}: take-off at {t0_s:.3f} s overlaps the stance's impact window"
            )
        current.t1_s = t0_s
        current.pushoff_s = pushoff_s
        if v_out_m_s is not None:
            current.v_out_m_s = np.asarray(v_out_m_s, dtype=float)
        self.phases.append(
            Air(t0_s, t1_s, kind, np.asarray(hip_vel_xy_m_s, dtype=float), follow_side, keep_clear)
        )
        rest = None
        if rest_xy_m is not None:
            rest = np.array([rest_xy_m[0], rest_xy_m[1], ground_z_m + self.geometry.ankle_height_m])
        stance = Stance(t1_s, math.inf, ground_z_m, rest_m=rest, impact_s=impact_s)
        if heel is not None:
            stance.heel_delay_s, stance.heel_impact_s, stance.heel_fraction = heel
        if step_xy_m is not None:
            stance.step_xy_m = np.asarray(step_xy_m, dtype=float)
        if v_in_m_s is not None:
            stance.v_in_m_s = np.asarray(v_in_m_s, dtype=float)
        self.phases.append(stance)

    def build_tracks(self) -> None:
        self._splines = {name: track.build() for name, track in self.tracks.items()}

    # ---- evaluation ---------------------------------------------------------------------------------
    def coordinate(self, name: str, t_s: FloatArray) -> Jet:
        return self._splines[name](t_s)

    def posture(self, t_s: FloatArray) -> Posture:
        geo = self.geometry
        n = t_s.shape[0]
        sign = SIDE_SIGN[self.side]
        flex = self.coordinate("flexion", t_s)
        valgus = self.coordinate("valgus", t_s)
        rot = self.coordinate("rotation", t_s)
        psi = self.coordinate("heading", t_s)
        ox = self.coordinate("ox", t_s)
        oy = self.coordinate("oy", t_s)
        if self.sway is not None:
            ox = ox + self.sway(0, t_s)
            oy = oy + self.sway(1, t_s)
        q_knee = jt.qmul(jt.qmul(jt.qaxis(flex, 1), jt.qaxis(valgus * (-sign), 0)), jt.qaxis(rot * sign, 2))
        thigh_axis = jt.qrotate(jt.qconj(q_knee), jt.vconst((0.0, 0.0, 1.0), n))
        w: Vec = (
            thigh_axis[0] * geo.thigh_length_m,
            thigh_axis[1] * geo.thigh_length_m,
            thigh_axis[2] * geo.thigh_length_m + geo.shank_length_m,
        )
        w_norm2 = jt.dot(w, w)
        inv_norm = jt.sqrt(w_norm2).reciprocal()
        q_align = jt.qmin_to_z(jt.vscale(w, inv_norm))
        ox, oy = _within_reach(ox, oy, w_norm2)
        d: Vec = (ox, oy, jt.sqrt(w_norm2 - ox * ox - oy * oy))
        q_aim = jt.qmin_from_z(jt.vscale(d, inv_norm))
        q_shank = jt.qmul(jt.qmul(q_aim, jt.qaxis(psi, 2)), q_align)
        q_thigh = jt.qmul(q_shank, jt.qconj(q_knee))
        return Posture(q_thigh, q_shank, d, flex, valgus, rot)

    def state(self, t_s: FloatArray, hip_of: Callable[[str, FloatArray], Vec] | None = None) -> LegState:
        """Full state at times ``t_s``; ``hip_of(side, t)`` gives the other leg's hip for ``follow``."""
        posture = self.posture(t_s)
        n = t_s.shape[0]
        ankle = (Jet.zeros(n), Jet.zeros(n), Jet.zeros(n))
        t_lo, t_hi = (float(t_s.min()), float(t_s.max())) if n else (0.0, -1.0)
        for phase in self.phases:
            if phase.t1_s <= t_lo or phase.t0_s > t_hi:
                continue  # cheap skip: long sessions have hundreds of phases
            m = phase.contains(t_s)
            if not m.any():
                continue
            if isinstance(phase, Stance):
                p, v, a = phase.ankle(t_s[m])
                for k in range(3):
                    ankle[k].put(m, Jet(p[k], v[k], a[k]))
                continue
            p, v, a = phase.hip_own(t_s[m])
            if phase.kind == "follow":
                if hip_of is None or phase.follow_side is None:
                    raise TrajectoryError(f"{self.side}: a follow phase needs the other leg")
                ref = hip_of(phase.follow_side, t_s[m])
                p = p + jt.values(ref).T
                v = v + jt.first_derivatives(ref).T
                a = a + jt.second_derivatives(ref).T
            for k in range(3):
                dk = posture.hip_from_ankle[k].take(m)
                ankle[k].put(m, Jet(p[k], v[k], a[k]) - dk)
        hip = jt.vadd(ankle, posture.hip_from_ankle)
        shank_top = jt.qrotate(posture.q_shank, jt.vconst((0.0, 0.0, self.geometry.shank_length_m), n))
        knee = jt.vadd(ankle, shank_top)
        return LegState(posture, ankle, knee, hip)

    # ---- resolution of the contact phases (in time order, across legs) ------------------------------
    def resolve_air(self, index: int, hip_of: Callable[[str, FloatArray], Vec]) -> None:
        before, air, after = self.phases[index - 1], self.phases[index], self.phases[index + 1]
        assert isinstance(before, Stance) and isinstance(air, Air) and isinstance(after, Stance)
        assert before.rest_m is not None
        g = 9.80665
        ez = np.array([0.0, 0.0, 1.0])
        t0, t1 = air.t0_s, air.t1_s
        big_t = t1 - t0
        d = self.posture(np.array([t0, t1])).hip_from_ankle
        d0, d1 = jt.values(d)  # (2,3) -> rows
        dd0, dd1 = jt.first_derivatives(d)
        ddd0, ddd1 = jt.second_derivatives(d)
        tau_p = before.pushoff_s
        tau_i = after.impact_travel_s()  # per axis (a forefoot landing travels further vertically)
        if air.kind == "ballistic":
            rest_bz = after.ground_z_m + self.geometry.ankle_height_m
            num = (
                rest_bz
                - before.rest_m[2]
                + dd0[2] * tau_p / 2.0
                - d0[2]
                + 0.5 * g * big_t**2
                + d1[2]
                + (g * big_t + dd1[2]) * tau_i[2] / 2.0
            )
            v0z = num / (tau_p / 2.0 + big_t + tau_i[2] / 2.0)
            v0 = np.array([air.hip_vel_xy_m_s[0], air.hip_vel_xy_m_s[1], v0z])
            before.v_out_m_s = v0 - dd0
            a0 = before.rest_m + before.v_out_m_s * tau_p / 2.0
            air.h0_m = a0 + d0
            air.v0_m_s = v0
            h1 = air.h0_m + v0 * big_t - 0.5 * g * big_t**2 * ez
            after.v_in_m_s = v0 - g * big_t * ez - dd1
            after.rest_m = h1 - d1 + after.v_in_m_s * tau_i / 2.0
            return
        if after.rest_m is None and after.step_xy_m is not None:
            after.rest_m = np.array(
                [
                    before.rest_m[0] + after.step_xy_m[0],
                    before.rest_m[1] + after.step_xy_m[1],
                    after.ground_z_m + self.geometry.ankle_height_m,
                ]
            )
        if after.rest_m is None:
            raise TrajectoryError(f"{self.side}: a {air.kind} phase needs its landing footprint")
        p0, v0, a0 = before.ankle(np.array([t0]))
        h0, hv0, ha0 = p0[:, 0] + d0, v0[:, 0] + dd0, a0[:, 0] + ddd0
        contact = after.rest_m - after.v_in_m_s * tau_i / 2.0
        h1, hv1, ha1 = contact + d1, after.v_in_m_s + dd1, ddd1.copy()
        if air.kind == "follow":
            assert air.follow_side is not None
            ref = hip_of(air.follow_side, np.array([t0, t1]))
            rp, rv, ra = jt.values(ref), jt.first_derivatives(ref), jt.second_derivatives(ref)
            h0, hv0, ha0 = h0 - rp[0], hv0 - rv[0], ha0 - ra[0]
            h1, hv1, ha1 = h1 - rp[1], hv1 - rv[1], ha1 - ra[1]
        if air.kind == "bridge":
            mid = 0.5 * (h0 + h1)
            mid[2] = max(h0[2], h1[2]) + 0.02
            mv = (h1 - h0) / big_t
            mv[2] = 0.0
            air.coef = quintic_segment(0.0, 0.5 * big_t, h0, hv0, ha0, mid, mv, np.zeros(3))
            air.coef_late = quintic_segment(0.0, 0.5 * big_t, mid, mv, np.zeros(3), h1, hv1, ha1)
            return
        air.coef = quintic_segment(0.0, big_t, h0, hv0, ha0, h1, hv1, ha1)
        if air.kind == "follow" and air.keep_clear:
            self._keep_foot_clear(air, before, after, hip_of, (h0, hv0, ha0), (h1, hv1, ha1))

    def _keep_foot_clear(
        self,
        air: Air,
        before: Stance,
        after: Stance,
        hip_of: Callable[[str, FloatArray], Vec],
        start: tuple[FloatArray, FloatArray, FloatArray],
        end: tuple[FloatArray, FloatArray, FloatArray],
    ) -> None:
        """A follow swing is one quintic of the hip relative to the other hip, between lift-off and
        touchdown. When those states disagree (long, fast walking steps) the hip sags mid-swing and would
        take the ankle below its flat-foot height (the foot through the floor); then the swing is split at a
        mid-swing waypoint that holds the ankle ``SWING_CLEARANCE_M`` above the higher floor (as the
        bridge swing of running does). Swings that stay clear are left as they are."""
        assert air.follow_side is not None
        t0, t1 = air.t0_s, air.t1_s
        t = np.linspace(t0, t1, 41)[1:-1]
        ref_z = jt.values(hip_of(air.follow_side, t))[:, 2]
        hip_z = ref_z + eval_vector_quintic(air.coef, t - t0)[0][2]
        ankle_z = hip_z - jt.values(self.posture(t).hip_from_ankle)[:, 2]
        floor = min(before.ground_z_m, after.ground_z_m) + self.geometry.ankle_height_m
        if ankle_z.min() >= floor:
            return
        half = 0.5 * (t1 - t0)
        t_mid = np.array([t0 + half])
        (h0, hv0, ha0), (h1, hv1, ha1) = start, end
        mid = 0.5 * (h0 + h1)
        mid[2] = (
            max(before.ground_z_m, after.ground_z_m)
            + self.geometry.ankle_height_m
            + SWING_CLEARANCE_M
            + jt.values(self.posture(t_mid).hip_from_ankle)[0, 2]
            - jt.values(hip_of(air.follow_side, t_mid))[0, 2]
        )
        mv = (h1 - h0) / (t1 - t0)
        mv[2] = 0.0
        air.coef = quintic_segment(0.0, half, h0, hv0, ha0, mid, mv, np.zeros(3))
        air.coef_late = quintic_segment(0.0, half, mid, mv, np.zeros(3), h1, hv1, ha1)


class Body:
    """The legs of one simulated athlete, with the contact phases resolved across legs in time order.

    Air phases are resolved in the order they end: each needs its own leg's previous stance (ended
    earlier) and, for ``follow``, the other leg at lift-off and touchdown, which stands on a footprint
    placed by an air phase that ended before (a leg hanging through a whole hop set included).
    """

    def __init__(self, legs: dict[str, Leg]) -> None:
        self.legs = legs
        for leg in legs.values():
            leg.build_tracks()
        pending = sorted(
            (
                (phase.t1_s, phase.t0_s, side, i)
                for side, leg in legs.items()
                for i, phase in enumerate(leg.phases)
                if isinstance(phase, Air)
            ),
        )
        for _, _, side, i in pending:
            legs[side].resolve_air(i, self.hip_of)

    def hip_of(self, side: str, t_s: FloatArray) -> Vec:
        return self.legs[side].state(t_s, None).hip

    def state(self, side: str, t_s: FloatArray) -> LegState:
        return self.legs[side].state(np.asarray(t_s, dtype=float), self.hip_of)
