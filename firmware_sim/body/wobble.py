"""Soft-tissue wobble: the sensor rocking on the skin after impacts (truth angles exclude it).

After each impact at time t_k with incoming ankle speed u_k, the sensor rotates about a fixed axis
(segment frame) by ``theta(t) = sum_k A_k g(t - t_k)`` and translates along a fixed direction by
``delta(t) = sum_k B_k g(t - t_k)``, with the damped oscillation
``g(s) = exp(-s / decay_s) sin(2 pi f s) (1 - exp(-s / rise_s))`` for s >= 0 (zero position and velocity
at the impact, 10-20 Hz, decaying in ~0.1 s). Amplitudes scale with u_k (about 1-3 deg and 1-3 mm for a
2.5 m/s landing, less for walking heel strikes).
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
        axis = rng.normal(size=3)
        axis[2] *= 0.3  # mostly rocking about axes across the segment
        direction = rng.normal(size=3)
        scale = 1.0 if segment == "thigh" else 0.6  # more soft tissue on the thigh
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
