"""The simulator's body model: physics of the ideal IMU, truth consistency, contacts, drills, determinism."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from firmware_sim.body import (
    DRILLS,
    Motion,
    knee_angles_from_matrix,
    nominal_mount,
    random_mount,
    session,
    simulate,
)
from firmware_sim.body.contact import Stance
from firmware_sim.body.rotations import quat_conjugate, quat_multiply, quat_to_matrix, rotate
from sensorhub.conventions import GRAVITY_M_S2

BOTH = ("right", "left")
SENSORS = [(side, seg) for side in BOTH for seg in ("thigh", "shank")]


@cache
def motion_of(drill: str, seed: int = 1, reps: int = 2) -> Motion:
    return simulate(drill, reps=reps, sides=BOTH, seed=seed)


def quat_angle_deg(q_a: np.ndarray, q_b: np.ndarray) -> np.ndarray:
    d = quat_multiply(quat_conjugate(q_a), q_b)
    return np.degrees(2.0 * np.arccos(np.clip(np.abs(d[..., 0]), 0.0, 1.0)))


def integrate_gyro(q0: np.ndarray, gyr: np.ndarray, dt: float) -> np.ndarray:
    """Body-frame rate integration with the exact exponential of each (midpoint) rate sample."""
    out = np.empty((gyr.shape[0] + 1, 4))
    w, x, y, z = (float(c) for c in q0)
    out[0] = (w, x, y, z)
    for i, (gx, gy, gz) in enumerate(gyr.tolist()):
        norm = math.sqrt(gx * gx + gy * gy + gz * gz)
        half = 0.5 * norm * dt
        c, s = math.cos(half), (math.sin(half) / norm if norm > 0.0 else 0.0)
        bx, by, bz = gx * s, gy * s, gz * s
        w, x, y, z = (
            w * c - x * bx - y * by - z * bz,
            w * bx + x * c + y * bz - z * by,
            w * by - x * bz + y * c + z * bx,
            w * bz + x * by - y * bx + z * c,
        )
        out[i + 1] = (w, x, y, z)
    return out


@pytest.mark.parametrize("drill", ["drop_jump", "cut_90"])
def test_integrating_the_gyro_recovers_the_sensor_orientation(drill: str) -> None:
    motion = motion_of(drill)
    dt = 0.0005
    t_edges = np.arange(0.0, motion.duration_s, dt)
    t_mid = t_edges[:-1] + 0.5 * dt
    for side, seg in [("right", "shank"), ("left", "thigh")]:
        mount = random_mount(side, seg, 7, max_angle_deg=30.0)
        gyr, _ = motion.imu(side, seg, mount, t_mid, wobble=True)
        q_true, _ = motion.sensor_pose(side, seg, mount, t_edges, wobble=True)
        q_int = integrate_gyro(q_true[0], gyr, dt)
        err = quat_angle_deg(q_int, q_true)
        assert err.max() < 0.01, f"{side} {seg}: gyro integration drifts {err.max():.4f} deg"
        assert np.degrees(np.abs(gyr).max()) > 200.0  # the drill really moves the segment


def test_accelerometer_at_rest_reads_gravity_along_the_sensor_up_axis() -> None:
    motion = simulate("standing", sides=BOTH, seed=3, sway=False, duration_s=5.0)
    t = np.linspace(0.0, 4.0, 50)
    for side, seg in SENSORS:
        mount = random_mount(side, seg, 11, max_angle_deg=30.0)
        gyr, acc = motion.imu(side, seg, mount, t)
        q, _ = motion.sensor_pose(side, seg, mount, t)
        up_in_sensor = rotate(quat_conjugate(q), np.array([0.0, 0.0, 1.0]))
        np.testing.assert_allclose(acc, GRAVITY_M_S2 * up_in_sensor, atol=1e-9)
        np.testing.assert_allclose(np.linalg.norm(acc, axis=1), GRAVITY_M_S2, atol=1e-9)
        assert np.abs(gyr).max() < 1e-12
    # nominal mounts: sensor x points distally, so a standing leg reads -g on x
    _, acc = motion.imu("right", "thigh", nominal_mount("right", "thigh"), t)
    np.testing.assert_allclose(acc, np.tile([-GRAVITY_M_S2, 0.0, 0.0], (t.size, 1)), atol=1e-9)


@pytest.mark.parametrize("drill", ["squat", "cmj", "jog", "cut_45"])
def test_ideal_imu_equals_finite_differences_of_the_pose(drill: str) -> None:
    """The analytic derivatives (jets) agree with central differences of the pose functions."""
    motion = motion_of(drill)
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(3.5, motion.duration_s - 1.0, 400))
    # stay away from phase switches, where accelerations legitimately jump
    switches = np.array(
        [x for side in BOTH for a, b in motion.contact_phases(side) for x in (a, b) if np.isfinite(x)]
    )
    if switches.size:
        t = t[np.min(np.abs(t[:, None] - switches[None, :]), axis=1) > 0.002]
    h = 1e-5  # small: the curves' third derivative jumps at keyframes
    for side, seg in SENSORS:
        mount = random_mount(side, seg, 5)
        gyr, acc = motion.imu(side, seg, mount, t, wobble=True)
        q, _ = motion.sensor_pose(side, seg, mount, t, wobble=True)
        _, p_plus = motion.sensor_pose(side, seg, mount, t + h)
        _, p_zero = motion.sensor_pose(side, seg, mount, t)
        _, p_minus = motion.sensor_pose(side, seg, mount, t - h)
        q_plus, _ = motion.sensor_pose(side, seg, mount, t + h)
        q_minus, _ = motion.sensor_pose(side, seg, mount, t - h)
        a_fd = (p_plus - 2.0 * p_zero + p_minus) / h**2
        acc_fd = rotate(quat_conjugate(q), a_fd + np.array([0.0, 0.0, GRAVITY_M_S2]))
        np.testing.assert_allclose(acc, acc_fd, atol=2e-3 * GRAVITY_M_S2)
        dq = quat_multiply(quat_conjugate(q_minus), q_plus)
        gyr_fd = 2.0 * dq[:, 1:] * np.sign(dq[:, :1]) / (2.0 * h)
        np.testing.assert_allclose(gyr, gyr_fd, atol=1e-4 * max(1.0, np.abs(gyr).max()))


def test_truth_angles_are_zero_in_the_standing_pose() -> None:
    for drill in DRILLS:
        motion = motion_of(drill, reps=1)
        for side in BOTH:
            start = motion.truth_angles_deg(side, np.linspace(0.0, 3.9, 40))
            end = motion.truth_angles_deg(side, np.linspace(motion.duration_s - 1.5, motion.duration_s, 10))
            assert np.abs(start).max() == 0.0, drill
            assert np.abs(end).max() < 1e-9, drill
            q_thigh, _ = motion.segment_pose(side, "thigh", np.array([1.0]))
            q_shank, _ = motion.segment_pose(side, "shank", np.array([1.0]))
            if drill != "standing":
                continue
            # the calibration pose: segment frames equal the earth frame (up to postural sway)
            assert quat_angle_deg(q_thigh, np.array([[1.0, 0, 0, 0]]))[0] < 0.5
            assert quat_angle_deg(q_shank, q_thigh)[0] < 1e-9


@pytest.mark.parametrize("drill", ["squat", "drop_jump", "cut_45", "walk", "lunge"])
def test_truth_angles_are_the_grood_suntay_decomposition_of_the_segments(drill: str) -> None:
    motion = motion_of(drill)
    t = np.linspace(0.0, motion.duration_s, 3000)
    for side in BOTH:
        q_thigh, _ = motion.segment_pose(side, "thigh", t)
        q_shank, _ = motion.segment_pose(side, "shank", t)
        r_knee = quat_to_matrix(quat_multiply(quat_conjugate(q_thigh), q_shank))
        angles = np.degrees(knee_angles_from_matrix(side, r_knee))
        np.testing.assert_allclose(angles, motion.truth_angles_deg(side, t), atol=1e-8)
        assert motion.truth_angles_deg(side, t)[:, 0].max() > 30.0


@pytest.mark.parametrize("drill", ["cmj", "drop_jump"])
def test_flight_is_free_fall(drill: str) -> None:
    """In flight the hip falls freely; the thigh sensor reads only its rotation about the hip."""
    motion = motion_of(drill)
    n_flights = 0
    for side in BOTH:
        mount = random_mount(side, "thigh", 3)
        r_sensor = rotate(quat_conjugate(mount.quat_sensor_to_segment), mount.position_m)  # hip -> sensor
        for t_off, t_on in motion.flights(side):
            t = np.linspace(t_off + 1e-3, t_on - 1e-3, 200)
            _, _, hip_acc = motion.hip_kinematics(side, t)
            np.testing.assert_allclose(hip_acc, np.tile([0.0, 0.0, -GRAVITY_M_S2], (t.size, 1)), atol=1e-9)
            gyr, acc = motion.imu(side, "thigh", mount, t, wobble=False)
            h = 1e-5
            alpha = (
                motion.imu(side, "thigh", mount, t + h, wobble=False)[0]
                - motion.imu(side, "thigh", mount, t - h, wobble=False)[0]
            ) / (2 * h)
            rotational = np.cross(alpha, r_sensor) + np.cross(gyr, np.cross(gyr, r_sensor))
            np.testing.assert_allclose(acc, rotational, atol=1e-4)
            assert np.median(np.linalg.norm(acc, axis=1)) < 0.6 * GRAVITY_M_S2
            n_flights += 1
    assert n_flights >= 4


@pytest.mark.parametrize("drill", ["squat", "step_down", "lunge", "drop_jump", "walk", "jog", "cut_90"])
def test_planted_foot_does_not_slide(drill: str) -> None:
    motion = motion_of(drill)
    leg_stances = {
        side: [p for p in motion._body.legs[side].phases if isinstance(p, Stance)] for side in BOTH
    }
    for side, stances in leg_stances.items():
        for st in stances:
            t0 = max(st.t0_s + st.impact_s, 0.0)
            t1 = min(st.t1_s - st.pushoff_s, motion.duration_s)
            if t1 - t0 < 0.01:
                continue
            t = np.linspace(t0, t1, 100)
            ankle = motion.joint_positions(side, t)["ankle"]
            assert np.abs(ankle - ankle[0]).max() < 1e-9, (
                f"{drill} {side}: foot slides in stance {st.t0_s:.2f}"
            )
            assert abs(ankle[0, 2] - (st.ground_z_m + 0.08)) < 1e-9


@pytest.mark.parametrize("drill", DRILLS)
def test_every_drill_is_finite_and_stays_above_ground(drill: str) -> None:
    for seed in (0, 4):
        motion = simulate(drill, reps=2, sides=BOTH, seed=seed, calibration_bends=seed == 4)
        t = np.arange(0.0, motion.duration_s, 0.004)
        for side, seg in SENSORS:
            gyr, acc = motion.imu(side, seg, random_mount(side, seg, seed), t)
            assert np.isfinite(gyr).all() and np.isfinite(acc).all()
            assert np.linalg.norm(acc, axis=1).max() < 16.0 * GRAVITY_M_S2
            assert np.abs(gyr).max() < math.radians(2000.0)
        for side in BOTH:
            # no more than a transient 2 deg of hyperextension (just after a jump's take-off)
            assert motion.truth_angles_deg(side, t)[:, 0].min() > -2.0
            joints = motion.joint_positions(side, t)
            assert joints["ankle"][:, 2].min() > 0.0
            assert (joints["knee"][:, 2] - joints["ankle"][:, 2]).min() > 0.0


def _events(motion: Motion, kind: str) -> list[dict]:
    return [e for e in motion.events if e["type"] == kind]


def test_rep_events_have_designed_metrics() -> None:
    for drill, lo, hi in (("squat", 70.0, 110.0), ("step_down", 60.0, 80.0), ("lunge", 75.0, 100.0)):
        motion = motion_of(drill, reps=4)
        reps = _events(motion, "rep")
        assert len(reps) >= 4, drill
        for e in reps:
            if e.get("role") == "trail":  # the lunge's trail knee bends less
                lo = 60.0
            assert lo - 1e-6 <= e["depth_deg"] <= hi + 1e-6, (drill, e)
            assert e["t_s"] < e["t_bottom_s"] < e["t_end_s"]
            assert e["eccentric_s"] == pytest.approx(e["t_bottom_s"] - e["t_s"])
            ang = motion.truth_angles_deg(e["side"], np.linspace(e["t_s"], e["t_end_s"], 2000))
            assert ang[:, 0].max() == pytest.approx(e["depth_deg"], abs=0.05)
            assert 0.0 <= e["peak_valgus_deg"] <= 4.0 + 1e-6
        if drill == "step_down":
            assert all(1.5 <= e["eccentric_s"] <= 3.0 for e in reps)


def test_landing_events_are_realistic() -> None:
    motion = motion_of("drop_jump", reps=3)
    landings = _events(motion, "landing")
    assert len(landings) == 3 * 2 * 2  # (drop + rebound) x reps x legs
    for e in landings:
        assert 5.0 <= e["flexion_at_contact_deg"] <= 25.0
        assert 60.0 <= e["peak_flexion_deg"] <= 90.0
        assert 0.05 <= e["time_to_peak_flexion_s"] <= 0.3
        assert 5.0 <= e["peak_shank_accel_g"] <= 14.0
        ang = motion.truth_angles_deg(e["side"], np.array([e["t_s"]]))
        assert ang[0, 0] == pytest.approx(e["flexion_at_contact_deg"])
        if e["exercise"] == "drop_landing":
            assert 0.2 <= e["ground_contact_time_s"] <= 0.36
            assert 0.24 <= e["flight_time_s"] <= 0.36
        else:
            assert e["ground_contact_time_s"] is None
            assert e["jump_height_m"] == pytest.approx(GRAVITY_M_S2 * e["flight_time_s"] ** 2 / 8.0)
    # the contact instant is exact: the ankle is airborne before and stops within the impact window
    e = landings[0]
    phases = motion.contact_phases(e["side"])
    assert any(abs(t0 - e["t_s"]) < 1e-12 for t0, _ in phases)
    assert e["t_s"] in motion.impacts_s


def test_cut_events() -> None:
    for drill, angle in (("cut_45", 45.0), ("cut_90", 90.0)):
        motion = motion_of(drill, reps=2)
        cuts = _events(motion, "cut")
        assert len(cuts) == 2, drill  # one plant per rep (right plants for left cuts and vice versa)
        for e in cuts:
            assert e["direction_change_deg"] == angle
            assert 0.1 <= e["braking_time_s"] <= 0.32
            assert e["peak_decel_g"] > 0.5
            assert 5.0 <= e["flexion_at_plant_deg"] <= 35.0


def test_faults_change_the_metrics() -> None:
    m = simulate("cmj", reps=4, sides=("right",), seed=2, faults={"valgus": 1.0, "stiff_landing": 1.0})
    for e in _events(m, "landing"):
        assert 8.0 <= e["peak_valgus_deg"] <= 15.0 + 1e-6
        assert e["peak_flexion_deg"] < 45.0
        assert set(e["faults"]) == {"valgus", "stiff_landing"}
    good = simulate("cmj", reps=4, sides=("right",), seed=2)
    for e in _events(good, "landing"):
        assert e["peak_valgus_deg"] <= 4.0 + 1e-6 and e["peak_flexion_deg"] >= 60.0 and e["fault"] is None
    fast = simulate("squat", reps=3, sides=("left",), seed=2, faults={"fast_eccentric": 1.0})
    assert all(e["eccentric_s"] < 0.7 and e["side"] == "left" for e in _events(fast, "rep"))
    mixed = simulate("squat", reps=12, seed=5, faults={"valgus": 0.5})
    flags = [e["fault"] == "valgus" for e in _events(mixed, "rep")]
    assert 0 < sum(flags) < len(flags)


def test_same_seed_same_motion_and_events() -> None:
    a = simulate("drop_jump", reps=2, sides=BOTH, seed=9, faults={"valgus": 0.5})
    b = simulate("drop_jump", reps=2, sides=BOTH, seed=9, faults={"valgus": 0.5})
    c = simulate("drop_jump", reps=2, sides=BOTH, seed=10, faults={"valgus": 0.5})
    t = np.linspace(0.0, a.duration_s, 5000)
    mount = nominal_mount("left", "shank")
    assert np.array_equal(
        np.hstack(a.imu("left", "shank", mount, t)), np.hstack(b.imu("left", "shank", mount, t))
    )
    assert a.events == b.events
    assert a.events != c.events


def test_wobble_only_after_impacts_and_decays() -> None:
    motion = motion_of("cmj")
    first = motion.impacts_s[0]
    mount = nominal_mount("right", "thigh")
    t = np.linspace(0.0, motion.duration_s, 20000)
    g_w, a_w = motion.imu("right", "thigh", mount, t, wobble=True)
    g_0, a_0 = motion.imu("right", "thigh", mount, t, wobble=False)
    before = t < first
    assert np.array_equal(g_w[before], g_0[before]) and np.array_equal(a_w[before], a_0[before])
    after = (t > first) & (t < first + 0.3)
    diff = np.degrees(np.abs(g_w - g_0)[after]).max()
    assert 20.0 < diff < 1000.0  # 1-3 deg at 10-20 Hz: tens to hundreds of deg/s
    late = (t > first + 1.0) & (t < first + 1.5)
    assert np.abs(g_w - g_0)[late].max() < 1e-3


def test_mounts() -> None:
    for side, seg in SENSORS:
        nominal = nominal_mount(side, seg)
        x_axis_in_segment = rotate(nominal.quat_sensor_to_segment, np.array([1.0, 0.0, 0.0]))
        np.testing.assert_allclose(x_axis_in_segment, [0.0, 0.0, -1.0], atol=1e-12)
        lateral = -1.0 if side == "right" else 1.0
        assert nominal.position_m[1] * lateral > 0.0
        for seed in range(20):
            m = random_mount(side, seg, seed, max_angle_deg=30.0, max_offset_m=0.03)
            assert quat_angle_deg(m.quat_sensor_to_segment, nominal.quat_sensor_to_segment) <= 30.0 + 1e-9
            assert np.linalg.norm(m.position_m - nominal.position_m) <= 0.03 + 1e-12


def test_calibration_bends_precede_the_drill() -> None:
    motion = simulate("cmj", reps=1, seed=0, calibration_bends=True, standing_s=3.0)
    reps = _events(motion, "rep")
    assert len(reps) == 3 and all(e["calibration"] for e in reps)
    assert reps[0]["t_s"] == pytest.approx(3.0)
    assert max(e["t_end_s"] for e in reps) < _events(motion, "landing")[0]["t_s"]


def test_ten_minute_session_mixes_drills() -> None:
    motion = session(min_duration_s=600.0, seed=2)
    assert motion.duration_s >= 600.0
    drills = {e["drill"] for e in motion.events}
    assert {"squat", "cmj", "drop_jump", "cut_45", "cut_90", "lunge", "step_down"} <= drills
    t = np.arange(0.0, motion.duration_s, 0.02)
    gyr, acc = motion.imu("left", "shank", nominal_mount("left", "shank"), t)
    assert np.isfinite(gyr).all() and np.isfinite(acc).all()
    end = motion.truth_angles_deg("left", np.array([motion.duration_s - 0.5]))
    assert np.abs(end).max() < 1e-9


def test_site_mounts_sit_on_the_skin_and_slide_with_flexion() -> None:
    from firmware_sim.body import Geometry
    from firmware_sim.body.mount import LEVELS, SITES, site_mount

    motion = motion_of("squat")
    bent = next(e for e in motion.events if e["type"] == "rep")["t_bottom_s"]
    slide_deg = {}
    for segment in ("thigh", "shank"):
        for site in SITES[segment]:
            for level in LEVELS[segment]:
                m = site_mount(
                    "right",
                    segment,
                    site,
                    level,
                    np.random.default_rng(1),
                    max_angle_deg=0.0,
                    max_offset_m=0.0,
                )
                normal = rotate(m.quat_sensor_to_segment, np.array([0.0, 0.0, 1.0]))
                np.testing.assert_allclose(
                    normal[2], 0.0, atol=1e-12
                )  # z out of the skin, across the segment
                centre = m.position_m.copy()
                centre[:2] -= normal[:2] * 0.02  # stepping inwards along the normal approaches the axis
                assert np.linalg.norm(centre[:2]) < np.linalg.norm(m.position_m[:2])
                np.testing.assert_allclose(
                    rotate(m.quat_sensor_to_segment, np.array([1.0, 0.0, 0.0])), [0, 0, -1], atol=1e-12
                )
                # no artefact standing (flexion 0, no impact yet); skin sliding once the knee bends
                q_rigid, _ = motion.sensor_pose("right", segment, m, np.array([1.0, bent]), wobble=False)
                q_skin, _ = motion.sensor_pose("right", segment, m, np.array([1.0, bent]), wobble=True)
                off = quat_angle_deg(q_rigid, q_skin)
                assert off[0] < 1e-9
                slide_deg[(segment, site, level)] = off[1]
    assert max(slide_deg.values()) < 8.0
    tibia = max(v for k, v in slide_deg.items() if k[1] == "anteromedial")
    thigh = min(v for k, v in slide_deg.items() if k[0] == "thigh")
    assert tibia < thigh  # the thigh's soft tissue moves more than the skin on the tibia
    tall, short = (
        site_mount(
            "left",
            "thigh",
            "lateral",
            "mid",
            np.random.default_rng(1),
            geometry=Geometry.for_height(h),
            max_angle_deg=0.0,
            max_offset_m=0.0,
        )
        for h in (2.0, 1.5)
    )
    assert tall.position_m[1] > short.position_m[1] > 0.0  # left leg: lateral is +y; sizes scale


def test_forefoot_landing_strikes_the_heel_later() -> None:
    from firmware_sim.body.style import LandingStyle, Style

    style = Style(landing=LandingStyle(forefoot_prob=1.0))
    motion = simulate("cmj", reps=2, sides=("right",), seed=3, style=style)
    for e in _events(motion, "landing"):
        t_c, t_heel = e["t_s"], e["t_heel_strike_s"]
        assert 0.03 <= t_heel - t_c <= 0.08
        t = np.array([t_c - 1e-3, 0.5 * (t_c + t_heel), t_heel + 0.04, t_heel + 0.1])
        pos, vel, _ = motion.joint_kinematics("right", "ankle", t)
        assert vel[0, 2] < -1.0 and -0.2 * abs(vel[0, 2]) > vel[1, 2] > vel[0, 2]  # softer first stop
        assert np.abs(vel[3]).max() < 1e-12 and pos[3, 2] == pytest.approx(0.08, abs=1e-12)
        _, _, acc_heel = motion.joint_kinematics("right", "ankle", np.linspace(t_heel, t_heel + 0.035, 50))
        assert acc_heel[:, 2].max() > 3.0 * GRAVITY_M_S2  # the heel strike is its own impact


def test_weight_shifts_tilt_the_legs_but_never_bend_the_knees() -> None:
    from firmware_sim.body.style import Style

    motion = session(
        [("standing", 1)], sides=BOTH, seed=4, standing_s=8.0, style=Style(weight_shift_m=(0.03, 0.05))
    )
    t = np.linspace(0.0, motion.duration_s, 2000)
    for side in BOTH:
        assert np.abs(motion.truth_angles_deg(side, t)).max() == 0.0
        q_shank, _ = motion.segment_pose(side, "shank", t)
        tilt = quat_angle_deg(q_shank, np.tile([1.0, 0.0, 0.0, 0.0], (t.size, 1)))
        assert tilt[t < 3.0].max() < 1.0 and tilt.max() > 1.0  # quiet first 3 s, then shifts


def test_hip_offsets_beyond_reach_are_limited_smoothly() -> None:
    from firmware_sim.body.jets import Jet
    from firmware_sim.body.skeleton import REACH_SOFT, _within_reach

    def offsets(t: np.ndarray) -> tuple[Jet, Jet, Jet]:  # |o| sweeps from 0.5 to 1.5 of the reach |w| = 0.8
        r = 0.4 + 0.8 * t
        return Jet(r * 0.6, 0.48 + 0 * t, 0 * t), Jet(r * 0.8, 0.64 + 0 * t, 0 * t), Jet.const(0.64, t.size)

    t = np.linspace(0.0, 1.0, 2001)
    ox, oy, w2 = offsets(t)
    lx, ly = _within_reach(ox, oy, w2)
    ratio = np.hypot(lx.v, ly.v) / 0.8
    near = np.hypot(ox.v, oy.v) / 0.8 <= REACH_SOFT
    np.testing.assert_array_equal(lx.v[near], ox.v[near])  # untouched within 0.9 of the reach
    assert ratio.max() < 1.0 and np.all(np.diff(ratio) >= 0.0)
    h = t[1] - t[0]
    np.testing.assert_allclose(lx.d1[1:-1], (lx.v[2:] - lx.v[:-2]) / (2 * h), atol=1e-5)  # exact derivatives
    # C2: the second derivative is continuous (finite differences see only the jump of the third at r0)
    np.testing.assert_allclose(lx.d2[2:-2], (lx.v[4:] - 2 * lx.v[2:-2] + lx.v[:-4]) / (4 * h * h), atol=0.05)
