"""A disk spool of line-protocol batches that could not be written: append-only, fsync'd, read back in order.

Files ``<16-digit number>.lp`` in one directory; numbers only grow, so name order is write order. New
batches are appended to the newest (open) segment, each append fsync'd before it returns; a segment is
closed when it reaches ``segment_bytes`` or when the reader takes it. The reader takes the oldest
segment, writes it elsewhere, then removes it. A spool left by a previous run is found by ``open``.

A crash during an append can leave a partial last line: ``read`` drops it (counted in ``torn_lines``);
every earlier line was fsync'd. Synchronous on purpose: callers run these methods in a thread
(``asyncio.to_thread``) and serialise them with one lock. Bounded only by the disk.
"""

from __future__ import annotations

import os
from pathlib import Path

SEGMENT_SUFFIX = ".lp"
SEGMENT_BYTES = 4 * 1024 * 1024  # a write-back reads one segment into memory: keep it modest


class Spool:
    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._segments: list[Path] = []  # oldest first; the last one may be open
        self._open: Path | None = None
        self._next_no = 0
        self.torn_lines = 0

    def open(self) -> Spool:
        self.directory.mkdir(parents=True, exist_ok=True)
        found = sorted(p for p in self.directory.iterdir() if p.suffix == SEGMENT_SUFFIX and p.stem.isdigit())
        self._segments = found  # a previous run's segments are closed: never appended to again
        self._next_no = int(found[-1].stem) + 1 if found else 0
        return self

    @property
    def empty(self) -> bool:
        return not self._segments

    @property
    def n_segments(self) -> int:
        return len(self._segments)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._segments if p.exists())

    def append(self, lines: bytes) -> None:
        """Append newline-terminated lines; durable (fsync'd) when this returns."""
        if not lines:
            return
        if self._open is None:
            self._open = self.directory / f"{self._next_no:016d}{SEGMENT_SUFFIX}"
            self._next_no += 1
            self._segments.append(self._open)
            new = True
        else:
            new = False
        with open(self._open, "ab") as fh:
            fh.write(lines if lines.endswith(b"\n") else lines + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
            size = fh.tell()
        if new:
            self._fsync_dir()  # the new name itself must survive a crash
        if size >= self.segment_bytes:
            self._open = None

    def take_oldest(self) -> Path | None:
        """The oldest segment, closed (later appends go to a new one); None when the spool is empty."""
        if not self._segments:
            return None
        oldest = self._segments[0]
        if oldest == self._open:
            self._open = None
        return oldest

    def read(self, segment: Path) -> list[bytes]:
        data = segment.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1]:
            self.torn_lines += 1  # a crash mid-append: the last line is incomplete
        return [line for line in lines[:-1] if line]

    def remove(self, segment: Path) -> None:
        if segment == self._open:
            self._open = None
        segment.unlink(missing_ok=True)
        if segment in self._segments:
            self._segments.remove(segment)
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
