"""Progress bars: drawn on a terminal (rich), absent in pipes and logs, result lines intact either way."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from sensorhub.conventions import ANALYZE_CSV_HEADER
from sensorhub.progress import progress, timed, track
from tests.kinematics.test_kinematics_synth import make_leg


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100, color_system=None), out


def test_a_terminal_shows_the_bar_with_counts_and_the_lines_above_it() -> None:
    console, out = _terminal()
    with progress("analyze", total=2, console=console) as bar:
        bar.update("knee angles")
        bar.advance()
        bar.print("wrote angles.csv")
        bar.advance()
        time.sleep(0.15)  # one refresh
    text = out.getvalue()
    assert "knee angles" in text and "2/2" in text
    assert "wrote angles.csv" in text


def test_without_a_terminal_no_bar_and_lines_go_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("export", total=3) as bar:  # pytest's capture is not a terminal
        bar.advance()
        bar.print("wrote events.parquet")
    assert list(track([1, 2, 3], "items")) == [1, 2, 3]
    captured = capsys.readouterr()
    assert captured.out == "wrote events.parquet\n" and captured.err == ""


def test_switched_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSORHUB_PROGRESS", "0")
    console, out = _terminal()
    with progress("x", total=1, console=console) as bar:
        bar.advance()
    assert out.getvalue() == ""


def test_a_timed_bar_fills_with_the_clock() -> None:
    console, out = _terminal()
    with timed("record", 0.6, console=console):
        time.sleep(0.8)
    assert "record" in out.getvalue()


def test_analyze_on_a_terminal_draws_its_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's own bar (legs, outputs) on a terminal; its result lines are printed above it."""
    from sensorhub.offline import analyze as analyze_module

    leg = make_leg("bends", side="right", seed=5, duration_s=20.0)
    s = leg.samples
    table = np.column_stack([s.t_s, s.thigh_acc_m_s2, s.thigh_gyr_rad_s, s.shank_acc_m_s2, s.shank_gyr_rad_s])
    csv_path = tmp_path / "imu.csv"
    np.savetxt(csv_path, table, delimiter=",", header=ANALYZE_CSV_HEADER, comments="", fmt="%.9g")
    console, out = _terminal()
    import sensorhub.progress as progress_module

    real = progress_module.progress
    monkeypatch.setattr(progress_module, "progress",
                        lambda description, total=None: real(description, total, console=console))
    assert analyze_module.analyze_main(csv_path, tmp_path / "out", "right", mot=True) == 0
    text = out.getvalue()
    assert "samples at 200.00 Hz" in text and "angles.mot" in text
    assert "right" in text and "/" in text  # the bar's description and its step count
