"""How an athlete moves: the ranges the drills draw their per-rep values from.

A ``Style`` gathers every range a drill draws from (uniformly, once per rep or landing) and the few
behaviours that are on or off for an athlete (forefoot landings, rebounds, tucks, weight shifts). The
defaults are the simulator's original drill design, so ``simulate``/``session`` without a style give the
same motion as before; ``firmware_sim.population`` draws a style per recording.
Angles in degrees, times in seconds, distances in metres for the default-sized athlete (drills scale
distances by ``Geometry.size_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Range = tuple[float, float]
"""(low, high) of a uniform draw; (0, 0) switches an optional behaviour off (nothing is drawn)."""


@dataclass(frozen=True, slots=True)
class Tempo:
    """A knee-bend exercise (squat, step-down, lunge, calibration bend)."""

    depth_deg: Range  # knee flexion at the bottom
    down_s: Range  # eccentric: from leaving rest to the bottom
    up_s: Range  # concentric: bottom back to rest
    pause_s: Range = (0.0, 0.0)  # at the bottom
    fast_down_s: Range = (0.35, 0.6)  # eccentric with the ``fast_eccentric`` fault


@dataclass(frozen=True, slots=True)
class LandingStyle:
    """How the knee and foot meet the ground; each landing draws its values in these ranges.

    The knee yields from ``contact_flexion`` at ``contact_rate`` while the impact pulse (``impact_s``)
    stops the foot, reaching ``post_rate``, then slows to ``peak_flexion`` (excursion = peak - contact).
    With probability ``forefoot_prob`` the forefoot touches first: a softer first pulse, and the heel
    strikes ``heel_delay_s`` later with a second pulse (``firmware_sim.body.contact``).
    """

    peak_flexion_deg: Range = (60.0, 90.0)
    impact_s: Range = (0.042, 0.056)
    contact_flexion_deg: Range = (12.0, 22.0)
    contact_rate_deg_s: Range = (250.0, 400.0)
    post_rate_deg_s: Range = (650.0, 850.0)
    forefoot_prob: float = 0.0
    heel_delay_s: Range = (0.03, 0.08)  # forefoot touch to heel strike
    heel_impact_s: Range = (0.02, 0.035)
    heel_fraction: Range = (0.3, 0.5)  # share of the downward arrival speed the heel strike stops


STIFF_LANDING = LandingStyle((30.0, 42.0), (0.028, 0.036), (5.0, 10.0), (100.0, 200.0), (400.0, 550.0))
"""The ``stiff_landing`` fault: little knee flexion, a short hard impact."""


@dataclass(frozen=True, slots=True)
class FlightStyle:
    """What the legs do in the air, drawn per leg and jump (asymmetric legs)."""

    tuck_flexion_deg: Range = (0.0, 0.0)  # knee flexion mid-flight (tuck); 0: straight until pre-landing
    legs_forward_m: Range = (0.0, 0.0)  # ankle ahead of the hip at the tuck (negative: behind, swung back)
    contact_spread_s: float = 0.0  # one foot lands up to this much after the other


@dataclass(frozen=True, slots=True)
class JumpStyle:
    """A jump from the ground: countermovement, propulsion, flight, landing, stick or rebound."""

    dip_deg: Range  # countermovement depth (knee flexion)
    dip_s: Range
    push_s: Range  # propulsion: bottom of the dip to take-off
    flight_s: Range
    forward_m_s: Range  # horizontal take-off speed of the hip along the heading
    sideways_m_s: Range = (0.0, 0.0)
    rebound_prob: float = 0.0  # chance that a landing rebounds straight into the next jump of the set
    rebound_contact_s: Range = (0.22, 0.33)  # ground contact of a rebound (at least until peak + 0.1 s)
    pushoff_s: Range = (0.09, 0.11)  # heel raise before take-off
    flight: FlightStyle = field(default_factory=FlightStyle)


@dataclass(frozen=True, slots=True)
class DropStyle:
    """Drop jump: step onto a box, drop off, rebound, land."""

    box_m: Range = (0.30, 0.40)
    drop_speed_m_s: Range = (0.8, 1.1)  # forward speed stepping off the box
    rebound_contact_s: Range = (0.22, 0.33)
    flight_s: Range = (0.42, 0.55)
    forward_m_s: Range = (0.1, 0.3)
    flight: FlightStyle = field(default_factory=FlightStyle)


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


@dataclass(frozen=True, slots=True)
class CutStyle:
    """The ``cut`` drill: a plant and change of travel direction while jogging."""

    angle_deg: Range = (45.0, 135.0)
    crossover_prob: float = 0.0  # plant the inside foot and cross over, instead of a sidestep


@dataclass(frozen=True, slots=True)
class CurveStyle:
    """The ``jog_curves`` drill: gradual heading changes over several steps, no plant."""

    curves_per_bout: tuple[int, int] = (1, 3)
    angle_deg: Range = (30.0, 180.0)  # heading change of one curve
    deg_per_step: Range = (12.0, 30.0)  # turning rate: 30 deg per 0.34 s step at 3 m/s is ~0.47 g sideways
    min_steps: int = 4  # a curve lasts at least two strides


@dataclass(frozen=True, slots=True)
class Style:
    """Everything a drill draws from; the defaults reproduce the simulator's original drills."""

    landing: LandingStyle = field(default_factory=LandingStyle)
    stiff_landing: LandingStyle = STIFF_LANDING
    hop_landing: LandingStyle = LandingStyle(peak_flexion_deg=(35.0, 60.0), post_rate_deg_s=(450.0, 650.0))
    cmj: JumpStyle = JumpStyle(
        (70.0, 95.0), (0.45, 0.65), (0.3, 0.4), (0.42, 0.56), (-0.1, 0.15), (-0.05, 0.05)
    )
    tuck_jump: JumpStyle = JumpStyle(
        (40.0, 70.0),
        (0.3, 0.45),
        (0.25, 0.35),
        (0.5, 0.68),
        (-0.1, 0.2),
        (-0.05, 0.05),
        rebound_prob=0.7,
        rebound_contact_s=(0.25, 0.45),
        flight=FlightStyle((80.0, 115.0), (0.1, 0.3), 0.02),
    )
    hop: JumpStyle = JumpStyle(
        (25.0, 45.0),
        (0.3, 0.5),
        (0.2, 0.3),
        (0.25, 0.42),
        (0.0, 1.8),
        (-0.1, 0.1),
        rebound_prob=0.4,
        rebound_contact_s=(0.25, 0.4),
        flight=FlightStyle((0.0, 30.0), (-0.1, 0.1)),
    )
    hop_side: str | None = None  # hopping leg; None: the first simulated side
    hop_free_knee_deg: Range = (80.0, 100.0)  # the free leg hangs bent, foot behind, clear of the ground
    drop_jump: DropStyle = field(default_factory=DropStyle)
    squat: Tempo = Tempo((70.0, 110.0), (1.2, 2.2), (0.9, 1.5), (0.1, 0.4), (0.35, 0.6))
    step_down: Tempo = Tempo((60.0, 80.0), (1.5, 3.0), (1.0, 1.5), (0.0, 0.0), (0.5, 0.8))
    lunge: Tempo = Tempo((85.0, 100.0), (1.0, 2.0), (0.9, 1.4), (0.0, 0.0), (0.4, 0.6))
    bends: Tempo = Tempo((35.0, 50.0), (0.8, 1.2), (0.8, 1.2))
    n_bends: int = 3  # calibration bends
    walk: GaitStyle = WALK
    jog: GaitStyle = JOG
    cut: CutStyle = field(default_factory=CutStyle)
    curves: CurveStyle = field(default_factory=CurveStyle)
    sway_rms_m: float = 0.002  # postural sway of the hips
    weight_shift_m: Range = (0.0, 0.0)  # sideways hip shift over one foot while standing (knees straight)
