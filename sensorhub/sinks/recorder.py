"""Append-only raw-packet recorder (format: see :mod:`sensorhub.sources.replay`).

Every record carries its own CRC, so a crash mid-write loses at most the record being written; the
reader replays everything before a torn or corrupt tail. ``write`` is synchronous and buffered: the
runtime calls it off the event loop (or in batches) and ``flush`` on a timer.
"""

from __future__ import annotations

import json
import os
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
