"""Append-only raw-packet recorder (format: see :mod:`sensorhub.sources.replay`).

Every record carries its own CRC, so a crash mid-write loses at most the record being written; the
reader replays everything before a torn or corrupt tail. ``write`` is synchronous and buffered; the live
service wraps it in a ``BackgroundRecorder`` so that the disk is never touched on the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from sensorhub.errors import RecordingError, SinkError
from sensorhub.model import RawPacket
from sensorhub.sources.replay import (
    CRC,
    FILE_HEADER,
    FORMAT_VERSION,
    MAGIC,
    MAX_PAYLOAD,
    RECORD_HEADER,
    check_meta,
)

log = logging.getLogger(__name__)


class RecordingWriter:
    """Writes a raw recording: ``with RecordingWriter(path, meta) as rec: rec.write(packet)``.

    ``meta`` must hold ``sensors``: a list of ``{sensor_id, athlete, side, segment, protocol}``;
    ``created_utc`` is added when missing. An existing file is never overwritten.
    """

    def __init__(self, path: str | Path, meta: dict[str, Any], *, fsync_on_flush: bool = False) -> None:
        self.path = Path(path)
        meta = dict(meta)
        meta.setdefault("created_utc", datetime.now(UTC).isoformat())
        try:
            check_meta(meta, str(self.path))
        except RecordingError as exc:
            raise SinkError(str(exc)) from None
        self.meta = meta
        self._index = {str(s["sensor_id"]): i for i, s in enumerate(meta["sensors"])}
        self._fsync = fsync_on_flush
        raw_meta = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode("utf-8")
        try:
            self._file: BinaryIO | None = self.path.open("xb")
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot create recording: {exc.strerror or exc}") from exc
        self._file.write(FILE_HEADER.pack(MAGIC, FORMAT_VERSION, len(raw_meta)))
        self._file.write(raw_meta)
        self._file.write(CRC.pack(zlib.crc32(raw_meta)))
        self.packets = 0
        self.bytes = self._file.tell()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def write(self, packet: RawPacket) -> None:
        """Append one packet (buffered; see ``flush``)."""
        if self._file is None:
            raise SinkError(f"{self.path}: recording is closed")
        index = self._index.get(packet.sensor_id)
        if index is None:
            raise SinkError(
                f"{self.path}: sensor {packet.sensor_id!r} is not in the recording's metadata; "
                "list it in meta['sensors'] when opening the recorder"
            )
        payload = bytes(packet.payload)
        if len(payload) > MAX_PAYLOAD:
            raise SinkError(f"{self.path}: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        head = RECORD_HEADER.pack(len(payload), packet.t_host_s, index)
        crc = zlib.crc32(payload, zlib.crc32(head))
        self._file.write(head + payload + CRC.pack(crc))
        self.packets += 1
        self.bytes += len(head) + len(payload) + CRC.size

    def flush(self) -> None:
        """Hand buffered records to the OS (and to the disk with ``fsync_on_flush``)."""
        if self._file is None:
            return
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            self._file = None


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
