"""Biomechanical leg model of the simulator: drills, exact ideal IMU signals, ground truth.

    from firmware_sim.body import simulate, DRILLS, Mount, random_mount, nominal_mount
    motion = simulate(drill="drop_jump", reps=5, sides=("right",), seed=1, faults={"valgus": 0.3})
    gyr_rad_s, acc_m_s2 = motion.imu("right", "shank", nominal_mount("right", "shank"), t_s)

See docs/simulator_model.md for what is modelled and how truth is defined.
"""

from __future__ import annotations

from .motion import DEFAULT_SESSION, DRILLS, Motion, SimulationError, session, simulate
from .mount import Mount, MountError, nominal_mount, random_mount
from .rotations import knee_angles_from_matrix, knee_matrix
from .skeleton import Geometry

__all__ = [
    "DEFAULT_SESSION",
    "DRILLS",
    "Geometry",
    "Motion",
    "Mount",
    "MountError",
    "SimulationError",
    "knee_angles_from_matrix",
    "knee_matrix",
    "nominal_mount",
    "random_mount",
    "session",
    "simulate",
]
