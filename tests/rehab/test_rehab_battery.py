"""Reassessment battery: results per test and leg from a battery session's stored events (simulated
athletes through the real knee estimator and event detector), and the comparison with the previous one.

The simulator has no single-leg squat or single-leg hop drill: its double-leg squat and countermovement
jump stand in for them (reps, and landings with a flight time), recorded under the battery's drill names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_sim.athletes import make_leg_csv_arrays, simulate_motion
from sensorhub.bench.events_accuracy import detect_leg
from sensorhub.conventions import GRAVITY_M_S2
from sensorhub.history import HistoryStore
from sensorhub.model import LegSamples
from sensorhub.rehab.battery import (
    BATTERY,
    HOP_DISTANCE_PROXY,
    BatteryResult,
    battery_from_store,
    compare,
    judge,
    record_battery,
    stored_batteries,
)

ATHLETE = "ben"
T0 = 1_767_000_000.0
SIM_DRILL = {
    "single_leg_squat": "squat",
    "step_down": "step_down",
    "drop_jump": "drop_jump",
    "single_leg_hop": "cmj",
}
REPS = {"step_down": 6}  # the simulator's step-downs alternate the working leg: 3 per leg


def _record_battery_session(
    store: HistoryStore, session_id: str, t0_s: float, valgus: float, seed: int
) -> None:
    store.start_session(session_id, ATHLETE, t0_s)
    for n, test in enumerate(BATTERY):
        motion = simulate_motion(
            SIM_DRILL[test.name],
            reps=REPS.get(test.name, 3),
            sides=("right", "left"),
            seed=seed + n,
            faults={"valgus": valgus},
        )
        bends_end = max(e["t_end_s"] for e in motion.events if e.get("calibration"))
        offset_s = t0_s + 120.0 * (n + 1)
        set_id = f"{session_id}-{n + 1}"
        store.start_set(set_id, session_id, ATHLETE, test.drills[0], n + 1, offset_s)
        for side in ("right", "left"):
            arr = make_leg_csv_arrays(motion.drill, side, seed=seed + n, motion=motion, athlete_name=ATHLETE)
            d = arr.data
            samples = LegSamples(
                f"{ATHLETE}/{side}", arr.t_s + offset_s, d[:, 0:3], d[:, 3:6], d[:, 6:9], d[:, 9:12]
            )
            for e in detect_leg(samples, side, 200.0):
                if e.t_s - offset_s > bends_end + 0.2:  # the simulator's calibration bends are not the test
                    store.record_event(ATHLETE, set_id, e.leg_id, e.type, e.t_s, e.metrics, e.control_score)
        store.end_set(set_id, offset_s + motion.duration_s, 3)
    store.end_session(session_id, t0_s + 600.0)


@pytest.fixture(scope="module")
def batteries(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BatteryResult, BatteryResult]:
    path = tmp_path_factory.mktemp("battery") / "history.sqlite3"
    with HistoryStore(path) as store:
        store.upsert_athlete(ATHLETE, "Ben", T0)
        _record_battery_session(store, "b1", T0, valgus=1.0, seed=40)  # knees caving in on every rep
        _record_battery_session(store, "b2", T0 + 28 * 86400.0, valgus=0.0, seed=50)  # four weeks later
        store.flush()
        first = battery_from_store(store, ATHLETE, "b1")
        second = battery_from_store(store, ATHLETE, "b2")
    return path, first, second


def test_battery_results_per_test_and_leg(batteries: tuple[Path, BatteryResult, BatteryResult]) -> None:
    _, first, second = batteries
    for result in (first, second):
        assert set(result.tests) == {t.name for t in BATTERY}
        for test in BATTERY:
            res = result.tests[test.name]
            assert set(res.legs) == {"left", "right"}
            for side, metrics in res.legs.items():
                assert metrics["control_score"].n >= 3, (test.name, side)
                assert set(metrics) <= set(test.metrics)
            assert res.lsi_pct and all(0.0 < v <= 100.0 for v in res.lsi_pct.values()), res.lsi_pct
    # the hop distance proxy is g T^2 / 2 of each landing's flight time
    hop = second.tests["single_leg_hop"].legs["right"]
    assert hop[HOP_DISTANCE_PROXY].n == hop["flight_time_s"].n >= 3
    t = hop["flight_time_s"].mean
    assert hop[HOP_DISTANCE_PROXY].mean == pytest.approx(GRAVITY_M_S2 * t**2 / 2.0, rel=0.05)
    assert 0.8 < hop[HOP_DISTANCE_PROXY].mean < 2.0  # 0.42-0.56 s flights
    # a faulty valgus squat reads about 8-15 deg, a clean one 0-4 deg (the simulator's design)
    assert first.tests["single_leg_squat"].legs["right"]["peak_valgus_deg"].mean > 6.0
    assert second.tests["single_leg_squat"].legs["right"]["peak_valgus_deg"].mean < 5.0


def test_comparison_with_the_previous_battery(batteries: tuple[Path, BatteryResult, BatteryResult]) -> None:
    _, first, second = batteries
    changes = compare(second, first)
    by_key = {(c.test, c.leg, c.metric): c for c in changes}
    for test in ("single_leg_squat", "step_down", "drop_jump"):
        for side in ("left", "right"):
            c = by_key[(test, side, "peak_valgus_deg")]
            assert c.delta < -2.0 and c.verdict == "better", c
    # every change has a verdict consistent with its metric's direction
    assert {c.verdict for c in changes} <= {"better", "worse", "unchanged", "not judged"}
    assert any(c.leg == "lsi" for c in changes)
    # and the other way round the same changes are worse
    back = {(c.test, c.leg, c.metric): c for c in compare(first, second)}
    assert back[("single_leg_squat", "right", "peak_valgus_deg")].verdict == "worse"


def test_metric_directions() -> None:
    assert judge("eccentric_s", 1.0, 2.0) == "better"
    assert judge("ground_contact_time_s", 0.30, 0.25) == "better"
    assert judge("peak_valgus_deg", 4.0, 6.0) == "worse"
    assert judge(HOP_DISTANCE_PROXY, 1.2, 1.4) == "better"
    assert judge("lsi_pct", 92.0, 92.0) == "unchanged"
    assert judge("concentric_s", 1.0, 1.5) == "not judged"


def test_battery_drills_are_program_drills() -> None:
    from sensorhub.rehab.program import DRILLS

    for test in BATTERY:
        for drill in test.drills:
            assert DRILLS[drill] == test.event_type, (test.name, drill)


def test_result_json_round_trip(batteries: tuple[Path, BatteryResult, BatteryResult]) -> None:
    _, first, _ = batteries
    assert BatteryResult.from_json(first.to_json()) == first
    means = [m.mean for t in first.tests.values() for legs in t.legs.values() for m in legs.values()]
    assert np.isfinite(means).all()


def test_batteries_are_stored_and_read_back(batteries: tuple[Path, BatteryResult, BatteryResult]) -> None:
    path, first, second = batteries
    with HistoryStore(path) as store:
        record_battery(store, first)
        record_battery(store, second)
        store.flush()
        assert stored_batteries(store, ATHLETE) == [first, second]
        assert stored_batteries(store, ATHLETE, since_s=T0 + 86400.0) == [second]
        # computing a session's battery again replaces it: the report never compares a session with itself
        record_battery(store, second)
        assert stored_batteries(store, ATHLETE) == [first, second]


def test_battery_command_stores_and_compares(
    batteries: tuple[Path, BatteryResult, BatteryResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sensorhub battery`: the first battery has nothing to compare with; the second one, four weeks
    later with the valgus fault gone, says peak valgus got better and is stored too."""
    import shutil
    import sqlite3

    from sensorhub.cli import main

    path = tmp_path / "history.sqlite3"
    shutil.copy(batteries[0], path)
    with sqlite3.connect(path) as conn:  # the sessions only: other tests store batteries in the original
        conn.execute("DELETE FROM batteries")
    assert main(["battery", ATHLETE, "--session", "b1", "--db", str(path)]) == 0
    assert "nothing to compare with yet" in capsys.readouterr().out
    assert main(["battery", ATHLETE, "--db", str(path)]) == 0  # the latest session: b2
    out = capsys.readouterr().out
    assert "changes since the battery of session b1" in out
    assert "single_leg_squat right peak_valgus_deg" in out and "(better)" in out
    assert [b.session_id for b in stored_batteries(HistoryStore(path), ATHLETE)] == ["b1", "b2"]
