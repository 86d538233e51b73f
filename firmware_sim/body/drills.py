"""The drills: keyframe designs of the generalised coordinates, with per-rep random variation and faults.

Every drill function appends to a ``Builder`` starting from quiet standing (both feet flat, all angles 0)
and ends in quiet standing. Times of the designed moments (start of descent, contact, take-off) are
recorded as event skeletons; ``truth`` computes the metric values from the resulting trajectories.
Angles are designed in degrees and stored in radians.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .skeleton import Geometry, Leg

RAD = math.pi / 180.0
BOTH = ("right", "left")
FAULTS = ("valgus", "stiff_landing", "fast_eccentric")


@dataclass(slots=True)
class RepFaults:
    valgus: bool = False
    stiff_landing: bool = False
    fast_eccentric: bool = False

    def names(self) -> list[str]:
        return [name for name in FAULTS if getattr(self, name)]

    def label(self) -> str | None:
        names = self.names()
        return "+".join(names) if names else None


@dataclass
class Builder:
    """Design-time state: both legs (always simulated), a time cursor, the body's place and heading."""

    geometry: Geometry
    rng: np.random.Generator
    faults: dict[str, float]
    sides: tuple[str, ...]
    t_s: float = 0.0
    x_m: float = 0.0
    y_m: float = 0.0
    heading_rad: float = 0.0
    ground_z_m: float = 0.0
    legs: dict[str, Leg] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    gait_events: list[dict[str, Any]] = field(default_factory=list)
    drill: str = ""

    def __post_init__(self) -> None:
        for side in BOTH:
            x, y = self.foot_xy(side)
            self.legs[side] = Leg(side, self.geometry, (x, y), self.ground_z_m, self.heading_rad)

    # ---- geometry helpers ---------------------------------------------------------------------------
    def lateral(self, side: str) -> float:
        """+1 for the left foot (body's +y), -1 for the right."""
        return 1.0 if side == "left" else -1.0

    def foot_xy(
        self,
        side: str,
        forward_m: float = 0.0,
        x_m: float | None = None,
        y_m: float | None = None,
        heading_rad: float | None = None,
    ) -> tuple[float, float]:
        x = self.x_m if x_m is None else x_m
        y = self.y_m if y_m is None else y_m
        h = self.heading_rad if heading_rad is None else heading_rad
        side_m = self.lateral(side) * self.geometry.hip_half_width_m
        return (
            x + forward_m * math.cos(h) - side_m * math.sin(h),
            y + forward_m * math.sin(h) + side_m * math.cos(h),
        )

    def rotate_xy(self, forward: float, left: float) -> tuple[float, float]:
        """Body-frame (forward, left) components to earth x, y."""
        c, s = math.cos(self.heading_rad), math.sin(self.heading_rad)
        return forward * c - left * s, forward * s + left * c

    def forward(self, dist_m: float) -> tuple[float, float]:
        return dist_m * math.cos(self.heading_rad), dist_m * math.sin(self.heading_rad)

    # ---- keyframes ----------------------------------------------------------------------------------
    def key(
        self, side: str, name: str, t_s: float, value: float, rate: float = 0.0, accel: float = 0.0
    ) -> None:
        """Keyframe; angles (flexion/valgus/rotation) in degrees and deg/s, heading in rad, offsets in m."""
        scale = RAD if name in ("flexion", "valgus", "rotation") else 1.0
        self.legs[side].tracks[name].key(t_s, value * scale, rate * scale, accel * scale)

    def key_o(self, side: str, t_s: float, forward_m: float, rate_m_s: float = 0.0) -> None:
        """Keyframe the hip offset ``forward_m`` ahead of the ankle along the body's heading (m, m/s)."""
        c, s = math.cos(self.heading_rad), math.sin(self.heading_rad)
        self.key(side, "ox", t_s, forward_m * c, rate_m_s * c)
        self.key(side, "oy", t_s, forward_m * s, rate_m_s * s)

    def key_both(self, name: str, t_s: float, value: float, rate: float = 0.0, accel: float = 0.0) -> None:
        for side in BOTH:
            self.key(side, name, t_s, value, rate, accel)

    def hold_all(self, t_s: float) -> None:
        for leg in self.legs.values():
            for track in leg.tracks.values():
                track.hold(t_s)

    def stand(self, duration_s: float) -> None:
        """Quiet standing (or holding the current posture) for ``duration_s``."""
        self.t_s += duration_s
        self.hold_all(self.t_s)

    def rep_faults(self) -> RepFaults:
        return RepFaults(**{name: bool(self.rng.random() < self.faults.get(name, 0.0)) for name in FAULTS})

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def valgus_peak(self, faulty: bool) -> float:
        return self.u(8.0, 15.0) if faulty else self.u(0.0, 4.0)


# ---- double-leg knee bends: calibration bends and squats --------------------------------------------


def _bend(
    b: Builder,
    depth_deg: float,
    down_s: float,
    up_s: float,
    valgus_deg: dict[str, float],
    hips_back_m: float,
    pause_s: float = 0.0,
) -> tuple[float, float, float]:
    """One double-leg bend from standing; returns (start, bottom, end) times."""
    t0 = b.t_s
    t_bottom = t0 + down_s
    for side in BOTH:
        rot = b.u(0.03, 0.08) * depth_deg  # internal rotation coupled to flexion
        b.key(side, "flexion", t_bottom, depth_deg)
        b.key(side, "valgus", t_bottom, valgus_deg[side])
        b.key(side, "rotation", t_bottom, rot)
        b.key_o(side, t_bottom, -hips_back_m)
        if pause_s > 0.0:
            # the lowest point is t_bottom; the athlete rises slightly while pausing
            b.key(side, "flexion", t_bottom + pause_s, depth_deg - 1.5)
            b.key(side, "valgus", t_bottom + pause_s, valgus_deg[side] * 0.95)
            b.key(side, "rotation", t_bottom + pause_s, rot * 0.95)
            b.key_o(side, t_bottom + pause_s, -hips_back_m * 0.97)
    t_end = t_bottom + pause_s + up_s
    b.t_s = t_end
    b.key_both("flexion", t_end, 0.0)
    b.key_both("valgus", t_end, 0.0)
    b.key_both("rotation", t_end, 0.0)
    for side in BOTH:
        b.key_o(side, t_end, 0.0)
    b.hold_all(t_end)
    return t0, t_bottom, t_end


def calibration_bends(b: Builder, n: int = 3) -> None:
    """Shallow double-leg knee bends (35-50 deg) for the functional flexion axis."""
    for _ in range(n):
        depth = b.u(35.0, 50.0)
        v = {side: b.u(0.0, 2.0) for side in BOTH}
        t0, tb, te = _bend(b, depth, b.u(0.8, 1.2), b.u(0.8, 1.2), v, 0.05 * depth / 45.0)
        for side in b.sides:
            b.events.append(_rep_event(side, t0, tb, te, "calibration_bend", [], None, calibration=True))
        b.stand(b.u(0.6, 1.0))


def _rep_event(
    side: str,
    t0_s: float,
    t_bottom_s: float,
    t_end_s: float,
    exercise: str,
    faults: list[str],
    fault: str | None,
    **extra: Any,
) -> dict[str, Any]:
    """A truth rep: start of descent, bottom, end; the fault names and their joined label."""
    return {
        "type": "rep",
        "side": side,
        "t_s": t0_s,
        "t_bottom_s": t_bottom_s,
        "t_end_s": t_end_s,
        "exercise": exercise,
        **extra,
        "faults": faults,
        "fault": fault,
    }


def squat(b: Builder, reps: int) -> None:
    """Double-leg squats: depth 70-110 deg, eccentric 1.2-2.2 s (fast_eccentric: 0.35-0.6 s)."""
    for _ in range(reps):
        f = b.rep_faults()
        f.stiff_landing = False
        depth = b.u(70.0, 110.0)
        down = b.u(0.35, 0.6) if f.fast_eccentric else b.u(1.2, 2.2)
        v = {side: b.valgus_peak(f.valgus) for side in BOTH}
        t0, tb, te = _bend(
            b, depth, down, b.u(0.9, 1.5), v, b.u(0.08, 0.14) * depth / 90.0, pause_s=b.u(0.1, 0.4)
        )
        for side in b.sides:
            b.events.append(_rep_event(side, t0, tb, te, "squat", f.names(), f.label()))
        b.stand(b.u(1.0, 2.0))


# ---- jumps -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Landing:
    contact_flexion_deg: float
    contact_rate_deg_s: float
    post_rate_deg_s: float
    peak_flexion_deg: float
    time_to_peak_s: float
    valgus_peak_deg: float
    impact_s: float
    faults: RepFaults

    @staticmethod
    def draw(b: Builder, faults: RepFaults) -> Landing:
        """Knee yields while the ankle is decelerated (impact window), then flexes to its peak.

        The flexion rate rises from the pre-contact rate to ``post_rate`` over the impact window, so the
        hip keeps most of its speed while the foot stops; the peak follows after about
        1.6-2.2 x (remaining excursion / post_rate), the minimum-jerk deceleration of the knee.
        """
        if faults.stiff_landing:
            peak, impact = b.u(30.0, 42.0), b.u(0.028, 0.036)
            contact, rate, post = b.u(5.0, 10.0), b.u(100.0, 200.0), b.u(400.0, 550.0)
        else:
            peak, impact = b.u(60.0, 90.0), b.u(0.042, 0.056)
            contact, rate, post = b.u(12.0, 22.0), b.u(250.0, 400.0), b.u(650.0, 850.0)
        f_i = contact + 0.5 * (rate + post) * impact
        peak = max(peak, f_i + 8.0)
        ttp = impact + b.u(1.6, 2.2) * (peak - f_i) / post
        return Landing(contact, rate, post, peak, ttp, b.valgus_peak(faults.valgus), impact, faults)


def _flight_and_landing(
    b: Builder,
    t_off: float,
    flight_s: float,
    land: dict[str, Landing],
    hip_vel_xy: tuple[float, float],
    pushoff_s: float,
    ground_z_m: float,
    takeoff_flexion_deg: float,
) -> float:
    """Both legs: ballistic flight from ``t_off`` and a landing; keys the knee up to the peak flexion.

    Returns the contact time. The knee keyframes before the peak are set here; the caller continues.
    """
    t_c = t_off + flight_s
    for side in BOTH:
        ld = land[side]
        leg = b.legs[side]
        leg.lift(
            t_off,
            t_c,
            "ballistic",
            ground_z_m=ground_z_m,
            impact_s=ld.impact_s,
            pushoff_s=pushoff_s,
            hip_vel_xy_m_s=hip_vel_xy,
        )
        # knee: extension stops early in flight, then pre-landing flexion reaching the contact rate.
        # The rise starts from rest far enough before contact that the quintic stays monotone
        # (excursion >= 0.45 x rate x duration).
        t_air = t_off + min(0.15, 0.4 * flight_s)
        f_pre = min(max(takeoff_flexion_deg - 8.0, 2.0), 0.3 * ld.contact_flexion_deg)
        t_pre = (ld.contact_flexion_deg - f_pre) / (0.45 * ld.contact_rate_deg_s)
        b.key(side, "flexion", t_air, f_pre)
        if t_c - t_pre > t_air + 0.02:
            b.key(side, "flexion", t_c - t_pre, f_pre)
        b.key(side, "flexion", t_c, ld.contact_flexion_deg, ld.contact_rate_deg_s)
        b.key_o(side, t_air, 0.0)
        b.key_o(side, t_c, -0.04, -0.1)
        b.key(side, "valgus", t_c, 0.1 * ld.valgus_peak_deg, 0.0)
        b.key(side, "rotation", t_c, 1.0)
        # the impact: the knee yields within the impact window (the hip keeps most of its speed)
        t_i = t_c + ld.impact_s
        f_i = ld.contact_flexion_deg + 0.5 * (ld.contact_rate_deg_s + ld.post_rate_deg_s) * ld.impact_s
        b.key(side, "flexion", t_i, f_i, ld.post_rate_deg_s)
        t_peak = t_c + ld.time_to_peak_s
        b.key(side, "flexion", t_peak, ld.peak_flexion_deg)
        b.key(side, "valgus", t_peak, ld.valgus_peak_deg)
        b.key(side, "rotation", t_peak, 0.06 * ld.peak_flexion_deg)
        b.key_o(side, t_peak, -0.10 * ld.peak_flexion_deg / 75.0)
    return t_c


def _countermovement_takeoff(b: Builder, depth_deg: float, down_s: float, up_s: float) -> tuple[float, float]:
    """Double-leg countermovement and propulsion; returns (take-off time, knee flexion at take-off)."""
    t_low = b.t_s + down_s
    t_off = t_low + up_s
    f_off = b.u(8.0, 14.0)
    for side in BOTH:
        b.key(side, "flexion", t_low, depth_deg)
        b.key_o(side, t_low, -0.10 * depth_deg / 90.0)
        b.key(side, "valgus", t_low, b.u(0.0, 2.0))
        b.key(side, "rotation", t_low, 0.05 * depth_deg)
        b.key(side, "flexion", t_off, f_off, -b.u(250.0, 350.0), 5000.0)
        b.key_o(side, t_off, 0.02)
        b.key(side, "valgus", t_off, 0.0)
        b.key(side, "rotation", t_off, 0.0)
    return t_off, f_off


def _recover(b: Builder, t_from: float, duration_s: float) -> None:
    """From the landing's deepest point back to quiet standing."""
    t_end = t_from + duration_s
    b.key_both("flexion", t_end, 0.0)
    b.key_both("valgus", t_end, 0.0)
    b.key_both("rotation", t_end, 0.0)
    for side in BOTH:
        b.key_o(side, t_end, 0.0)
    b.t_s = t_end
    b.hold_all(t_end)


def _landing_events(
    b: Builder, t_c: float, flight_s: float, land: dict[str, Landing], t_next_off: float | None, exercise: str
) -> None:
    for side in b.sides:
        ev: dict[str, Any] = {
            "type": "landing",
            "side": side,
            "t_s": t_c,
            "flight_time_s": flight_s,
            "exercise": exercise,
            "t_takeoff_s": t_next_off,
            "ground_contact_time_s": None if t_next_off is None else t_next_off - t_c,
            "faults": land[side].faults.names(),
            "fault": land[side].faults.label(),
        }
        if exercise != "drop_landing":
            ev["jump_height_m"] = 9.80665 * flight_s**2 / 8.0
        b.events.append(ev)


def cmj(b: Builder, reps: int) -> None:
    """Countermovement jumps: dip 70-95 deg, flight 0.42-0.56 s, landing and recovery."""
    for _ in range(reps):
        f = b.rep_faults()
        f.fast_eccentric = False
        t_off, f_off = _countermovement_takeoff(b, b.u(70.0, 95.0), b.u(0.45, 0.65), b.u(0.3, 0.4))
        flight = b.u(0.42, 0.56)
        land = {side: Landing.draw(b, f) for side in BOTH}
        vel = b.rotate_xy(b.u(-0.1, 0.15), b.u(-0.05, 0.05))
        t_c = _flight_and_landing(b, t_off, flight, land, vel, b.u(0.09, 0.11), b.ground_z_m, f_off)
        _landing_events(b, t_c, flight, land, None, "cmj")
        t_peak = t_c + max(ld.time_to_peak_s for ld in land.values())
        _recover(b, t_peak + 0.01, b.u(0.8, 1.2))
        b.stand(b.u(1.5, 2.5))


def _step_onto(b: Builder, lead: str, forward_m: float, rise_m: float) -> None:
    """Step forward onto a surface ``rise_m`` higher (negative: lower), lead leg first, trail follows."""
    trail = "left" if lead == "right" else "right"
    new_ground = b.ground_z_m + rise_m
    nx, ny = b.x_m + b.forward(forward_m)[0], b.y_m + b.forward(forward_m)[1]
    up = rise_m > 0.0
    # lead swing (follows the trail leg's hip), lands with the knee bent for the step
    t0 = b.t_s
    t1 = t0 + 0.7
    lead_flex = 95.0 if up else 15.0
    step = b.forward(forward_m)
    b.legs[lead].lift(t0, t1, "follow", ground_z_m=new_ground, step_xy_m=step, follow_side=trail)
    b.key(lead, "flexion", t0 + 0.35, lead_flex + 10.0 if up else 55.0)
    b.key_o(lead, t0 + 0.35, -0.1)
    b.key(lead, "flexion", t1, lead_flex)
    b.key_o(lead, t1, -0.22 if up else -0.1)
    b.key(trail, "flexion", t1, 8.0 if up else 35.0)
    b.key_o(trail, t1, 0.06 if up else 0.15)
    # transfer: lead extends (or absorbs), trail lifts and joins
    t2 = t1 + 0.4
    t3 = t2 + 0.7
    b.legs[trail].lift(t2, t3, "follow", ground_z_m=new_ground, step_xy_m=step, follow_side=lead)
    b.key(lead, "flexion", t2, 55.0 if up else 25.0)
    b.key_o(lead, t2, -0.1 if up else -0.02)
    b.key(trail, "flexion", t2, 20.0 if up else 40.0)
    b.key_o(trail, t2, 0.15)
    b.key(trail, "flexion", t2 + 0.35, 80.0)
    b.key_o(trail, t2 + 0.35, 0.0)
    for side in BOTH:
        b.key(side, "flexion", t3, 3.0)
        b.key_o(side, t3, 0.0)
    t4 = t3 + 0.5
    b.key_both("flexion", t4, 0.0)
    b.t_s = t4
    b.hold_all(t4)
    b.x_m, b.y_m, b.ground_z_m = nx, ny, new_ground


def drop_jump(b: Builder, reps: int) -> None:
    """Drop jumps: step up onto a 30-40 cm box, drop off, land, rebound (contact 0.2-0.35 s), land."""
    for rep in range(reps):
        box = b.u(0.30, 0.40)
        _step_onto(b, "right" if rep % 2 == 0 else "left", 0.35, box)
        b.stand(b.u(1.0, 1.8))
        f = b.rep_faults()
        f.fast_eccentric = False
        # drop: a small forward hop off the box
        t_off = b.t_s + 0.35
        for side in BOTH:
            b.key(side, "flexion", t_off - 0.15, 12.0)
            b.key(side, "flexion", t_off, 6.0, -60.0)
            b.key_o(side, t_off, 0.05, 0.2)
        drop_flight = math.sqrt(2.0 * box / 9.80665) + b.u(0.0, 0.03)
        land1 = {side: Landing.draw(b, f) for side in BOTH}
        t_c1 = _flight_and_landing(
            b, t_off, drop_flight, land1, b.rotate_xy(b.u(0.8, 1.1), 0.0), 0.1, b.ground_z_m - box, 6.0
        )
        b.ground_z_m -= box
        # rebound: extend quickly, take off
        gct = b.u(0.22, 0.33)
        t_off2 = t_c1 + max(gct, max(ld.time_to_peak_s for ld in land1.values()) + 0.1)
        f_off = b.u(10.0, 16.0)
        for side in BOTH:
            b.key(side, "flexion", t_off2, f_off, -b.u(300.0, 400.0), 5000.0)
            b.key(side, "valgus", t_off2, 0.0)
            b.key(side, "rotation", t_off2, 0.0)
            b.key_o(side, t_off2, 0.03)
        _landing_events(b, t_c1, drop_flight, land1, t_off2, "drop_landing")
        f2 = b.rep_faults()
        f2.fast_eccentric = False
        flight2 = b.u(0.42, 0.55)
        land2 = {side: Landing.draw(b, f2) for side in BOTH}
        t_c2 = _flight_and_landing(
            b, t_off2, flight2, land2, b.rotate_xy(b.u(0.1, 0.3), 0.0), 0.09, b.ground_z_m, f_off
        )
        _landing_events(b, t_c2, flight2, land2, None, "drop_jump")
        t_peak = t_c2 + max(ld.time_to_peak_s for ld in land2.values())
        _recover(b, t_peak + 0.01, b.u(0.8, 1.2))
        b.stand(b.u(1.5, 2.5))


# ---- single-leg and split-stance drills ------------------------------------------------------------


def step_down(b: Builder, reps: int) -> None:
    """Forward step-downs from a 20 cm step: the working leg lowers the body (flexion 60-80 deg,
    slow eccentric 1.5-3 s; fast_eccentric: 0.5-0.8 s) until the free heel nears the floor in front, then
    rises; the free leg hangs and returns to the step. Working leg alternates between ``sides``."""
    _step_onto(b, "right", 0.3, 0.20)
    b.stand(b.u(1.0, 1.5))
    for rep in range(reps):
        work = b.sides[rep % len(b.sides)]
        free = "left" if work == "right" else "right"
        f = b.rep_faults()
        f.stiff_landing = False
        t_lift = b.t_s
        t0 = t_lift + 0.5  # start of descent
        ecc = b.u(0.5, 0.8) if f.fast_eccentric else b.u(1.5, 3.0)
        t_bottom = t0 + ecc
        t_end = t_bottom + b.u(1.0, 1.5)
        t_back = t_end + 0.6
        depth = b.u(60.0, 80.0)
        b.legs[free].lift(
            t_lift, t_back, "follow", ground_z_m=b.ground_z_m, step_xy_m=(0.0, 0.0), follow_side=work
        )
        fwd = b.forward(1.0)
        b.key(free, "flexion", t0, 25.0)
        b.key(free, "flexion", t_bottom, b.u(5.0, 12.0))
        b.key(free, "ox", t_bottom, -0.28 * fwd[0])
        b.key(free, "oy", t_bottom, -0.28 * fwd[1])
        b.key(free, "flexion", t_end, 20.0)
        b.key(free, "ox", t_end, -0.05 * fwd[0])
        b.key(free, "oy", t_end, -0.05 * fwd[1])
        b.key(free, "flexion", t_back, 0.0)
        b.key(free, "ox", t_back, 0.0)
        b.key(free, "oy", t_back, 0.0)
        for name in ("flexion", "valgus", "rotation", "ox", "oy"):
            b.legs[work].tracks[name].hold(t0)
        b.key(work, "flexion", t_bottom, depth)
        b.key(work, "valgus", t_bottom, b.valgus_peak(f.valgus))
        b.key(work, "rotation", t_bottom, b.u(3.0, 7.0))
        b.key(work, "ox", t_bottom, -0.08 * fwd[0])
        b.key(work, "oy", t_bottom, -0.08 * fwd[1])
        for name in ("flexion", "valgus", "rotation", "ox", "oy"):
            b.key(work, name, t_end, 0.0)
        if work in b.sides:
            b.events.append(
                _rep_event(work, t0, t_bottom, t_end, "step_down", f.names(), f.label(), role="working")
            )
        b.t_s = t_back + 0.3
        b.hold_all(b.t_s)
        b.stand(b.u(1.0, 2.0))


def lunge(b: Builder, reps: int) -> None:
    """Forward lunges: the lead leg steps 0.7-0.85 m forward, both knees bend to 85-100 deg (eccentric
    1.0-2.0 s; fast_eccentric 0.4-0.6 s), push back to standing. Lead leg alternates right/left.
    A rep event is emitted for both legs (``role`` lead/trail): both knees perform the bend."""
    for rep in range(reps):
        lead = "right" if rep % 2 == 0 else "left"
        trail = "left" if lead == "right" else "right"
        f = b.rep_faults()
        f.stiff_landing = False
        length = b.u(0.7, 0.85)
        fwd = np.array(b.forward(1.0))
        t_lift = b.t_s
        t_plant = t_lift + 0.6
        b.legs[lead].lift(
            t_lift,
            t_plant,
            "follow",
            ground_z_m=b.ground_z_m,
            step_xy_m=tuple(length * fwd),
            follow_side=trail,
            v_in_m_s=np.array([0.2 * fwd[0], 0.2 * fwd[1], -0.3]),
            impact_s=0.03,
        )
        o_lead_plant = -(length - 0.3)
        b.key(lead, "flexion", t_lift + 0.3, 45.0)
        b.key(lead, "flexion", t_plant, 12.0)
        for ax, comp in (("ox", 0), ("oy", 1)):
            b.key(lead, ax, t_plant, o_lead_plant * fwd[comp])
            b.key(trail, ax, t_plant, 0.3 * fwd[comp])
        b.key(trail, "flexion", t_plant, 8.0)
        t0 = t_plant + 0.25
        ecc = b.u(0.4, 0.6) if f.fast_eccentric else b.u(1.0, 2.0)
        t_bottom = t0 + ecc
        t_end = t_bottom + b.u(0.9, 1.4)
        depth = b.u(85.0, 100.0)
        for side in BOTH:
            b.legs[side].tracks["flexion"].hold(t0)
        v_peak = b.valgus_peak(f.valgus)
        b.key(lead, "flexion", t_bottom, depth)
        b.key(lead, "valgus", t_bottom, v_peak)
        b.key(lead, "rotation", t_bottom, b.u(2.0, 6.0))
        b.key(trail, "flexion", t_bottom, depth - b.u(12.0, 20.0))  # trail heel stays down here
        b.key(trail, "valgus", t_bottom, b.u(0.0, 3.0))
        hip_from_trail = 0.42 * length
        for ax, comp in (("ox", 0), ("oy", 1)):
            b.key(lead, ax, t_bottom, -(length - hip_from_trail) * fwd[comp])
            b.key(trail, ax, t_bottom, hip_from_trail * fwd[comp])
        b.key(lead, "flexion", t_end, 15.0)
        b.key(trail, "flexion", t_end, 8.0)
        for side in BOTH:
            b.key(side, "valgus", t_end, 0.0)
            b.key(side, "rotation", t_end, 0.0)
        for ax, comp in (("ox", 0), ("oy", 1)):
            b.key(lead, ax, t_end, o_lead_plant * fwd[comp])
            b.key(trail, ax, t_end, 0.3 * fwd[comp])
        # push back: lead returns next to the trail foot
        t_off = t_end + 0.1
        t_back = t_off + 0.6
        b.legs[lead].tracks["flexion"].hold(t_off)
        for ax in ("ox", "oy"):
            b.legs[lead].tracks[ax].hold(t_off)
        b.legs[lead].lift(
            t_off,
            t_back,
            "follow",
            ground_z_m=b.ground_z_m,
            step_xy_m=tuple(-length * fwd),
            follow_side=trail,
            pushoff_s=0.1,
            v_out_m_s=np.array([-0.3 * fwd[0], -0.3 * fwd[1], 0.3]),
        )
        b.key(lead, "flexion", t_off + 0.3, 40.0)
        for side in BOTH:
            b.key(side, "flexion", t_back, 0.0)
            b.key(side, "ox", t_back, 0.0)
            b.key(side, "oy", t_back, 0.0)
        for side, role in ((lead, "lead"), (trail, "trail")):
            if side in b.sides:
                faults, fault = (f.names(), f.label()) if side == lead else ([], None)
                b.events.append(_rep_event(side, t0, t_bottom, t_end, "lunge", faults, fault, role=role))
        b.t_s = t_back + 0.3
        b.hold_all(b.t_s)
        b.stand(b.u(1.0, 2.0))


# ---- locomotion: walk, jog, cuts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GaitStyle:
    speed_m_s: float
    step_s: float  # contact to contact of alternate feet
    stance_s: float
    stance_knee: tuple[tuple[float, float], ...]  # (fraction of stance, flexion deg), last = toe-off
    swing_knee: tuple[tuple[float, float], ...]  # (fraction of swing, flexion deg)
    v_in_fwd_m_s: float  # ankle velocity at foot strike, forward and downward
    v_in_down_m_s: float
    impact_s: tuple[float, float]
    pushoff_s: float  # heel raise before toe-off
    pushoff_up_m_s: float
    pushoff_fwd_m_s: float
    air: str  # swing phase kind: "follow" (walking: the other foot is down) or "bridge" (running)


WALK = GaitStyle(
    1.2,
    0.55,
    0.62,
    ((0.0, 3.0), (0.2, 17.0), (0.6, 5.0), (1.0, 32.0)),
    ((0.3, 62.0), (0.55, 50.0), (0.8, 20.0)),
    0.35,
    0.35,
    (0.03, 0.04),
    0.25,
    0.7,
    0.6,
    "follow",
)
JOG = GaitStyle(
    3.0,
    0.34,
    0.22,
    ((0.0, 16.0), (0.4, 40.0), (1.0, 20.0)),
    ((0.45, 95.0), (0.85, 35.0)),
    0.4,
    0.7,
    (0.03, 0.04),
    0.12,
    1.6,
    1.0,
    "bridge",
)


def _rates(ts: list[float], ys: list[float]) -> list[float]:
    """Keyframe rates: 0 at the ends and at local extrema, else the central difference slope limited
    to 1.5x the neighbouring secant slopes (keeps each quintic piece free of overshoot)."""
    rates = [0.0] * len(ts)
    for i in range(1, len(ts) - 1):
        left = (ys[i] - ys[i - 1]) / (ts[i] - ts[i - 1])
        right = (ys[i + 1] - ys[i]) / (ts[i + 1] - ts[i])
        if left * right > 0.0:
            central = (ys[i + 1] - ys[i - 1]) / (ts[i + 1] - ts[i - 1])
            rates[i] = math.copysign(min(abs(central), 1.5 * abs(left), 1.5 * abs(right)), central)
    return rates


@dataclass(slots=True)
class _Path:
    """Horizontal path of the body's midline: quintic through (t, position, velocity) keys."""

    keys: list[tuple[float, float, float, float, float]]

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        ks = self.keys
        if t <= ks[0][0]:
            return np.array(ks[0][1:3]), np.zeros(2)
        if t >= ks[-1][0]:
            return np.array(ks[-1][1:3]), np.zeros(2)
        i = max(j for j in range(len(ks)) if ks[j][0] <= t)
        t0, x0, y0, vx0, vy0 = ks[i]
        t1, x1, y1, vx1, vy1 = ks[i + 1]
        from .trajectory import eval_poly5, quintic_segment

        coef = quintic_segment(
            0.0,
            t1 - t0,
            np.array([x0, y0]),
            np.array([vx0, vy0]),
            np.zeros(2),
            np.array([x1, y1]),
            np.array([vx1, vy1]),
            np.zeros(2),
        )
        s = np.array([t - t0])
        px, py = eval_poly5(coef[0], s), eval_poly5(coef[1], s)
        return np.array([px.v[0], py.v[0]]), np.array([px.d1[0], py.d1[0]])


def _locomotion(
    b: Builder, style: GaitStyle, n_steps: int, cut_deg: float = 0.0, exercise: str = "walk"
) -> None:
    """A bout from standing: start, ``n_steps`` foot contacts (optionally one of them a sidestep cut
    plant), the last two placing the feet side by side, then quiet standing.

    The body's midline follows a smooth path; each stance foot is placed under its hip at mid-stance,
    and the hip offset o = hip - foot follows the path during stance (foot planted, hip moving over it).
    """
    other = {"right": "left", "left": "right"}
    first = "right" if b.rng.random() < 0.5 else "left"
    v = style.speed_m_s * b.u(0.9, 1.1)
    step = style.step_s * b.u(0.95, 1.05)
    stance = style.stance_s * step / style.step_s
    swing = 2.0 * step - stance
    h0 = b.heading_rad
    u0 = np.array([math.cos(h0), math.sin(h0)])
    t_start = b.t_s
    t_first = t_start + 0.2 + swing  # the first swing from standing is a full-length swing
    plant_k = -1
    if cut_deg != 0.0:
        plant_leg = "right" if cut_deg > 0.0 else "left"  # sidestep cut: plant the outside foot
        plant_k = max(n_steps // 2, 3)
        if (plant_k % 2 == 0) != (first == plant_leg):
            plant_k += 1
    legs_seq = [first if k % 2 == 0 else other[first] for k in range(n_steps)]
    contacts: list[float] = []
    stances: list[float] = []
    brake_s = b.u(0.15, 0.28)
    t = t_first
    for k in range(n_steps):
        contacts.append(t)
        st = brake_s + b.u(0.12, 0.18) if k == plant_k else stance
        stances.append(st)
        t += step + (st - stance)
    # path of the body midline: accelerate over two steps, (cut), decelerate over the last two
    keys: list[tuple[float, float, float, float, float]] = [(t_start, b.x_m, b.y_m, 0.0, 0.0)]

    def add_key(tk: float, vel: np.ndarray) -> None:
        tp, xp, yp, vxp, vyp = keys[-1]
        pos = np.array([xp, yp]) + 0.5 * (np.array([vxp, vyp]) + vel) * (tk - tp)
        keys.append((tk, float(pos[0]), float(pos[1]), float(vel[0]), float(vel[1])))

    add_key(contacts[2], v * u0)
    h1 = h0
    if plant_k >= 0:
        tp = contacts[plant_k]
        h1 = h0 + math.radians(cut_deg)
        hm = 0.5 * (h0 + h1)
        if tp > keys[-1][0] + 1e-3:
            add_key(tp, v * u0)
        add_key(tp + brake_s, b.u(0.35, 0.5) * v * np.array([math.cos(hm), math.sin(hm)]))
        add_key(tp + stances[plant_k], b.u(0.7, 0.85) * v * np.array([math.cos(h1), math.sin(h1)]))
        add_key(contacts[plant_k + 2], v * np.array([math.cos(h1), math.sin(h1)]))
    if contacts[-3] > keys[-1][0] + 1e-3:
        add_key(contacts[-3], np.array(keys[-1][3:5]))
    t_stop = contacts[-1] + 0.5 * stance
    add_key(t_stop, np.zeros(2))
    path = _Path(keys)
    hw = b.geometry.hip_half_width_m

    def lateral(side: str, heading: float) -> np.ndarray:
        s = 1.0 if side == "left" else -1.0
        return np.array([-math.sin(heading), math.cos(heading)]) * s

    headings: list[float] = []
    prints: list[np.ndarray] = []
    p_end, _ = path.at(t_stop)
    for k in range(n_steps):
        tm = contacts[k] + 0.5 * stances[k]
        if k >= n_steps - 2:
            headings.append(h1)
            prints.append(p_end + lateral(legs_seq[k], h1) * hw)
            continue
        _, vel = path.at(tm)
        hk = (
            math.atan2(vel[1], vel[0])
            if np.linalg.norm(vel) > 0.3
            else (h0 if k < plant_k or plant_k < 0 else h1)
        )
        hk = h0 + (hk - h0 + math.pi) % (2.0 * math.pi) - math.pi  # continuous heading (no +-pi jumps)
        headings.append(hk)
        if k == plant_k:  # plant foot ahead of the hip and wide to the outside of the cut
            p_c, _ = path.at(contacts[k])
            prints.append(p_c + 0.35 * u0 + lateral(legs_seq[k], hk) * (hw + b.u(0.12, 0.2)))
            continue
        prints.append(path.at(tm)[0] + lateral(legs_seq[k], hk) * hw)
    fault = b.rep_faults()
    t_rest = contacts[-1] + 1.2
    for side in BOTH:
        leg = b.legs[side]
        ks = [k for k in range(n_steps) if legs_seq[k] == side]
        lift = contacts[0] - swing if side == first else contacts[0] + stance - step
        lift = max(lift, t_start + 0.15)
        knee_t, knee_y = [t_start], [0.0]
        # initial stance (standing): the hip starts moving with the path
        p, vel = path.at(lift)
        o = p - np.array([b.x_m, b.y_m])
        o_prev = o
        b.key(side, "ox", lift, float(o[0]), float(vel[0]))
        b.key(side, "oy", lift, float(o[1]), float(vel[1]))
        b.key(side, "heading", lift, h0)
        knee_t.append(lift)
        knee_y.append(style.stance_knee[-1][1] * 0.7)
        hk_prev = h0
        for j, k in enumerate(ks):
            c, st = contacts[k], stances[k]
            last = j == len(ks) - 1
            hk = headings[k]
            leg.lift(
                lift,
                c,
                style.air,
                ground_z_m=b.ground_z_m,
                rest_xy_m=(float(prints[k][0]), float(prints[k][1])),
                v_in_m_s=np.array(
                    [
                        style.v_in_fwd_m_s * math.cos(hk),
                        style.v_in_fwd_m_s * math.sin(hk),
                        -style.v_in_down_m_s,
                    ]
                ),
                impact_s=b.u(*style.impact_s),
                pushoff_s=style.pushoff_s,
                v_out_m_s=np.array(
                    [
                        style.pushoff_fwd_m_s * math.cos(hk_prev),
                        style.pushoff_fwd_m_s * math.sin(hk_prev),
                        style.pushoff_up_m_s,
                    ]
                ),
                follow_side=other[side] if style.air == "follow" else None,
            )
            for frac, fl in style.swing_knee:
                knee_t.append(lift + frac * (c - lift))
                knee_y.append(fl)
            b.key(side, "heading", c, hk)
            times = (c,) if last else (c, c + st)
            for n_key, tk in enumerate(times):
                p, vel = path.at(tk)
                o = p + lateral(side, hk) * hw - prints[k]
                if n_key == 0:
                    # mid-swing: the foot passes under the hip moving forward fast (bounds the offset)
                    t_mid = 0.5 * (lift + c)
                    o_mid = 0.5 * (o + o_prev)
                    rate = 1.6 * (o - o_prev) / (c - lift)
                    b.key(side, "ox", t_mid, float(o_mid[0]), float(rate[0]))
                    b.key(side, "oy", t_mid, float(o_mid[1]), float(rate[1]))
                b.key(side, "ox", tk, float(o[0]), float(vel[0]))
                b.key(side, "oy", tk, float(o[1]), float(vel[1]))
                o_prev = o
            if not last:
                b.key(side, "heading", c + st, hk)
            if side in b.sides:
                b.gait_events.append(
                    {
                        "type": "step",
                        "side": side,
                        "t_s": c,
                        "t_toe_off_s": None if last else c + st,
                        "exercise": exercise,
                    }
                )
            if k == plant_k:
                b.key(side, "valgus", c, 0.0)
                b.key(side, "rotation", c, 0.0)
                b.key(side, "valgus", c + 0.45 * st, b.valgus_peak(fault.valgus))
                b.key(side, "valgus", c + st, 0.0)
                b.key(side, "rotation", c + 0.45 * st, b.u(3.0, 8.0))
                b.key(side, "rotation", c + st, 0.0)
                if side in b.sides:
                    b.events.append(
                        {
                            "type": "cut",
                            "side": side,
                            "t_s": c,
                            "t_takeoff_s": c + st,
                            "direction_change_deg": abs(cut_deg),
                            "cut_direction": "left" if cut_deg > 0 else "right",
                            "approach_heading_rad": h0,
                            "exercise": exercise,
                            "faults": fault.names(),
                            "fault": fault.label(),
                        }
                    )
            if last:
                knee_t += [c, c + 0.2 * stance]
                knee_y += [style.stance_knee[0][1], style.stance_knee[1][1] * 0.7]
                break
            scale = b.u(1.3, 1.5) if k == plant_k else 1.0
            for frac, fl in style.stance_knee:
                knee_t.append(c + frac * st)
                knee_y.append(fl * (scale if 0.0 < frac < 1.0 else 1.0))
            lift = c + st
            hk_prev = hk
        knee_t.append(t_rest)
        knee_y.append(0.0)
        for tk, yk, rk in zip(knee_t[1:], knee_y[1:], _rates(knee_t, knee_y)[1:], strict=True):
            b.key(side, "flexion", tk, yk, rk)
        b.key(side, "ox", t_rest, 0.0)
        b.key(side, "oy", t_rest, 0.0)
    b.t_s = t_rest
    b.x_m, b.y_m, b.heading_rad = float(p_end[0]), float(p_end[1]), h1
    b.hold_all(b.t_s)


def walk(b: Builder, reps: int, steps: int = 12) -> None:
    """Walking bouts at ~1.2 m/s: start from standing, ``steps`` foot contacts, stop."""
    for _ in range(reps):
        _locomotion(b, WALK, max(steps, 6), exercise="walk")
        b.stand(b.u(1.5, 2.5))


def jog(b: Builder, reps: int, steps: int = 14) -> None:
    """Jogging bouts at ~3 m/s: start from standing, ``steps`` foot contacts, stop."""
    for _ in range(reps):
        _locomotion(b, JOG, max(steps, 6), exercise="jog")
        b.stand(b.u(1.5, 2.5))


def _cut(b: Builder, reps: int, angle_deg: float, name: str) -> None:
    for rep in range(reps):
        sign = 1.0 if rep % 2 == 0 else -1.0
        _locomotion(b, JOG, 12, cut_deg=sign * angle_deg, exercise=name)
        b.stand(b.u(1.5, 2.5))


def cut_45(b: Builder, reps: int) -> None:
    """Jog ~3 m/s, sidestep cut changing heading by 45 deg (alternating left/right), jog on, stop."""
    _cut(b, reps, 45.0, "cut_45")


def cut_90(b: Builder, reps: int) -> None:
    """As cut_45 with a 90 deg change of direction."""
    _cut(b, reps, 90.0, "cut_90")


DrillFn = Callable[[Builder, int], None]

DRILL_FUNCTIONS: dict[str, DrillFn] = {
    "squat": squat,
    "cmj": cmj,
    "drop_jump": drop_jump,
    "step_down": step_down,
    "lunge": lunge,
    "walk": walk,
    "jog": jog,
    "cut_45": cut_45,
    "cut_90": cut_90,
}
