"""Orientation filter: entry points agree bit for bit, state handling, bias, impacts, gaps, flags."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sensorhub.conventions import GRAVITY_M_S2
from sensorhub.errors import InputError
from sensorhub.orientation import (
    FilterParams,
    Flag,
    OrientationBank,
    OrientationFilter,
    _kernels,
    estimate,
    warmup,
)

RATE_HZ = 200.0


# --- helpers: ground truth by plain quaternion maths ------------------------------------------------------
def quat_from_axis_angle(axis: list[float], angle_rad: float) -> np.ndarray:
    a = np.asarray(axis, dtype=float)
    a /= np.linalg.norm(a)
    return np.r_[np.cos(angle_rad / 2), np.sin(angle_rad / 2) * a]


def rot_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (w * y + x * z)],
        [2 * (w * z + x * y), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (w * x + y * z), 1 - 2 * (x * x + y * y)],
    ])


def inclination_error_deg(quat_est: np.ndarray, quat_true: np.ndarray) -> np.ndarray:
    """BROAD's inclination error of q_est * conj(q_true), per sample (quat_true fixed (4,) or (N, 4))."""
    e = quat_est
    r = np.broadcast_to(quat_true, e.shape)
    w = (e * r).sum(axis=1)
    z = -e[:, 0] * r[:, 3] - e[:, 1] * r[:, 2] + e[:, 2] * r[:, 1] + e[:, 3] * r[:, 0]
    return np.degrees(2 * np.arccos(np.sqrt(np.clip(w * w + z * z, 0.0, 1.0))))


def static_sensor(q_true: np.ndarray, duration_s: float, bias_rad_s: np.ndarray, seed: int = 0,
                  acc_noise: float = 0.03, gyr_noise: float = 0.003) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE_HZ)
    acc_sensor = rot_matrix(q_true).T @ np.array([0.0, 0.0, GRAVITY_M_S2])
    acc = acc_sensor + rng.normal(0.0, acc_noise, (n, 3))
    gyr = bias_rad_s + rng.normal(0.0, gyr_noise, (n, 3))
    return np.ascontiguousarray(gyr), np.ascontiguousarray(acc)


def moving_sensor(duration_s: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Rotating sensor (sinusoidal rates) with noise and some linear acceleration; no ground truth needed."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    gyr = np.stack([1.5 * np.sin(2.1 * t), 1.0 * np.sin(1.3 * t + 1), 2.0 * np.sin(0.7 * t)], axis=1)
    acc = np.stack([2.0 * np.sin(3.0 * t), 1.0 * np.cos(2.0 * t), GRAVITY_M_S2 + 0.5 * np.sin(t)], axis=1)
    return gyr + rng.normal(0, 0.01, (n, 3)), acc + rng.normal(0, 0.05, (n, 3))


# --- the three entry points agree bit for bit -----------------------------------------------------------
def test_chunked_batch_estimate_and_bank_are_bit_identical() -> None:
    gyr, acc = moving_sensor(20.0)
    gyr[1000:1007] = np.nan  # a gap inside
    acc[2000:2003] = np.nan
    q_estimate = estimate(gyr, acc, RATE_HZ)
    q_batch, f_batch = OrientationFilter(RATE_HZ).update_batch(gyr, acc)

    rng = np.random.default_rng(3)
    filt = OrientationFilter(RATE_HZ)
    parts_q, parts_f = [], []
    i = 0
    while i < gyr.shape[0]:
        size = int(rng.integers(1, 13))
        q, f = filt.update(gyr[i : i + size], acc[i : i + size])
        parts_q.append(q)
        parts_f.append(f)
        i += size
    q_chunked = np.concatenate(parts_q)

    filt8 = OrientationFilter(RATE_HZ)
    out_q = np.empty((8, 4))
    out_f = np.empty(8, np.uint8)
    q8 = np.concatenate([filt8.update(gyr[j : j + 8], acc[j : j + 8], 0, out_q, out_f)[0].copy()
                         for j in range(0, gyr.shape[0], 8)])

    # three sensors in one bank, fed packets of 8: sensor 1 carries the same data as the single filter
    bank = OrientationBank(3, RATE_HZ)
    n = gyr.shape[0]
    k = 8
    q_bank = np.empty((n, 4))
    for j in range(0, n, k):
        m = min(k, n - j)
        g = np.zeros((3, k, 3))
        a = np.zeros((3, k, 3))
        g[:, :m] = gyr[j : j + m]
        a[:, :m] = acc[j : j + m]
        counts = np.array([m, m, max(m - 1, 0)], dtype=np.int64)
        qb, _ = bank.update(g, a, counts)
        q_bank[j : j + m] = qb[1, :m]

    assert np.all(np.isfinite(q_batch))
    assert np.array_equal(q_estimate, q_batch)
    assert np.array_equal(q_chunked, q_batch)
    assert np.array_equal(np.concatenate(parts_f), f_batch)
    assert np.array_equal(q8, q_batch)
    assert np.array_equal(q_bank, q_batch)


def test_sequence_gap_equals_nan_rows() -> None:
    gyr, acc = moving_sensor(5.0)
    with_nan_g = np.concatenate([gyr[:300], np.full((5, 3), np.nan), gyr[300:]])
    with_nan_a = np.concatenate([acc[:300], np.full((5, 3), np.nan), acc[300:]])
    q_ref, f_ref = OrientationFilter(RATE_HZ).update_batch(with_nan_g, with_nan_a)
    assert np.all(f_ref[300:305] & Flag.GAP)

    filt = OrientationFilter(RATE_HZ)
    q_a, _ = filt.update(gyr[:300], acc[:300])
    q_b, _ = filt.update(gyr[300:], acc[300:], n_missing_before=5)
    assert np.array_equal(np.concatenate([q_a, q_b]), np.delete(q_ref, range(300, 305), axis=0))

    bank = OrientationBank(1, RATE_HZ)
    bank.update(gyr[None, :300], acc[None, :300], np.array([300]))
    q_c, _ = bank.update(gyr[None, 300:], acc[None, 300:], np.array([gyr.shape[0] - 300]), np.array([5]))
    assert np.array_equal(q_c[0], q_ref[305:])


def test_gap_is_bridged_without_nan() -> None:
    # constant rotation about z: a short gap is bridged with the last rate, so hardly any error
    n = 2000
    gyr = np.tile([0.0, 0.0, 1.0], (n, 1))
    acc = np.tile([0.0, 0.0, GRAVITY_M_S2], (n, 1))
    q_full = estimate(gyr, acc, RATE_HZ)
    gyr_gap = gyr.copy()
    acc_gap = acc.copy()
    gyr_gap[1000:1010] = np.nan
    acc_gap[1000:1010] = np.nan
    gyr_gap[1005, 1] = np.inf  # non-finite of any kind is a gap
    filt = OrientationFilter(RATE_HZ)
    q_gap, flags = filt.update_batch(gyr_gap, acc_gap)
    assert np.all(np.isfinite(q_gap)) and np.all(np.isfinite(filt.get_state()))
    assert np.all(flags[1000:1010] & Flag.GAP) and not np.any(flags[1010:] & Flag.GAP)
    heading_diff = 2 * np.arccos(np.clip(np.abs((q_gap[-1] * q_full[-1]).sum()), 0, 1))
    assert np.degrees(heading_diff) < 0.01

    # a long gap (beyond gap_bridge_s) holds the orientation instead of extrapolating
    filt_long = OrientationFilter(RATE_HZ)
    filt_long.update_batch(gyr[:500], acc[:500])
    before = filt_long.quat
    filt_long.update(np.full((1, 3), np.nan), np.full((1, 3), np.nan), n_missing_before=2000)
    after = filt_long.quat
    turned = np.degrees(2 * np.arccos(np.clip(abs(float(before @ after)), 0, 1)))
    assert np.all(np.isfinite(after))
    assert turned < np.degrees(1.0 * (FilterParams().gap_bridge_s + 2 / RATE_HZ)) + 0.01


# --- state ----------------------------------------------------------------------------------------------
def test_reset_equals_fresh_and_state_round_trip() -> None:
    gyr, acc = moving_sensor(10.0)
    fresh_q, fresh_f = OrientationFilter(RATE_HZ).update_batch(gyr, acc)

    filt = OrientationFilter(RATE_HZ)
    filt.update_batch(gyr[::-1], acc[::-1])
    filt.reset()
    q, f = filt.update_batch(gyr, acc)
    assert np.array_equal(q, fresh_q) and np.array_equal(f, fresh_f)

    a = OrientationFilter(RATE_HZ)
    a.update_batch(gyr[:1000], acc[:1000])
    b = OrientationFilter(RATE_HZ)
    b.set_state(a.get_state())
    q_a, _ = a.update_batch(gyr[1000:], acc[1000:])
    q_b, _ = b.update_batch(gyr[1000:], acc[1000:])
    assert np.array_equal(q_a, q_b)

    bank = OrientationBank(2, RATE_HZ)
    bank.update(np.stack([gyr[:64].reshape(64, 3)] * 2)[:, :64], np.stack([acc[:64]] * 2), np.array([64, 64]))
    bank.reset(0)
    assert np.array_equal(bank.get_state(0), OrientationFilter(RATE_HZ).get_state())
    assert not np.array_equal(bank.get_state(1), bank.get_state(0))

    with pytest.raises(InputError):
        filt.set_state(np.full(3, 1.0))
    bad = filt.get_state()
    bad[0] = np.nan
    with pytest.raises(InputError):
        filt.set_state(bad)


# --- behaviour against ground truth ---------------------------------------------------------------------
def test_static_bias_converges_and_inclination_holds_for_10_minutes() -> None:
    q_true = quat_from_axis_angle([1.0, -0.4, 0.2], np.radians(30.0))
    bias = np.array([0.02, -0.02, 0.02])
    gyr, acc = static_sensor(q_true, 600.0, bias)
    filt = OrientationFilter(RATE_HZ)
    quat, flags = filt.update_batch(gyr, acc)

    err = inclination_error_deg(quat, q_true)
    converged = int(10.0 * RATE_HZ)  # rest detection (2 s), bias Kalman filter and tau_acc settle
    assert err[converged:].max() < 0.5
    assert np.abs(filt.bias_rad_s - bias).max() < 1e-3
    assert np.all(flags[: int(2.0 * RATE_HZ)] & Flag.INITIALISING)
    assert not np.any(flags[int(3.5 * RATE_HZ) :] & Flag.INITIALISING)
    assert np.mean(flags[int(60 * RATE_HZ) :] & Flag.AT_REST > 0) > 0.95

    # without bias estimation the same data lags behind the drift: the bound above is not trivially met
    no_bias = FilterParams(motion_bias_estimation=False, rest_bias_estimation=False)
    assert inclination_error_deg(estimate(gyr, acc, RATE_HZ, no_bias), q_true)[converged:].mean() > 1.0


def _impact_recording(seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A still, tilted sensor hit every 2 s by 10 g, 30 ms half-sine shocks in random, mostly horizontal
    directions (knocks: unlike a landing's accelerations these do not average out, the worst case)."""
    rng = np.random.default_rng(seed)
    q_true = quat_from_axis_angle([1.0, 0.5, 0.0], np.radians(25.0))
    duration_s = 60.0
    n = int(duration_s * RATE_HZ)
    acc_earth = np.tile([0.0, 0.0, GRAVITY_M_S2], (n, 1))
    width = int(0.03 * RATE_HZ)
    pulse = np.sin(np.pi * np.arange(width) / width)
    for t0 in np.arange(5.0, duration_s - 1.0, 2.0):
        d = rng.normal(size=3)
        d[2] = abs(d[2]) * 0.3
        d /= np.linalg.norm(d)
        i0 = int(t0 * RATE_HZ)
        acc_earth[i0 : i0 + width] += 10.0 * GRAVITY_M_S2 * pulse[:, None] * d
    acc = acc_earth @ rot_matrix(q_true) + rng.normal(0.0, 0.05, (n, 3))
    gyr = rng.normal(0.0, 0.005, (n, 3))
    return gyr, acc, q_true


def test_10g_impacts_tilt_less_than_1_deg() -> None:
    gyr, acc, q_true = _impact_recording()
    quat, flags = OrientationFilter(RATE_HZ).update_batch(gyr, acc)
    after = int(5.0 * RATE_HZ)
    assert inclination_error_deg(quat, q_true)[after:].max() < 1.0
    deviation = np.abs(np.linalg.norm(acc, axis=1) - GRAVITY_M_S2)
    peaks = np.flatnonzero(deviation > FilterParams().acc_rejection_m_s2)
    assert peaks.size > 0 and np.all(flags[peaks] & Flag.ACC_REJECTED)
    assert np.mean(flags[after:] & Flag.ACC_REJECTED > 0) < 0.1

    # the same shocks without rejection tilt the estimate by several degrees
    no_rejection = FilterParams(acc_rejection_m_s2=1e6)
    assert inclination_error_deg(estimate(gyr, acc, RATE_HZ, no_rejection), q_true)[after:].max() > 2.0


def test_clipped_samples_are_flagged_and_rejected() -> None:
    q_true = quat_from_axis_angle([0.0, 1.0, 0.0], np.radians(10.0))
    gyr, acc = static_sensor(q_true, 10.0, np.zeros(3))
    params = FilterParams(acc_range_m_s2=4.0 * GRAVITY_M_S2)
    acc[1000, 0] = 4.0 * GRAVITY_M_S2  # at full scale
    gyr[1500, 2] = params.gyr_range_rad_s
    _, flags = OrientationFilter(RATE_HZ, params).update_batch(gyr, acc)
    assert flags[1000] & Flag.CLIPPED and flags[1000] & Flag.ACC_REJECTED
    assert flags[1500] & Flag.CLIPPED
    assert np.count_nonzero(flags & Flag.CLIPPED) == 2


def test_sustained_high_acceleration_is_not_rejected_for_long() -> None:
    # 3 s of violent shaking (8 g) starting from rest: at most the rejection budget is rejected, then
    # the peaks are used again (they average out in the almost-inertial frame)
    n = int(3.0 * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    acc = np.tile([0.0, 0.0, GRAVITY_M_S2], (n, 1))
    acc[:, 0] += 8.0 * GRAVITY_M_S2 * np.cos(2 * np.pi * 4.0 * t)  # sudden onset: a shock out of quiet
    _, flags = OrientationFilter(RATE_HZ).update_batch(np.zeros((n, 3)), acc)
    rejected = np.flatnonzero(flags & Flag.ACC_REJECTED)
    assert rejected.size > 0
    assert rejected.size <= FilterParams().acc_rejection_budget_s * RATE_HZ + 1
    assert rejected.max() < int(0.5 * RATE_HZ)


def _jump_landings(horizontal_m_s: float, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physically consistent jumps every 4 s: 0.3 s push-off (2.5 m/s up, horizontal_m_s sideways),
    free fall, and a 40 ms landing that stops the sensor, peaking above 10 g."""
    rng = np.random.default_rng(seed)
    q_true = quat_from_axis_angle([1.0, 0.5, 0.0], np.radians(25.0))
    duration_s = 60.0
    n = int(duration_s * RATE_HZ)
    dt_s = 1.0 / RATE_HZ
    lin = np.zeros((n, 3))
    t0 = 5.0
    while t0 < duration_s - 3.0:
        d = rng.normal(size=2)
        v = np.r_[horizontal_m_s * d / np.linalg.norm(d), 2.5]
        i = int(t0 * RATE_HZ)
        m = int(0.3 * RATE_HZ)
        shape = np.sin(np.pi * np.arange(m) / m)
        lin[i : i + m] += shape[:, None] * v / (shape.sum() * dt_s)
        i += m
        m_flight = round(2 * v[2] / GRAVITY_M_S2 * RATE_HZ)
        lin[i : i + m_flight, 2] -= GRAVITY_M_S2
        i += m_flight
        v_land = np.r_[v[:2], v[2] - GRAVITY_M_S2 * m_flight * dt_s]
        m = int(0.04 * RATE_HZ)
        shape = np.sin(np.pi * np.arange(m) / m)
        lin[i : i + m] -= shape[:, None] * v_land / (shape.sum() * dt_s)
        t0 += 4.0
    lin[:, 2] += GRAVITY_M_S2  # specific force
    acc = lin @ rot_matrix(q_true) + rng.normal(0.0, 0.05, (n, 3))
    return rng.normal(0.0, 0.005, (n, 3)), acc, q_true


def test_landings_at_10g_keep_their_impulse() -> None:
    gyr, acc, q_true = _jump_landings(horizontal_m_s=0.5)
    assert np.linalg.norm(acc, axis=1).max() > 10.0 * GRAVITY_M_S2
    quat, flags = OrientationFilter(RATE_HZ).update_batch(gyr, acc)
    # after free fall the sensor is not "quiet": the landing is motion and is used, not rejected
    assert not np.any(flags & Flag.ACC_REJECTED)
    after = int(5.0 * RATE_HZ)
    worst_deg = inclination_error_deg(quat, q_true)[after:].max()
    assert worst_deg < 1.0
    # dropping the landings (plain magnitude rejection) leaves the push-off unbalanced: twice the error
    dropping = FilterParams(acc_quiet_th_m_s2=1e6)
    dropped_deg = inclination_error_deg(estimate(gyr, acc, RATE_HZ, dropping), q_true)[after:].max()
    assert dropped_deg > 1.5 * worst_deg


def test_matches_reference_vqf_without_sensorhub_extras() -> None:
    vqf = pytest.importorskip("vqf", reason="benchmark extra: pip install -e .[bench]")
    gyr, acc = moving_sensor(30.0)
    gyr[:2000] *= 0.01  # a still start, so rest detection and rest bias estimation are exercised
    acc[:2000] = [0.3, -0.2, GRAVITY_M_S2]
    plain = FilterParams(acc_rejection_m_s2=1e9, acc_range_m_s2=1e9, gyr_range_rad_s=1e9)
    ours = estimate(gyr, acc, RATE_HZ, plain)
    ref = np.asarray(vqf.VQF(1.0 / RATE_HZ).updateBatch(gyr, acc)["quat6D"])
    assert np.abs(ours - ref).max() < 1e-9


# --- input handling -------------------------------------------------------------------------------------
def test_inputs_are_validated_or_converted() -> None:
    warmup()  # also disables compilation: other dtypes must take the conversion path
    kernels: list[Any] = [_kernels.filter_batch, _kernels.filter_many]
    compiled = [len(kern.signatures) for kern in kernels]
    gyr, acc = moving_sensor(1.0)
    ref, _ = OrientationFilter(RATE_HZ).update(gyr, acc)
    q32, _ = OrientationFilter(RATE_HZ).update(gyr.astype(np.float32), acc.astype(np.float32))
    assert np.allclose(q32, ref, atol=1e-5)
    bank_q, _ = OrientationBank(1, RATE_HZ).update(gyr[None].astype(np.float32), acc[None],
                                                   np.array([gyr.shape[0]], dtype=np.int32))
    assert np.allclose(bank_q[0], ref, atol=1e-5)
    # nothing was compiled for the new types: the live path never compiles after warmup()
    assert [len(kern.signatures) for kern in kernels] == compiled
    read_only = np.frombuffer(gyr.tobytes(), dtype=np.float64).reshape(gyr.shape)
    q_ro, _ = OrientationFilter(RATE_HZ).update(read_only, acc)
    assert np.array_equal(q_ro, ref)
    wide = np.concatenate([gyr, acc], axis=1)  # non-contiguous column slices
    q_nc, _ = OrientationFilter(RATE_HZ).update(wide[:, :3], wide[:, 3:])
    assert np.array_equal(q_nc, ref)
    with pytest.raises(InputError):
        OrientationFilter(RATE_HZ).update(gyr[:, :2], acc[:, :2])
    with pytest.raises(InputError):
        OrientationFilter(RATE_HZ).update(gyr[:10], acc[:9])
    with pytest.raises(InputError):
        OrientationFilter(RATE_HZ).update(gyr[:10], acc[:10], 0, np.empty((4, 4)), np.empty(4, np.uint8))
    with pytest.raises(InputError):
        OrientationFilter(RATE_HZ).update_batch(gyr.ravel(), acc.ravel())
    with pytest.raises(InputError):
        OrientationFilter(0.0)
    with pytest.raises(InputError):
        OrientationFilter(RATE_HZ, FilterParams(rest_filter_tau_s=-1.0))
    bank = OrientationBank(2, RATE_HZ)
    with pytest.raises(InputError):
        bank.update(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)), np.array([5, 1]))
    with pytest.raises(InputError):
        bank.update(np.zeros((3, 4, 3)), np.zeros((3, 4, 3)), np.array([1, 1, 1]))
