"""Synthetic two-segment leg for the kinematics tests (exact IMU signals from known knee angles), plus a
private stand-in orientation filter (VQF from the ``vqf`` package) used until sensorhub's own lands.

Leg model: the foot stays at the origin (bends) or the hip travels forward (gait); thigh and shank are
rigid segments with Grood & Suntay knee angles; sensors sit on the segments with a known mounting
rotation and offset; gyroscope = angular rate of the sensor frame, accelerometer = specific force of the
sensor point (second difference of its position, plus gravity), both in the sensor frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from sensorhub.conventions import GRAVITY_M_S2, RAD_PER_DEG
from sensorhub.kinematics.joint_angles import knee_rotation, rot_x, rot_y, rot_z
from sensorhub.model import FloatArray, LegSamples

RATE_HZ = 200.0


@dataclass
class SynthLeg:
    t_s: FloatArray
    truth_deg: FloatArray  # (N, 3) flexion, valgus, rotation
    c_thigh: FloatArray  # segment -> sensor
    c_shank: FloatArray
    samples: LegSamples
    r_thigh_sensor: FloatArray  # (N, 3, 3) true sensor -> earth
    r_shank_sensor: FloatArray


def _smooth_bump(x: FloatArray) -> FloatArray:
    """0 -> 1 -> 0 over x in [0, 1], zero outside."""
    y = 0.5 * (1.0 - np.cos(2.0 * np.pi * np.clip(x, 0.0, 1.0)))
    return np.where((x > 0) & (x < 1), y, 0.0)


def _angle_tracks(kind: str, t_s: FloatArray, standing_s: float, reps: int) -> dict[str, FloatArray]:
    tm = t_s - standing_s
    z = np.zeros_like(t_s)
    if kind == "bends":
        period = 3.0
        phase = tm / period
        f = np.zeros_like(t_s)
        for r in range(reps):
            f += _smooth_bump(phase - r * 1.15)
        flex = 85.0 * f
        thigh_pitch = -0.55 * flex  # thigh leans (bottom forward) as hips go back
        hip_add = 3.0 * f
        yaw = 20.0 * np.sin(0.3 * np.clip(tm, 0, None))  # athlete turns slowly
    elif kind == "walk":
        w = 2 * np.pi * 1.0  # 1 stride/s
        on = np.clip(tm / 1.0, 0.0, 1.0)  # ramp in over 1 s
        ph = np.clip(tm, 0, None) * w
        swing = _smooth_bump(((ph / (2 * np.pi)) % 1.0 - 0.55) / 0.45)
        stance = _smooth_bump(((ph / (2 * np.pi)) % 1.0 - 0.05) / 0.35)
        flex = on * (60.0 * swing + 15.0 * stance)
        thigh_pitch = on * (-22.0 * np.cos(ph) - 5.0)
        hip_add = on * 4.0 * np.sin(ph)
        yaw = 15.0 * np.sin(0.2 * np.clip(tm, 0, None))
    else:
        raise ValueError(kind)
    valgus = 0.06 * flex + 1.5 * np.sin(0.7 * np.clip(tm, 0, None)) * flex / (flex + 10.0)
    rotation = 0.08 * flex
    return {"flex": flex, "valgus": valgus + z, "rotation": rotation, "thigh_pitch": thigh_pitch,
            "hip_add": hip_add, "yaw": yaw}


def random_mounting(rng: np.random.Generator, max_deg: float) -> FloatArray:
    """A segment -> sensor rotation: a random axis permutation-like base plus up to max_deg perturbation."""
    base = Rotation.from_euler("xyz", rng.uniform(-180, 180, 3), degrees=True).as_matrix()
    if max_deg <= 0:
        return np.asarray(base)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    pert = Rotation.from_rotvec(axis * rng.uniform(0.0, max_deg) * RAD_PER_DEG).as_matrix()
    return np.asarray(base @ pert)


def _gyro_from(q_mats: FloatArray, dt_s: float) -> FloatArray:
    rel_next = np.einsum("nji,njk->nik", q_mats[1:-1], q_mats[2:])  # Q_i^T Q_{i+1}
    rel_prev = np.einsum("nji,njk->nik", q_mats[:-2], q_mats[1:-1])
    w = (Rotation.from_matrix(rel_next).as_rotvec() + Rotation.from_matrix(rel_prev).as_rotvec()) / (2 * dt_s)
    return np.vstack([w[:1], w, w[-1:]])


def _acc_from(q_mats: FloatArray, pos_m: FloatArray, dt_s: float) -> FloatArray:
    a = np.zeros_like(pos_m)
    a[1:-1] = (pos_m[2:] - 2 * pos_m[1:-1] + pos_m[:-2]) / dt_s**2
    a[0] = a[1]
    a[-1] = a[-2]
    f_earth = a + np.array([0.0, 0.0, GRAVITY_M_S2])
    return np.einsum("nji,nj->ni", q_mats, f_earth)


def make_leg(kind: str = "bends", side: str = "right", seed: int = 0, mount_max_deg: float = 30.0,
             duration_s: float = 30.0, standing_s: float = 4.0, reps: int = 6, noise: bool = True,
             gyr_bias_rad_s: float = 0.01, c_thigh: FloatArray | None = None,
             c_shank: FloatArray | None = None, hinge_only: bool = False, fidget_s: float = 0.0) -> SynthLeg:
    rng = np.random.default_rng(seed)
    dt = 1.0 / RATE_HZ
    t: FloatArray = np.arange(int(duration_s * RATE_HZ), dtype=np.float64) * dt
    tr = _angle_tracks(kind, t, standing_s, reps)
    if fidget_s > 0:  # a quick half bend right after switching on, before the standing period
        extra = 40.0 * _smooth_bump(t / fidget_s)
        tr["flex"] += extra
        tr["thigh_pitch"] -= 0.5 * extra
    if hinge_only:  # no secondary knee motion and no hip motion coupled to flexion
        tr["valgus"][:] = 0.0
        tr["rotation"][:] = 0.0
        tr["hip_add"][:] = 0.0
    c_t = random_mounting(rng, mount_max_deg) if c_thigh is None else c_thigh
    c_s = random_mounting(rng, mount_max_deg) if c_shank is None else c_shank
    n = t.size
    r_t = np.empty((n, 3, 3))
    r_s = np.empty((n, 3, 3))
    for i in range(n):
        r_t[i] = (rot_z(tr["yaw"][i] * RAD_PER_DEG) @ rot_y(tr["thigh_pitch"][i] * RAD_PER_DEG)
                  @ rot_x(tr["hip_add"][i] * RAD_PER_DEG))
        r_s[i] = r_t[i] @ knee_rotation(tr["flex"][i] * RAD_PER_DEG, tr["valgus"][i] * RAD_PER_DEG,
                                        tr["rotation"][i] * RAD_PER_DEG, side)
    thigh_len, shank_len = 0.45, 0.43
    hip = np.zeros((n, 3))
    if kind == "walk":
        on = np.clip((t - standing_s) / 1.0, 0.0, 1.0)
        hip[:, 0] = 1.2 * np.cumsum(on) * dt
        hip[:, 2] = 0.9 + 0.02 * on * np.sin(4 * np.pi * t)
    else:
        # foot on the ground: hip position from the chain
        knee = np.einsum("nij,j->ni", r_s, np.array([0.0, 0.0, shank_len]))
        hip = knee + np.einsum("nij,j->ni", r_t, np.array([0.0, 0.0, thigh_len]))
    knee_pos = hip - np.einsum("nij,j->ni", r_t, np.array([0.0, 0.0, thigh_len]))
    p_thigh = hip + np.einsum("nij,j->ni", r_t, np.array([0.06, 0.02, -0.2]))
    p_shank = knee_pos + np.einsum("nij,j->ni", r_s, np.array([0.04, 0.0, -0.15]))
    q_t = np.einsum("nij,kj->nik", r_t, c_t)  # sensor -> earth = R_seg C^T
    q_s = np.einsum("nij,kj->nik", r_s, c_s)
    gyr_t, gyr_s = _gyro_from(q_t, dt), _gyro_from(q_s, dt)
    acc_t, acc_s = _acc_from(q_t, p_thigh, dt), _acc_from(q_s, p_shank, dt)
    if noise:
        for g in (gyr_t, gyr_s):
            g += rng.normal(0, 0.005, g.shape) + rng.uniform(-1, 1, 3) * gyr_bias_rad_s
        for a in (acc_t, acc_s):
            a += rng.normal(0, 0.05, a.shape)
    truth = np.column_stack([tr["flex"], tr["valgus"], tr["rotation"]])
    samples = LegSamples(leg_id=side, t_s=t, thigh_acc_m_s2=acc_t, thigh_gyr_rad_s=gyr_t,
                         shank_acc_m_s2=acc_s, shank_gyr_rad_s=gyr_s)
    return SynthLeg(t_s=t, truth_deg=truth, c_thigh=c_t, c_shank=c_s, samples=samples, r_thigh_sensor=q_t,
                    r_shank_sensor=q_s)


class StandInFilter:
    """Private stand-in for sensorhub.orientation's streaming filter (tests only)."""

    def __init__(self, rate_hz: float) -> None:
        import vqf

        self._vqf = vqf.VQF(1.0 / rate_hz)

    def update(self, gyr_rad_s: FloatArray, acc_m_s2: FloatArray) -> FloatArray:
        out = self._vqf.updateBatch(np.ascontiguousarray(gyr_rad_s), np.ascontiguousarray(acc_m_s2))
        return np.asarray(out["quat6D"])


def axis_angle_deg(a: FloatArray, b: FloatArray) -> float:
    c = float(np.clip(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))
    return math.degrees(math.acos(c))


def test_synthetic_leg_is_consistent() -> None:
    """The generator itself: standing reads gravity only, truth starts at zero."""
    leg = make_leg("bends", noise=False, duration_s=6.0)
    acc = leg.samples.thigh_acc_m_s2[: int(2 * RATE_HZ)]
    assert np.allclose(np.linalg.norm(acc, axis=1), GRAVITY_M_S2, atol=1e-6)
    z_sensor = leg.c_thigh[:, 2]
    assert axis_angle_deg(acc.mean(axis=0), z_sensor) < 1e-6
    assert np.allclose(leg.truth_deg[0], 0.0)
