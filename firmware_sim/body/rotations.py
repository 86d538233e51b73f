"""Plain (value-only) quaternion helpers and the knee joint convention of ``sensorhub.conventions``.

Quaternions are ``[w, x, y, z]`` Hamilton, arrays shaped (..., 4); a quaternion rotates vectors from the
rotated (segment/sensor) frame into the reference (earth/parent) frame.
"""

from __future__ import annotations

import numpy as np

from sensorhub.conventions import SIDE_SIGN

from .jets import FloatArray


def quat_multiply(a: FloatArray, b: FloatArray) -> FloatArray:
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=float), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=float), -1, 0)
    return np.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        axis=-1,
    )


def quat_conjugate(q: FloatArray) -> FloatArray:
    return np.asarray(q, dtype=float) * np.array([1.0, -1.0, -1.0, -1.0])


def quat_from_axis_angle(axis: FloatArray, angle_rad: float | FloatArray) -> FloatArray:
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = 0.5 * np.asarray(angle_rad, dtype=float)[..., None]
    return np.concatenate((np.cos(half), np.sin(half) * axis), axis=-1)


def quat_to_matrix(q: FloatArray) -> FloatArray:
    q = np.asarray(q, dtype=float)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        (
            np.stack((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)), axis=-1),
            np.stack((2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)), axis=-1),
            np.stack((2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)), axis=-1),
        ),
        axis=-2,
    )


def matrix_to_quat(m: FloatArray) -> FloatArray:
    """Rotation matrix (3, 3) to a unit quaternion with w >= 0."""
    m = np.asarray(m, dtype=float)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0.0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s])
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s])
    q = q / np.linalg.norm(q)
    return q if q[0] >= 0.0 else -q


def rotate(q: FloatArray, v: FloatArray) -> FloatArray:
    """R(q) v, broadcasting over leading axes."""
    return np.einsum("...ij,...j->...i", quat_to_matrix(q), np.asarray(v, dtype=float))


def knee_matrix(
    side: str, flexion_rad: FloatArray, valgus_rad: FloatArray, rotation_rad: FloatArray
) -> FloatArray:
    """R_shank_from_thigh = Ry(flexion) Rx(-s valgus) Rz(s rotation), s = +1 right, -1 left."""
    sign = SIDE_SIGN[side]
    f, v, r = (np.asarray(a, dtype=float) for a in (flexion_rad, valgus_rad, rotation_rad))
    one, zero = np.ones_like(f), np.zeros_like(f)
    cf, sf = np.cos(f), np.sin(f)
    cv, sv = np.cos(-sign * v), np.sin(-sign * v)
    cr, sr = np.cos(sign * r), np.sin(sign * r)
    ry = np.stack(
        (np.stack((cf, zero, sf), -1), np.stack((zero, one, zero), -1), np.stack((-sf, zero, cf), -1)), -2
    )
    rx = np.stack(
        (np.stack((one, zero, zero), -1), np.stack((zero, cv, -sv), -1), np.stack((zero, sv, cv), -1)), -2
    )
    rz = np.stack(
        (np.stack((cr, -sr, zero), -1), np.stack((sr, cr, zero), -1), np.stack((zero, zero, one), -1)), -2
    )
    return ry @ rx @ rz


def knee_angles_from_matrix(side: str, r_shank_from_thigh: FloatArray) -> FloatArray:
    """Invert ``knee_matrix``: (..., 3, 3) -> (..., 3) flexion, valgus, rotation in radians.

    R = Ry(f) Rx(a) Rz(c) has R[1,2] = -sin a, R[0,2] = sin f cos a, R[2,2] = cos f cos a,
    R[1,0] = cos a sin c, R[1,1] = cos a cos c.
    """
    sign = SIDE_SIGN[side]
    m = np.asarray(r_shank_from_thigh, dtype=float)
    a = -np.arcsin(np.clip(m[..., 1, 2], -1.0, 1.0))
    f = np.arctan2(m[..., 0, 2], m[..., 2, 2])
    c = np.arctan2(m[..., 1, 0], m[..., 1, 1])
    return np.stack((f, -sign * a, sign * c), axis=-1)
