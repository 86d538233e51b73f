"""A disk spool of line-protocol batches that could not be written: append-only, fsync'd, read back in
order, bounded.

Files ``<16-digit number>.lp`` (mode 0600) in one directory; numbers only grow, so name order is write
order. Each append is one record, ``#rec <length> <crc32>\\n`` then the batch's lines, fsync'd before
``append`` returns; a segment is closed when it reaches ``segment_bytes``, when the reader takes it, or
after a failed append (a later batch is never appended behind a torn one). The reader takes the oldest
segment, writes it elsewhere, then removes it. A spool left by a previous run is found by ``open``.

Torn records (a crash or a full disk mid-append) fail their length or CRC check: ``read`` skips them,
counted in ``torn_records``, and resynchronises on the next record header, so later batches are intact.
Bounded: an append that would take the spool past ``max_bytes`` first removes the oldest segments
(not the one being written back), counted in ``dropped_lines``/``dropped_segments``: during a long
outage the newest data is kept. Synchronous on purpose: callers run these methods in a thread
(``asyncio.to_thread``) and serialise them with one lock. ``append`` raises ``OSError`` (the caller
counts the batch as lost and goes on).
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path

from sensorhub.files import PRIVATE_MODE

SEGMENT_SUFFIX = ".lp"
SEGMENT_BYTES = 4 * 1024 * 1024  # a write-back reads one segment into memory: keep it modest
MAX_BYTES = 256 * 1024 * 1024
RECORD = b"#rec "


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def frame(lines: bytes) -> bytes:
    """One spool record: header with the body's length and CRC-32, then the body."""
    body = lines if lines.endswith(b"\n") else lines + b"\n"
    return b"%s%d %08x\n" % (RECORD, len(body), zlib.crc32(body)) + body


class Spool:
    def __init__(
        self, directory: Path, segment_bytes: int = SEGMENT_BYTES, max_bytes: int = MAX_BYTES
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self._segments: list[Path] = []  # oldest first; the last one may be open
        self._sizes: dict[Path, int] = {}
        self._open: Path | None = None
        self._taken: Path | None = None  # being written back: never dropped
        self._next_no = 0
        self.torn_records = 0
        self.dropped_segments = 0
        self.dropped_lines = 0

    def open(self) -> Spool:
        self.directory.mkdir(parents=True, exist_ok=True)
        found = sorted(p for p in self.directory.iterdir() if p.suffix == SEGMENT_SUFFIX and p.stem.isdigit())
        self._segments = found  # a previous run's segments are closed: never appended to again
        self._sizes = {p: p.stat().st_size for p in found}
        self._next_no = int(found[-1].stem) + 1 if found else 0
        return self

    @property
    def empty(self) -> bool:
        return not self._segments

    @property
    def n_segments(self) -> int:
        return len(self._segments)

    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def append(self, lines: bytes) -> None:
        """Append newline-terminated lines as one record; durable (fsync'd) when this returns."""
        if not lines:
            return
        record = frame(lines)
        self._make_room(len(record))
        if self._open is None:
            self._open = self.directory / f"{self._next_no:016d}{SEGMENT_SUFFIX}"
            self._next_no += 1
            self._segments.append(self._open)
            self._sizes[self._open] = 0
            new = True
        else:
            new = False
        path, before = self._open, self._sizes[self._open]
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_MODE)
            try:
                _write_all(fd, record)
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                self._fsync_dir()  # the new name itself must survive a crash
        except OSError:
            self._abandon(path, before)
            raise
        self._sizes[path] = before + len(record)
        if self._sizes[path] >= self.segment_bytes:
            self._open = None

    def _abandon(self, path: Path, size: int) -> None:
        """After a failed append: cut the torn record off if the disk lets us (the reader skips it
        otherwise) and close the segment, so that no later batch is written behind it."""
        self._open = None
        try:
            if size == 0:
                path.unlink(missing_ok=True)
            else:
                os.truncate(path, size)
        except OSError:
            self._sizes[path] = path.stat().st_size if path.exists() else size
            return
        if size == 0:
            self._segments.remove(path)
            self._sizes.pop(path, None)

    def _make_room(self, n_bytes: int) -> None:
        while self.size_bytes() + n_bytes > self.max_bytes:
            victim = next((p for p in self._segments if p != self._taken), None)
            if victim is None:
                return  # only the segment being written back is left: it goes soon
            if victim == self._open:
                self._open = None
            with contextlib.suppress(OSError):  # unreadable: dropped all the same, its lines uncounted
                self.dropped_lines += sum(
                    1 for line in self.read(victim, count_torn=False) if not line.startswith(b"#")
                )
            self._forget(victim)
            self.dropped_segments += 1

    def take_oldest(self) -> Path | None:
        """The oldest segment, closed (later appends go to a new one); None when the spool is empty."""
        if not self._segments:
            return None
        oldest = self._segments[0]
        if oldest == self._open:
            self._open = None
        self._taken = oldest
        return oldest

    def read(self, segment: Path, *, count_torn: bool = True) -> list[bytes]:
        """The lines of the segment's intact records, in order (torn records skipped)."""
        data = segment.read_bytes()
        lines, torn = parse(data)
        if count_torn:
            self.torn_records += torn
        return lines

    def remove(self, segment: Path) -> None:
        if segment == self._taken:
            self._taken = None
        self._forget(segment)

    def _forget(self, segment: Path) -> None:
        if segment == self._open:
            self._open = None
        segment.unlink(missing_ok=True)
        if segment in self._segments:
            self._segments.remove(segment)
        self._sizes.pop(segment, None)
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def parse(data: bytes) -> tuple[list[bytes], int]:
    """(lines of the intact records, number of torn records skipped). A segment written before
    records existed (no ``#rec`` header) is read as plain lines, an unterminated last line dropped."""
    if not data.startswith(RECORD):
        lines = data.split(b"\n")
        torn = 1 if lines and lines[-1] else 0
        return [line for line in lines[:-1] if line], torn
    out: list[bytes] = []
    torn = 0
    pos = 0
    while pos < len(data):
        body = _record_at(data, pos)
        if body is None:
            torn += 1
            # Resynchronise on the next record header, wherever it starts (a torn record has no
            # newline at its end); a false match fails its CRC and the search goes on.
            nxt = data.find(RECORD, pos + 1)
            if nxt < 0:
                break
            pos = nxt
            continue
        start, end = body
        out.extend(line for line in data[start:end].split(b"\n") if line)
        pos = end
    return out, torn


def _record_at(data: bytes, pos: int) -> tuple[int, int] | None:
    """(start, end) of the body of the intact record at ``pos``; None when it is torn or corrupt."""
    if not data.startswith(RECORD, pos):
        return None
    eol = data.find(b"\n", pos, pos + 64)
    if eol < 0:
        return None
    try:
        length_s, crc_s = data[pos + len(RECORD) : eol].split(b" ")
        length, crc = int(length_s), int(crc_s, 16)
    except ValueError:
        return None
    start, end = eol + 1, eol + 1 + length
    if end > len(data) or zlib.crc32(data[start:end]) != crc:
        return None
    return start, end
