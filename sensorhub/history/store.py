"""Embedded history (SQLite): athletes, sessions, sets, events with metrics, cues, pain entries, thresholds.

Writes never run on the event loop: every ``record_*`` call only enqueues a statement for one writer
thread, which commits in batches. Reads (history pages, thresholds at start-up) open their own
connection, after committing whatever this store enqueued before (a store reads its own writes);
callers on the loop run them with ``asyncio.to_thread``. The schema version lives in
``PRAGMA user_version`` and grows only through the ordered ``MIGRATIONS`` (:mod:`.schema`).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sensorhub.conventions import REP_TIME_KEYS
from sensorhub.errors import SinkError
from sensorhub.files import private_file
from sensorhub.history.records import (
    INVOLVED_SIDES,
    PAIN_CONTEXTS,
    PHASE_ACTIONS,
    SESSION_KINDS,
    AthletePlan,
    CalibrationRecord,
    PainEntry,
    PhaseChange,
    StoredDecision,
    StoredEvent,
    StoredRecommendation,
    StoredSession,
    StoredSet,
)
from sensorhub.history.schema import migrate
from sensorhub.history.writer import MAX_QUEUED, SqliteWriter

log = logging.getLogger(__name__)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise SinkError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")


class HistoryStore:
    """One SQLite file; a writer thread owns the write connection (:mod:`.writer`: per-statement
    errors rejected, a failing disk retried and reported). Use as a context manager."""

    def __init__(self, path: str | Path, max_queued: int = MAX_QUEUED) -> None:
        self.path = Path(path)
        self._writer = SqliteWriter(self._connect, str(self.path), max_queued)
        self._open = False

    @property
    def written(self) -> int:
        return self._writer.stats.written

    def status(self) -> dict[str, Any]:
        """The writer's health: state (ok | failing | stopped | dead), counters, queue, last error."""
        return self._writer.status()

    # ---- lifecycle -------------------------------------------------------------------------------

    def open(self) -> HistoryStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.path)
        conn = self._connect()  # migrate here so a bad file fails at start-up, not later in the thread
        try:
            migrate(conn)
        finally:
            conn.close()
        self._writer.start()
        self._open = True
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Write everything queued, then stop the writer; ``SinkError`` when anything was not saved."""
        if not self._open:
            return
        self._open = False
        self._writer.close(timeout_s)

    def __enter__(self) -> HistoryStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Block until everything enqueued so far is committed or rejected (tests, shutdown; not on the
        loop); ``SinkError`` when the store fails (disk full: the writes stay queued and are retried)."""
        self._writer.flush(timeout_s)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _enqueue(self, sql: str, params: Sequence[Any]) -> None:
        if not self._open:
            raise SinkError(f"history store {self.path} is not open")
        self._writer.submit(sql, params)

    # ---- writes (non-blocking) -------------------------------------------------------------------

    def upsert_athlete(self, athlete_id: str, name: str = "", t_s: float | None = None) -> None:
        self._enqueue(
            "INSERT INTO athletes (id, name, created_s) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET "
            "name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END",
            (athlete_id, name, time.time() if t_s is None else t_s),
        )

    def start_session(self, session_id: str, athlete_id: str, t_s: float, kind: str = "clinic") -> None:
        """``kind``: ``clinic`` (with the coach) or ``home`` (the athlete alone with the phone view)."""
        _one_of(kind, SESSION_KINDS, "session kind")
        self._enqueue(
            "INSERT INTO sessions (id, athlete_id, started_s, kind) VALUES (?, ?, ?, ?)",
            (session_id, athlete_id, t_s, kind),
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
        curve: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        """``curve``: the event's knee-angle curve, name -> values (e.g. 101 points of ``flexion_deg``
        and ``valgus_deg``); non-finite values are stored as null."""
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
        curve_json = None
        if curve is not None:
            curve_json = json.dumps(
                {name: [_finite_or_none(float(v)) for v in values] for name, values in curve.items()}
            )
        self._enqueue(
            "INSERT INTO events (athlete_id, set_id, leg_id, type, t_s, control_score, metrics_json, "
            "curve_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                athlete_id,
                set_id,
                leg_id,
                type_,
                t_s,
                _finite_or_none(control_score),
                json.dumps(clean),
                curve_json,
            ),
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
        _one_of(entry.context, PAIN_CONTEXTS, "pain context")
        self._enqueue(
            "INSERT INTO pain (athlete_id, set_id, t_s, pain, threshold, flagged, context, session_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.athlete_id,
                entry.set_id,
                entry.t_s,
                entry.pain,
                entry.threshold,
                int(entry.flagged),
                entry.context,
                entry.session_id,
            ),
        )

    def set_thresholds(self, athlete_id: str, values: dict[str, float], t_s: float) -> None:
        for name, value in values.items():
            self._enqueue(
                "INSERT INTO thresholds (athlete_id, name, value, updated_s) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(athlete_id, name) DO UPDATE SET "
                "value = excluded.value, updated_s = excluded.updated_s",
                (athlete_id, name, float(value), t_s),
            )

    def set_plan(self, plan: AthletePlan) -> None:
        """Assign or edit an athlete's plan (insert or replace). Phase moves go through
        ``change_phase`` so that they are in the phase history."""
        _one_of(plan.involved_side, INVOLVED_SIDES, "involved side")
        if plan.phase_index < 0 or not 0 <= plan.pain_threshold <= 10:
            raise SinkError(
                f"plan for {plan.athlete_id}: phase_index must be >= 0 and pain_threshold 0-10, got "
                f"{plan.phase_index} and {plan.pain_threshold}"
            )
        self._enqueue(
            "INSERT INTO athlete_plans "
            "(athlete_id, program, phase_index, involved_side, pain_threshold, updated_s) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(athlete_id) DO UPDATE SET "
            "program = excluded.program, phase_index = excluded.phase_index, "
            "involved_side = excluded.involved_side, pain_threshold = excluded.pain_threshold, "
            "updated_s = excluded.updated_s",
            (
                plan.athlete_id,
                plan.program,
                plan.phase_index,
                plan.involved_side,
                plan.pain_threshold,
                plan.updated_s,
            ),
        )

    def change_phase(self, change: PhaseChange) -> None:
        """Append to the phase history and move the athlete's plan (if any) to ``to_phase``."""
        if change.to_phase < 0:
            raise SinkError(f"phase index must be >= 0, got {change.to_phase}")
        self._enqueue(
            "INSERT INTO phase_history (athlete_id, program, from_phase, to_phase, t_s, by, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                change.athlete_id,
                change.program,
                change.from_phase,
                change.to_phase,
                change.t_s,
                change.by,
                change.reason,
            ),
        )
        self._enqueue(
            "UPDATE athlete_plans SET phase_index = ?, updated_s = ? WHERE athlete_id = ?",
            (change.to_phase, change.t_s, change.athlete_id),
        )

    def record_recommendation(
        self,
        athlete_id: str,
        session_id: str | None,
        program: str,
        phase_index: int,
        action: str,
        reasons: Sequence[Mapping[str, Any]],
        t_s: float,
    ) -> str:
        """Store a progression recommendation; returns its id (for the coach's decision)."""
        _one_of(action, PHASE_ACTIONS, "recommendation")
        rec_id = uuid.uuid4().hex[:16]
        self._enqueue(
            "INSERT INTO recommendations "
            "(id, athlete_id, session_id, program, phase_index, action, reasons_json, t_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rec_id, athlete_id, session_id, program, phase_index, action, json.dumps(list(reasons)), t_s),
        )
        return rec_id

    def record_decision(
        self, recommendation_id: str, athlete_id: str, decision: str, t_s: float, note: str = "", by: str = ""
    ) -> None:
        """The coach's decision on a recommendation (advance | hold | step_back; may differ from it)."""
        _one_of(decision, PHASE_ACTIONS, "decision")
        self._enqueue(
            "INSERT INTO decisions (recommendation_id, athlete_id, decision, note, by, t_s) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (recommendation_id, athlete_id, decision, note, by, t_s),
        )

    def record_set_fatigue(self, set_id: str, fatigue: Mapping[str, Any]) -> None:
        """A finished set's fatigue status (``{"flagged": bool, "reasons": [...], ...}``)."""
        self._enqueue("UPDATE sets SET fatigue_json = ? WHERE id = ?", (json.dumps(dict(fatigue)), set_id))

    def record_battery(
        self, athlete_id: str, session_id: str, t_s: float, results: Mapping[str, Any]
    ) -> None:
        """A reassessment battery's results (``sensorhub.rehab.battery.BatteryResult.to_json()``); the
        session's earlier battery, if any, is replaced."""
        self._enqueue(
            "INSERT INTO batteries (athlete_id, session_id, t_s, results_json) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(athlete_id, session_id) DO UPDATE SET "
            "t_s = excluded.t_s, results_json = excluded.results_json",
            (athlete_id, session_id, t_s, json.dumps(results)),
        )

    def record_calibration(
        self,
        athlete_id: str,
        leg_id: str,
        t_s: float,
        quality: Mapping[str, Any],
        session_id: str | None = None,
    ) -> None:
        """A leg's calibration figures (e.g. the calibration report's fields; non-finite -> null)."""
        clean = {
            k: (_finite_or_none(float(v)) if isinstance(v, float) else v) for k, v in quality.items()
        }
        self._enqueue(
            "INSERT INTO calibrations (athlete_id, leg_id, session_id, t_s, quality_json) "
            "VALUES (?, ?, ?, ?, ?)",
            (athlete_id, leg_id, session_id, t_s, json.dumps(clean)),
        )

    # ---- reads (blocking: call through asyncio.to_thread from the loop) --------------------------

    def _read(self) -> sqlite3.Connection:
        # A store reads its own writes: what was enqueued before a read is committed first (reads run
        # off the loop, so waiting here is fine; a store opened only to read has no writer).
        if self._writer.running:
            self.flush()
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
                    if name in REP_TIME_KEYS:
                        continue  # a rep's bottom and end are times (data clock), not metrics to trend
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

    # ---- rehab reads -----------------------------------------------------------------------------

    def plan(self, athlete_id: str) -> AthletePlan | None:
        conn = self._read()
        try:
            r = conn.execute(
                "SELECT athlete_id, program, phase_index, involved_side, pain_threshold, updated_s "
                "FROM athlete_plans WHERE athlete_id = ?",
                (athlete_id,),
            ).fetchone()
            return None if r is None else AthletePlan(**dict(r))
        finally:
            conn.close()

    def phase_history(self, athlete_id: str) -> list[PhaseChange]:
        conn = self._read()
        try:
            rows = conn.execute(
                "SELECT athlete_id, program, from_phase, to_phase, t_s, by, reason FROM phase_history "
                "WHERE athlete_id = ? ORDER BY t_s, id",
                (athlete_id,),
            )
            return [PhaseChange(**dict(r)) for r in rows]
        finally:
            conn.close()

    def recommendations(self, athlete_id: str, since_s: float | None = None) -> list[StoredRecommendation]:
        """Oldest first, each with the coach's latest decision on it (None while undecided)."""
        conn = self._read()
        try:
            decisions: dict[str, StoredDecision] = {}
            for r in conn.execute(
                "SELECT recommendation_id, decision, note, by, t_s FROM decisions "
                "WHERE athlete_id = ? ORDER BY t_s, id",
                (athlete_id,),
            ):
                decisions[r["recommendation_id"]] = StoredDecision(**dict(r))  # the latest wins
            rows = conn.execute(
                "SELECT id, athlete_id, session_id, program, phase_index, action, reasons_json, t_s "
                "FROM recommendations WHERE athlete_id = ? AND t_s >= ? ORDER BY t_s, rowid",
                (athlete_id, _since(since_s)),
            )
            return [
                StoredRecommendation(
                    id=r["id"],
                    athlete_id=r["athlete_id"],
                    session_id=r["session_id"],
                    program=r["program"],
                    phase_index=int(r["phase_index"]),
                    action=r["action"],
                    reasons=json.loads(r["reasons_json"]),
                    t_s=float(r["t_s"]),
                    decision=decisions.get(r["id"]),
                )
                for r in rows
            ]
        finally:
            conn.close()

    def sessions(self, athlete_id: str, since_s: float | None = None) -> list[StoredSession]:
        conn = self._read()
        try:
            rows = conn.execute(
                "SELECT id, athlete_id, started_s, ended_s, kind FROM sessions "
                "WHERE athlete_id = ? AND started_s >= ? ORDER BY started_s",
                (athlete_id, _since(since_s)),
            )
            return [StoredSession(**dict(r)) for r in rows]
        finally:
            conn.close()

    def sets(self, athlete_id: str, session_id: str | None = None) -> list[StoredSet]:
        conn = self._read()
        try:
            sql = (
                "SELECT id, session_id, athlete_id, drill, set_no, started_s, ended_s, reps FROM sets "
                "WHERE athlete_id = ?"
            )
            params: tuple[Any, ...] = (athlete_id,)
            if session_id is not None:
                sql += " AND session_id = ?"
                params += (session_id,)
            return [StoredSet(**dict(r)) for r in conn.execute(sql + " ORDER BY started_s, set_no", params)]
        finally:
            conn.close()

    def events(
        self, athlete_id: str, since_s: float | None = None, session_id: str | None = None
    ) -> list[StoredEvent]:
        """Events in time order with their set's session and drill; ``session_id`` keeps one session."""
        conn = self._read()
        try:
            sql = (
                "SELECT e.id, e.athlete_id, s.session_id, e.set_id, s.drill, e.leg_id, e.type, e.t_s, "
                "e.control_score, e.metrics_json, e.curve_json FROM events e "
                "LEFT JOIN sets s ON s.id = e.set_id WHERE e.athlete_id = ? AND e.t_s >= ?"
            )
            params: tuple[Any, ...] = (athlete_id, _since(since_s))
            if session_id is not None:
                sql += " AND s.session_id = ?"
                params += (session_id,)
            return [
                StoredEvent(
                    id=int(r["id"]),
                    athlete_id=r["athlete_id"],
                    session_id=r["session_id"],
                    set_id=r["set_id"],
                    drill=r["drill"],
                    leg_id=r["leg_id"],
                    type=r["type"],
                    t_s=float(r["t_s"]),
                    control_score=r["control_score"],
                    metrics=json.loads(r["metrics_json"]),
                    curve=None if r["curve_json"] is None else json.loads(r["curve_json"]),
                )
                for r in conn.execute(sql + " ORDER BY e.t_s, e.id", params)
            ]
        finally:
            conn.close()

    def pain_entries(self, athlete_id: str, since_s: float | None = None) -> list[PainEntry]:
        """Pain in time order, every context; ``session_id`` filled from the set when not given."""
        conn = self._read()
        try:
            rows = conn.execute(
                "SELECT p.athlete_id, p.set_id, p.t_s, p.pain, p.threshold, p.flagged, p.context, "
                "COALESCE(p.session_id, s.session_id) AS session_id FROM pain p "
                "LEFT JOIN sets s ON s.id = p.set_id WHERE p.athlete_id = ? AND p.t_s >= ? "
                "ORDER BY p.t_s, p.id",
                (athlete_id, _since(since_s)),
            )
            return [
                PainEntry(
                    athlete_id=r["athlete_id"],
                    set_id=r["set_id"],
                    t_s=float(r["t_s"]),
                    pain=int(r["pain"]),
                    threshold=int(r["threshold"]),
                    flagged=bool(r["flagged"]),
                    context=r["context"],
                    session_id=r["session_id"],
                )
                for r in rows
            ]
        finally:
            conn.close()

    def set_fatigue(self, athlete_id: str) -> dict[str, dict[str, Any]]:
        """The stored fatigue status of the athlete's sets, by set id (sets without one are left out)."""
        conn = self._read()
        try:
            rows = conn.execute(
                "SELECT id, fatigue_json FROM sets WHERE athlete_id = ? AND fatigue_json IS NOT NULL",
                (athlete_id,),
            )
            return {r["id"]: json.loads(r["fatigue_json"]) for r in rows}
        finally:
            conn.close()

    def batteries(self, athlete_id: str, since_s: float | None = None) -> list[dict[str, Any]]:
        """Reassessment battery results (``sensorhub.rehab.battery`` JSON), oldest first."""
        conn = self._read()
        try:
            rows = conn.execute(
                "SELECT results_json FROM batteries WHERE athlete_id = ? AND t_s >= ? ORDER BY t_s, id",
                (athlete_id, _since(since_s)),
            )
            return [json.loads(r["results_json"]) for r in rows]
        finally:
            conn.close()

    def calibrations(self, athlete_id: str, since_s: float | None = None) -> list[CalibrationRecord]:
        conn = self._read()
        try:
            rows = conn.execute(
                "SELECT athlete_id, leg_id, session_id, t_s, quality_json FROM calibrations "
                "WHERE athlete_id = ? AND t_s >= ? ORDER BY t_s, id",
                (athlete_id, _since(since_s)),
            )
            return [
                CalibrationRecord(
                    athlete_id=r["athlete_id"],
                    leg_id=r["leg_id"],
                    session_id=r["session_id"],
                    t_s=float(r["t_s"]),
                    quality=json.loads(r["quality_json"]),
                )
                for r in rows
            ]
        finally:
            conn.close()


def _since(since_s: float | None) -> float:
    return -math.inf if since_s is None else since_s
