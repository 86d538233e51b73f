"""The live service's raw-packet recorder (format: see :mod:`sensorhub.recording`), off the event loop.

Every record carries its own CRC and the reader resynchronises past a torn one, so a crash mid-write
loses at most the record being written. The recorder thread:
- hands buffered records to the OS and fsyncs them every ``sync_interval_s`` and at close (a machine
  crash loses at most about that much);
- continues in a new part file (``NAME.part002.shrec``, ...; replayed in order as one recording) when
  a part reaches ``max_bytes`` or ``max_s``;
- on a disk error (``OSError``: disk full, I/O error) closes the part with everything before the failed
  write readable, logs the error and shows it in ``status()`` (/health ``sinks.recorder``); packets
  that come while the disk fails are counted as ``dropped`` instead of piling up behind it; every
  ``resume_every_s`` it tries a new part (when the disk has room again) and records on from there.
A packet of an unknown sensor is counted in ``errors`` and skipped.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
from typing import Any

from sensorhub.errors import SinkError
from sensorhub.model import RawPacket
from sensorhub.recording import RecordingWriter, part_path

log = logging.getLogger(__name__)


_TICK = RawPacket("", 0.0, b"")  # wakes the thread for a timed flush (or a resume attempt)
LOGGED_SKIPS = frozenset(10**k for k in range(12))  # skipped packets logged: the 1st, 10th, 100th, ...
RESUME_EVERY_S = 5.0  # after a disk error: how often a new part is tried
RESUME_FREE_BYTES = 4 << 20  # ... and only with this much room (a part torn at its header is no use)


class BackgroundRecorder:
    """A ``RecordingWriter`` fed from the event loop without touching the disk there: ``write`` only
    appends to a queue; one thread writes in order, syncs, rotates. ``close`` writes everything queued
    before returning."""

    def __init__(
        self,
        writer: RecordingWriter,
        flush_every_s: float = 1.0,
        *,
        max_bytes: int | None = None,
        max_s: float | None = None,
        resume_every_s: float = RESUME_EVERY_S,
    ) -> None:
        self.writer = writer
        self._resume_every_s = resume_every_s
        self.path = writer.path  # the first part: replay and analyze open this one
        self._flush_every_s = flush_every_s
        self._max_bytes = max_bytes
        self._max_s = max_s
        self._part = 1
        self._part_started_s = time.monotonic()
        self._queue: queue.SimpleQueue[RawPacket | None] = queue.SimpleQueue()
        self.packets = 0
        self.errors = 0
        self.skipped = 0  # packets of sensors not in the metadata (counted in ``errors`` too)
        self.dropped = 0
        self.failed = ""  # why recording is paused ("" while it records)
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name=f"recorder {writer.path.name}", daemon=True)
        self._thread.start()

    def write(self, packet: RawPacket) -> None:
        self._queue.put(packet)

    def flush(self) -> None:
        """Nothing to do on the loop: the thread flushes on its own period and at close."""

    def status(self) -> dict[str, Any]:
        state = "failed" if self.failed else "recording" if self._thread.is_alive() else "closed"
        return {
            "state": state,
            "ok": not self.failed,
            "path": str(self.path),
            "parts": self._part,
            "packets": self.packets,
            "queued": self._queue.qsize(),
            "dropped": self.dropped,
            "errors": self.errors,
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        next_wake_s = time.monotonic() + self._flush_every_s  # the next flush, or while failed resume try
        while True:
            try:
                packet = self._queue.get(timeout=max(0.0, next_wake_s - time.monotonic()))
            except queue.Empty:
                packet = _TICK
            if packet is None:
                break
            if self.failed:
                if packet is not _TICK:
                    self.dropped += 1
                if time.monotonic() < next_wake_s:
                    continue
                next_wake_s = time.monotonic() + (self._flush_every_s if self._resume()
                                                  else self._resume_every_s)
                continue
            try:
                if packet is not _TICK:
                    self.writer.write(packet)
                    self.packets += 1
                    if self._should_rotate():
                        self._rotate()
                if time.monotonic() >= next_wake_s:
                    self.writer.flush()
                    next_wake_s = time.monotonic() + self._flush_every_s
            except SinkError as exc:  # a packet of a sensor not in the metadata: skip it
                self.errors += 1
                self.skipped += 1
                self.last_error = str(exc)
                if self.skipped in LOGGED_SKIPS:  # random sensor ids must not flood the log
                    log.error("recorder %s: %s (%d packets skipped so far; see /health)", self.path, exc,
                              self.skipped)
            except OSError as exc:
                self._fail(exc)
                next_wake_s = time.monotonic() + self._resume_every_s
        if not self.failed:
            try:
                self.writer.close()
            except OSError as exc:
                self._fail(exc)

    def _should_rotate(self) -> bool:
        too_big = self._max_bytes is not None and self.writer.bytes >= self._max_bytes
        too_old = self._max_s is not None and time.monotonic() - self._part_started_s >= self._max_s
        return too_big or too_old

    def _rotate(self) -> None:
        self.writer.close()  # flushed and fsync'd
        self._next_part()

    def _next_part(self) -> None:
        part = self._part + 1
        meta = {**self.writer.meta, "part": part, "first_part": self.path.name}
        meta.pop("created_utc", None)
        path = part_path(self.path, part)
        try:
            self.writer = RecordingWriter(path, meta, fsync_on_flush=True)
        except SinkError as exc:  # cannot create the file: the disk
            path.unlink(missing_ok=True)  # a part torn in its header would stop the replay there
            raise OSError(str(exc)) from exc
        self._part = part
        _fsync_dir(self.path.parent)
        self._part_started_s = time.monotonic()

    def _resume(self) -> bool:
        """After a disk error: record on in a new part if the disk has room again."""
        try:
            if shutil.disk_usage(self.path.parent).free < RESUME_FREE_BYTES:
                return False
            self._next_part()
        except OSError:
            return False
        log.warning("recorder %s: recording again in part %d (%d packets dropped while the disk failed)",
                    self.path, self._part, self.dropped)
        self.failed = ""
        return True

    def _fail(self, exc: OSError) -> None:
        """Pause recording: what was written before stays readable (records carry their CRC)."""
        self.errors += 1
        self.failed = self.last_error = f"{exc.strerror or exc}"
        log.error("recorder %s: disk error, recording paused (a new part is tried every %g s): %s",
                  self.writer.path, self._resume_every_s, self.failed)
        try:
            self.writer.close()
        except OSError as close_exc:
            log.warning("recorder %s: closing after the error failed too: %s", self.writer.path, close_exc)

    def close(self, timeout_s: float = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)


def _fsync_dir(directory: os.PathLike[str]) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
