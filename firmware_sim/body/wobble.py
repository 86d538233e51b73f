"""Soft-tissue artefact: the sensor moving on the bone (truth angles exclude it).

``Wobble``: the sensor rocking on the skin after impacts.

After each impact at time t_k with incoming ankle speed u_k, the sensor rotates about a fixed axis
(segment frame) by ``theta(t) = sum_k A_k g(t - t_k)`` and translates along a fixed direction by
``delta(t) = sum_k B_k g(t - t_k)``, with the damped oscillation
``g(s) = exp(-s / decay_s) sin(2 pi f s) (1 - exp(-s / rise_s))`` for s >= 0 (zero position and velocity
at the impact, 10-20 Hz, decaying in ~0.1 s). Amplitudes scale with u_k (about 1-3 deg and 1-3 mm for a
2.5 m/s landing, less for walking heel strikes).

``SoftTissue``: a wobble plus skin sliding that follows knee flexion (slow, a few degrees): the sensor
rotates about a fixed axis by ``slide_rad_per_rad * flexion`` and shifts along a fixed direction by
``slide_m_per_rad * flexion``. Zero in the standing pose, so calibration poses are unaffected; thigh
sites slide more than tibial ones (skin-marker studies: Leardini et al. 2005, Gait Posture 21:212;
Benoit et al. 2006, Gait Posture 24:152; review Camomilla et al. 2017, Gait Posture 56:101).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from . import jets as jt
from .jets import FloatArray, Jet, Quat, Vec

RISE_S = 0.004
REFERENCE_SPEED_M_S = 2.5


@dataclass(frozen=True, slots=True)
class Wobble:
    freq_hz: float
    decay_s: float
    axis: FloatArray  # unit, segment frame
    direction: FloatArray  # unit, segment frame
    angle_rad: float  # amplitude at the reference impact speed
    shift_m: float

    @staticmethod
    def for_sensor(seed: int, side: str, segment: str) -> Wobble:
        rng = np.random.default_rng([seed, zlib.crc32(f"{side}/{segment}".encode())])
        return Wobble.draw(rng, 1.0 if segment == "thigh" else 0.6)  # more soft tissue on the thigh

    @staticmethod
    def draw(rng: np.random.Generator, scale: float) -> Wobble:
        """Random axis, direction, 10-20 Hz, decay 50-90 ms; 1.5-3 deg and 1.5-3 mm times ``scale``."""
        axis = rng.normal(size=3)
        axis[2] *= 0.3  # mostly rocking about axes across the segment
        direction = rng.normal(size=3)
        return Wobble(
            freq_hz=float(rng.uniform(10.0, 20.0)),
            decay_s=float(rng.uniform(0.05, 0.09)),
            axis=axis / np.linalg.norm(axis),
            direction=direction / np.linalg.norm(direction),
            angle_rad=math.radians(float(rng.uniform(1.5, 3.0)) * scale),
            shift_m=float(rng.uniform(0.0015, 0.003)) * scale,
        )

    def motion(self, t_s: FloatArray, impacts: list[tuple[float, float]]) -> tuple[Quat, Vec]:
        """(rotation sensor-carrier -> segment, displacement in the segment frame) as jets."""
        n = t_s.shape[0]
        g = Jet.zeros(n)
        w = 2.0 * math.pi * self.freq_hz
        for t_k, speed in impacts:
            s = t_s - t_k
            m = (s >= 0.0) & (s < 12.0 * self.decay_s)
            if not m.any():
                continue
            sj = Jet(s[m], np.ones(int(m.sum())), np.zeros(int(m.sum())))
            term = jt.exp(sj * (-1.0 / self.decay_s)) * jt.sin(sj * w) * (1.0 - jt.exp(sj * (-1.0 / RISE_S)))
            term = term * min(speed / REFERENCE_SPEED_M_S, 1.5)
            part = g.take(m) + term
            g.put(m, part)
        half = g * (0.5 * self.angle_rad)
        s_half = jt.sin(half)
        quat: Quat = (jt.cos(half), s_half * self.axis[0], s_half * self.axis[1], s_half * self.axis[2])
        shift = g * self.shift_m
        disp: Vec = (shift * self.direction[0], shift * self.direction[1], shift * self.direction[2])
        return quat, disp


@dataclass(frozen=True, slots=True)
class SoftTissue:
    """A sensor site's soft tissue: impact wobble plus skin sliding proportional to knee flexion."""

    wobble: Wobble
    slide_axis: FloatArray  # unit, segment frame
    slide_rad_per_rad: float  # sensor rotation per radian of knee flexion
    slide_direction: FloatArray  # unit, segment frame
    slide_m_per_rad: float  # sensor shift per radian of knee flexion

    def motion(
        self, t_s: FloatArray, impacts: list[tuple[float, float]], flexion_rad: Jet
    ) -> tuple[Quat, Vec]:
        """(rotation sensor-carrier -> segment, displacement in the segment frame) as jets."""
        q_w, disp = self.wobble.motion(t_s, impacts)
        half = flexion_rad * (0.5 * self.slide_rad_per_rad)
        s_half = jt.sin(half)
        ax = self.slide_axis
        q_slide: Quat = (jt.cos(half), s_half * ax[0], s_half * ax[1], s_half * ax[2])
        shift = flexion_rad * self.slide_m_per_rad
        d = self.slide_direction
        return jt.qmul(q_slide, q_w), jt.vadd(disp, (shift * d[0], shift * d[1], shift * d[2]))

    def to_json(self) -> dict[str, float | list[float]]:
        w = self.wobble
        return {
            "wobble_freq_hz": w.freq_hz,
            "wobble_decay_s": w.decay_s,
            "wobble_axis": w.axis.tolist(),
            "wobble_direction": w.direction.tolist(),
            "wobble_angle_deg": math.degrees(w.angle_rad),
            "wobble_shift_m": w.shift_m,
            "slide_axis": self.slide_axis.tolist(),
            "slide_deg_per_90deg": math.degrees(self.slide_rad_per_rad * math.pi / 2.0),
            "slide_direction": self.slide_direction.tolist(),
            "slide_m_per_90deg": self.slide_m_per_rad * math.pi / 2.0,
        }
