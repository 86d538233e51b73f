"""Ground contact, flight and impact: how the leg's root point moves in each phase.

Each leg alternates ``Stance`` and ``Air`` phases. The model's root point is the ankle joint centre A.

Stance (foot on the ground): A is at rest at ``rest_m`` (``ankle_height_m`` above the ground under the
foot), so the foot cannot slide; the leg is computed from the foot up (knee, then hip). Two short windows
modify A inside a stance:

* impact (first ``impact_s`` seconds after initial contact, 10-30 ms): the ankle arrives with the
  velocity it had in the air, ``v_in``, and is brought to rest by a Hann-shaped deceleration pulse
  ``a(s) = -v_in (1 - cos(2 pi s / impact_s)) / impact_s`` (peak ``2 |v_in| / impact_s``). It travels
  ``v_in * impact_s / 2`` during the pulse (heel drop / sole compression), ending exactly at ``rest_m``.
  Acceleration is continuous at both ends of the pulse, so the impact is the only sharp event.
* forefoot landing (``heel_delay_s`` > 0): the forefoot touches first and the first pulse removes only
  part of the arrival velocity (all of it but ``heel_fraction`` of its downward part: the ankle keeps
  sinking while the heel comes down, the plantar flexors yielding); the heel strikes ``heel_delay_s``
  after contact and a second Hann pulse of ``heel_impact_s`` stops the rest. The two pulses add
  linearly, so the ankle still ends exactly at ``rest_m``; with ``heel_delay_s`` = 0 (heel-first or
  flat-foot contact) the impact is the single pulse above.
* push-off (last ``pushoff_s`` seconds before take-off): the ankle leaves rest along
  ``v_out * pushoff_s * (x^3 - x^4 / 2)``, x in [0, 1] (heel raise), reaching velocity ``v_out`` with zero
  acceleration at take-off; it never dips below its rest height.

Air (foot off the ground): the hip centre H is the root and A = H - D(t), D the ankle-to-hip vector of
the leg's posture. Three kinds:

* ``ballistic``: H is a free-fall parabola from the take-off state (flight of the whole body), so the
  thigh and shank accelerometers read only the effects of segment rotation about the hip.
  The take-off vertical velocity is solved so that the foot touches down exactly at the designed time.
* ``bridge``: H is a C2 pair of quintics matching position, velocity and acceleration at take-off and at
  the designed contact (footprint, contact velocity), through a mid-swing waypoint (hip level, moving
  at the mean velocity): the swing phase of running.
* ``follow``: one quintic as ``bridge`` (no waypoint) but relative to the other leg's hip
  (H = H_other + quintic): stepping while the other leg carries the body, so the two hips move together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2

from .jets import FloatArray


def _zeros3() -> FloatArray:
    return np.zeros(3)


@dataclass(slots=True)
class Stance:
    t0_s: float
    t1_s: float
    ground_z_m: float
    rest_m: FloatArray | None = None  # ankle rest position (earth); resolved for landings after flight
    step_xy_m: FloatArray | None = None  # or: horizontal displacement from the previous stance's rest
    impact_s: float = 0.0
    v_in_m_s: FloatArray = field(default_factory=_zeros3)  # ankle velocity at initial contact
    pushoff_s: float = 0.0
    v_out_m_s: FloatArray = field(default_factory=_zeros3)  # ankle velocity at take-off
    heel_delay_s: float = 0.0  # forefoot landing: heel strike this long after contact (0: heel-first)
    heel_impact_s: float = 0.0  # duration of the heel-strike pulse
    heel_fraction: float = 0.0  # share of the downward arrival velocity left for the heel strike

    def contains(self, t_s: FloatArray) -> np.ndarray:
        return (t_s >= self.t0_s) & (t_s < self.t1_s)

    @property
    def impact_end_s(self) -> float:
        """Time from contact until the ankle is at rest (the end of the last impact pulse)."""
        if self.heel_delay_s > 0.0:
            return max(self.impact_s, self.heel_delay_s + self.heel_impact_s)
        return self.impact_s

    def heel_velocity(self, v_in_m_s: FloatArray) -> FloatArray:
        """The part of the arrival velocity the heel strike stops (vertical only; zero if heel-first)."""
        if self.heel_delay_s <= 0.0:
            return np.zeros(3)
        return np.array([0.0, 0.0, self.heel_fraction * v_in_m_s[2]])

    def impact_travel_s(self) -> FloatArray:
        """Per axis, the ankle's travel from contact to rest divided by half the arrival velocity.

        A single pulse travels ``v_in * impact_s / 2``; a forefoot landing adds, vertically, the heel
        part moving on until the heel strike and over half of its pulse.
        """
        tau = np.full(3, self.impact_s)
        if self.heel_delay_s > 0.0:
            tau[2] += self.heel_fraction * (2.0 * self.heel_delay_s + self.heel_impact_s - self.impact_s)
        return tau

    def ankle(self, t_s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Ankle position, velocity, acceleration (3, N) at times inside this stance."""
        assert self.rest_m is not None
        n = t_s.shape[0]
        p = np.repeat(self.rest_m[:, None], n, axis=1)
        v = np.zeros((3, n))
        a = np.zeros((3, n))
        if self.impact_s > 0.0:
            v_heel = self.heel_velocity(self.v_in_m_s)
            _add_stop_pulse(p, v, a, t_s - self.t0_s, self.impact_s, self.v_in_m_s - v_heel)
            if self.heel_delay_s > 0.0:
                # moving on at v_heel from contact, stopped by the heel strike's pulse
                s = t_s - self.t0_s - self.heel_delay_s
                before = s < 0.0
                p[:, before] += v_heel[:, None] * (s[before] - 0.5 * self.heel_impact_s)
                v[:, before] += v_heel[:, None]
                _add_stop_pulse(p, v, a, s, self.heel_impact_s, v_heel)
        if self.pushoff_s > 0.0:
            tau = self.pushoff_s
            s = t_s - (self.t1_s - tau)
            m = (s > 0.0) & (s <= tau)
            x = s[m] / tau
            vout = self.v_out_m_s[:, None]
            p[:, m] += vout * (tau * (x**3 - 0.5 * x**4))
            v[:, m] += vout * (3.0 * x * x - 2.0 * x**3)
            a[:, m] += vout * ((6.0 * x - 6.0 * x * x) / tau)
        return p, v, a


@dataclass(slots=True)
class Air:
    t0_s: float
    t1_s: float
    kind: str  # "ballistic" | "bridge" | "follow"
    hip_vel_xy_m_s: FloatArray = field(
        default_factory=lambda: np.zeros(2)
    )  # ballistic: horizontal hip velocity
    follow_side: str | None = None
    keep_clear: bool = False  # follow: repair a swing whose hip sag would put the foot through the floor
    # resolved
    h0_m: FloatArray = field(default_factory=_zeros3)
    v0_m_s: FloatArray = field(default_factory=_zeros3)
    coef: FloatArray = field(default_factory=lambda: np.zeros((3, 6)))
    coef_late: FloatArray | None = None  # bridge: second quintic from the mid-swing waypoint

    def contains(self, t_s: FloatArray) -> np.ndarray:
        return (t_s >= self.t0_s) & (t_s < self.t1_s)

    def hip_own(self, t_s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Hip position, velocity, acceleration (3, N) of the ballistic or quintic part."""
        s = t_s - self.t0_s
        if self.kind == "ballistic":
            g = np.array([0.0, 0.0, GRAVITY_M_S2])[:, None]
            p = self.h0_m[:, None] + self.v0_m_s[:, None] * s - 0.5 * g * s * s
            v = self.v0_m_s[:, None] - g * s
            a = np.repeat(-g, s.shape[0], axis=1)
            return p, v, a
        if self.coef_late is not None:
            half = 0.5 * (self.t1_s - self.t0_s)
            early = s < half
            p, v, a = np.empty((3, s.shape[0])), np.empty((3, s.shape[0])), np.empty((3, s.shape[0]))
            for mask, coef, s_local in ((early, self.coef, s), (~early, self.coef_late, s - half)):
                p[:, mask], v[:, mask], a[:, mask] = eval_vector_quintic(coef, s_local[mask])
            return p, v, a
        return eval_vector_quintic(self.coef, s)


def eval_vector_quintic(c: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Vector quintic (3, 6) at local times s: position, velocity, acceleration (3, N)."""
    p = c[:, 0:1] + s * (c[:, 1:2] + s * (c[:, 2:3] + s * (c[:, 3:4] + s * (c[:, 4:5] + s * c[:, 5:6]))))
    v = c[:, 1:2] + s * (
        2.0 * c[:, 2:3] + s * (3.0 * c[:, 3:4] + s * (4.0 * c[:, 4:5] + s * 5.0 * c[:, 5:6]))
    )
    a = 2.0 * c[:, 2:3] + s * (6.0 * c[:, 3:4] + s * (12.0 * c[:, 4:5] + s * 20.0 * c[:, 5:6]))
    return p, v, a


def _add_stop_pulse(
    p: FloatArray, v: FloatArray, a: FloatArray, s: FloatArray, tau: float, v_stop: FloatArray
) -> None:
    """Add a Hann pulse that brings velocity ``v_stop`` to rest over [0, tau) of local time ``s``,
    ending with zero displacement (positions relative to the rest point)."""
    m = (s >= 0.0) & (s < tau)
    x = s[m] / tau
    two_pi_x = 2.0 * math.pi * x
    phi = s[m] - tau * (0.5 * x * x + (np.cos(two_pi_x) - 1.0) / (4.0 * math.pi**2)) - 0.5 * tau
    phi1 = 1.0 - x + np.sin(two_pi_x) / (2.0 * math.pi)
    phi2 = (np.cos(two_pi_x) - 1.0) / tau
    vin = v_stop[:, None]
    p[:, m] += vin * phi
    v[:, m] += vin * phi1
    a[:, m] += vin * phi2


Phase = Stance | Air
