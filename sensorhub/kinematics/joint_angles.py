"""Grood & Suntay knee angles from segment orientations, and the inverse (for tests and simulators).

Segment frames: x anterior, y left, z up (proximal); the knee rotation maps shank-frame vectors into the
thigh frame, right leg R = Ry(flexion) @ Rx(-valgus) @ Rz(rotation), left leg
R = Ry(flexion) @ Rx(+valgus) @ Rz(-rotation) (see ``sensorhub.conventions``).
"""

from __future__ import annotations

import math

import numpy as np

from sensorhub.conventions import SIDE_SIGN
from sensorhub.kinematics import _kernels
from sensorhub.model import FloatArray


def rot_x(angle_rad: float) -> FloatArray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle_rad: float) -> FloatArray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle_rad: float) -> FloatArray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def knee_rotation(flexion_rad: float, valgus_rad: float, rotation_rad: float, side: str) -> FloatArray:
    """Shank-in-thigh rotation matrix for the given anatomical angles of a ``side`` ("right"/"left") leg."""
    sign = SIDE_SIGN[side]
    return rot_y(flexion_rad) @ rot_x(-sign * valgus_rad) @ rot_z(sign * rotation_rad)


def knee_angles_from_rotation(r_shank_in_thigh: FloatArray, side: str) -> tuple[float, float, float]:
    """(flexion, valgus, rotation) in radians of a shank-in-thigh rotation matrix."""
    r = np.ascontiguousarray(r_shank_in_thigh, dtype=np.float64)
    if r.shape != (3, 3):
        raise ValueError(f"expected a 3x3 rotation matrix, got shape {r.shape}")
    return _kernels.decompose_knee(r, SIDE_SIGN[side])


def quat_to_matrix(q_wxyz: FloatArray) -> FloatArray:
    """Rotation matrices (N, 3, 3) of unit quaternions (N, 4) [w, x, y, z]."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    out = np.empty((q.shape[0], 3, 3))
    out[:, 0, 0] = 1 - 2 * (y * y + z * z)
    out[:, 0, 1] = 2 * (x * y - w * z)
    out[:, 0, 2] = 2 * (x * z + w * y)
    out[:, 1, 0] = 2 * (x * y + w * z)
    out[:, 1, 1] = 1 - 2 * (x * x + z * z)
    out[:, 1, 2] = 2 * (y * z - w * x)
    out[:, 2, 0] = 2 * (x * z - w * y)
    out[:, 2, 1] = 2 * (y * z + w * x)
    out[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return out


def matrix_to_quat(r: FloatArray) -> FloatArray:
    """Unit quaternion [w, x, y, z] (w >= 0) of one rotation matrix."""
    m = np.asarray(r, dtype=np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = np.array([(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s])
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = np.array([(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s])
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = np.array([(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s])
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q
