"""CSV export of an athlete's events: one row per event, one column per metric.

Text cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR, and not a
plain number) are prefixed with ``'``; the file is created readable by its owner only (0600).

Columns: where the event belongs (``session_id, session_kind, session_start, set_id, set_no, drill``),
what it is (``leg`` = left | right, ``type``, ``t_s`` = its time, Unix seconds, and ``time`` = the same as
local ISO 8601), then ``control_score`` (0-100) and every metric. Metric columns keep the names used
everywhere (JSON, MQTT, InfluxDB, UI), which carry their unit (``_deg``, ``_s``, ``_g``, ``_m``); a metric an
event does not have (a landing's ``depth_deg``) or could not measure is an empty cell.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sensorhub.conventions import EVENT_METRIC_KEYS, REP_TIME_KEYS
from sensorhub.errors import SinkError
from sensorhub.files import csv_safe, make_private
from sensorhub.history import HistoryStore, StoredEvent, StoredSession, StoredSet
from sensorhub.model import leg_side

# In the design card's order: landing, cut, rep metrics, then the rep's bottom and end times.
METRIC_COLUMNS = (
    *dict.fromkeys(k for keys in EVENT_METRIC_KEYS.values() for k in keys),
    *REP_TIME_KEYS,
)
ID_COLUMNS = (
    "session_id",
    "session_kind",
    "session_start",
    "set_id",
    "set_no",
    "drill",
    "leg",
    "type",
    "t_s",
    "time",
    "control_score",
)


def local_iso(t_s: float) -> str:
    return dt.datetime.fromtimestamp(t_s).astimezone().isoformat(timespec="milliseconds")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}" if abs(value) < 1e6 else f"{value:.6f}"
    return csv_safe(str(value))  # a drill or id such as "=HYPERLINK(...)" stays text in a spreadsheet


def events_table(
    events: Sequence[StoredEvent], sets: Iterable[StoredSet], sessions: Iterable[StoredSession]
) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the export; metrics outside ``METRIC_COLUMNS`` get columns after them, sorted."""
    set_by_id = {s.id: s for s in sets}
    session_by_id = {s.id: s for s in sessions}
    extra = sorted({k for e in events for k in e.metrics} - set(METRIC_COLUMNS))
    header = [*ID_COLUMNS, *METRIC_COLUMNS, *extra]
    rows: list[list[str]] = []
    for e in events:
        st = set_by_id.get(e.set_id) if e.set_id is not None else None
        se = session_by_id.get(e.session_id) if e.session_id is not None else None
        ids = [
            e.session_id,
            se.kind if se else None,
            local_iso(se.started_s) if se else None,
            e.set_id,
            st.set_no if st else None,
            e.drill,
            leg_side(e.leg_id),
            e.type,
            f"{e.t_s:.3f}",
            local_iso(e.t_s),
            e.control_score,
        ]
        rows.append([_cell(v) for v in ids] + [_cell(e.metrics.get(k)) for k in (*METRIC_COLUMNS, *extra)])
    return header, rows


def events_csv(store: HistoryStore, athlete_id: str, since_s: float | None = None) -> str:
    """The export as text (blocking reads: call through ``asyncio.to_thread`` on the loop)."""
    events = store.events(athlete_id, since_s)
    header, rows = events_table(events, store.sets(athlete_id), store.sessions(athlete_id))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_safe(name) for name in header])
    writer.writerows(rows)
    return buf.getvalue()


def write_events_csv(store: HistoryStore, athlete_id: str, path: Path, since_s: float | None = None) -> int:
    """Write the export to ``path``; returns the number of event rows."""
    text = events_csv(store, athlete_id, since_s)
    try:
        make_private(Path(path)).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SinkError(f"{path}: cannot write the CSV export: {exc.strerror or exc}") from exc
    return text.count("\n") - 1
