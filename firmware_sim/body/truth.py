"""Ground-truth metrics of the designed events, computed from the truth trajectories on a fine grid.

Definitions (angles in degrees, bone angles without soft-tissue wobble; ``sensorhub.conventions``):

landing (``t_s`` = initial contact: the first instant the foot touches the ground after a flight; with a
  forefoot landing the forefoot's touch, the heel strike following at ``t_heel_strike_s``):
  flight_time_s: take-off to contact; jump_height_m = g * flight_time^2 / 8 (jumps only);
  flight_peak_flexion_deg: the most the knee flexed in the air (tuck jumps: 70-120);
  flexion_at_contact_deg: flexion at ``t_s``; peak_flexion_deg: max flexion in the landing window
  (contact to the next take-off, or contact + 0.8 s); flexion_excursion_deg = peak - at contact;
  time_to_peak_flexion_s: from contact to that maximum; peak_valgus_deg / valgus_excursion_deg: max valgus
  in the window and minus valgus at contact; ground_contact_time_s: contact to the next take-off (drop
  jump's first landing), None when the athlete stays on the ground; peak_shank_accel_g: max norm of the
  specific force at the nominal shank mount (no wobble) within 0.1 s after contact, in g.
rep (``t_s`` = start of descent: the knee leaves the standing posture): t_bottom_s = instant of maximum
  flexion, t_end_s = back at the standing posture; depth_deg = flexion at t_bottom_s; eccentric_s =
  t_bottom - t_s; concentric_s = t_end - t_bottom; peak_valgus_deg = max valgus in [t_s, t_end];
  valgus_excursion_deg = peak_valgus - valgus at t_s.
cut (``t_s`` = foot plant: initial contact of the plant foot): direction_change_deg = designed change of
  the path heading (signed + = left); flexion_at_plant_deg; peak_flexion_deg and peak_valgus_deg over the
  plant stance; braking_time_s = from plant to the minimum horizontal speed of the plant leg's hip centre;
  peak_decel_g = max deceleration of that hip along the approach direction during braking, in g;
  ground_contact_time_s = plant stance duration.
Every event has ``side``, ``exercise``, ``faults`` (list) and ``fault`` (names joined by '+', or None).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sensorhub.conventions import GRAVITY_M_S2

from .motion_view import MotionView

GRID_S = 0.0005
LANDING_WINDOW_S = 0.8


def _grid(t0: float, t1: float) -> np.ndarray:
    return np.linspace(t0, t1, max(round((t1 - t0) / GRID_S) + 1, 2))


def complete_events(motion: MotionView, skeletons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for ev in skeletons:
        ev = dict(ev)
        kind = ev["type"]
        if kind == "landing":
            _landing(motion, ev)
        elif kind == "rep":
            _rep(motion, ev)
        elif kind == "cut":
            _cut(motion, ev)
        out.append(ev)
    out.sort(key=lambda e: (e["t_s"], e["side"]))
    return out


def _landing(motion: MotionView, ev: dict[str, Any]) -> None:
    side, t_c = ev["side"], ev["t_s"]
    t_end = ev.get("t_takeoff_s") or t_c + LANDING_WINDOW_S
    t = _grid(t_c, t_end)
    ang = motion.truth_angles_deg(side, t)
    i = int(np.argmax(ang[:, 0]))
    ev["flexion_at_contact_deg"] = float(ang[0, 0])
    ev["peak_flexion_deg"] = float(ang[i, 0])
    ev["flexion_excursion_deg"] = float(ang[i, 0] - ang[0, 0])
    ev["time_to_peak_flexion_s"] = float(t[i] - t_c)
    ev["peak_valgus_deg"] = float(ang[:, 1].max())
    ev["valgus_excursion_deg"] = float(ang[:, 1].max() - ang[0, 1])
    air = motion.truth_angles_deg(side, _grid(t_c - ev["flight_time_s"], t_c))
    ev["flight_peak_flexion_deg"] = float(air[:, 0].max())
    ts = _grid(t_c, t_c + 0.1)
    from .mount import nominal_mount

    _, acc = motion.imu(side, "shank", nominal_mount(side, "shank"), ts, wobble=False)
    ev["peak_shank_accel_g"] = float(np.linalg.norm(acc, axis=1).max() / GRAVITY_M_S2)


def _rep(motion: MotionView, ev: dict[str, Any]) -> None:
    side = ev["side"]
    t = _grid(ev["t_s"], ev["t_end_s"])
    ang = motion.truth_angles_deg(side, t)
    tb = ev["t_bottom_s"]
    ev["depth_deg"] = float(motion.truth_angles_deg(side, np.array([tb]))[0, 0])
    ev["eccentric_s"] = tb - ev["t_s"]
    ev["concentric_s"] = ev["t_end_s"] - tb
    ev["peak_valgus_deg"] = float(ang[:, 1].max())
    ev["valgus_excursion_deg"] = float(ang[:, 1].max() - ang[0, 1])


def _cut(motion: MotionView, ev: dict[str, Any]) -> None:
    side, t_c, t_off = ev["side"], ev["t_s"], ev["t_takeoff_s"]
    t = _grid(t_c, t_off)
    ang = motion.truth_angles_deg(side, t)
    ev["flexion_at_plant_deg"] = float(ang[0, 0])
    ev["peak_flexion_deg"] = float(ang[:, 0].max())
    ev["peak_valgus_deg"] = float(ang[:, 1].max())
    ev["valgus_excursion_deg"] = float(ang[:, 1].max() - ang[0, 1])
    _, vel, acc = motion.hip_kinematics(side, t)
    speed = np.linalg.norm(vel[:, :2], axis=1)
    i = int(np.argmin(speed))
    ev["braking_time_s"] = float(t[i] - t_c)
    u = np.array([np.cos(ev["approach_heading_rad"]), np.sin(ev["approach_heading_rad"])])
    decel = -(acc[: i + 1, :2] @ u)
    ev["peak_decel_g"] = float(decel.max() / GRAVITY_M_S2)
    ev["ground_contact_time_s"] = t_off - t_c
