"""Embedded history (SQLite): athletes, sessions, sets, events with metrics, cues, pain entries, thresholds.

Writes never run on the event loop: every ``record_*`` call only enqueues a statement for one writer
thread, which commits in batches. Reads (history pages, thresholds at start-up) open their own
connection; callers on the loop run them with ``asyncio.to_thread``. The schema version lives in
``PRAGMA user_version`` and grows only through the ordered ``MIGRATIONS`` below.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorhub.errors import SinkError

log = logging.getLogger(__name__)

# Each entry upgrades the schema from version i to i + 1; never edit a shipped entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE athletes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        created_s REAL NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        athlete_id TEXT NOT NULL REFERENCES athletes(id),
        started_s REAL NOT NULL,
        ended_s REAL
    );
    CREATE TABLE sets (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id),
        athlete_id TEXT NOT NULL REFERENCES athletes(id),
        drill TEXT NOT NULL,
        set_no INTEGER NOT NULL,
        started_s REAL NOT NULL,
        ended_s REAL,
        reps INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        set_id TEXT,
        leg_id TEXT NOT NULL,
        type TEXT NOT NULL,
        t_s REAL NOT NULL,
        control_score REAL,
        metrics_json TEXT NOT NULL
    );
    CREATE INDEX events_by_athlete ON events(athlete_id, t_s);
    CREATE TABLE cues (
        id INTEGER PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        set_id TEXT,
        leg_id TEXT NOT NULL,
        phrase TEXT NOT NULL,
        rule TEXT NOT NULL,
        priority INTEGER NOT NULL,
        t_s REAL NOT NULL,
        latency_s REAL
    );
    CREATE TABLE pain (
        id INTEGER PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        set_id TEXT,
        t_s REAL NOT NULL,
        pain INTEGER NOT NULL CHECK (pain BETWEEN 0 AND 10),
        threshold INTEGER NOT NULL,
        flagged INTEGER NOT NULL
    );
    CREATE TABLE thresholds (
        athlete_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        updated_s REAL NOT NULL,
        PRIMARY KEY (athlete_id, name)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# The writer commits when this many statements are pending or this long after the first one.
BATCH_MAX = 500
BATCH_MAX_WAIT_S = 0.2

_STOP = object()


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; returns the version found before."""
    (found,) = conn.execute("PRAGMA user_version").fetchone()
    if found > SCHEMA_VERSION:
        raise SinkError(
            f"history database schema version {found} is newer than this sensorhub ({SCHEMA_VERSION}); "
            "upgrade sensorhub or point service.data_dir elsewhere"
        )
    for version in range(found, SCHEMA_VERSION):
        # One transaction per step: a failed migration leaves the previous version intact.
        conn.executescript(f"BEGIN; {MIGRATIONS[version]} PRAGMA user_version = {version + 1}; COMMIT;")
    return int(found)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class PainEntry:
    athlete_id: str
    set_id: str | None
    t_s: float
    pain: int
    threshold: int
    flagged: bool


class HistoryStore:
    """One SQLite file; a writer thread owns the write connection. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.written = 0
        self._flushed = threading.Condition()
        self._enqueued = 0
        self._done = 0

    # ---- lifecycle -------------------------------------------------------------------------------

    def open(self) -> HistoryStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()  # migrate here so a bad file fails at start-up, not later in the thread
        try:
            migrate(conn)
        finally:
            conn.close()
        self._thread = threading.Thread(target=self._writer, name="history-store", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Write everything queued, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise SinkError(f"history store {self.path}: writer did not finish within {timeout_s} s")
        self._thread = None

    def __enter__(self) -> HistoryStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Block until everything enqueued so far is committed (tests, shutdown; not on the loop)."""
        target = self._enqueued
        deadline = time.monotonic() + timeout_s
        with self._flushed:
            while self._done < target:
                if self._error is not None:
                    raise SinkError(f"history store {self.path}: writer failed: {self._error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SinkError(f"history store {self.path}: flush timed out")
                self._flushed.wait(left)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    # ---- writer thread ---------------------------------------------------------------------------

    def _enqueue(self, sql: str, params: Sequence[Any]) -> None:
        if self._thread is None:
            raise SinkError(f"history store {self.path} is not open")
        self._enqueued += 1
        self._queue.put((sql, tuple(params)))

    def _writer(self) -> None:
        conn = self._connect()
        try:
            stop = False
            while not stop:
                batch: list[tuple[str, tuple[Any, ...]]] = []
                item = self._queue.get()
                deadline = time.monotonic() + BATCH_MAX_WAIT_S
                while True:
                    if item is _STOP:
                        stop = True
                        break
                    assert isinstance(item, tuple)
                    batch.append(item)
                    if len(batch) >= BATCH_MAX:
                        break
                    try:
                        item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                if batch:
                    self._commit(conn, batch)
        finally:
            conn.close()
            with self._flushed:
                self._flushed.notify_all()

    def _commit(self, conn: sqlite3.Connection, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        try:
            conn.execute("BEGIN")
            for sql, params in batch:
                conn.execute(sql, params)
            conn.execute("COMMIT")
            self.written += len(batch)
        except sqlite3.Error as exc:
            # One bad row must not lose the batch: roll back and retry row by row, logging the culprits.
            conn.execute("ROLLBACK")
            for sql, params in batch:
                try:
                    conn.execute(sql, params)
                    self.written += 1
                except sqlite3.Error as row_exc:
                    log.error("history store: dropped a row (%s): %s %r", row_exc, sql.split()[0:3], params)
            log.warning("history store: batch failed (%s); wrote rows individually", exc)
        with self._flushed:
            self._done += len(batch)
            self._flushed.notify_all()

    # ---- writes (non-blocking) -------------------------------------------------------------------

    def upsert_athlete(self, athlete_id: str, name: str = "", t_s: float | None = None) -> None:
        self._enqueue(
            "INSERT INTO athletes (id, name, created_s) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET "
            "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END",
            (athlete_id, name, time.time() if t_s is None else t_s),
        )

    def start_session(self, session_id: str, athlete_id: str, t_s: float) -> None:
        self._enqueue(
            "INSERT INTO sessions (id, athlete_id, started_s) VALUES (?, ?, ?)", (session_id, athlete_id, t_s)
        )

    def end_session(self, session_id: str, t_s: float) -> None:
        self._enqueue("UPDATE sessions SET ended_s = ? WHERE id = ?", (t_s, session_id))

    def start_set(
        self, set_id: str, session_id: str, athlete_id: str, drill: str, set_no: int, t_s: float
    ) -> None:
        self._enqueue(
            "INSERT INTO sets (id, session_id, athlete_id, drill, set_no, started_s) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (set_id, session_id, athlete_id, drill, set_no, t_s),
        )

    def end_set(self, set_id: str, t_s: float, reps: int) -> None:
        self._enqueue("UPDATE sets SET ended_s = ?, reps = ? WHERE id = ?", (t_s, reps, set_id))

    def record_event(
        self,
        athlete_id: str,
        set_id: str | None,
        leg_id: str,
        type_: str,
        t_s: float,
        metrics: dict[str, float],
        control_score: float,
    ) -> None:
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
        self._enqueue(
            "INSERT INTO events (athlete_id, set_id, leg_id, type, t_s, control_score, metrics_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (athlete_id, set_id, leg_id, type_, t_s, _finite_or_none(control_score), json.dumps(clean)),
        )

    def record_cue(
        self,
        athlete_id: str,
        set_id: str | None,
        leg_id: str,
        phrase: str,
        rule: str,
        priority: int,
        t_s: float,
        latency_s: float | None,
    ) -> None:
        self._enqueue(
            "INSERT INTO cues (athlete_id, set_id, leg_id, phrase, rule, priority, t_s, latency_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (athlete_id, set_id, leg_id, phrase, rule, priority, t_s, latency_s),
        )

    def record_pain(self, entry: PainEntry) -> None:
        if not 0 <= entry.pain <= 10:
            raise SinkError(f"pain must be 0-10, got {entry.pain}")
        self._enqueue(
            "INSERT INTO pain (athlete_id, set_id, t_s, pain, threshold, flagged) VALUES (?, ?, ?, ?, ?, ?)",
            (entry.athlete_id, entry.set_id, entry.t_s, entry.pain, entry.threshold, int(entry.flagged)),
        )

    def set_thresholds(self, athlete_id: str, values: dict[str, float], t_s: float) -> None:
        for name, value in values.items():
            self._enqueue(
                "INSERT INTO thresholds (athlete_id, name, value, updated_s) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(athlete_id, name) DO UPDATE SET "
                "value = excluded.value, updated_s = excluded.updated_s",
                (athlete_id, name, float(value), t_s),
            )

    # ---- reads (blocking: call through asyncio.to_thread from the loop) --------------------------

    def _read(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0)
        conn.row_factory = sqlite3.Row
        return conn

    def schema_version(self) -> int:
        conn = self._read()
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()

    def athletes(self) -> list[dict[str, Any]]:
        conn = self._read()
        try:
            return [dict(r) for r in conn.execute("SELECT id, name FROM athletes ORDER BY id")]
        finally:
            conn.close()

    def thresholds(self, athlete_id: str) -> dict[str, float]:
        conn = self._read()
        try:
            rows = conn.execute("SELECT name, value FROM thresholds WHERE athlete_id = ?", (athlete_id,))
            return {r["name"]: float(r["value"]) for r in rows}
        finally:
            conn.close()

    def history(self, athlete_id: str) -> dict[str, Any]:
        """Sessions with per-session metric means (trend plots), sets, pain entries and recent cues."""
        conn = self._read()
        try:
            sessions = [
                dict(r)
                for r in conn.execute(
                    "SELECT id, started_s, ended_s FROM sessions WHERE athlete_id = ? ORDER BY started_s",
                    (athlete_id,),
                )
            ]
            sets = [
                dict(r)
                for r in conn.execute(
                    "SELECT id, session_id, drill, set_no, started_s, ended_s, reps FROM sets "
                    "WHERE athlete_id = ? ORDER BY started_s",
                    (athlete_id,),
                )
            ]
            set_session = {s["id"]: s["session_id"] for s in sets}
            pain = [
                dict(r)
                for r in conn.execute(
                    "SELECT set_id, t_s, pain, threshold, flagged FROM pain "
                    "WHERE athlete_id = ? ORDER BY t_s",
                    (athlete_id,),
                )
            ]
            for p in pain:
                p["flagged"] = bool(p["flagged"])
                p["session_id"] = set_session.get(p["set_id"])
            # Mean of each metric per (session, event type): the points of the trend plots.
            sums: dict[tuple[str | None, str, str], list[float]] = {}
            for r in conn.execute(
                "SELECT set_id, type, control_score, metrics_json FROM events WHERE athlete_id = ?",
                (athlete_id,),
            ):
                session_id = set_session.get(r["set_id"])
                metrics = json.loads(r["metrics_json"])
                if r["control_score"] is not None:
                    metrics["control_score"] = r["control_score"]
                for name, value in metrics.items():
                    acc = sums.setdefault((session_id, r["type"], name), [0.0, 0.0])
                    acc[0] += float(value)
                    acc[1] += 1.0
            trends: dict[str, dict[str, list[dict[str, Any]]]] = {}
            started = {s["id"]: s["started_s"] for s in sessions}
            for (session_id, type_, name), (total, n) in sums.items():
                if session_id is None:
                    continue  # events outside a set are live-only
                trends.setdefault(type_, {}).setdefault(name, []).append(
                    {"session_id": session_id, "t_s": started.get(session_id), "mean": total / n, "n": int(n)}
                )
            for per_type in trends.values():
                for points in per_type.values():
                    points.sort(key=lambda p: p["t_s"] or 0.0)
            cues = [
                dict(r)
                for r in conn.execute(
                    "SELECT set_id, leg_id, phrase, rule, t_s FROM cues "
                    "WHERE athlete_id = ? ORDER BY t_s DESC LIMIT 50",
                    (athlete_id,),
                )
            ]
            return {
                "athlete": athlete_id,
                "sessions": sessions,
                "sets": sets,
                "pain": pain,
                "trends": trends,
                "recent_cues": cues,
            }
        finally:
            conn.close()
