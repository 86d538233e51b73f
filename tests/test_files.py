"""Data files a clinic keeps: private (0600) and spreadsheet-safe CSV exports."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from sensorhub.files import csv_safe, make_private
from sensorhub.history import HistoryStore
from sensorhub.model import KneeAngles
from sensorhub.offline.analyze import write_outputs
from sensorhub.rehab.export import events_csv, write_events_csv


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("cell", "out"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd", "'+cmd"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-3.5", "-3.5"),
        ("+1e3", "+1e3"),
        ("squat", "squat"),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(cell: str, out: str) -> None:
    assert csv_safe(cell) == out


def test_the_events_export_is_private_and_neutralises_formulas(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        store.upsert_athlete("ana")
        store.start_session("s1", "ana", 1_700_000_000.0)
        store.start_set("=cmd|'/c calc'!A1", "s1", "ana", "@drill", 1, 1_700_000_000.0)
        store.record_event(
            "ana",
            "=cmd|'/c calc'!A1",
            "ana/left",
            "rep",
            1_700_000_001.0,
            {"depth_deg": 80.0, "peak_valgus_deg": -3.5},
            70.0,
        )
        store.flush()
        rows = list(csv.DictReader(io.StringIO(events_csv(store, "ana"))))
        path = tmp_path / "events.csv"
        assert write_events_csv(store, "ana", path) == 1
    assert rows[0]["set_id"] == "'=cmd|'/c calc'!A1" and rows[0]["drill"] == "'@drill"
    assert rows[0]["peak_valgus_deg"] == "-3.5" and rows[0]["depth_deg"] == "80"
    assert mode(path) == 0o600


def test_analysis_outputs_are_private_even_over_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "angles.csv").write_text("old")
    os.chmod(tmp_path / "angles.csv", 0o644)
    t = np.arange(5) / 100.0
    angles = KneeAngles("ana/left", t, t, t, t, np.zeros(5, dtype=np.uint8))
    write_outputs(tmp_path, angles, [])
    assert mode(tmp_path / "angles.csv") == 0o600 and mode(tmp_path / "events.json") == 0o600
    assert mode(make_private(tmp_path / "new.bin")) == 0o600
