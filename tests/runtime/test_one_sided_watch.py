"""Live, a calibration whose knee angles go far past standing (a flipped axis sign, which the sign-blind
checks pass; here a wrong shank pose) is refused once a window of its angles shows it, and the leg
calibrates again; a right one is kept."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from sensorhub.bench.packets import generate
from sensorhub.errors import CalibrationError
from sensorhub.kinematics import OneSidedWatch
from sensorhub.kinematics import knee as knee_module
from sensorhub.runtime import Pipeline

RATE_HZ = 200.0
SHANK_TILT_DEG = -40.0  # the shank frame turned about the flexion axis: standing reads ~40 deg past


def test_the_watch_refuses_a_window_that_bends_both_ways() -> None:
    t = np.arange(0.0, 20.0, 1.0 / RATE_HZ)
    gait = np.radians(30.0 * (1.0 - np.cos(2 * np.pi * 1.4 * t)))  # 0..60 deg, never past standing
    watch = OneSidedWatch(RATE_HZ)
    watch.push(gait)
    watch.push(np.radians(np.full(t.size, -4.0)))  # a few degrees of hyperextension is a knee
    for part in np.array_split(gait - np.radians(30.0), 7)[:-1]:
        watch.push(part)  # not a whole window yet: no verdict
    with pytest.raises(CalibrationError, match="bend both ways"):
        watch.push(np.array_split(gait - np.radians(30.0), 7)[-1])


def _run() -> Pipeline:
    packet_set = generate(1, 4, 31, fault_rate=0.0)
    pipeline = Pipeline(packet_set.refs())
    for packet in packet_set.packets(1.7e9):
        pipeline.ingest(packet)
    return pipeline


def test_a_wrong_calibration_is_refused_live_and_a_right_one_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    right = _run()
    states = right.leg_states()
    assert {s["state"] for s in states.values()} == {"tracking"}, states
    assert not right.calibration_errors

    solve = knee_module.calibrate_knee

    c, s = np.cos(np.radians(SHANK_TILT_DEG)), np.sin(np.radians(SHANK_TILT_DEG))
    about_flexion_axis = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    def wrong_pose(*args: Any, **kwargs: Any) -> Any:
        cal = solve(*args, **kwargs)
        return replace(cal, shank_r_seg_to_sensor=cal.shank_r_seg_to_sensor @ about_flexion_axis)

    monkeypatch.setattr(knee_module, "calibrate_knee", wrong_pose)
    wrong = _run()
    assert set(wrong.calibration_errors) == set(states), wrong.calibration_errors
    assert all("bend both ways" in e for e in wrong.calibration_errors.values())
