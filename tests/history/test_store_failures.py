"""The history writer under failure: a full disk (SQLite's own page limit stands in for it, no root
needed), a statement SQLite cannot store (a lone surrogate), a bounded queue, and truthful flush/close."""

from __future__ import annotations

import logging
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from sensorhub.errors import SinkError
from sensorhub.history import HistoryStore


class SmallDiskStore(HistoryStore):
    """The writer's connection may grow the file by at most ``free_pages`` pages: past that SQLite
    answers SQLITE_FULL ("database or disk is full"), as on a full disk. ``free_space`` lifts it."""

    def __init__(self, path: Path, max_queued: int = 100_000) -> None:
        super().__init__(path, max_queued)
        self.free_pages = 1_000_000
        self.writer_connections: list[sqlite3.Connection] = []
        self._migrated = False

    def open(self) -> SmallDiskStore:
        super().open()
        self._migrated = True
        return self

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        if self._migrated:  # the writer's connections (the migration at open is not limited)
            self.writer_connections.append(conn)
            self._limit(conn)
        return conn

    def _limit(self, conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + self.free_pages}")

    def fill_disk(self) -> None:
        """Call while the writer is idle (after a flush): its open connection is limited too."""
        self.free_pages = 0
        self._limit(self.writer_connections[-1])


def _events(store: HistoryStore, start: int, n: int) -> None:
    for i in range(start, start + n):
        store.record_event(
            "ana",
            None,
            "ana/left",
            "landing",
            float(i),
            {"peak_flexion_deg": 50.0},
            70.0,
            curve={"flexion_deg": [float(i)] * 200},
        )


def _count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def _wait(cond: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_full_disk_is_reported_retried_and_nothing_queued_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SmallDiskStore(path).open()
    store.upsert_athlete("ana")
    store.flush()
    store.fill_disk()
    _events(store, 0, 50)
    _wait(lambda: store.status()["state"] == "failing")
    with pytest.raises(SinkError, match=r"waiting, not saved: .*full"):
        store.flush()
    status = store.status()
    assert status["queued"] == 50 and status["written"] == 1 and not status["ok"]
    assert "full" in status["failing"] and status["retries"] >= 1
    _events(store, 50, 50)  # still accepted: queued behind
    store.free_pages = 1_000_000  # space freed: the next retry (a new connection) succeeds
    _wait(lambda: store.status()["state"] == "ok")
    store.flush()
    status = store.status()
    assert status["state"] == "ok" and status["written"] == 101 and status["queued"] == 0
    assert status["rejected"] == 0 and len(store.writer_connections) >= 2  # it reconnected
    store.close()
    assert _count(path) == 100


def test_the_queue_is_bounded_while_the_disk_is_full_and_close_says_what_was_lost(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = SmallDiskStore(path, max_queued=120).open()
    store.upsert_athlete("ana")
    store.flush()
    store.fill_disk()
    _events(store, 0, 200)
    status = store.status()
    assert status["dropped"] == 200 - 120 and status["queued"] == 120 and not status["ok"]
    _wait(lambda: store.status()["state"] == "failing")
    with pytest.raises(SinkError, match=r"\d+ write\(s\) not saved .*full"):
        store.close()
    status = store.status()
    assert status["lost"] == 120 and status["queued"] == 0 and status["state"] == "stopped"
    assert _count(path) == 0


def test_a_statement_sqlite_cannot_store_is_rejected_and_the_rest_saved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "h.sqlite3"
    with HistoryStore(path) as store:
        store.upsert_athlete("ana")
        rec = store.record_recommendation("ana", None, "pfp", 0, "advance", [], 1.0)
        with caplog.at_level(logging.ERROR):
            store.record_decision(rec, "ana", "hold", 2.0, note="sore \ud800 knee")  # a lone surrogate
            store.record_decision(rec, "ana", "advance", 3.0, note="fine")
            store.flush()
        _events(store, 0, 3)  # the writer is still alive: later writes are saved
        store.flush()
        status = store.status()
        assert status["rejected"] == 1 and status["state"] == "ok" and "surrogates" in status["last_error"]
        decisions = store.recommendations("ana")[0].decision
        assert decisions is not None and decisions.decision == "advance" and decisions.note == "fine"
    assert _count(path) == 3
    assert any("rejected a write (INSERT INTO decisions)" in r.getMessage() for r in caplog.records)


def test_the_history_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with HistoryStore(path) as store:
        store.upsert_athlete("ana")
        store.flush()
        for p in (path, path.with_name(path.name + "-wal")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
