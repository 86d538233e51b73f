"""The drills: keyframe designs of the generalised coordinates, with per-rep random variation and faults.

Every drill function appends to a ``Builder`` starting from quiet standing (both feet flat, all angles 0)
and ends in quiet standing. Times of the designed moments (start of descent, contact, take-off) are
recorded as event skeletons; ``truth`` computes the metric values from the resulting trajectories.
Angles are designed in degrees and stored in radians. Every per-rep value is drawn from the builder's
``Style`` (``style.py``), whose defaults are the original drill design.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .skeleton import Geometry, Leg
from .style import JOG, WALK, FlightStyle, GaitStyle, JumpStyle, LandingStyle, Range, Style

__all__ = ["BOTH", "DRILL_FUNCTIONS", "FAULTS", "JOG", "WALK", "Builder", "GaitStyle"]

RAD = math.pi / 180.0
BOTH = ("right", "left")
FAULTS = ("valgus", "stiff_landing", "fast_eccentric")


def other_side(side: str) -> str:
    return "left" if side == "right" else "right"


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
    curves: list[tuple[float, float, float]] = field(default_factory=list)  # jogging curves: t0, t1, deg
    drill: str = ""
    style: Style = field(default_factory=Style)

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

    @property
    def size(self) -> float:
        """Distances of the design are for the default athlete; scale them by this."""
        return self.geometry.size_scale

    # ---- keyframes ----------------------------------------------------------------------------------
    def key(
        self, side: str, name: str, t_s: float, value: float, rate: float = 0.0, accel: float = 0.0
    ) -> None:
        """Keyframe; angles (flexion/valgus/rotation) in degrees and deg/s, heading in rad, offsets in m."""
        scale = RAD if name in ("flexion", "valgus", "rotation") else 1.0
        self.legs[side].tracks[name].key(t_s, value * scale, rate * scale, accel * scale)

    def key_o(
        self, side: str, t_s: float, forward_m: float, rate_m_s: float = 0.0, left_m: float = 0.0
    ) -> None:
        """Keyframe the hip offset ``forward_m`` ahead of (``left_m`` left of) the ankle along the body's
        heading (m, m/s)."""
        c, s = math.cos(self.heading_rad), math.sin(self.heading_rad)
        self.key(side, "ox", t_s, forward_m * c - left_m * s, rate_m_s * c)
        self.key(side, "oy", t_s, forward_m * s + left_m * c, rate_m_s * s)

    def key_both(self, name: str, t_s: float, value: float, rate: float = 0.0, accel: float = 0.0) -> None:
        for side in BOTH:
            self.key(side, name, t_s, value, rate, accel)

    def hold_all(self, t_s: float) -> None:
        for leg in self.legs.values():
            for track in leg.tracks.values():
                track.hold(t_s)

    def hold_leg(self, side: str, t_s: float) -> None:
        for track in self.legs[side].tracks.values():
            track.hold(t_s)

    def stand(self, duration_s: float) -> None:
        """Quiet standing (or holding the current posture) for ``duration_s``."""
        self.t_s += duration_s
        self.hold_all(self.t_s)

    def rep_faults(self) -> RepFaults:
        return RepFaults(**{name: bool(self.rng.random() < self.faults.get(name, 0.0)) for name in FAULTS})

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def opt(self, r: Range) -> float:
        """A draw in ``r``, or 0 without drawing when the range is (0, 0) (an optional behaviour off)."""
        return self.u(*r) if r != (0.0, 0.0) else 0.0

    def chance(self, p: float) -> bool:
        """True with probability ``p``; draws nothing when ``p`` is 0."""
        return p > 0.0 and bool(self.rng.random() < p)

    def valgus_peak(self, faulty: bool) -> float:
        return self.u(8.0, 15.0) if faulty else self.u(0.0, 4.0)


# ---- standing --------------------------------------------------------------------------------------


def standing(b: Builder, duration_s: float, quiet_s: float = 0.0) -> None:
    """Standing for ``duration_s``: quiet for the first ``quiet_s``, then the style's weight shifts.

    A weight shift moves both hips sideways over one foot (``style.weight_shift_m``) in 0.6-1.2 s,
    holds 0.5-1.5 s and moves back: both legs tilt in the frontal plane, the knees stay straight (the
    knee angles stay 0, as the calibration pose requires).
    """
    t_end = b.t_s + duration_s
    t = b.t_s + quiet_s
    if b.style.weight_shift_m != (0.0, 0.0):
        while True:
            start = t + b.u(0.3, 1.5)
            move, hold = b.u(0.6, 1.2), b.u(0.5, 1.5)
            if start + 2.0 * move + hold > t_end - 0.3:
                break
            left = b.u(*b.style.weight_shift_m) * (1.0 if b.rng.random() < 0.5 else -1.0) * b.size
            for side in BOTH:
                b.hold_leg(side, start)
                b.key_o(side, start + move, 0.0, left_m=left)
                b.key_o(side, start + move + hold, 0.0, left_m=left)
                b.key_o(side, start + 2.0 * move + hold, 0.0)
            t = start + 2.0 * move + hold
    b.t_s = t_end
    b.hold_all(t_end)


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
    """Double-leg knee bends for the functional flexion axis (``style.bends``: 35-50 deg by default)."""
    tempo = b.style.bends
    for _ in range(n):
        depth = b.u(*tempo.depth_deg)
        v = {side: b.u(0.0, 2.0) for side in BOTH}
        t0, tb, te = _bend(
            b,
            depth,
            b.u(*tempo.down_s),
            b.u(*tempo.up_s),
            v,
            0.05 * depth / 45.0 * b.size,
            pause_s=b.opt(tempo.pause_s),
        )
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
    """Double-leg squats (``style.squat``: depth 70-110 deg, eccentric 1.2-2.2 s, fast_eccentric
    0.35-0.6 s, pause 0.1-0.4 s by default)."""
    tempo = b.style.squat
    for _ in range(reps):
        f = b.rep_faults()
        f.stiff_landing = False
        depth = b.u(*tempo.depth_deg)
        down = b.u(*tempo.fast_down_s) if f.fast_eccentric else b.u(*tempo.down_s)
        v = {side: b.valgus_peak(f.valgus) for side in BOTH}
        t0, tb, te = _bend(
            b,
            depth,
            down,
            b.u(*tempo.up_s),
            v,
            b.u(0.08, 0.14) * depth / 90.0 * b.size,
            pause_s=b.opt(tempo.pause_s),
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
    heel: tuple[float, float, float] | None = None  # forefoot landing: heel delay, heel pulse, fraction

    @staticmethod
    def draw(b: Builder, faults: RepFaults, style: LandingStyle | None = None) -> Landing:
        """Knee yields while the ankle is decelerated (impact window), then flexes to its peak.

        The flexion rate rises from the pre-contact rate to ``post_rate`` over the impact window, so the
        hip keeps most of its speed while the foot stops; the peak follows after about
        1.6-2.2 x (remaining excursion / post_rate), the minimum-jerk deceleration of the knee.
        ``style`` (default ``b.style.landing``; the stiff_landing fault: ``b.style.stiff_landing``).
        """
        st = b.style.stiff_landing if faults.stiff_landing else (style or b.style.landing)
        peak, impact = b.u(*st.peak_flexion_deg), b.u(*st.impact_s)
        contact, rate, post = (
            b.u(*st.contact_flexion_deg),
            b.u(*st.contact_rate_deg_s),
            b.u(*st.post_rate_deg_s),
        )
        f_i = contact + 0.5 * (rate + post) * impact
        peak = max(peak, f_i + 8.0)
        ttp = impact + b.u(1.6, 2.2) * (peak - f_i) / post
        heel = None
        if b.chance(st.forefoot_prob):
            heel = (b.u(*st.heel_delay_s), b.u(*st.heel_impact_s), b.u(*st.heel_fraction))
        return Landing(contact, rate, post, peak, ttp, b.valgus_peak(faults.valgus), impact, faults, heel)


Touchdown = dict[str, tuple[float, float]]
"""Per landing leg: (initial contact time, flight time) of one flight."""


def _flight_and_landing(
    b: Builder,
    t_off: float,
    flight_s: float,
    land: dict[str, Landing],
    hip_vel_xy: tuple[float, float],
    pushoff_s: float,
    ground_z_m: float,
    takeoff_flexion_deg: float,
    flight: FlightStyle | None = None,
) -> Touchdown:
    """The legs in ``land``: ballistic flight from ``t_off`` and a landing; keys the knee up to the peak.

    ``flight`` (default: legs straight until the pre-landing flexion): per leg a mid-flight knee tuck
    and leg swing, undone before contact, and a later touchdown of one foot. Moves the builder's place
    by the flight's horizontal travel. The knee keyframes before the peak are set here; the caller
    continues.
    """
    fs = flight or FlightStyle()
    late = dict.fromkeys(land, 0.0)
    if fs.contact_spread_s > 0.0 and len(land) > 1:
        late[tuple(land)[int(b.rng.integers(len(land)))]] = b.u(0.0, fs.contact_spread_s)
    travel = _flight_travel_xy(b, next(iter(land)), t_off, flight_s, hip_vel_xy, pushoff_s, land)
    touch: Touchdown = {}
    for side, ld in land.items():
        leg = b.legs[side]
        flight_leg = flight_s + late[side]
        t_c = t_off + flight_leg
        touch[side] = (t_c, flight_leg)
        leg.lift(
            t_off,
            t_c,
            "ballistic",
            ground_z_m=ground_z_m,
            impact_s=ld.impact_s,
            pushoff_s=pushoff_s,
            hip_vel_xy_m_s=hip_vel_xy,
            heel=ld.heel,
        )
        # knee: extension stops early in flight, then pre-landing flexion reaching the contact rate.
        # The rise starts from rest far enough before contact that the quintic stays monotone
        # (excursion >= 0.45 x rate x duration).
        t_air = t_off + min(0.15, 0.4 * flight_leg)
        f_pre = min(max(takeoff_flexion_deg - 8.0, 2.0), 0.3 * ld.contact_flexion_deg)
        t_pre = (ld.contact_flexion_deg - f_pre) / (0.45 * ld.contact_rate_deg_s)
        if not _mid_flight(b, side, fs, t_off, t_c - t_pre, takeoff_flexion_deg, f_pre):
            b.key(side, "flexion", t_air, f_pre)
            if t_c - t_pre > t_air + 0.02:
                b.key(side, "flexion", t_c - t_pre, f_pre)
            b.key_o(side, t_air, 0.0)
        b.key(side, "flexion", t_c, ld.contact_flexion_deg, ld.contact_rate_deg_s)
        b.key_o(side, t_c, -0.04 * b.size, -0.1 * b.size)
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
        b.key_o(side, t_peak, -0.10 * ld.peak_flexion_deg / 75.0 * b.size)
    b.x_m += travel[0]
    b.y_m += travel[1]
    return touch


def _mid_flight(
    b: Builder, side: str, fs: FlightStyle, t_off: float, t_ext: float, takeoff_deg: float, f_pre: float
) -> bool:
    """Key a mid-flight tuck/swing of one leg, undone by ``t_ext`` (where the pre-landing flexion
    starts); False (nothing keyed) when the style has none or the flight is too short for it.

    The knee flexes and extends at a mean 600 deg/s at most (peak ~1100 deg/s, minimum jerk), each
    movement taking at least 0.12 s; a tuck that does not fit the flight is made smaller.
    """
    if fs.tuck_flexion_deg == (0.0, 0.0) and fs.legs_forward_m == (0.0, 0.0):
        return False
    tuck = b.opt(fs.tuck_flexion_deg)
    forward = b.opt(fs.legs_forward_m) * b.size
    avail = t_ext - t_off - 0.05
    if avail < 0.24:
        return False
    tuck = max(min(tuck, f_pre + 300.0 * (avail - 0.02)), f_pre)
    rise = max(0.12, (tuck - takeoff_deg) / 600.0)
    fall = max(0.12, (tuck - f_pre) / 600.0)
    t_mid = t_off + rise + 0.5 * max(avail - rise - fall, 0.0)
    geo = b.geometry
    reach = math.sqrt(
        geo.thigh_length_m**2
        + geo.shank_length_m**2
        + 2.0 * geo.thigh_length_m * geo.shank_length_m * math.cos(math.radians(tuck))
    )
    forward = max(min(forward, 0.6 * reach), -0.6 * reach)  # the hip stays above the ankle
    b.key(side, "flexion", t_mid, tuck)
    b.key_o(side, t_mid, -forward)
    b.key(side, "flexion", t_ext, f_pre)
    b.key_o(side, t_ext, 0.0)
    return True


def _flight_travel_xy(
    b: Builder,
    side: str,
    t_off: float,
    flight_s: float,
    hip_vel_xy: tuple[float, float],
    pushoff_s: float,
    land: dict[str, Landing],
) -> tuple[float, float]:
    """Horizontal displacement of the foot from take-off to rest, as ``Leg.resolve_air`` will find it:
    push-off, flight and impact travel at the hip's velocity, plus the change of the hip offset (keyed at
    take-off by the caller, at contact by ``_flight_and_landing``). Postural sway (mm) is ignored."""
    leg = b.legs[side]
    tx, ty = leg.tracks["ox"], leg.tracks["oy"]
    o0 = np.array([tx.last_y, ty.last_y]) if tx.last_t == t_off else np.zeros(2)
    do0 = np.array([tx.last_rate, ty.last_rate]) if tx.last_t == t_off else np.zeros(2)
    u = np.array([math.cos(b.heading_rad), math.sin(b.heading_rad)])
    o1, do1 = -0.04 * b.size * u, -0.1 * b.size * u
    tau_i = land[side].impact_s
    v = np.asarray(hip_vel_xy, dtype=float)
    d = v * (0.5 * pushoff_s + flight_s + 0.5 * tau_i) + o0 - o1 - 0.5 * (do0 * pushoff_s + do1 * tau_i)
    return float(d[0]), float(d[1])


def _countermovement_takeoff(
    b: Builder, depth_deg: float, down_s: float, up_s: float, legs: Sequence[str] = BOTH
) -> tuple[float, float]:
    """Countermovement and propulsion of ``legs``; returns (take-off time, knee flexion at take-off)."""
    t_low = b.t_s + down_s
    t_off = t_low + up_s
    f_off = b.u(8.0, 14.0)
    for side in legs:
        b.key(side, "flexion", t_low, depth_deg)
        b.key_o(side, t_low, -0.10 * depth_deg / 90.0 * b.size)
        b.key(side, "valgus", t_low, b.u(0.0, 2.0))
        b.key(side, "rotation", t_low, 0.05 * depth_deg)
        b.key(side, "flexion", t_off, f_off, -b.u(250.0, 350.0), 5000.0)
        b.key_o(side, t_off, 0.02 * b.size)
        b.key(side, "valgus", t_off, 0.0)
        b.key(side, "rotation", t_off, 0.0)
    return t_off, f_off


def _rebound_takeoff(
    b: Builder, touch: Touchdown, land: dict[str, Landing], contact_s: Range
) -> tuple[float, float]:
    """Extend quickly and take off again (drop jump, repeated jumps): ground contact drawn in
    ``contact_s`` but at least until 0.1 s after each leg's peak flexion. Returns (take-off, flexion)."""
    gct = b.u(*contact_s)
    t_first = min(t for t, _ in touch.values())
    t_off = t_first + max(gct, max(touch[s][0] - t_first + ld.time_to_peak_s for s, ld in land.items()) + 0.1)
    f_off = b.u(10.0, 16.0)
    for side in land:
        b.key(side, "flexion", t_off, f_off, -b.u(300.0, 400.0), 5000.0)
        b.key(side, "valgus", t_off, 0.0)
        b.key(side, "rotation", t_off, 0.0)
        b.key_o(side, t_off, 0.03 * b.size)
    return t_off, f_off


def _recover(b: Builder, t_from: float, duration_s: float, legs: Sequence[str] = BOTH) -> None:
    """From the landing's deepest point back to quiet standing."""
    t_end = t_from + duration_s
    for side in legs:
        b.key(side, "flexion", t_end, 0.0)
        b.key(side, "valgus", t_end, 0.0)
        b.key(side, "rotation", t_end, 0.0)
    for side in legs:
        b.key_o(side, t_end, 0.0)
    b.t_s = t_end
    b.hold_all(t_end)


def _landing_events(
    b: Builder,
    touch: Touchdown,
    land: dict[str, Landing],
    t_next_off: float | None,
    exercise: str,
    **extra: Any,
) -> None:
    for side in b.sides:
        if side not in land:
            continue
        t_c, flight_s = touch[side]
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
            **extra,
        }
        heel = land[side].heel
        if heel is not None:
            ev["t_heel_strike_s"] = t_c + heel[0]
        if exercise != "drop_landing":
            ev["jump_height_m"] = 9.80665 * flight_s**2 / 8.0
        b.events.append(ev)


def _peak_time(touch: Touchdown, land: dict[str, Landing]) -> float:
    return max(touch[side][0] + ld.time_to_peak_s for side, ld in land.items())


def _jump_set(
    b: Builder,
    reps: int,
    js: JumpStyle,
    exercise: str,
    legs: Sequence[str] = BOTH,
    landing: LandingStyle | None = None,
    rest_s: Range = (1.5, 2.5),
    **extra: Any,
) -> None:
    """``reps`` jumps from standing on ``legs``: countermovement, flight, landing; a landing sticks (back
    to standing) or, with ``js.rebound_prob``, rebounds straight into 1-3 more jumps."""
    for _ in range(reps):
        f = b.rep_faults()
        f.fast_eccentric = False
        t_off, f_off = _countermovement_takeoff(b, b.u(*js.dip_deg), b.u(*js.dip_s), b.u(*js.push_s), legs)
        n_jumps = 1 + (int(b.rng.integers(1, 4)) if b.chance(js.rebound_prob) else 0)
        for j in range(n_jumps):
            if j > 0:
                f = b.rep_faults()
                f.fast_eccentric = False
            flight = b.u(*js.flight_s)
            land = {side: Landing.draw(b, f, landing) for side in legs}
            vel = b.rotate_xy(b.u(*js.forward_m_s), b.u(*js.sideways_m_s))
            touch = _flight_and_landing(
                b, t_off, flight, land, vel, b.u(*js.pushoff_s), b.ground_z_m, f_off, js.flight
            )
            if j < n_jumps - 1:
                t_off, f_off = _rebound_takeoff(b, touch, land, js.rebound_contact_s)
                _landing_events(b, touch, land, t_off, exercise, **extra)
                continue
            _landing_events(b, touch, land, None, exercise, **extra)
            _recover(b, _peak_time(touch, land) + 0.01, b.u(0.8, 1.2), legs)
        b.stand(b.u(*rest_s))


def cmj(b: Builder, reps: int) -> None:
    """Countermovement jumps (``style.cmj``: dip 70-95 deg, flight 0.42-0.56 s by default), landing and
    recovery; with a rebound style, sets of repeated jumps."""
    _jump_set(b, reps, b.style.cmj, "cmj")


def tuck_jump(b: Builder, reps: int) -> None:
    """Tuck jumps (``style.tuck_jump``): flight 0.5-0.68 s with the knees pulled up to 80-115 deg and
    the feet brought forward, legs extended again before contact; most sets rebound continuously."""
    _jump_set(b, reps, b.style.tuck_jump, "tuck_jump")


def hop(b: Builder, reps: int) -> None:
    """Single-leg hops on ``style.hop_side`` (default the first simulated side): the free leg hangs
    with the knee bent 80-100 deg and the foot behind, following the hopping leg; ``reps`` hops forward
    (0-1.8 m/s), in place or slightly sideways, each single-leg landing sticking (0.6-1.5 s on one leg)
    or rebounding into the next; then the free foot comes down beside the other."""
    leg = b.style.hop_side or b.sides[0]
    free = other_side(leg)
    t_lift = b.t_s
    knee_free = b.u(*b.style.hop_free_knee_deg)
    foot_behind = b.u(0.12, 0.2) * b.size
    b.key(free, "flexion", t_lift + 0.4, knee_free)
    b.key_o(free, t_lift + 0.4, foot_behind)
    b.t_s = t_lift + 0.6 + b.u(0.2, 0.6)
    b.hold_leg(leg, b.t_s)
    _jump_set(b, reps, b.style.hop, "hop", (leg,), b.style.hop_landing, (0.6, 1.5), single_leg=True)
    # the free foot comes down beside the hopping foot (the builder's place followed the hops)
    t_down = b.t_s + 0.6
    b.legs[free].lift(
        t_lift,
        t_down,
        "follow",
        ground_z_m=b.ground_z_m,
        rest_xy_m=b.foot_xy(free),
        v_in_m_s=np.array([0.0, 0.0, -0.3]),
        impact_s=0.03,
        follow_side=leg,
    )
    b.key(free, "flexion", t_down - 0.3, 0.6 * knee_free)
    b.key_o(free, t_down - 0.3, 0.5 * foot_behind)
    b.key(free, "flexion", t_down, 5.0)
    b.key_o(free, t_down, 0.0)
    b.key(free, "flexion", t_down + 0.4, 0.0)
    b.t_s = t_down + 0.5
    b.hold_all(b.t_s)
    b.stand(b.u(1.0, 2.0))


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
    """Drop jumps (``style.drop_jump``): step up onto a 30-40 cm box, drop off, land, rebound (contact
    0.22-0.33 s), land."""
    ds = b.style.drop_jump
    for rep in range(reps):
        box = b.u(*ds.box_m)
        _step_onto(b, "right" if rep % 2 == 0 else "left", 0.35 * b.size, box)
        b.stand(b.u(1.0, 1.8))
        f = b.rep_faults()
        f.fast_eccentric = False
        # drop: a small forward hop off the box
        t_off = b.t_s + 0.35
        for side in BOTH:
            b.key(side, "flexion", t_off - 0.15, 12.0)
            b.key(side, "flexion", t_off, 6.0, -60.0)
            b.key_o(side, t_off, 0.05 * b.size, 0.2 * b.size)
        drop_flight = math.sqrt(2.0 * box / 9.80665) + b.u(0.0, 0.03)
        land1 = {side: Landing.draw(b, f) for side in BOTH}
        touch1 = _flight_and_landing(
            b,
            t_off,
            drop_flight,
            land1,
            b.rotate_xy(b.u(*ds.drop_speed_m_s), 0.0),
            0.1,
            b.ground_z_m - box,
            6.0,
        )
        b.ground_z_m -= box
        t_off2, f_off = _rebound_takeoff(b, touch1, land1, ds.rebound_contact_s)
        _landing_events(b, touch1, land1, t_off2, "drop_landing")
        f2 = b.rep_faults()
        f2.fast_eccentric = False
        flight2 = b.u(*ds.flight_s)
        land2 = {side: Landing.draw(b, f2) for side in BOTH}
        touch2 = _flight_and_landing(
            b,
            t_off2,
            flight2,
            land2,
            b.rotate_xy(b.u(*ds.forward_m_s), 0.0),
            0.09,
            b.ground_z_m,
            f_off,
            ds.flight,
        )
        _landing_events(b, touch2, land2, None, "drop_jump")
        _recover(b, _peak_time(touch2, land2) + 0.01, b.u(0.8, 1.2))
        b.stand(b.u(1.5, 2.5))


# ---- single-leg and split-stance drills ------------------------------------------------------------


def step_down(b: Builder, reps: int) -> None:
    """Forward step-downs from a 20 cm step: the working leg lowers the body (flexion 60-80 deg,
    slow eccentric 1.5-3 s; fast_eccentric: 0.5-0.8 s) until the free heel nears the floor in front, then
    rises; the free leg hangs and returns to the step. Working leg alternates between ``sides``.
    Tempo and depth from ``style.step_down`` (with an optional pause at the bottom)."""
    tempo = b.style.step_down
    _step_onto(b, "right", 0.3 * b.size, 0.20)
    b.stand(b.u(1.0, 1.5))
    for rep in range(reps):
        work = b.sides[rep % len(b.sides)]
        free = "left" if work == "right" else "right"
        f = b.rep_faults()
        f.stiff_landing = False
        t_lift = b.t_s
        t0 = t_lift + 0.5  # start of descent
        ecc = b.u(*tempo.fast_down_s) if f.fast_eccentric else b.u(*tempo.down_s)
        t_bottom = t0 + ecc
        up = b.u(*tempo.up_s)
        depth = b.u(*tempo.depth_deg)
        pause = b.opt(tempo.pause_s)
        t_end = t_bottom + pause + up
        t_back = t_end + 0.6
        b.legs[free].lift(
            t_lift, t_back, "follow", ground_z_m=b.ground_z_m, step_xy_m=(0.0, 0.0), follow_side=work
        )
        fwd = b.forward(1.0)
        b.key(free, "flexion", t0, 25.0)
        b.key(free, "flexion", t_bottom, b.u(5.0, 12.0))
        b.key(free, "ox", t_bottom, -0.28 * b.size * fwd[0])
        b.key(free, "oy", t_bottom, -0.28 * b.size * fwd[1])
        b.key(free, "flexion", t_end, 20.0)
        b.key(free, "ox", t_end, -0.05 * b.size * fwd[0])
        b.key(free, "oy", t_end, -0.05 * b.size * fwd[1])
        b.key(free, "flexion", t_back, 0.0)
        b.key(free, "ox", t_back, 0.0)
        b.key(free, "oy", t_back, 0.0)
        for name in ("flexion", "valgus", "rotation", "ox", "oy"):
            b.legs[work].tracks[name].hold(t0)
        b.key(work, "flexion", t_bottom, depth)
        b.key(work, "valgus", t_bottom, b.valgus_peak(f.valgus))
        b.key(work, "rotation", t_bottom, b.u(3.0, 7.0))
        b.key(work, "ox", t_bottom, -0.08 * b.size * fwd[0])
        b.key(work, "oy", t_bottom, -0.08 * b.size * fwd[1])
        if pause > 0.0:  # holding near the bottom, rising slightly
            for name in ("flexion", "valgus", "rotation", "ox", "oy"):
                track = b.legs[work].tracks[name]
                track.key(t_bottom + pause, track.last_y * (0.98 if name == "flexion" else 0.95))
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
    1.0-2.0 s; fast_eccentric 0.4-0.6 s; ``style.lunge``), push back to standing. Lead leg alternates.
    A rep event is emitted for both legs (``role`` lead/trail): both knees perform the bend."""
    for rep in range(reps):
        lead = "right" if rep % 2 == 0 else "left"
        trail = "left" if lead == "right" else "right"
        f = b.rep_faults()
        f.stiff_landing = False
        tempo = b.style.lunge
        length = b.u(0.7, 0.85) * b.size
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
        o_lead_plant = -(length - 0.3 * b.size)
        b.key(lead, "flexion", t_lift + 0.3, 45.0)
        b.key(lead, "flexion", t_plant, 12.0)
        for ax, comp in (("ox", 0), ("oy", 1)):
            b.key(lead, ax, t_plant, o_lead_plant * fwd[comp])
            b.key(trail, ax, t_plant, 0.3 * b.size * fwd[comp])
        b.key(trail, "flexion", t_plant, 8.0)
        t0 = t_plant + 0.25
        ecc = b.u(*tempo.fast_down_s) if f.fast_eccentric else b.u(*tempo.down_s)
        t_bottom = t0 + ecc
        up = b.u(*tempo.up_s)
        depth = b.u(*tempo.depth_deg)
        pause = b.opt(tempo.pause_s)
        t_end = t_bottom + pause + up
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
        if pause > 0.0:  # holding near the bottom, rising slightly
            for side in BOTH:
                for name in ("flexion", "valgus", "rotation", "ox", "oy"):
                    track = b.legs[side].tracks[name]
                    track.key(t_bottom + pause, track.last_y * (0.98 if name == "flexion" else 0.95))
        b.key(lead, "flexion", t_end, 15.0)
        b.key(trail, "flexion", t_end, 8.0)
        for side in BOTH:
            b.key(side, "valgus", t_end, 0.0)
            b.key(side, "rotation", t_end, 0.0)
        for ax, comp in (("ox", 0), ("oy", 1)):
            b.key(lead, ax, t_end, o_lead_plant * fwd[comp])
            b.key(trail, ax, t_end, 0.3 * b.size * fwd[comp])
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


PathKey = tuple[float, float, float, float, float, float, float]
"""(t, x, y, vx, vy, ax, ay) of the body's midline."""


@dataclass(slots=True)
class _Path:
    """Horizontal path of the body's midline: quintic through (t, position, velocity, acceleration) keys."""

    keys: list[PathKey]

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        ks = self.keys
        if t <= ks[0][0]:
            return np.array(ks[0][1:3]), np.zeros(2)
        if t >= ks[-1][0]:
            return np.array(ks[-1][1:3]), np.zeros(2)
        i = max(j for j in range(len(ks)) if ks[j][0] <= t)
        t0, x0, y0, vx0, vy0, ax0, ay0 = ks[i]
        t1, x1, y1, vx1, vy1, ax1, ay1 = ks[i + 1]
        from .trajectory import eval_poly5, quintic_segment

        coef = quintic_segment(
            0.0,
            t1 - t0,
            np.array([x0, y0]),
            np.array([vx0, vy0]),
            np.array([ax0, ay0]),
            np.array([x1, y1]),
            np.array([vx1, vy1]),
            np.array([ax1, ay1]),
        )
        s = np.array([t - t0])
        px, py = eval_poly5(coef[0], s), eval_poly5(coef[1], s)
        return np.array([px.v[0], py.v[0]]), np.array([px.d1[0], py.d1[0]])


def _within_reach(foot: np.ndarray, hips: Sequence[np.ndarray], reach_m: float) -> np.ndarray:
    """``foot``, moved towards the mean of ``hips`` just enough that each hip is within ``reach_m``."""
    centre = sum(hips) / len(hips)
    lo, hi = 0.0, 1.0
    if max(float(np.linalg.norm(h - foot)) for h in hips) <= reach_m:
        return foot
    for _ in range(30):  # bisection on the share of the way to the centre
        mid = 0.5 * (lo + hi)
        moved = foot + mid * (centre - foot)
        lo, hi = (lo, mid) if max(float(np.linalg.norm(h - moved)) for h in hips) <= reach_m else (mid, hi)
    return np.asarray(foot + hi * (centre - foot))


def _locomotion(
    b: Builder,
    style: GaitStyle,
    n_steps: int,
    cut_deg: float = 0.0,
    exercise: str = "walk",
    *,
    crossover: bool = False,
    turns: Sequence[tuple[int, int, float]] = (),
) -> None:
    """A bout from standing: start, ``n_steps`` foot contacts (optionally one of them a cut plant), the
    last two placing the feet side by side, then quiet standing.

    The body's midline follows a smooth path; each stance foot is placed under its hip at mid-stance,
    and the hip offset o = hip - foot follows the path during stance (foot planted, hip moving over it).
    A cut (``cut_deg`` != 0, + = left) brakes on one plant and leaves in the new direction: a sidestep
    plants the outside foot wide, a ``crossover`` the inside foot near the midline. ``turns``
    (first contact index, number of steps, degrees; + = left) are curves: the path's heading turns at
    a constant rate from one contact to the n-th next (centripetal acceleration, no plant).
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
        plant_leg = "right" if (cut_deg > 0.0) != crossover else "left"  # sidestep: the outside foot
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
    keys: list[PathKey] = [(t_start, b.x_m, b.y_m, 0.0, 0.0, 0.0, 0.0)]

    def add_key(tk: float, vel: np.ndarray, acc: np.ndarray | None = None) -> None:
        tp, xp, yp, vxp, vyp, axp, ayp = keys[-1]
        pos = np.array([xp, yp]) + 0.5 * (np.array([vxp, vyp]) + vel) * (tk - tp)
        a = np.zeros(2) if acc is None else acc
        if acc is not None or axp or ayp:  # trapezoid + end correction: exact up to quartic paths
            pos += (np.array([axp, ayp]) - a) * (tk - tp) ** 2 / 12.0
        keys.append(
            (tk, float(pos[0]), float(pos[1]), float(vel[0]), float(vel[1]), float(a[0]), float(a[1]))
        )

    def along(heading: float) -> np.ndarray:
        return np.array([math.cos(heading), math.sin(heading)])

    add_key(contacts[2], v * u0)
    h1 = h0
    for k0, n_turn, turn_deg in turns:
        if contacts[k0] > keys[-1][0] + 1e-3:
            add_key(contacts[k0], v * along(h1))
        turn_rad = math.radians(turn_deg)
        rate_rad_s = turn_rad / (contacts[k0 + n_turn] - contacts[k0])
        for j in range(1, n_turn + 1):
            hj = h1 + turn_rad * j / n_turn
            inner = j < n_turn
            add_key(
                contacts[k0 + j], v * along(hj), rate_rad_s * v * along(hj + 0.5 * math.pi) if inner else None
            )
        b.curves.append((contacts[k0], contacts[k0 + n_turn], turn_deg))
        h1 += turn_rad
    if plant_k >= 0:
        tp = contacts[plant_k]
        h1 = h0 + math.radians(cut_deg)
        hm = 0.5 * (h0 + h1)
        if tp > keys[-1][0] + 1e-3:
            add_key(tp, v * u0)
        # sharper cuts brake harder (a 135 deg cut nearly stops at the plant)
        slow = b.u(0.35, 0.5) * min(1.0, 90.0 / abs(cut_deg))
        add_key(tp + brake_s, slow * v * np.array([math.cos(hm), math.sin(hm)]))
        add_key(tp + stances[plant_k], b.u(0.7, 0.85) * v * np.array([math.cos(h1), math.sin(h1)]))
        add_key(contacts[plant_k + 2], v * np.array([math.cos(h1), math.sin(h1)]))
    if contacts[-3] > keys[-1][0] + 1e-3:
        add_key(contacts[-3], np.array(keys[-1][3:5]))  # (ends any curve: no acceleration)
    t_stop = contacts[-1] + 0.5 * stance
    add_key(t_stop, np.zeros(2))
    path = _Path(keys)
    hw = b.geometry.hip_half_width_m

    def lateral(side: str, heading: float) -> np.ndarray:
        s = 1.0 if side == "left" else -1.0
        return np.array([-math.sin(heading), math.cos(heading)]) * s

    headings: list[float] = []
    prints: list[np.ndarray] = []
    # a plant foot farther than this from its hip at plant or toe-off is beyond a cutting leg's reach
    reach_m = 0.6 * (b.geometry.thigh_length_m + b.geometry.shank_length_m)
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
        h_ref = headings[-1] if headings else h0
        hk = h_ref + (hk - h_ref + math.pi) % (2.0 * math.pi) - math.pi  # continuous (no +-pi jumps)
        headings.append(hk)
        if k == plant_k:  # plant foot ahead of the hip; sidestep: wide outside, crossover: near the midline
            p_c, _ = path.at(contacts[k])
            wide = b.u(0.12, 0.2) * b.size
            side_m = hw - 0.6 * wide if crossover else hw + wide
            foot = p_c + 0.35 * b.size * u0 + lateral(legs_seq[k], hk) * side_m
            hips = (p_c, path.at(contacts[k] + stances[k])[0])
            prints.append(_within_reach(foot, [h + lateral(legs_seq[k], hk) * hw for h in hips], reach_m))
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
                keep_clear=True,
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
                            "cut_style": "crossover" if crossover else "sidestep",
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
    """Walking bouts (``style.walk``, ~1.2 m/s): start from standing, ``steps`` foot contacts, stop."""
    for _ in range(reps):
        _locomotion(b, b.style.walk, max(steps, 6), exercise="walk")
        b.stand(b.u(1.5, 2.5))


def jog(b: Builder, reps: int, steps: int = 14) -> None:
    """Jogging bouts (``style.jog``, ~3 m/s): start from standing, ``steps`` foot contacts, stop."""
    for _ in range(reps):
        _locomotion(b, b.style.jog, max(steps, 6), exercise="jog")
        b.stand(b.u(1.5, 2.5))


def _cut(b: Builder, reps: int, angle_deg: float, name: str) -> None:
    for rep in range(reps):
        sign = 1.0 if rep % 2 == 0 else -1.0
        _locomotion(b, b.style.jog, 12, cut_deg=sign * angle_deg, exercise=name)
        b.stand(b.u(1.5, 2.5))


def cut_45(b: Builder, reps: int) -> None:
    """Jog ~3 m/s, sidestep cut changing heading by 45 deg (alternating left/right), jog on, stop."""
    _cut(b, reps, 45.0, "cut_45")


def cut_90(b: Builder, reps: int) -> None:
    """As cut_45 with a 90 deg change of direction."""
    _cut(b, reps, 90.0, "cut_90")


def cut(b: Builder, reps: int) -> None:
    """Jog, plant and change the travel direction by ``style.cut.angle_deg`` (45-135 deg): a sidestep
    (outside foot planted wide) or, with ``style.cut.crossover_prob``, a crossover (inside foot); the
    plant is on the first simulated side 70 % of the time, the turn goes whichever way that makes."""
    cs = b.style.cut
    for _ in range(reps):
        plant = b.sides[0] if b.rng.random() < 0.7 else other_side(b.sides[0])
        crossover = b.chance(cs.crossover_prob)
        left_turn = (plant == "right") != crossover
        angle = b.u(*cs.angle_deg)
        _locomotion(
            b, b.style.jog, 12, cut_deg=angle if left_turn else -angle, exercise="cut", crossover=crossover
        )
        b.stand(b.u(1.5, 2.5))


def jog_curves(b: Builder, reps: int) -> None:
    """Jogging bouts along curves (``style.curves``): 2-4 straight steps, then 1-3 curves of 30-180 deg
    either way, each turning at 12-30 deg per step over at least ``min_steps`` steps, 1-3 straight steps
    between, 3 to stop. No plant and no cut event: the curve intervals are in ``Builder.curves``."""
    cs = b.style.curves
    for _ in range(reps):
        k = 2 + int(b.rng.integers(0, 3))
        turns = []
        for _ in range(int(b.rng.integers(cs.curves_per_bout[0], cs.curves_per_bout[1] + 1))):
            angle = b.u(*cs.angle_deg) * (1.0 if b.rng.random() < 0.5 else -1.0)
            n = max(cs.min_steps, math.ceil(abs(angle) / b.u(*cs.deg_per_step)))
            turns.append((k, n, angle))
            k += n + int(b.rng.integers(1, 4))
        _locomotion(b, b.style.jog, k + 3, exercise="jog_curves", turns=turns)
        b.stand(b.u(1.5, 2.5))


DrillFn = Callable[[Builder, int], None]

DRILL_FUNCTIONS: dict[str, DrillFn] = {
    "squat": squat,
    "cmj": cmj,
    "tuck_jump": tuck_jump,
    "hop": hop,
    "drop_jump": drop_jump,
    "step_down": step_down,
    "lunge": lunge,
    "walk": walk,
    "jog": jog,
    "jog_curves": jog_curves,
    "cut": cut,
    "cut_45": cut_45,
    "cut_90": cut_90,
}
