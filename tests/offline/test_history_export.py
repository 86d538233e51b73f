"""``sensorhub export``: a history's events and stored knee-angle curves as Parquet (read back by
pandas) and per-session OpenSim ``.mot`` files (read back by OpenSim)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sensorhub.cli import main
from sensorhub.history import HistoryStore

T0 = 1_790_000_000.0  # session start (Unix s)


def _curve(t0_s: float, t1_s: float, depth_deg: float) -> dict[str, list[float]]:
    phase = np.linspace(0.0, 1.0, 101)
    return {
        "flexion_deg": list(depth_deg * np.sin(np.pi * phase)),
        "valgus_deg": list(2.0 * np.sin(np.pi * phase)),
        "window_s": [t0_s, t1_s],
    }


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "h.sqlite3"
    with HistoryStore(path) as store:
        store.upsert_athlete("zoe", "Zoe")
        store.start_session("s1", "zoe", T0)
        store.start_set("set1", "s1", "zoe", "squat", 1, T0 + 1)
        for k, depth in enumerate((60.0, 70.0)):
            t = T0 + 10 + 5 * k
            metrics = {"depth_deg": depth, "eccentric_s": 1.2, "t_bottom_s": t + 1.2, "t_end_s": t + 2.0}
            curve = _curve(t, t + 2.0, depth)
            store.record_event("zoe", "set1", "zoe/right", "rep", t, metrics, 80.0, curve=curve)
        store.record_event("zoe", "set1", "zoe/left", "landing", T0 + 30, {"peak_flexion_deg": 55.0}, 70.0)
        store.end_set("set1", T0 + 40, 2)
        store.end_session("s1", T0 + 50)
    return path


def test_export_writes_parquet_read_back_by_pandas(db: Path, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    out = tmp_path / "export"
    assert main(["export", "zoe", "--out", str(out), "--db", str(db), "--format", "parquet"]) == 0
    events = pd.read_parquet(out / "events.parquet")
    assert list(events["type"]) == ["rep", "rep", "landing"]
    assert list(events["depth_deg"].iloc[:2]) == [60.0, 70.0] and pd.isna(events["depth_deg"].iloc[2])
    assert list(events["drill"]) == ["squat"] * 3 and list(events["side"]) == ["right", "right", "left"]
    assert events["t_session_s"].tolist() == [10.0, 15.0, 30.0]
    assert events["control_score"].tolist() == [80.0, 80.0, 70.0]
    curves = pd.read_parquet(out / "curves.parquet")
    assert len(curves) == 2 * 101  # the landing was stored without a curve
    first = curves[curves["event_id"] == events["event_id"].iloc[0]]
    assert first["flexion_deg"].max() == pytest.approx(60.0, abs=0.01)
    assert first["t_s"].iloc[0] == pytest.approx(T0 + 10) and first["t_s"].iloc[-1] == pytest.approx(T0 + 12)
    assert not (out / "s1_right.mot").exists()  # only the chosen format


def test_export_writes_a_mot_per_session_and_leg_for_opensim(db: Path, tmp_path: Path) -> None:
    opensim = pytest.importorskip("opensim")
    opensim.Logger.removeFileSink()
    out = tmp_path / "export"
    assert main(["export", "zoe", "--out", str(out), "--db", str(db), "--format", "mot"]) == 0
    table = opensim.TimeSeriesTable(str(out / "s1_right.mot"))
    assert list(table.getColumnLabels()) == ["knee_angle_r", "knee_adduction_r"]
    t = np.asarray(table.getIndependentColumn())
    assert len(t) == 2 * 101 and np.all(np.diff(t) > 0)
    assert t[0] == pytest.approx(10.0) and t[-1] == pytest.approx(17.0)  # seconds since the session start
    flexion = table.getMatrix().to_numpy()[:, 0]
    assert flexion.max() == pytest.approx(70.0, abs=0.01)
    assert not (out / "s1_left.mot").exists()  # the left leg's landing has no stored curve
    assert not (out / "events.parquet").exists()


def test_export_errors_name_the_problem(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "nobody", "--out", str(tmp_path), "--db", str(db)]) == 2
    assert "no athlete 'nobody'" in capsys.readouterr().err
    assert main(["export", "zoe", "--out", str(tmp_path), "--db", str(db), "--format", "xlsx"]) == 2
    assert "formats: parquet, mot" in capsys.readouterr().err
    assert main(["export", "zoe", "--out", str(tmp_path), "--db", str(db), "--session", "s9"]) == 2
    assert "no session 's9'" in capsys.readouterr().err


def test_without_pyarrow_the_error_names_the_extra(db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as on a bare install: import fails
    assert main(["export", "zoe", "--out", str(tmp_path), "--db", str(db)]) == 2
    assert "pip install 'sensorhub[parquet]'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.mot"))  # refused before writing anything
