"""``sensorhub analyze`` on CSV files: outputs, accuracy against the synthetic truth, clear input errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sensorhub.cli import main
from sensorhub.conventions import ANALYZE_CSV_HEADER, ANGLES_CSV_HEADER, GRAVITY_M_S2
from sensorhub.errors import CalibrationError, InputError, SensorhubError
from sensorhub.history import HistoryStore
from sensorhub.offline.analyze import analyze_main
from tests.kinematics.test_kinematics_synth import SynthLeg, make_leg


def _write(path: Path, leg: SynthLeg, header: str = ANALYZE_CSV_HEADER, acc_scale: float = 1.0,
           gyr_scale: float = 1.0) -> Path:
    s = leg.samples
    table = np.column_stack([s.t_s, s.thigh_acc_m_s2 * acc_scale, s.thigh_gyr_rad_s * gyr_scale,
                             s.shank_acc_m_s2 * acc_scale, s.shank_gyr_rad_s * gyr_scale])
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt="%.9g")
    return path


@pytest.fixture(scope="module")
def leg() -> SynthLeg:
    return make_leg("bends", side="left", seed=81, duration_s=30.0)


def test_analyze_writes_angles_and_events(tmp_path: Path, leg: SynthLeg) -> None:
    csv_path = _write(tmp_path / "imu.csv", leg)
    assert analyze_main(csv_path, tmp_path / "out", "left") == 0
    lines = (tmp_path / "out" / "angles.csv").read_text().splitlines()
    assert lines[0] == ANGLES_CSV_HEADER
    table = np.loadtxt(tmp_path / "out" / "angles.csv", delimiter=",", skiprows=1)
    assert table.shape == (len(leg.t_s), 4)
    assert np.allclose(table[:, 0], leg.t_s, atol=1e-6)
    rmse = np.sqrt(np.mean((table[:, 1:] - leg.truth_deg) ** 2, axis=0))
    assert rmse[0] <= 2.0 and rmse[1] <= 2.0 and rmse[2] <= 4.0, rmse
    events = json.loads((tmp_path / "out" / "events.json").read_text())
    assert isinstance(events, list)
    for event in events:  # the synthetic leg's knee bends are reps: start, bottom, end in order
        assert event["type"] in ("landing", "cut", "rep")
        if event["type"] == "rep":
            assert event["t_s"] < event["t_bottom_s"] < event["t_end_s"]


def test_analyze_stores_the_session_in_the_history(tmp_path: Path, leg: SynthLeg) -> None:
    """``--history``: the leg's calibration and every event of events.json land in the history
    database as one session of the named athlete (what the dashboard's history page reads)."""
    csv_path = _write(tmp_path / "imu.csv", leg)
    db = tmp_path / "h.sqlite3"
    assert main(["analyze", str(csv_path), "--out", str(tmp_path / "out"), "--leg", "left",
                 "--history", str(db), "--athlete", "zoe"]) == 0
    events = json.loads((tmp_path / "out" / "events.json").read_text())
    assert events, "the synthetic bends should give reps"
    store = HistoryStore(db)
    (session,) = store.sessions("zoe")
    stored = store.events("zoe")
    assert [(e.type, round(e.t_s, 6)) for e in stored] == [(e["type"], round(e["t_s"], 6)) for e in events]
    assert stored[0].metrics["depth_deg"] == pytest.approx(events[0]["depth_deg"])
    (cal,) = store.calibrations("zoe")
    assert cal.leg_id == "zoe/left" and cal.session_id == session.id and cal.quality["n_flexion_cycles"] >= 1
    assert store.history("zoe")["trends"]["rep"]["depth_deg"][0]["n"] == len(events)


def test_wrong_leg_side_mirrors_valgus(tmp_path: Path, leg: SynthLeg) -> None:
    """The same left-leg file analysed as a right leg flips valgus and rotation, not flexion."""
    csv_path = _write(tmp_path / "imu.csv", leg)
    analyze_main(csv_path, tmp_path / "l", "left")
    analyze_main(csv_path, tmp_path / "r", None)  # default: right
    left = np.loadtxt(tmp_path / "l" / "angles.csv", delimiter=",", skiprows=1)
    right = np.loadtxt(tmp_path / "r" / "angles.csv", delimiter=",", skiprows=1)
    assert np.allclose(left[:, 1], right[:, 1], atol=2e-3)
    assert np.allclose(left[:, 2:], -right[:, 2:], atol=2e-3)
    assert np.abs(left[:, 2]).max() > 3.0  # the comparison is not trivially between zeros


def test_dropped_rows_and_empty_fields_are_missing_samples(tmp_path: Path, leg: SynthLeg) -> None:
    csv_path = _write(tmp_path / "imu.csv", leg)
    lines = csv_path.read_text().splitlines()
    rng = np.random.default_rng(3)
    for i in rng.choice(np.arange(1, len(lines)), size=len(lines) // 20, replace=False):
        t = lines[i].split(",")[0]
        lines[i] = t + (",nan" * 12 if i % 2 else "," * 12)
    csv_path.write_text("\n".join(lines) + "\n")
    analyze_main(csv_path, tmp_path / "out", "left")
    table = np.loadtxt(tmp_path / "out" / "angles.csv", delimiter=",", skiprows=1)
    assert table.shape[0] == len(leg.t_s) and np.all(np.isfinite(table))
    rmse = np.sqrt(np.mean((table[:, 1:] - leg.truth_deg) ** 2, axis=0))
    assert rmse[0] <= 2.0 and rmse[1] <= 2.0 and rmse[2] <= 4.0, rmse


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"header": ANALYZE_CSV_HEADER.replace("thigh_ax", "ax")}, "wrong CSV header"),
        ({"acc_scale": 1.0 / GRAVITY_M_S2}, "looks like g"),
        ({"gyr_scale": 180.0 / math.pi}, "looks like deg/s"),
    ],
)
def test_input_errors_say_what_is_wrong(tmp_path: Path, leg: SynthLeg, kwargs: dict[str, object],
                                        message: str) -> None:
    csv_path = _write(tmp_path / "imu.csv", leg, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=message):
        analyze_main(csv_path, tmp_path / "out", "right")
    assert not (tmp_path / "out").exists()


def test_irregular_time_and_bad_values(tmp_path: Path, leg: SynthLeg) -> None:
    csv_path = _write(tmp_path / "imu.csv", leg)
    lines = csv_path.read_text().splitlines()
    del lines[500:510]  # a hole in the time grid instead of NaN rows
    (tmp_path / "hole.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="regular time grid"):
        analyze_main(tmp_path / "hole.csv", tmp_path / "out", "right")
    lines = csv_path.read_text().splitlines()
    lines[42] = lines[42].replace(",", ",abc", 1)
    (tmp_path / "text.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 43"):
        analyze_main(tmp_path / "text.csv", tmp_path / "out", "right")
    with pytest.raises(InputError, match="no such file"):
        analyze_main(tmp_path / "missing.csv", tmp_path / "out", "right")
    with pytest.raises(InputError, match="--leg"):
        analyze_main(csv_path, tmp_path / "out", "both")


def test_movement_errors(tmp_path: Path) -> None:
    short = make_leg("bends", seed=82, duration_s=20.0, standing_s=1.0)
    with pytest.raises(CalibrationError, match="stand still for at least 3 s"):
        analyze_main(_write(tmp_path / "short.csv", short), tmp_path / "out", "right")
    still = make_leg("bends", seed=82, duration_s=12.0, standing_s=30.0)
    with pytest.raises(CalibrationError, match="knee bends"):
        analyze_main(_write(tmp_path / "still.csv", still), tmp_path / "out", "right")
    assert issubclass(CalibrationError, SensorhubError)
