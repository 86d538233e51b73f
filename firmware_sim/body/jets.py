"""Exact first and second time derivatives carried through the body model ("jets").

A ``Jet`` holds a function of time sampled at N instants together with its first and second time
derivatives. Arithmetic and the elementary functions below apply the chain rule, so every position and
orientation the model builds carries its analytic velocity and acceleration: the IMU signals need no
finite differences (gyro from q and dq/dt, accelerometer from d2p/dt2).
Vectors are tuples of 3 jets, quaternions tuples of 4 jets ``(w, x, y, z)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class Jet:
    """Value ``v``, first derivative ``d1`` and second derivative ``d2`` (arrays of equal shape)."""

    __slots__ = ("d1", "d2", "v")

    def __init__(self, v: FloatArray, d1: FloatArray, d2: FloatArray) -> None:
        self.v = v
        self.d1 = d1
        self.d2 = d2

    @staticmethod
    def const(value: float, n: int) -> Jet:
        return Jet(np.full(n, value), np.zeros(n), np.zeros(n))

    @staticmethod
    def zeros(n: int) -> Jet:
        return Jet(np.zeros(n), np.zeros(n), np.zeros(n))

    def take(self, index: NDArray[np.bool_] | NDArray[np.intp]) -> Jet:
        return Jet(self.v[index], self.d1[index], self.d2[index])

    def put(self, index: NDArray[np.bool_] | NDArray[np.intp], part: Jet) -> None:
        self.v[index] = part.v
        self.d1[index] = part.d1
        self.d2[index] = part.d2

    def __add__(self, other: Jet | float) -> Jet:
        if isinstance(other, Jet):
            return Jet(self.v + other.v, self.d1 + other.d1, self.d2 + other.d2)
        return Jet(self.v + other, self.d1, self.d2)

    __radd__ = __add__

    def __neg__(self) -> Jet:
        return Jet(-self.v, -self.d1, -self.d2)

    def __sub__(self, other: Jet | float) -> Jet:
        if isinstance(other, Jet):
            return Jet(self.v - other.v, self.d1 - other.d1, self.d2 - other.d2)
        return Jet(self.v - other, self.d1, self.d2)

    def __rsub__(self, other: float) -> Jet:
        return Jet(other - self.v, -self.d1, -self.d2)

    def __mul__(self, other: Jet | float) -> Jet:
        if isinstance(other, Jet):
            return Jet(
                self.v * other.v,
                self.d1 * other.v + self.v * other.d1,
                self.d2 * other.v + 2.0 * self.d1 * other.d1 + self.v * other.d2,
            )
        return Jet(self.v * other, self.d1 * other, self.d2 * other)

    __rmul__ = __mul__

    def reciprocal(self) -> Jet:
        r = 1.0 / self.v
        r2 = r * r
        return Jet(r, -self.d1 * r2, 2.0 * self.d1 * self.d1 * r2 * r - self.d2 * r2)

    def __truediv__(self, other: Jet | float) -> Jet:
        if isinstance(other, Jet):
            return self * other.reciprocal()
        return self * (1.0 / other)


def sqrt(x: Jet) -> Jet:
    s = np.sqrt(x.v)
    return Jet(s, x.d1 / (2.0 * s), x.d2 / (2.0 * s) - x.d1 * x.d1 / (4.0 * s * s * s))


def sin(x: Jet) -> Jet:
    s, c = np.sin(x.v), np.cos(x.v)
    return Jet(s, c * x.d1, c * x.d2 - s * x.d1 * x.d1)


def cos(x: Jet) -> Jet:
    s, c = np.sin(x.v), np.cos(x.v)
    return Jet(c, -s * x.d1, -s * x.d2 - c * x.d1 * x.d1)


def exp(x: Jet) -> Jet:
    e = np.exp(x.v)
    return Jet(e, e * x.d1, e * (x.d2 + x.d1 * x.d1))


Vec = tuple[Jet, Jet, Jet]
Quat = tuple[Jet, Jet, Jet, Jet]


def vconst(value: FloatArray | tuple[float, float, float], n: int) -> Vec:
    return (Jet.const(float(value[0]), n), Jet.const(float(value[1]), n), Jet.const(float(value[2]), n))


def vadd(a: Vec, b: Vec) -> Vec:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def vsub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def vscale(a: Vec, s: Jet | float) -> Vec:
    return (a[0] * s, a[1] * s, a[2] * s)


def dot(a: Vec, b: Vec) -> Jet:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def qmul(a: Quat, b: Quat) -> Quat:
    """Hamilton product a ⊗ b."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    )


def qconj(q: Quat) -> Quat:
    return (q[0], -q[1], -q[2], -q[3])


def qrotate(q: Quat, v: Vec) -> Vec:
    """R(q) v for a unit quaternion (v' = v + 2w (u x v) + 2 u x (u x v), u = vector part)."""
    u: Vec = (q[1], q[2], q[3])
    t = vscale(cross(u, v), 2.0)
    return vadd(vadd(v, vscale(t, q[0])), cross(u, t))


def qnormalize(q: Quat) -> Quat:
    inv = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).reciprocal()
    return (q[0] * inv, q[1] * inv, q[2] * inv, q[3] * inv)


def qaxis(angle_rad: Jet, axis: int) -> Quat:
    """Rotation by ``angle_rad`` about the x (0), y (1) or z (2) axis."""
    half = angle_rad * 0.5
    c, s = cos(half), sin(half)
    zero = Jet.zeros(c.v.shape[0])
    parts = [zero, zero, zero]
    parts[axis] = s
    return (c, parts[0], parts[1], parts[2])


def qmin_to_z(u: Vec) -> Quat:
    """The smallest rotation taking the unit vector ``u`` onto +z (valid while u is not near -z)."""
    # q ~ [1 + u.z, u x z] normalised (the half-angle form of the shortest arc).
    one_plus = u[2] + 1.0
    zero = Jet.zeros(one_plus.v.shape[0])
    return qnormalize((one_plus, u[1], -u[0], zero))


def qmin_from_z(u: Vec) -> Quat:
    """The smallest rotation taking +z onto the unit vector ``u``."""
    one_plus = u[2] + 1.0
    zero = Jet.zeros(one_plus.v.shape[0])
    return qnormalize((one_plus, -u[1], u[0], zero))


def body_rate(q: Quat) -> tuple[FloatArray, FloatArray]:
    """Angular velocity and its time derivative in the rotated (body) frame: 2 q* ⊗ dq/dt, exactly.

    Returns ``(omega (N,3), omega_dot (N,3))`` in rad/s and rad/s^2.
    """
    w, x, y, z = (c.v for c in q)
    dw, dx, dy, dz = (c.d1 for c in q)
    ddw, ddx, ddy, ddz = (c.d2 for c in q)

    def vec_of_conj_mul(
        aw: FloatArray,
        ax: FloatArray,
        ay: FloatArray,
        az: FloatArray,
        bw: FloatArray,
        bx: FloatArray,
        by: FloatArray,
        bz: FloatArray,
    ) -> FloatArray:
        # vector part of conj(a) ⊗ b
        return np.stack(
            (
                aw * bx - ax * bw - ay * bz + az * by,
                aw * by + ax * bz - ay * bw - az * bx,
                aw * bz - ax * by + ay * bx - az * bw,
            ),
            axis=-1,
        )

    omega = 2.0 * vec_of_conj_mul(w, x, y, z, dw, dx, dy, dz)
    # d/dt (2 q* dq) = 2 dq* dq + 2 q* ddq; the first term's vector part vanishes (dq* dq is real).
    omega_dot = 2.0 * vec_of_conj_mul(w, x, y, z, ddw, ddx, ddy, ddz)
    return omega, omega_dot


def values(v: Vec | Quat) -> FloatArray:
    """Stack the values of a jet vector/quaternion into an (N, k) array."""
    return np.stack([c.v for c in v], axis=-1)


def second_derivatives(v: Vec) -> FloatArray:
    return np.stack([c.d2 for c in v], axis=-1)


def first_derivatives(v: Vec) -> FloatArray:
    return np.stack([c.d1 for c in v], axis=-1)
