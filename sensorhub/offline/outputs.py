"""What ``sensorhub analyze`` writes beside ``angles.csv`` and ``events.json``: the HTML report
(``report.html``, on by default), the OpenSim motion file (``angles.mot``, ``--mot``) and Parquet files
(``angles.parquet``, ``events.parquet``, ``--parquet``). They are computed from the same angles and
events, never recomputed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sensorhub.conventions import DEG_PER_RAD
from sensorhub.errors import InputError
from sensorhub.files import make_private
from sensorhub.offline.mot import knee_table, write_mot
from sensorhub.offline.parquet import angle_columns, event_columns, write_columns
from sensorhub.offline.report import LegAnalysis, render_analysis
from sensorhub.progress import Bar

REPORT_NAME = "report.html"


@dataclass(slots=True)
class AnalysisOutputs:
    """The optional outputs of one ``analyze`` run (legs are added as they are analysed)."""

    out_dir: Path
    report: bool = True
    mot: bool = False
    parquet: bool = False
    legs: list[LegAnalysis] = field(default_factory=list)

    @property
    def steps(self) -> int:
        """Progress steps per leg."""
        return int(self.mot) + int(self.parquet)

    def write_leg(self, target: Path, leg: LegAnalysis, bar: Bar) -> Iterator[Path]:
        """Write the leg's files into ``target`` (yielding each path) and keep it for the report."""
        self.legs.append(leg)
        angles = leg.angles
        flexion_deg, valgus_deg, rotation_deg = (a * DEG_PER_RAD for a in (
            angles.flexion_rad, angles.valgus_rad, angles.rotation_rad))
        if self.mot:
            bar.update(f"{leg.leg_id}: OpenSim .mot")
            name = Path(leg.source).stem
            table = knee_table(name, leg.side, angles.t_s, flexion_deg, valgus_deg, rotation_deg)
            yield write_mot(target / "angles.mot", table)
            bar.advance()
        if self.parquet:
            bar.update(f"{leg.leg_id}: Parquet")
            meta = {"source": leg.source, "leg": leg.leg_id, "rate_hz": f"{leg.rate_hz:.6g}"}
            yield write_columns(target / "angles.parquet",
                                angle_columns(angles.t_s, flexion_deg, valgus_deg, rotation_deg), meta)
            yield write_columns(target / "events.parquet", event_columns(leg.events), meta)
            bar.advance()

    def write_report(self) -> Path:
        path = self.out_dir / REPORT_NAME
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            make_private(path).write_text(render_analysis(self.legs), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot write the report: {exc.strerror or exc}") from exc
        return path
