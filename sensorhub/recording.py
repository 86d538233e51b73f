"""The raw recording format (``.shrec``): one module for the writer and the reader.

Written by the recorder sink (:mod:`sensorhub.sinks.recorder`, off the event loop) and by the simulator;
read by replay (:mod:`sensorhub.sources.replay`), ``sensorhub analyze`` and the CSV export.

File layout (all little-endian)::

    magic      8 bytes   b"SHRAWREC"
    version    u16       1
    meta_len   u32       length of the metadata
    meta       meta_len  UTF-8 JSON object (session info, "sensors": [{sensor_id, athlete, side,
                         segment, protocol}], "created_utc", "source", ...)
    meta_crc   u32       CRC-32 of meta
    records    until end of file, each:
        length     u32   payload length in bytes
        t_host_s   f64   host receive time
        sensor     u16   index into meta["sensors"]
        payload    length bytes, exactly as received
        crc        u32   CRC-32 of the 14 header bytes and the payload

A torn or corrupt record (a crash or a full disk mid-write, a bad CRC) is skipped: the reader
resynchronises on the next record whose header is plausible and whose CRC matches, so the records after
it still replay; skipped regions are listed in :attr:`Recording.gaps`, an unreadable end in
:attr:`Recording.tail`.

A long recording is written in parts (the recorder rotates by size and time): ``NAME.shrec``, then
``NAME.part002.shrec``, ``NAME.part003.shrec``, ... each a complete file with the same sensors;
``read_recording(NAME.shrec)`` reads the parts in order as one recording.

Metadata is bounded: at most ``MAX_META`` bytes and ``MAX_META_DEPTH`` levels of nesting.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

from sensorhub.errors import RecordingError, SinkError
from sensorhub.files import open_private
from sensorhub.model import RawPacket, SensorRef

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "Recording",
    "RecordingWriter",
    "TailInfo",
    "check_meta",
    "part_path",
    "read_recording",
    "recording_meta",
]

MAGIC = b"SHRAWREC"
FORMAT_VERSION = 1
FILE_HEADER = struct.Struct("<8sHI")  # magic, version, meta_len
RECORD_HEADER = struct.Struct("<IdH")  # payload length, t_host_s, sensor index
CRC = struct.Struct("<I")
MAX_PAYLOAD = 65535  # larger lengths can only come from corruption
MAX_META = 1024 * 1024
MAX_META_DEPTH = 16
PART_RE = re.compile(r"\.part(\d{3,})$")


@dataclass(frozen=True, slots=True)
class TailInfo:
    """What ended the readable part of a recording."""

    offset: int  # file offset of the first unreadable byte
    ignored_bytes: int
    reason: str  # "torn record" | "bad crc" | "implausible length" | "unknown sensor index"
    part: str = ""  # the part file's name, in a recording of several parts


class _Part:
    """One file of a recording: where its records start, how many are readable, what was skipped."""

    def __init__(self, path: Path, data_start: int, n_sensors: int) -> None:
        self.path = path
        self.data_start = data_start
        self.n_sensors = n_sensors
        self.gaps: list[TailInfo] = []
        self.tail: TailInfo | None = None
        self._resume: dict[int, int] = {}  # offset of a bad record -> offset of the next good one
        self.n_packets = sum(1 for _ in self.records(scan=True))

    def records(self, *, scan: bool = False) -> Iterator[tuple[float, int, bytes]]:
        with self.path.open("rb") as f:
            size = f.seek(0, 2)
            if size <= self.data_start:
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                offset = self.data_start
                while offset < size:
                    record = _record_at(data, offset, size, self.n_sensors)
                    if isinstance(record, str):  # torn or corrupt: resume at the next good record
                        if scan:
                            nxt = _resync(data, offset + 1, size, self.n_sensors)
                            info = TailInfo(
                                offset, (size if nxt is None else nxt) - offset, record, self.path.name
                            )
                            if nxt is None:
                                self.tail = info
                            else:
                                self.gaps.append(info)
                                self._resume[offset] = nxt
                        if offset not in self._resume:
                            return
                        offset = self._resume[offset]
                        continue
                    t_host_s, index, start, end = record
                    yield t_host_s, index, bytes(data[start:end])
                    offset = end + CRC.size


class Recording:
    """An opened recording: metadata, sensors and the packets (iterate it, as often as you like)."""

    def __init__(
        self, path: Path, meta: dict[str, Any], data_start: int, parts: Sequence[tuple[Path, int]] = ()
    ) -> None:
        self.path = path
        self.meta = meta
        self.sensor_ids: tuple[str, ...] = tuple(str(s["sensor_id"]) for s in meta["sensors"])
        n = len(self.sensor_ids)
        self.parts = [_Part(path, data_start, n), *(_Part(p, start, n) for p, start in parts)]
        self.n_packets = sum(p.n_packets for p in self.parts)
        self.gaps: list[TailInfo] = [g for p in self.parts for g in p.gaps]
        # What could not be read at the end of a part (a torn last record); the first such.
        self.tail: TailInfo | None = next((p.tail for p in self.parts if p.tail is not None), None)

    @property
    def sensors(self) -> list[SensorRef]:
        """The recorded sensors as :class:`SensorRef` (those with athlete, side and segment)."""
        out = []
        for s in self.meta["sensors"]:
            try:
                out.append(SensorRef.from_meta(s))
            except (KeyError, ValueError):
                continue  # a sensor recorded without placement cannot be aligned into a leg
        return out

    @property
    def protocols(self) -> dict[str, str]:
        return {str(s["sensor_id"]): str(s.get("protocol", "sensorhub-v1")) for s in self.meta["sensors"]}

    def __iter__(self) -> Iterator[RawPacket]:
        return self.packets()

    def packets(self) -> Iterator[RawPacket]:
        """The recorded packets in order, part after part, skipping torn or corrupt records."""
        ids = self.sensor_ids
        for part in self.parts:
            for t_host_s, index, payload in part.records():
                yield RawPacket(ids[index], t_host_s, payload)


def _record_at(data: mmap.mmap, offset: int, size: int, n_sensors: int) -> tuple[float, int, int, int] | str:
    """(t_host_s, sensor index, payload start, payload end) of the record at ``offset``, or what is
    wrong with it."""
    if offset + RECORD_HEADER.size > size:
        return "torn record"
    length, t_host_s, index = RECORD_HEADER.unpack_from(data, offset)
    if length > MAX_PAYLOAD:
        return "implausible length"
    start = offset + RECORD_HEADER.size
    end = start + length
    if end + CRC.size > size:
        return "torn record"
    (crc,) = CRC.unpack_from(data, end)
    if zlib.crc32(data[start:end], zlib.crc32(data[offset:start])) != crc:
        return "bad crc"
    if index >= n_sensors:
        return "unknown sensor index"
    return t_host_s, index, start, end


def _resync(data: mmap.mmap, offset: int, size: int, n_sensors: int) -> int | None:
    """The offset of the next intact record at or after ``offset`` (cheap checks first, then the CRC)."""
    last = size - RECORD_HEADER.size - CRC.size
    while offset <= last:
        length, _, index = RECORD_HEADER.unpack_from(data, offset)
        ok = length <= MAX_PAYLOAD and index < n_sensors
        if ok and not isinstance(_record_at(data, offset, size, n_sensors), str):
            return offset
        offset += 1
    return None


def part_path(first: Path, part: int) -> Path:
    """The file of part ``part`` (1 = ``first`` itself) of a recording."""
    return first if part <= 1 else first.with_name(f"{first.stem}.part{part:03d}{first.suffix}")


def _later_parts(path: Path) -> list[Path]:
    if PART_RE.search(path.stem):
        return []  # a part opened on its own: just that file
    found = []
    for p in path.parent.glob(f"{glob_escape(path.stem)}.part*{path.suffix}"):
        m = PART_RE.search(p.stem)
        if m is not None and p.stem[: m.start()] == path.stem:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def read_recording(path: str | Path) -> Recording:
    """Open and validate a recording (with its later parts, if any); :class:`RecordingError` says what
    is wrong with a header."""
    path = Path(path)
    meta, data_start = _read_header(path)
    parts = []
    for part in _later_parts(path):
        part_meta, part_start = _read_header(part)
        if part_meta["sensors"] != meta["sensors"]:
            raise RecordingError(f"{part}: its sensors differ from those of {path.name}: not a part of it")
        parts.append((part, part_start))
    return Recording(path, meta, data_start, parts)


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    try:
        with path.open("rb") as f:
            head = f.read(FILE_HEADER.size)
            if len(head) < FILE_HEADER.size:
                raise RecordingError(f"{path}: only {len(head)} bytes, not a sensorhub recording")
            magic, version, meta_len = FILE_HEADER.unpack(head)
            if magic != MAGIC:
                raise RecordingError(
                    f"{path}: bad magic {magic!r}, expected {MAGIC!r}: not a sensorhub recording"
                )
            if version != FORMAT_VERSION:
                raise RecordingError(
                    f"{path}: recording format version {version}, this sensorhub reads version "
                    f"{FORMAT_VERSION}; replay it with a sensorhub that wrote it"
                )
            if meta_len > MAX_META:
                raise RecordingError(
                    f"{path}: metadata of {meta_len} bytes exceeds the limit of {MAX_META} (corrupt header?)"
                )
            raw_meta = f.read(meta_len)
            crc_bytes = f.read(CRC.size)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(raw_meta) < meta_len or len(crc_bytes) < CRC.size:
        raise RecordingError(f"{path}: file ends inside the metadata (truncated recording)")
    if zlib.crc32(raw_meta) != CRC.unpack(crc_bytes)[0]:
        raise RecordingError(f"{path}: metadata CRC mismatch (corrupt header)")
    try:
        meta = json.loads(raw_meta.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{path}: metadata is not valid UTF-8 JSON: {exc}") from exc
    except RecursionError:
        raise RecordingError(f"{path}: metadata nested deeper than {MAX_META_DEPTH} levels") from None
    check_meta(meta, str(path))
    return meta, FILE_HEADER.size + meta_len + CRC.size


def check_meta(meta: object, where: str) -> None:
    """Metadata must be an object with ``sensors``: a list of objects with a unique ``sensor_id``."""
    if not isinstance(meta, dict):
        raise RecordingError(f"{where}: metadata must be a JSON object, got {type(meta).__name__}")
    if _depth(meta) > MAX_META_DEPTH:
        raise RecordingError(f"{where}: metadata nested deeper than {MAX_META_DEPTH} levels")
    sensors = meta.get("sensors")
    if not isinstance(sensors, list) or not all(isinstance(s, dict) and "sensor_id" in s for s in sensors):
        raise RecordingError(f"{where}: metadata needs 'sensors': a list of objects with a 'sensor_id'")
    ids = [str(s["sensor_id"]) for s in sensors]
    if len(set(ids)) != len(ids):
        raise RecordingError(f"{where}: metadata lists a sensor_id twice: {ids}")
    if len(ids) > 65535:
        raise RecordingError(f"{where}: at most 65535 sensors per recording")


def _depth(value: object) -> int:
    """Nesting depth of lists and objects (iterative: a hostile depth cannot exhaust the stack)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_META_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


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
        if len(raw_meta) > MAX_META:
            raise SinkError(f"{self.path}: metadata of {len(raw_meta)} bytes exceeds the limit of {MAX_META}")
        try:
            file = cast(BinaryIO, open_private(self.path, "xb"))
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot create recording: {exc.strerror or exc}") from exc
        file.write(FILE_HEADER.pack(MAGIC, FORMAT_VERSION, len(raw_meta)))
        file.write(raw_meta)
        file.write(CRC.pack(zlib.crc32(raw_meta)))
        self._file: BinaryIO | None = file
        self.packets = 0
        self.bytes = file.tell()

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


def recording_meta(
    sensors: Sequence[SensorRef], protocols: Mapping[str, str], extra: Mapping[str, object] | None = None
) -> dict[str, object]:
    """Metadata of a raw recording: the sensors with their placement and protocol, and when."""
    meta = dict(extra or {})
    meta["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta["sensors"] = [
        {
            "sensor_id": s.sensor_id,
            "athlete": s.athlete,
            "side": str(s.side),
            "segment": str(s.segment),
            "protocol": protocols.get(s.sensor_id, "sensorhub-v1"),
        }
        for s in sensors
    ]
    return meta
