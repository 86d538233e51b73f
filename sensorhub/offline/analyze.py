"""``sensorhub analyze``: an IMU CSV (or a sensorhub recording) in, knee angles and events out.

The run is the live pipeline's own streaming knee estimator fed the whole file at once, so offline and
live results of the same data are equal.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorhub.conventions import ANALYZE_CSV_HEADER, ANGLES_CSV_HEADER, DEG_PER_RAD, GRAVITY_M_S2
from sensorhub.errors import InputError
from sensorhub.files import make_private
from sensorhub.kinematics import KneeCalibration, estimate_knee, repair_after_gaps
from sensorhub.model import FloatArray, KneeAngles, LegMotion, LegSamples
from sensorhub.timing.grid import GridReport, regular_grid

MAX_PLAUSIBLE_GYR_RAD_S = 40.0  # above every MEMS range (2000 deg/s = 35 rad/s): the column is in deg/s


@dataclass(frozen=True, slots=True)
class AnalyzeInput:
    samples: LegSamples
    rate_hz: float
    side: str
    source: str
    grid: GridReport | None = None  # how a CSV's time column was read (None: a recording's own grid)


def _parse_rows(path: Path) -> FloatArray:
    try:
        with path.open("r", encoding="utf-8-sig") as f:
            header = f.readline().strip()
            if header.replace(" ", "") != ANALYZE_CSV_HEADER:
                raise InputError(
                    f"{path}: wrong CSV header.\n  found:    {header[:200]}\n"
                    f"  expected: {ANALYZE_CSV_HEADER}\n"
                    "(m/s^2 and rad/s, time in seconds; rows of NaN mark dropped samples)")
            text = f.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text CSV file ({exc.reason})") from exc
    n_cols = ANALYZE_CSV_HEADER.count(",") + 1
    try:  # fast path; the line-by-line parse below only runs to say what is wrong (or for empty fields)
        fast = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
        if fast.shape[1] == n_cols or fast.shape[0] == 0:
            return fast.reshape(-1, n_cols)
    except ValueError:
        pass
    rows = [line for line in text.splitlines() if line.strip()]
    data = np.full((len(rows), n_cols), np.nan)
    for i, line in enumerate(rows):
        fields = line.split(",")
        if len(fields) != n_cols:
            raise InputError(f"{path}: line {i + 2} has {len(fields)} fields, expected {n_cols}")
        for k, field in enumerate(fields):
            text = field.strip()
            if text == "":
                continue  # an empty field is a missing value
            try:
                data[i, k] = float(text)
            except ValueError:
                raise InputError(f"{path}: line {i + 2}, column {k + 1}: {text!r} is not a number") from None
    return data


def check_units(data: FloatArray, where: str) -> None:
    """Enough samples, and accelerations in m/s^2 and rates in rad/s (not g, not deg/s)."""
    finite = np.all(np.isfinite(data), axis=1)
    if np.count_nonzero(finite) < 0.5 * data.shape[0]:
        raise InputError(f"{where}: more than half of the samples are missing")
    for seg, off in (("thigh", 0), ("shank", 6)):
        acc_norm = np.linalg.norm(data[finite, off:off + 3], axis=1)
        gyr_norm = np.linalg.norm(data[finite, off + 3:off + 6], axis=1)
        med = float(np.median(acc_norm))
        if 0.5 < med < 2.0:
            raise InputError(f"{where}: {seg} acceleration has a median magnitude of {med:.2f}: it looks "
                             f"like g; convert to m/s^2 (multiply by {GRAVITY_M_S2})")
        if not 0.5 * GRAVITY_M_S2 < med < 2.0 * GRAVITY_M_S2:
            raise InputError(f"{where}: {seg} acceleration has a median magnitude of {med:.2f}, expected "
                             f"about {GRAVITY_M_S2:.2f} m/s^2 (specific force including gravity)")
        top = float(np.percentile(gyr_norm, 99.5))
        if top > MAX_PLAUSIBLE_GYR_RAD_S:
            raise InputError(f"{where}: {seg} angular rate reaches {top:.0f}, beyond any gyroscope range in "
                             f"rad/s: it looks like deg/s; convert to rad/s "
                             f"(multiply by {math.pi / 180:.6f})")


def read_analyze_csv(path: Path, side: str = "right") -> AnalyzeInput:
    """The CSV's rows on one regular grid (the time column as a logger writes it: jitter, batches, dropped
    samples as NaN rows or as missing rows; see ``sensorhub.timing.grid``)."""
    data = _parse_rows(path)
    grid = regular_grid(data[:, 0], data[:, 1:], str(path))
    check_units(grid.data, str(path))
    imu = grid.data
    samples = LegSamples(
        leg_id=side, t_s=np.ascontiguousarray(grid.t_s),
        thigh_acc_m_s2=np.ascontiguousarray(imu[:, 0:3]), thigh_gyr_rad_s=np.ascontiguousarray(imu[:, 3:6]),
        shank_acc_m_s2=np.ascontiguousarray(imu[:, 6:9]), shank_gyr_rad_s=np.ascontiguousarray(imu[:, 9:12]))
    return AnalyzeInput(samples=samples, rate_hz=grid.report.rate_hz, side=side, source=str(path),
                        grid=grid.report)


def read_recording_legs(path: Path, side: str | None) -> list[AnalyzeInput]:
    """The legs of a sensorhub raw recording, through the live pipeline's own front (decode, clock
    mapping, thigh + shank on one grid). ``side`` keeps only legs of that side."""
    from sensorhub.offline.export import run_front
    from sensorhub.recording import read_recording
    from sensorhub.timing import Front

    rec = read_recording(path)
    refs = [r for r in rec.sensors if side is None or r.side == side]
    if not refs:
        raise InputError(f"{path}: no {side or 'placed'} leg sensors in this recording "
                         f"(sensors: {', '.join(rec.sensor_ids) or 'none'})")
    front = Front(refs, protocols=rec.protocols)
    legs, _ = run_front(rec.packets(), front)
    sides = {r.leg_id: str(r.side) for r in refs}
    out: list[AnalyzeInput] = []
    for leg_id, samples in legs.items():
        segments = {r.segment for r in refs if r.leg_id == leg_id}
        if len(segments) < 2:
            continue  # a leg needs both its thigh and its shank sensor
        arrays = (
            samples.thigh_acc_m_s2, samples.thigh_gyr_rad_s, samples.shank_acc_m_s2, samples.shank_gyr_rad_s
        )
        check_units(np.hstack(arrays), f"{path} [{leg_id}]")
        # The grid's own rate (as live), not one re-estimated from the time stamps.
        rate_hz = front.grid_rate_hz(leg_id)
        out.append(AnalyzeInput(samples=samples, rate_hz=rate_hz, side=sides[leg_id], source=str(path)))
    if not out:
        raise InputError(f"{path}: no leg has both a thigh and a shank sensor with data")
    return out


def _is_csv(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return text[:1].isalpha() and all(32 <= b < 127 or b in (9, 10, 13) for b in text)


def detect_events(angles: KneeAngles, motion: LegMotion, side: str, rate_hz: float) -> list[dict[str, Any]]:
    """Landings, cuts and reps of one leg, as the events.json objects (the live detector, one push)."""
    from sensorhub.analysis import detect_events as detect
    from sensorhub.analysis import event_to_json

    return [event_to_json(event) for event in detect(angles, motion, side, rate_hz)]


def write_outputs(out_dir: Path, angles: KneeAngles, events: list[dict[str, Any]]) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        table = np.column_stack([angles.t_s, angles.flexion_rad * DEG_PER_RAD,
                                 angles.valgus_rad * DEG_PER_RAD, angles.rotation_rad * DEG_PER_RAD])
        np.savetxt(make_private(out_dir / "angles.csv"), table, delimiter=",", header=ANGLES_CSV_HEADER,
                   comments="", fmt=("%.6f", "%.3f", "%.3f", "%.3f"))
        events_json = json.dumps(events, indent=1) + "\n"
        make_private(out_dir / "events.json").write_text(events_json, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot write the results: {exc.strerror or exc}") from exc


def analyze_input(inp: AnalyzeInput) -> tuple[KneeAngles, KneeCalibration, list[dict[str, Any]]]:
    run = estimate_knee(inp.samples, inp.side, inp.rate_hz)
    # events from the causal angles, exactly as live; the written flexion after a loss burst also comes
    # from a backward pass over the recording (offline only, see sensorhub.kinematics.gap_repair)
    events = detect_events(run.angles, run.motion, inp.side, inp.rate_hz)
    angles = repair_after_gaps(inp.samples, run.angles, inp.side, inp.rate_hz, run.calibration)
    return angles, run.calibration, events


def _calibration_summary(cal: KneeCalibration) -> str:
    r = cal.report
    return (f"calibration: standing {r.standing_s:.1f} s, {r.n_flexion_cycles} flexion cycles "
            f"(range {r.flexion_range_deg:.0f} deg), axis spread {r.axis_spread_deg:.1f} deg, "
            f"hinge residual {r.residual_rms_rad_s:.3f} rad/s "
            f"({r.relative_residual:.2f} of the flexion rate)")


def store_analysis(history: Path, athlete: str, inputs: list[tuple[AnalyzeInput, KneeCalibration,
                   list[dict[str, Any]]]]) -> str:
    """One session in the history database: per leg its calibration and events (in one set, so they
    appear in the history's trends like a live set). Returns the session id."""
    import time
    import uuid

    from sensorhub.history import HistoryStore

    now_s = time.time()
    session_id = uuid.uuid4().hex[:16]
    set_id = uuid.uuid4().hex[:16]
    with HistoryStore(history) as store:
        store.upsert_athlete(athlete)
        store.start_session(session_id, athlete, now_s)
        store.start_set(set_id, session_id, athlete, "analyze", 1, now_s)
        reps = 0
        for inp, cal, events in inputs:
            leg_id = f"{athlete}/{inp.side}"
            store.record_calibration(athlete, leg_id, float(inp.samples.t_s[cal.end_index - 1]),
                                     cal.report.as_dict(), session_id)
            for ev in events:
                metrics = {k: v for k, v in ev.items() if k not in ("type", "t_s", "control_score")}
                score = ev.get("control_score")  # null in events.json when it could not be computed
                store.record_event(athlete, set_id, leg_id, ev["type"], float(ev["t_s"]), metrics,
                                   float("nan") if score is None else float(score))
                reps += ev["type"] == "rep"
        store.end_set(set_id, now_s, reps)
        store.end_session(session_id, now_s)
    return session_id


def analyze_main(input_path: Path, out_dir: Path, leg: str | None, history: Path | None = None,
                 athlete: str | None = None, *, report: bool = True, mot: bool = False,
                 parquet: bool = False) -> int:
    """The ``sensorhub analyze`` command: raises SensorhubError subclasses on bad input. With
    ``history``, the results are also stored there as one session of ``athlete`` (default: the
    recording's athlete, or the CSV file's name). ``report``: ``DIR/report.html``; ``mot`` and
    ``parquet``: the angles (and events) for OpenSim and for pandas/MATLAB (``sensorhub.offline.outputs``)."""
    from sensorhub.offline.outputs import AnalysisOutputs
    from sensorhub.offline.parquet import require_pyarrow
    from sensorhub.offline.report import LegAnalysis
    from sensorhub.progress import progress

    if parquet:
        require_pyarrow()  # before minutes of work, not after
    extras = AnalysisOutputs(Path(out_dir), report=report, mot=mot, parquet=parquet)
    if leg is not None and leg not in ("right", "left"):
        raise InputError(f"--leg must be 'right' or 'left', got {leg!r}")
    input_path = Path(input_path)
    if not input_path.is_file():
        raise InputError(f"{input_path}: no such file")
    with progress("analyze", total=None) as bar:
        bar.update(f"reading {input_path.name}")
        if _is_csv(input_path):
            inputs = [read_analyze_csv(input_path, leg or "right")]
        else:
            inputs = read_recording_legs(input_path, leg)
        out_dir = Path(out_dir)
        results = []
        bar.restart(total=len(inputs) * (2 + extras.steps))
        for inp in inputs:
            bar.update(f"{inp.samples.leg_id}: knee angles and events")
            angles, cal, events = analyze_input(inp)
            bar.advance()
            results.append((inp, cal, events))
            target = out_dir if len(inputs) == 1 else out_dir / inp.samples.leg_id.replace("/", "_")
            write_outputs(target, angles, events)
            bar.advance()
            n = len(angles.t_s)
            bar.print(f"{inp.source} [{inp.samples.leg_id}]: {n} samples at {inp.rate_hz:.2f} Hz")
            if inp.grid is not None:
                bar.print("  time: " + inp.grid.summary())
            bar.print("  " + _calibration_summary(cal))
            bar.print(f"  wrote {target / 'angles.csv'} and {target / 'events.json'} ({len(events)} events)")
            leg_analysis = LegAnalysis(inp.source, inp.samples.leg_id, inp.side, inp.rate_hz, angles,
                                       cal.report.as_dict(), events,
                                       inp.grid.summary() if inp.grid is not None else "")
            for written in extras.write_leg(target, leg_analysis, bar):
                bar.print(f"  wrote {written}")
        if report:
            bar.update("report")
            bar.print(f"wrote {extras.write_report()}")
    if history is not None:
        owners = {inp.samples.leg_id.partition("/")[0] for inp in inputs if "/" in inp.samples.leg_id}
        who = athlete or (owners.pop() if len(owners) == 1 else input_path.stem)
        session_id = store_analysis(Path(history), who, results)
        print(f"stored as session {session_id} of {who} in {history}")
    return 0
