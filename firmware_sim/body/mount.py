"""Where a sensor sits on its segment: ``Mount`` (rotation sensor -> segment, position in the segment)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensorhub.conventions import SEGMENTS, SIDE_SIGN

from ..exceptions import FirmwareSimError
from .jets import FloatArray
from .rotations import matrix_to_quat, quat_from_axis_angle, quat_multiply


class MountError(FirmwareSimError):
    """Unknown side or segment for a mount (use 'left'/'right' and 'thigh'/'shank')."""


@dataclass(frozen=True, slots=True)
class Mount:
    """A sensor's placement on a segment.

    ``quat_sensor_to_segment``: [w, x, y, z] rotating sensor-frame vectors into the segment frame.
    ``position_m``: sensor origin in the segment frame (origin at the segment's proximal joint centre:
    hip centre for the thigh, knee centre for the shank; x anterior, y left, z up).
    """

    quat_sensor_to_segment: FloatArray
    position_m: FloatArray

    def to_json(self) -> dict[str, list[float]]:
        return {
            "quat_sensor_to_segment": [float(x) for x in self.quat_sensor_to_segment],
            "position_m": [float(x) for x in self.position_m],
        }


def _check(side: str, segment: str) -> float:
    if side not in SIDE_SIGN or segment not in SEGMENTS:
        raise MountError(
            f"no mount for side={side!r}, segment={segment!r}; sides {tuple(SIDE_SIGN)}, segments {SEGMENTS}"
        )
    return SIDE_SIGN[side]


def nominal_mount(side: str, segment: str) -> Mount:
    """The intended placement: sensor x along the segment pointing distally, sensor z out of the skin.

    Thigh: lateral mid-thigh (22 cm below the hip centre, 8 cm lateral), z lateral.
    Shank: antero-lateral upper shank (12 cm below the knee centre, 3 cm anterior, 4 cm lateral), z
    pointing 45 degrees between anterior and lateral.
    """
    sign = _check(side, segment)  # lateral is -y for the right leg, +y for the left
    x_s = np.array([0.0, 0.0, -1.0])
    if segment == "thigh":
        z_s = np.array([0.0, -sign, 0.0])
        pos = np.array([0.0, -sign * 0.08, -0.22])
    else:
        z_s = np.array([1.0, -sign, 0.0]) / math.sqrt(2.0)
        pos = np.array([0.03, -sign * 0.04, -0.12])
    y_s = np.cross(z_s, x_s)
    return Mount(matrix_to_quat(np.column_stack((x_s, y_s, z_s))), pos)


def random_mount(
    side: str,
    segment: str,
    rng: np.random.Generator | int,
    max_angle_deg: float = 30.0,
    max_offset_m: float = 0.03,
) -> Mount:
    """The nominal mount perturbed by a random rotation (uniform axis, angle uniform in
    [0, ``max_angle_deg``]) and a random position offset (uniform in a ball of radius ``max_offset_m``)."""
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    base = nominal_mount(side, segment)
    axis = gen.normal(size=3)
    angle = math.radians(gen.uniform(0.0, max_angle_deg))
    q = quat_multiply(quat_from_axis_angle(axis, angle), base.quat_sensor_to_segment)
    offset = gen.normal(size=3)
    offset *= max_offset_m * gen.uniform(0.0, 1.0) ** (1.0 / 3.0) / np.linalg.norm(offset)
    return Mount(q / np.linalg.norm(q), base.position_m + offset)
