"""Append-only raw-packet recorder (format: see :mod:`sensorhub.recording`).

Every record carries its own CRC, so a crash mid-write loses at most the record being written; the
reader replays everything before a torn or corrupt tail. ``write`` is synchronous and buffered; the live
service wraps it in a ``BackgroundRecorder`` so that the disk is never touched on the event loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from sensorhub.errors import SinkError
from sensorhub.model import RawPacket
from sensorhub.recording import RecordingWriter

log = logging.getLogger(__name__)


_TICK = RawPacket("", 0.0, b"")  # wakes the thread for a timed flush


class BackgroundRecorder:
    """A ``RecordingWriter`` fed from the event loop without touching the disk there: ``write`` only
    appends to a queue; one thread writes in order and hands the buffer to the OS every
    ``flush_every_s``. ``close`` writes everything queued before returning."""

    def __init__(self, writer: RecordingWriter, flush_every_s: float = 1.0) -> None:
        self.writer = writer
        self.path = writer.path
        self._flush_every_s = flush_every_s
        self._queue: queue.SimpleQueue[RawPacket | None] = queue.SimpleQueue()
        self.errors = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name=f"recorder {writer.path.name}", daemon=True)
        self._thread.start()

    def write(self, packet: RawPacket) -> None:
        self._queue.put(packet)

    def flush(self) -> None:
        """Nothing to do on the loop: the thread flushes on its own period and at close."""

    def _run(self) -> None:
        next_flush_s = time.monotonic() + self._flush_every_s
        while True:
            try:
                packet = self._queue.get(timeout=max(0.0, next_flush_s - time.monotonic()))
            except queue.Empty:
                packet = _TICK
            if packet is None:
                break
            try:
                if packet is not _TICK:
                    self.writer.write(packet)
                if time.monotonic() >= next_flush_s:
                    self.writer.flush()
                    next_flush_s = time.monotonic() + self._flush_every_s
            except (SinkError, OSError) as exc:
                # A full disk or a packet of an unknown sensor: say so once per kind, keep going.
                self.errors += 1
                if str(exc) != self.last_error:
                    log.error("recorder %s: %s", self.path, exc)
                self.last_error = str(exc)
        self.writer.close()

    def close(self, timeout_s: float = 30.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)
