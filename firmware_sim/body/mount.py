"""Where a sensor sits on its segment: ``Mount`` (rotation sensor -> segment, position in the segment,
optionally the soft tissue under it), the nominal placement, random perturbations and anatomical sites."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensorhub.conventions import SEGMENTS, SIDE_SIGN

from ..exceptions import FirmwareSimError
from .jets import FloatArray
from .rotations import matrix_to_quat, quat_from_axis_angle, quat_multiply
from .skeleton import Geometry
from .wobble import SoftTissue, Wobble


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
    tissue: SoftTissue | None = None  # None: the motion's default wobble for that sensor
    site: str | None = None  # e.g. "thigh lateral mid" (``site_mount``)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "quat_sensor_to_segment": [float(x) for x in self.quat_sensor_to_segment],
            "position_m": [float(x) for x in self.position_m],
        }
        if self.site is not None:
            out["site"] = self.site
        if self.tissue is not None:
            out["tissue"] = self.tissue.to_json()
        return out


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


@dataclass(frozen=True, slots=True)
class _SiteShape:
    """Skin site around a segment: direction of the outward normal and the soft tissue there."""

    angle_deg: float  # around the segment's long axis, from anterior towards lateral
    radius_m: float  # long axis to skin, default-sized athlete, at the reference level
    wobble_scale: float  # impact wobble relative to the lateral thigh
    slide_deg_per_90deg: tuple[float, float]  # skin-sliding rotation per 90 deg of knee flexion
    slide_mm_per_90deg: tuple[float, float]


@dataclass(frozen=True, slots=True)
class _Level:
    fraction: float  # down the segment from its proximal joint
    radius_scale: float  # the thigh tapers towards the knee
    centre_lateral_m: float  # the soft-tissue centre lies lateral of the hip-knee line proximally
    wobble_scale: float  # more soft-tissue mass proximally
    slide_scale: float  # more skin sliding near the knee


# Radii from thigh circumference ~45 cm at mid-thigh and the tibia's subcutaneous anteromedial face
# (~2.5-3 cm from the knee-ankle line), calf bulk posterior; soft-tissue factors follow the STA
# literature (module docstring of ``wobble``): thigh > calf > lateral shank > tibia.
_SITES: dict[tuple[str, str], _SiteShape] = {
    ("thigh", "lateral"): _SiteShape(90.0, 0.072, 1.0, (1.5, 4.0), (3.0, 8.0)),
    ("thigh", "anterolateral"): _SiteShape(45.0, 0.072, 1.0, (1.5, 4.0), (3.0, 8.0)),
    ("thigh", "anterior"): _SiteShape(0.0, 0.072, 1.0, (2.0, 4.5), (4.0, 10.0)),
    ("thigh", "posterolateral"): _SiteShape(135.0, 0.072, 1.2, (1.5, 4.0), (3.0, 8.0)),
    ("shank", "anteromedial"): _SiteShape(-40.0, 0.03, 0.3, (0.3, 1.0), (0.5, 2.0)),
    ("shank", "lateral"): _SiteShape(90.0, 0.045, 0.6, (0.8, 2.0), (1.0, 4.0)),
    ("shank", "posterior"): _SiteShape(180.0, 0.065, 1.2, (1.2, 3.0), (2.0, 6.0)),
}
_LEVELS: dict[tuple[str, str], _Level] = {
    ("thigh", "proximal"): _Level(0.25, 1.2, 0.03, 1.2, 0.8),
    ("thigh", "mid"): _Level(0.5, 1.0, 0.015, 1.0, 1.0),
    ("thigh", "distal"): _Level(0.75, 0.8, 0.0, 0.8, 1.2),
    ("shank", "proximal"): _Level(0.25, 1.0, 0.0, 1.0, 1.0),
    ("shank", "mid"): _Level(0.5, 0.95, 0.0, 1.0, 0.8),
}
SITES: dict[str, tuple[str, ...]] = {seg: tuple(site for (g, site) in _SITES if g == seg) for seg in SEGMENTS}
"""Skin sites per segment for ``site_mount``."""
LEVELS: dict[str, tuple[str, ...]] = {
    seg: tuple(level for (g, level) in _LEVELS if g == seg) for seg in SEGMENTS
}
"""Levels along each segment for ``site_mount``."""


def site_mount(
    side: str,
    segment: str,
    site: str,
    level: str,
    rng: np.random.Generator,
    *,
    geometry: Geometry | None = None,
    max_angle_deg: float = 45.0,
    in_plane_deg: float = 0.0,
    max_offset_m: float = 0.015,
) -> Mount:
    """A sensor strapped on the skin at an anatomical ``site`` and ``level`` (``SITES``, ``LEVELS``).

    Nominal axes there: z along the outward skin normal, x along the segment pointing distally, turned
    by ``in_plane_deg`` about z (a strap put on sideways or upside down); then tilted by a random
    rotation (uniform axis, angle uniform in [0, ``max_angle_deg``]) and shifted by up to
    ``max_offset_m``. Sizes scale with the athlete's leg length. The site's soft tissue (impact wobble,
    flexion-correlated skin sliding) is drawn from ``rng`` within the site's ranges.
    """
    sign = _check(side, segment)
    shape, lvl = _SITES.get((segment, site)), _LEVELS.get((segment, level))
    if shape is None or lvl is None:
        raise MountError(
            f"no {segment} site {site!r} at level {level!r}; sites {SITES[segment]}, levels {LEVELS[segment]}"
        )
    geo = geometry or Geometry()
    size = geo.size_scale
    length = geo.thigh_length_m if segment == "thigh" else geo.shank_length_m
    phi = math.radians(shape.angle_deg)
    normal = np.array([math.cos(phi), -sign * math.sin(phi), 0.0])  # lateral is -y on the right leg
    centre = np.array([0.0, -sign * lvl.centre_lateral_m * size, -lvl.fraction * length])
    pos = centre + normal * shape.radius_m * lvl.radius_scale * size
    x_s = np.array([0.0, 0.0, -1.0])
    y_s = np.cross(normal, x_s)
    base = matrix_to_quat(np.column_stack((x_s, y_s, normal)))
    q = quat_multiply(base, quat_from_axis_angle(np.array([0.0, 0.0, 1.0]), math.radians(in_plane_deg)))
    q = quat_multiply(
        quat_from_axis_angle(rng.normal(size=3), math.radians(rng.uniform(0.0, max_angle_deg))), q
    )
    offset = rng.normal(size=3)
    offset -= normal * float(offset @ normal)  # along the skin
    offset *= max_offset_m * rng.uniform(0.0, 1.0) / max(float(np.linalg.norm(offset)), 1e-12)
    slide_axis = rng.normal(size=3)
    slide_dir = rng.normal(size=3)
    tissue = SoftTissue(
        wobble=Wobble.draw(rng, shape.wobble_scale * lvl.wobble_scale),
        slide_axis=slide_axis / np.linalg.norm(slide_axis),
        slide_rad_per_rad=float(rng.uniform(*shape.slide_deg_per_90deg)) * lvl.slide_scale / 90.0,
        slide_direction=slide_dir / np.linalg.norm(slide_dir),
        slide_m_per_rad=float(rng.uniform(*shape.slide_mm_per_90deg))
        * 1e-3
        * lvl.slide_scale
        / (math.pi / 2.0),
    )
    return Mount(q / np.linalg.norm(q), pos + offset, tissue, f"{segment} {site} {level}")
