"""``sensorhub export ATHLETE --out DIR``: an athlete's history as files that other tools read.

- ``events.parquet``: one row per stored event (session, set, drill, leg, type, time, every metric,
  control score); ``curves.parquet``: the knee-angle curve stored with each rep and landing, one row per
  point (``event_id`` links them). Both need the ``[parquet]`` extra.
- ``<session>_<side>.mot``: per session and leg, the stored event curves on the session's clock
  (seconds since the session started), in OpenSim's motion format. Between events there is no data: the
  time column jumps, which OpenSim's readers accept (rows need only increase in time).

The store keeps event curves, not continuous angles; ``sensorhub analyze --mot/--parquet`` exports a
whole recording.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sensorhub.errors import InputError
from sensorhub.history import HistoryStore, StoredEvent, StoredSession, parse_since
from sensorhub.model import FloatArray, leg_side
from sensorhub.offline.mot import SIDE_SUFFIX, knee_table, write_mot
from sensorhub.offline.parquet import event_columns, require_pyarrow, write_columns
from sensorhub.progress import progress

FORMATS = ("parquet", "mot")


def _curve(event: StoredEvent) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """The stored curve of an event as (times, flexion_deg, valgus_deg) on the data clock, or None.

    ``curve_json`` holds ``flexion_deg`` and ``valgus_deg`` (equal length, null = missing) and
    ``window_s`` = [t0, t1] (``HistoryStore.record_event``)."""
    c = event.curve
    if not c or "window_s" not in c:
        return None
    flex = np.array([math.nan if v is None else v for v in c.get("flexion_deg") or []], dtype=np.float64)
    valg = np.array([math.nan if v is None else v for v in c.get("valgus_deg") or []], dtype=np.float64)
    if len(flex) < 2 or len(flex) != len(valg):
        return None
    window: list[Any] = list(c["window_s"])
    t0, t1 = float(window[0]), float(window[1])
    return np.linspace(t0, t1, len(flex)), flex, valg


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_events(path: Path, events: Sequence[StoredEvent], started: dict[str, float]) -> Path:
    rows: list[dict[str, Any]] = [
        {"type": e.type, "t_s": e.t_s, **e.metrics, "control_score": e.control_score} for e in events
    ]
    extra: dict[str, list[Any]] = {
        "event_id": [e.id for e in events],
        "session_id": [e.session_id for e in events],
        "set_id": [e.set_id for e in events],
        "drill": [e.drill for e in events],
        "leg": [e.leg_id for e in events],
        "side": [leg_side(e.leg_id) for e in events],
        "t_session_s": [e.t_s - started[e.session_id] if e.session_id in started else None for e in events],
    }
    return write_columns(path, event_columns(rows, extra), {"content": "sensorhub events"})


def write_curves(path: Path, events: Sequence[StoredEvent]) -> Path:
    cols: dict[str, list[Any]] = {k: [] for k in ("event_id", "session_id", "leg", "type", "point", "t_s",
                                                  "flexion_deg", "valgus_deg")}
    for e in events:
        curve = _curve(e)
        if curve is None:
            continue
        t, flex, valg = curve
        n = len(t)
        cols["event_id"] += [e.id] * n
        cols["session_id"] += [e.session_id] * n
        cols["leg"] += [e.leg_id] * n
        cols["type"] += [e.type] * n
        cols["point"] += list(range(n))
        cols["t_s"] += t.tolist()
        cols["flexion_deg"] += [None if math.isnan(v) else v for v in flex.tolist()]
        cols["valgus_deg"] += [None if math.isnan(v) else v for v in valg.tolist()]
    return write_columns(path, cols, {"content": "sensorhub event knee-angle curves"})


def write_session_mots(out_dir: Path, session: StoredSession, events: Sequence[StoredEvent]) -> list[Path]:
    """One ``.mot`` per leg of the session with the curves of its events (overlapping curves: the
    later event's samples are dropped where they overlap, so time only increases)."""
    written = []
    for side in SIDE_SUFFIX:
        ts: list[float] = []
        flexes: list[float] = []
        valgs: list[float] = []
        for e in sorted((e for e in events if leg_side(e.leg_id) == side), key=lambda e: e.t_s):
            curve = _curve(e)
            if curve is None:
                continue
            t, flex, valg = curve
            keep = t > ts[-1] if ts else np.ones(len(t), dtype=bool)
            ts += (t[keep] - session.started_s).tolist()
            flexes += flex[keep].tolist()
            valgs += valg[keep].tolist()
        if ts:
            name = f"{session.athlete_id} session {session.id} {side} event curves"
            table = knee_table(name, side, np.asarray(ts), np.asarray(flexes), np.asarray(valgs))
            written.append(write_mot(out_dir / f"{_safe(session.id)}_{side}.mot", table))
    return written


def export_history(store: HistoryStore, athlete: str, out_dir: Path, formats: Sequence[str] = FORMATS,
                   since_s: float | None = None, session_id: str | None = None) -> list[Path]:
    """Write the chosen formats for the athlete's sessions (all, since a time, or one); returns the files."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise InputError(f"unknown export format {unknown[0]!r}; formats: {', '.join(FORMATS)}")
    if "parquet" in formats:
        require_pyarrow()
    if athlete not in {a["id"] for a in store.athletes()}:
        raise InputError(f"no athlete {athlete!r} in {store.path}")
    sessions = [s for s in store.sessions(athlete, since_s) if session_id is None or s.id == session_id]
    if session_id is not None and not sessions:
        raise InputError(f"no session {session_id!r} of {athlete} in {store.path}")
    ids = {s.id for s in sessions}
    events = [e for e in store.events(athlete, since_s) if e.session_id in ids]
    started = {s.id: s.started_s for s in sessions}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create: {exc.strerror or exc}") from exc
    written: list[Path] = []
    with progress(f"export {athlete}", total=len(sessions) + 2) as bar:
        if "parquet" in formats:
            bar.update("events.parquet")
            written.append(write_events(out_dir / "events.parquet", events, started))
            bar.advance()
            bar.update("curves.parquet")
            written.append(write_curves(out_dir / "curves.parquet", events))
            bar.advance()
        if "mot" in formats:
            for s in sessions:
                bar.update(f"session {s.id}: .mot")
                written += write_session_mots(out_dir, s, [e for e in events if e.session_id == s.id])
                bar.advance()
    return written


def export_main(athlete: str, out: Path, formats: str = ",".join(FORMATS), since: str | None = None,
                session: str | None = None, db: Path | None = None, config: Path | None = None) -> int:
    """``sensorhub export ATHLETE --out DIR [--format parquet,mot] [--since DATE] [--session ID]``."""
    from sensorhub.config import existing_history

    since_s = parse_since(since)
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    with HistoryStore(existing_history(db, config)) as store:
        written = export_history(store, athlete, Path(out), chosen, since_s, session)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing to export for {athlete} (no session with events in the chosen period)")
    return 0
