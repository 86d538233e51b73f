"""History store: schema migrations, batched off-loop writes, and the history read-back."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from sensorhub.errors import SinkError
from sensorhub.history import SCHEMA_VERSION, HistoryStore, PainEntry, migrate
from sensorhub.history.writer import SqliteWriter


def test_fresh_database_is_migrated_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with HistoryStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"athletes", "sessions", "sets", "events", "cues", "pain", "thresholds"} <= tables
    assert migrate(conn) == SCHEMA_VERSION  # already current: nothing to do, version reported
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SinkError, match="newer"):
        HistoryStore(path).open()


def test_history_round_trip_with_trend_means(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    t0 = 1_700_000_000.0
    depths = {"s1": [60.0, 70.0, 80.0], "s2": [90.0, 100.0]}
    with HistoryStore(path) as store:
        store.upsert_athlete("ana", "Ana")
        for k, (session_id, values) in enumerate(depths.items()):
            t_s = t0 + 86400.0 * k
            store.start_session(session_id, "ana", t_s)
            store.start_set(f"{session_id}-1", session_id, "ana", "squat", 1, t_s)
            for i, depth in enumerate(values):
                store.record_event(
                    "ana",
                    f"{session_id}-1",
                    "ana/right",
                    "rep",
                    t_s + i,
                    {"depth_deg": depth, "eccentric_s": float("nan")},
                    80.0 + k,
                )
            store.end_set(f"{session_id}-1", t_s + 60.0, len(values))
            store.record_pain(PainEntry("ana", f"{session_id}-1", t_s + 61.0, 2 + 3 * k, 3, 2 + 3 * k > 3))
        store.record_cue("ana", "s2-1", "ana/right", "knees out", "valgus", 1, t0 + 86401.0, 0.012)
        store.set_thresholds("ana", {"depth_deg": 75.0, "pain_threshold": 4.0}, t0)
        store.set_thresholds("ana", {"depth_deg": 70.0}, t0 + 1)  # upsert, not a second row
        store.flush()
        h = store.history("ana")
        assert store.thresholds("ana") == {"depth_deg": 70.0, "pain_threshold": 4.0}
    assert [s["id"] for s in h["sessions"]] == ["s1", "s2"]
    points = h["trends"]["rep"]["depth_deg"]
    assert [p["session_id"] for p in points] == ["s1", "s2"]
    assert points[0]["mean"] == pytest.approx(70.0) and points[1]["mean"] == pytest.approx(95.0)
    assert [p["n"] for p in points] == [3, 2]
    assert "eccentric_s" not in h["trends"]["rep"]  # NaN metrics are not stored
    assert [p["mean"] for p in h["trends"]["rep"]["control_score"]] == [80.0, 81.0]
    assert [(p["pain"], p["flagged"], p["session_id"]) for p in h["pain"]] == [
        (2, False, "s1"),
        (5, True, "s2"),
    ]
    assert h["sets"][1]["reps"] == 2
    assert h["recent_cues"][0]["phrase"] == "knees out"


def test_pain_out_of_range_is_refused(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store, pytest.raises(SinkError, match="0-10"):
        store.record_pain(PainEntry("ana", None, 0.0, 11, 3, True))


def test_a_bad_row_does_not_lose_its_batch(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        store.start_session("s", "nobody", 0.0)  # foreign key violation: no such athlete
        store.upsert_athlete("ana")
        store.start_session("s2", "ana", 1.0)
        store.flush()
        assert [s["id"] for s in store.history("ana")["sessions"]] == ["s2"]


async def test_writes_never_block_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that takes 0.4 s per commit: recording 1 500 events from a coroutine still never stalls the
    loop for anything near that, because SQLite runs only on the writer thread."""
    slow_commit = SqliteWriter._commit

    def commit(self: SqliteWriter, conn: sqlite3.Connection, batch: list[Any]) -> None:
        time.sleep(0.4)
        slow_commit(self, conn, batch)

    monkeypatch.setattr(SqliteWriter, "_commit", commit)
    lags: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)

    with HistoryStore(tmp_path / "h.sqlite3") as store:
        store.upsert_athlete("ana")
        beat = asyncio.create_task(heartbeat())
        for i in range(1_500):
            store.record_event("ana", None, "ana/left", "landing", float(i), {"peak_flexion_deg": 50.0}, 70.0)
            if i % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.to_thread(store.flush, 30.0)
        stop.set()
        await beat
        assert store.written == 1_501
    assert len(lags) > 20  # the heartbeat ran all along (several slow commits happened meanwhile)
    assert max(lags) < 0.2, f"event loop stalled {max(lags) * 1e3:.1f} ms"
