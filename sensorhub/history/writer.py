"""The history store's writer thread: statements in, batched commits out, never killed by one of them.

Failures are of two kinds, told apart by SQLite's result code:
- a bad statement (a constraint, a string SQLite cannot encode such as a lone surrogate, a value of the
  wrong type): that statement is rejected, logged with its reason and counted; the rest of its batch
  is saved.
- the store itself fails (disk full, I/O error, locked, read-only, corrupt): nothing in the batch is
  lost; the writer reports ``failing`` (health), reconnects and retries the batch with backoff
  (``RETRY_MIN_S`` doubling to ``RETRY_MAX_S``). Statements keep queueing up to ``max_queued``; past it
  new ones are refused and counted as ``dropped`` (the oldest are kept: later updates depend on them).
  At close a last attempt is made; whatever is still unsaved is counted as ``lost`` and ``close``
  raises.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sensorhub.errors import SinkError

log = logging.getLogger(__name__)

# The writer commits when this many statements are pending or this long after the first one.
BATCH_MAX = 500
BATCH_MAX_WAIT_S = 0.2
MAX_QUEUED = 100_000  # statements waiting while the store fails (~ an hour of a busy clinic's events)
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0

# Result codes (primary, low byte) that mean the store, not the statement, failed.
_STORE_CODES = {
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_NOTADB,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_PROTOCOL,
}

Statement = tuple[str, tuple[Any, ...]]
_STOP = object()


def store_failed(exc: BaseException) -> bool:
    """True when ``exc`` says the database (disk, file, lock) failed rather than one statement."""
    if isinstance(exc, OSError | MemoryError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.Error) and code is not None:
        return (code & 0xFF) in _STORE_CODES
    # No code: sqlite3 says "disk I/O error" / "database or disk is full" only for store failures.
    return isinstance(exc, sqlite3.OperationalError) and any(
        s in str(exc) for s in ("disk", "locked", "readonly", "unable to open")
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(slots=True)
class WriterStats:
    written: int = 0  # statements committed
    rejected: int = 0  # bad statements, logged and skipped
    dropped: int = 0  # refused at submit: the queue was full while the store failed
    lost: int = 0  # still unsaved when the writer stopped
    retries: int = 0  # failed attempts on a failing store
    failing: str = ""  # why the store fails now ("" when it works)
    last_error: str = ""


class SqliteWriter:
    """One thread owning one write connection (``connect()``); ``submit`` never blocks."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        name: str,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._connect = connect
        self.name = name
        self.max_queued = max_queued
        self.stats = WriterStats()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._submit_lock = threading.Lock()
        self._enqueued = 0
        self._done = 0  # written + rejected + lost
        self._crash: BaseException | None = None
        self._thread: threading.Thread | None = None

    # ---- caller side -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"history-writer {self.name}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        return self._enqueued - self._done

    def submit(self, sql: str, params: Sequence[Any]) -> bool:
        """Queue one statement; False (counted in ``dropped``) when the queue is full. Callers may be
        the event loop and worker threads (plans written through ``asyncio.to_thread``)."""
        with self._submit_lock:
            return self._submit(sql, params)

    def _submit(self, sql: str, params: Sequence[Any]) -> bool:
        if self.queued >= self.max_queued:
            if self.stats.dropped == 0:
                log.error(
                    "history store %s: %d writes waiting (%s): refusing new writes until it recovers",
                    self.name,
                    self.queued,
                    self.stats.failing or "writer behind",
                )
            self.stats.dropped += 1
            return False
        self._enqueued += 1
        self._queue.put((sql, tuple(params)))
        return True

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self.stats)
        out["queued"] = self.queued
        if self._crash is not None:
            state = "dead"
        elif not self.running:
            state = "stopped"
        else:
            state = "failing" if self.stats.failing else "ok"
        out["state"] = state
        out["ok"] = state in ("ok", "stopped") and not self.stats.dropped and not self.stats.lost
        return out

    def _problem(self) -> str | None:
        if self._crash is not None:
            return f"writer crashed: {_describe(self._crash)}"
        if self.stats.failing:
            return f"{self.queued} write(s) waiting, not saved: {self.stats.failing}"
        if not self.running and self.queued:
            return f"writer stopped with {self.queued} write(s) unsaved"
        return None

    def flush(self, timeout_s: float) -> None:
        """Block until everything submitted so far is saved or rejected; ``SinkError`` at once when the
        store fails (the writes stay queued and are retried) or after ``timeout_s``."""
        target = self._enqueued
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._done < target:
                problem = self._problem()
                if problem is not None:
                    raise SinkError(f"history store {self.name}: {problem}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SinkError(
                        f"history store {self.name}: flush timed out with {self.queued} write(s) pending"
                    )
                self._cond.wait(min(left, 0.5))

    def close(self, timeout_s: float) -> None:
        """Save what is queued (one last attempt on a failing store), stop the thread; ``SinkError``
        when anything could not be saved."""
        if self._thread is None:
            return
        self._stopping.set()
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise SinkError(f"history store {self.name}: writer did not finish within {timeout_s} s")
        self._thread = None
        if self._crash is not None:
            raise SinkError(f"history store {self.name}: writer crashed: {_describe(self._crash)}")
        if self.stats.lost or self.stats.dropped:
            raise SinkError(
                f"history store {self.name}: {self.stats.lost + self.stats.dropped} write(s) not saved "
                f"({self.stats.last_error or 'queue full'})"
            )

    # ---- writer thread ---------------------------------------------------------------------------

    def _settle(self, n: int) -> None:
        with self._cond:
            self._done += n
            self._cond.notify_all()

    def _next_batch(self) -> tuple[list[Statement], bool]:
        """Up to BATCH_MAX statements (waiting BATCH_MAX_WAIT_S after the first); True when stopping."""
        batch: list[Statement] = []
        item = self._queue.get()
        deadline = time.monotonic() + BATCH_MAX_WAIT_S
        while True:
            if item is _STOP:
                return batch, True
            assert isinstance(item, tuple)
            batch.append(item)
            if len(batch) >= BATCH_MAX:
                return batch, False
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return batch, False

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            stop = False
            while not stop:
                batch, stop = self._next_batch()
                backoff_s = RETRY_MIN_S
                while batch:
                    try:
                        if conn is None:
                            conn = self._connect()
                        self._commit(conn, batch)
                        batch = []
                    except Exception as exc:  # only store failures get here: see _commit
                        _close_quietly(conn)
                        conn = None  # reconnect for the retry: the old connection may be unusable
                        self._failing(exc)
                        if stop or self._stopping.wait(backoff_s):
                            stop = True
                            batch = self._last_attempt(batch)
                        backoff_s = min(2.0 * backoff_s, RETRY_MAX_S)
                if self.stats.failing and not stop:
                    log.warning("history store %s: writing again (%d retries)", self.name, self.stats.retries)
                    self.stats.failing = ""
        except BaseException as exc:  # a bug: say so loudly; flush/close/health report it
            self._crash = exc
            log.exception("history store %s: writer crashed", self.name)
        finally:
            _close_quietly(conn)
            with self._cond:
                self._cond.notify_all()

    def _failing(self, exc: BaseException) -> None:
        reason = _describe(exc)
        if not self.stats.failing:
            log.error("history store %s: cannot write (%s); writes stay queued, retrying", self.name, reason)
        self.stats.failing = self.stats.last_error = reason
        self.stats.retries += 1

    def _last_attempt(self, batch: list[Statement]) -> list[Statement]:
        """Stopping on a failing store: one more try for everything left, then count the rest lost."""
        while True:
            item = self._queue.get() if not self._queue.empty() else _STOP
            if item is _STOP:
                break
            assert isinstance(item, tuple)
            batch.append(item)
        try:
            conn = self._connect()
            try:
                self._commit(conn, batch)
            finally:
                conn.close()
            self.stats.failing = ""
        except Exception as exc:
            self.stats.last_error = _describe(exc)
            self.stats.lost += len(batch)
            log.error(
                "history store %s: %d write(s) lost at close: %s",
                self.name,
                len(batch),
                self.stats.last_error,
            )
            self._settle(len(batch))
        return []

    def _commit(self, conn: sqlite3.Connection, batch: list[Statement]) -> None:
        """Commit the batch; on a bad statement, commit it again statement by statement, rejecting the
        bad ones. Raises only when the store fails (then nothing of the batch is committed)."""
        try:
            _run_all(conn, batch)
        except Exception as exc:
            _rollback(conn)
            if store_failed(exc):
                raise
        else:
            self.stats.written += len(batch)
            self._settle(len(batch))
            return
        rejected: list[tuple[str, str]] = []
        conn.execute("BEGIN")
        try:
            for sql, params in batch:
                try:
                    conn.execute(sql, params)
                except Exception as exc:
                    if store_failed(exc):
                        raise
                    rejected.append((" ".join(sql.split()[:3]), _describe(exc)))
            conn.execute("COMMIT")
        except Exception:
            _rollback(conn)
            raise
        for what, reason in rejected:
            log.error(
                "history store %s: rejected a write (%s): %s; the rest of its batch is saved",
                self.name,
                what,
                reason,
            )
        self.stats.rejected += len(rejected)
        if rejected:
            self.stats.last_error = f"rejected: {rejected[-1][1]}"
        self.stats.written += len(batch) - len(rejected)
        self._settle(len(batch))


def _run_all(conn: sqlite3.Connection, batch: list[Statement]) -> None:
    conn.execute("BEGIN")
    for sql, params in batch:
        conn.execute(sql, params)
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite rolls back by itself on some errors (a full disk): ROLLBACK then has nothing to undo.
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("history store: rollback failed: %s", exc)


def _close_quietly(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except sqlite3.Error as exc:
            log.warning("history store: closing the write connection failed: %s", exc)
