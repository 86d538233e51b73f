"""The one place that states sensorhub's conventions.

- SI units inside the pipeline: seconds, metres, m/s^2, rad/s, radians. Degrees and g only at the edges
  (UI, CSV, JSON). Names carry their unit as a suffix: ``_s``, ``_hz``, ``_deg``, ``_rad``, ``_rad_s``,
  ``_m_s2``, ``_g``, ``_us``.
- Accelerometers report specific force including gravity: a sensor at rest reads +GRAVITY_M_S2 along
  its up axis.
- Quaternions are ``[w, x, y, z]``, Hamilton convention, and rotate vectors from the sensor frame into an
  earth frame whose z axis points up (heading is arbitrary: no magnetometer is used).
- Knee angles are relative to the standing calibration pose; flexion + = bent, valgus + = knee toward the
  midline (mirrored for left legs), rotation + = shank internal rotation (Grood & Suntay).
- Arrays of 3-vectors are shaped (N, 3), float64; missing samples are rows of NaN.
"""

from __future__ import annotations

import math

from sensorhub.errors import InputError

GRAVITY_M_S2 = 9.80665
"""Standard gravity; accelerometer ranges in g are converted with this value."""

DEG_PER_RAD = 180.0 / math.pi
RAD_PER_DEG = math.pi / 180.0

SEGMENTS = ("thigh", "shank")
SIDES = ("left", "right")

ANALYZE_CSV_HEADER = (
    "time_s,thigh_ax,thigh_ay,thigh_az,thigh_gx,thigh_gy,thigh_gz,"
    "shank_ax,shank_ay,shank_az,shank_gx,shank_gy,shank_gz"
)
ANGLES_CSV_HEADER = "time_s,flexion_deg,valgus_deg,rotation_deg"


def g_to_m_s2(value_g: float) -> float:
    return value_g * GRAVITY_M_S2


def dps_to_rad_s(value_dps: float) -> float:
    return value_dps * RAD_PER_DEG


# --- Segment frames and the knee joint (Grood & Suntay) -------------------------------------------
# Anatomical segment frames (thigh, shank, pelvis), identical to the earth frame when the athlete stands
# in the calibration pose facing +x: x anterior, y left, z up (proximal). Identical for both legs.
# The knee rotation R_shank_from_thigh (rotating shank-frame vectors into the thigh frame) is the
# intrinsic y-x'-z'' sequence of the Grood & Suntay joint coordinate system:
#   right leg: R = Ry(flexion) @ Rx(-valgus) @ Rz(+rotation)
#   left leg:  R = Ry(flexion) @ Rx(+valgus) @ Rz(-rotation)
# so flexion + = shank's distal end moves posterior, valgus + = knee toward the midline (shank abducted),
# rotation + = shank internal rotation, for either side.
SIDE_SIGN = {"right": 1.0, "left": -1.0}
"""Multiply valgus and rotation by this to get the right-leg-equivalent signed angle (mirroring)."""


def check_leg(side: str, rate_hz: float) -> None:
    """The arguments every per-leg stage takes: a side and a positive sample rate."""
    if side not in SIDE_SIGN:
        raise InputError(f"leg side must be 'right' or 'left', got {side!r}")
    if not rate_hz > 0:
        raise InputError(f"sample rate must be positive, got {rate_hz}")


# ---- metric names (the same in JSON, MQTT, InfluxDB, CSV and the UI; units in the names) ----------

LANDING_KEYS = (
    "flexion_at_contact_deg",
    "peak_flexion_deg",
    "flexion_excursion_deg",
    "time_to_peak_flexion_s",
    "peak_valgus_deg",
    "valgus_excursion_deg",
    "flight_time_s",
    "jump_height_m",
    "ground_contact_time_s",
    "peak_shank_accel_g",
    "time_to_stabilization_s",
)
CUT_KEYS = (
    "flexion_at_plant_deg",
    "peak_valgus_deg",
    "direction_change_deg",
    "peak_decel_g",
    "braking_time_s",
)
REP_KEYS = ("depth_deg", "eccentric_s", "concentric_s", "peak_valgus_deg", "valgus_excursion_deg")
REP_TIME_KEYS = ("t_bottom_s", "t_end_s")  # a rep's bottom and end (data time), beside its metrics
# The metrics of each event type (the design card's names; every event also has control_score).
EVENT_METRIC_KEYS: dict[str, tuple[str, ...]] = {"landing": LANDING_KEYS, "cut": CUT_KEYS, "rep": REP_KEYS}
