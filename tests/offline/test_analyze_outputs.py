"""What ``sensorhub analyze`` writes for clinicians and their tools: the HTML report (checked in
Chromium, screenshot under test-artifacts/web/), the OpenSim ``.mot`` (read back by OpenSim's own
readers) and Parquet files (read back by pandas)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware_sim.athletes import make_leg_csv_arrays
from sensorhub.cli import main
from sensorhub.conventions import ANALYZE_CSV_HEADER, EVENT_METRIC_KEYS
from sensorhub.errors import InputError
from sensorhub.offline import read_mot, write_mot
from sensorhub.offline.mot import MotTable, knee_table
from tests.helpers import ARTIFACTS


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated drop-jump session (standing, calibration bends, landings) analysed with every output."""
    tmp = tmp_path_factory.mktemp("analyze")
    arr = make_leg_csv_arrays("drop_jump", "left", seed=7, reps=3)
    csv_path = tmp / "drop_jump_left.csv"
    np.savetxt(csv_path, np.column_stack([arr.t_s, arr.data]), delimiter=",", header=ANALYZE_CSV_HEADER,
               comments="", fmt="%.9g")
    out = tmp / "out"
    assert main(["analyze", str(csv_path), "--out", str(out), "--leg", "left", "--mot", "--parquet"]) == 0
    return out


def _angles_csv(out: Path) -> np.ndarray[Any, Any]:
    return np.loadtxt(out / "angles.csv", delimiter=",", skiprows=1)


def test_report_opens_in_chromium_with_angles_events_calibration_and_metrics(analysed: Path,
                                                                              browser: Any) -> None:
    html = (analysed / "report.html").read_text()
    # self-contained: no script, nothing loaded from elsewhere (the SVG namespace is only a name)
    assert not any(x in html for x in ("<script", " src=", " href=", "url(", "@import"))
    events = json.loads((analysed / "events.json").read_text())
    assert any(e["type"] == "landing" for e in events)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto((analysed / "report.html").as_uri())
    # the three angles over time, each with every event marked
    charts = page.locator("#angles svg.chart")
    assert charts.count() == 3
    for i in range(3):
        series = charts.nth(i).locator("path.series")
        assert int(series.get_attribute("data-n") or 0) > 1000  # the whole recording, not a stub
        assert charts.nth(i).locator("line.mark").count() == len(events)
    assert charts.nth(0).locator('line.mark[data-kind="landing"]').count() == sum(
        e["type"] == "landing" for e in events)
    # calibration figures and one table row per event with its metrics
    calibration = page.locator("#calibration").inner_text()
    assert "knee bends" in calibration and "hinge residual" in calibration
    landings = page.locator('h3.event-type[data-type="landing"] + table tbody tr')
    assert landings.count() == sum(e["type"] == "landing" for e in events)
    header = page.locator('h3.event-type[data-type="landing"] + table thead').inner_text()
    assert "peak_flexion_deg" in header and "control_score" in header
    page.screenshot(path=str(ARTIFACTS / "analyze_report.png"), full_page=True)
    page.close()
    assert not errors
    assert all(url.startswith("file://") for url in requests), requests  # nothing fetched from anywhere


def test_mot_opens_with_opensims_readers(analysed: Path) -> None:
    """OpenSim's own parsers (TimeSeriesTable, the IK tools' Storage) read the file: the labels are the
    model coordinates, degrees are declared, and the values are the angles.csv values."""
    opensim = pytest.importorskip("opensim", reason="OpenSim is the [test] extra's reader of .mot files")
    opensim.Logger.removeFileSink()  # no opensim.log in the working directory
    angles = _angles_csv(analysed)
    table = opensim.TimeSeriesTable(str(analysed / "angles.mot"))
    assert list(table.getColumnLabels()) == ["knee_angle_l", "knee_adduction_l", "knee_rotation_l"]
    assert table.getTableMetaDataAsString("inDegrees") == "yes"
    assert np.allclose(np.asarray(table.getIndependentColumn()), angles[:, 0], atol=1e-6)
    values = table.getMatrix().to_numpy()
    assert np.allclose(values[:, 0], angles[:, 1], atol=1e-3)  # flexion
    assert np.allclose(values[:, 1], -angles[:, 2], atol=1e-3)  # adduction = varus = -valgus
    assert np.allclose(values[:, 2], angles[:, 3], atol=1e-3)  # internal rotation
    storage = opensim.Storage(str(analysed / "angles.mot"))
    assert storage.isInDegrees() and storage.getSize() == len(angles)


def test_mot_follows_the_documented_storage_format(tmp_path: Path) -> None:
    """The header lines of OpenSim's Storage format, tab-separated rows; NaN samples survive."""
    t = np.arange(5) * 0.01
    flex = np.array([0.0, 10.0, np.nan, 30.0, 40.0])
    path = write_mot(tmp_path / "k.mot", knee_table("trial", "right", t, flex, np.zeros(5), np.ones(5)))
    lines = path.read_text().splitlines()
    assert lines[:6] == ["trial", "version=1", "nRows=5", "nColumns=4", "inDegrees=yes", "endheader"]
    assert lines[6].split("\t") == ["time", "knee_angle_r", "knee_adduction_r", "knee_rotation_r"]
    assert len(lines) == 12 and all(len(line.split("\t")) == 4 for line in lines[7:])
    back = read_mot(path)
    assert back.in_degrees and back.labels == ("knee_angle_r", "knee_adduction_r", "knee_rotation_r")
    assert np.allclose(back.data[:, 0], flex, equal_nan=True)
    with pytest.raises(InputError, match="increase"):
        write_mot(tmp_path / "bad.mot", MotTable("x", np.zeros(2), ("a",), np.zeros((2, 1))))


def test_parquet_reads_back_in_pandas(analysed: Path) -> None:
    pd = pytest.importorskip("pandas")
    angles = pd.read_parquet(analysed / "angles.parquet")
    assert list(angles.columns) == ["time_s", "flexion_deg", "valgus_deg", "rotation_deg"]
    assert np.allclose(angles.to_numpy(), _angles_csv(analysed), atol=1e-3, equal_nan=True)
    assert all(str(dtype) == "float64" for dtype in angles.dtypes)
    events = pd.read_parquet(analysed / "events.parquet")
    written = json.loads((analysed / "events.json").read_text())
    assert len(events) == len(written) and list(events["type"]) == [e["type"] for e in written]
    assert set(events["leg_id"]) == {"left"}
    for row, ev in zip(events.to_dict("records"), written, strict=True):
        for metric in (*EVENT_METRIC_KEYS[ev["type"]], "control_score"):
            if ev.get(metric) is None:
                assert pd.isna(row[metric])
            else:
                assert row[metric] == pytest.approx(ev[metric])
