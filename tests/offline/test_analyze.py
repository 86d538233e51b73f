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
from sensorhub.offline.analyze import analyze_main, read_analyze_csv
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


def _angles(out: Path) -> np.ndarray:
    return np.loadtxt(out / "angles.csv", delimiter=",", skiprows=1)


def test_a_logger_time_column_is_placed_on_the_sensor_grid(tmp_path: Path, leg: SynthLeg) -> None:
    """Host-stamped time as a logger writes it (jitter sigma 0.3 ms, at most 1.2 ms; dropped samples as
    NaN rows and as missing rows) gives the angles of the regular file, on the same grid."""
    _write(tmp_path / "regular.csv", leg)
    analyze_main(tmp_path / "regular.csv", tmp_path / "regular", "left")
    regular = _angles(tmp_path / "regular")
    rng = np.random.default_rng(7)
    s = leg.samples
    stamps = s.t_s + 12.5 + np.clip(np.abs(rng.normal(0.0, 0.3e-3, s.t_s.shape[0])), 0.0, 1.2e-3)
    data = np.column_stack([stamps, s.thigh_acc_m_s2, s.thigh_gyr_rad_s, s.shank_acc_m_s2, s.shank_gyr_rad_s])
    data[1500:1540, 1:] = np.nan  # a loss burst written as NaN rows
    data = np.delete(data, np.r_[2500:2530, 4000:4001], axis=0)  # and two written as missing rows
    np.savetxt(tmp_path / "logger.csv", data, delimiter=",", header=ANALYZE_CSV_HEADER, comments="",
               fmt="%.9g")
    analyze_main(tmp_path / "logger.csv", tmp_path / "logger", "left")
    logged = _angles(tmp_path / "logger")
    assert logged.shape == regular.shape  # every sample back on its slot, the missing rows as gaps
    assert np.allclose(logged[:, 0] - 12.5, regular[:, 0], atol=2e-4)  # the grid, not the jittered stamps
    assert np.all(np.isfinite(logged))
    placed = read_analyze_csv(tmp_path / "logger.csv", "left").samples  # each row on its own slot, exactly
    received = np.ones(len(regular), bool)
    received[np.r_[1500:1540, 2500:2530, 4000:4001]] = False
    assert np.allclose(placed.shank_gyr_rad_s[received], s.shank_gyr_rad_s[received], rtol=1e-7, atol=1e-9)
    assert np.all(np.isnan(placed.shank_gyr_rad_s[~received]))
    rmse = np.sqrt(np.mean((logged[:, 1:] - leg.truth_deg) ** 2, axis=0))
    assert rmse[0] <= 2.0 and rmse[1] <= 2.0 and rmse[2] <= 4.0, rmse


@pytest.mark.parametrize(
    ("time_s", "message"),
    [
        (lambda t: t * 1000.0, "no usable sample rate"),  # milliseconds
        (lambda t: t[::-1], "no usable sample rate"),
        (lambda t: np.sort(np.random.default_rng(1).uniform(t[0], t[-1], t.shape[0])), "fits no regular"),
        (lambda t: np.where(np.arange(t.shape[0]) == 900, t - 1.0, t), "runs backwards"),
    ],
)
def test_a_time_column_without_a_usable_rate_is_refused(tmp_path: Path, leg: SynthLeg, time_s: object,
                                                         message: str) -> None:
    s = leg.samples
    t = time_s(s.t_s.copy())  # type: ignore[operator]
    data = np.column_stack([t, s.thigh_acc_m_s2, s.thigh_gyr_rad_s, s.shank_acc_m_s2, s.shank_gyr_rad_s])
    np.savetxt(tmp_path / "bad.csv", data, delimiter=",", header=ANALYZE_CSV_HEADER, comments="", fmt="%.9g")
    with pytest.raises(InputError, match=message):
        analyze_main(tmp_path / "bad.csv", tmp_path / "out", "left")


def test_bad_values_and_arguments(tmp_path: Path, leg: SynthLeg) -> None:
    csv_path = _write(tmp_path / "imu.csv", leg)
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
