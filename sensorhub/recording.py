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

A torn or corrupt tail (a crash mid-write, a bad CRC) ends the readable part: every record before it
replays, the rest is reported in :attr:`Recording.tail`.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

from sensorhub.errors import RecordingError, SinkError
from sensorhub.model import RawPacket, SensorRef

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "Recording",
    "RecordingWriter",
    "TailInfo",
    "check_meta",
    "read_recording",
    "recording_meta",
]

MAGIC = b"SHRAWREC"
FORMAT_VERSION = 1
FILE_HEADER = struct.Struct("<8sHI")  # magic, version, meta_len
RECORD_HEADER = struct.Struct("<IdH")  # payload length, t_host_s, sensor index
CRC = struct.Struct("<I")
MAX_PAYLOAD = 65535  # larger lengths can only come from corruption
MAX_META = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TailInfo:
    """What ended the readable part of a recording."""

    offset: int  # file offset of the first unreadable byte
    ignored_bytes: int
    reason: str  # "torn record" | "bad crc" | "implausible length" | "unknown sensor index"


class Recording:
    """An opened recording: metadata, sensors and the packets (iterate it, as often as you like)."""

    def __init__(self, path: Path, meta: dict[str, Any], data_start: int) -> None:
        self.path = path
        self.meta = meta
        self._data_start = data_start
        self.sensor_ids: tuple[str, ...] = tuple(str(s["sensor_id"]) for s in meta["sensors"])
        self.tail: TailInfo | None = None
        self.n_packets = 0
        for _ in self._records(scan=True):
            self.n_packets += 1

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
        """The recorded packets in file order, up to the torn or corrupt tail."""
        ids = self.sensor_ids
        for t_host_s, index, payload in self._records(scan=False):
            yield RawPacket(ids[index], t_host_s, payload)

    def _records(self, *, scan: bool) -> Iterator[tuple[float, int, bytes]]:
        n_sensors = len(self.sensor_ids)
        with self.path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(self._data_start)
            offset = self._data_start
            count = 0
            while offset < size:
                if not scan and count >= self.n_packets:
                    return
                record = _read_record(f, n_sensors)
                if isinstance(record, str):  # what ends the readable part
                    if scan:
                        self.tail = TailInfo(offset, size - offset, record)
                    return
                t_host_s, index, payload = record
                offset += RECORD_HEADER.size + len(payload) + CRC.size
                count += 1
                yield t_host_s, index, payload


def _read_record(f: IO[bytes], n_sensors: int) -> tuple[float, int, bytes] | str:
    head = f.read(RECORD_HEADER.size)
    if len(head) < RECORD_HEADER.size:
        return "torn record"
    length, t_host_s, index = RECORD_HEADER.unpack(head)
    if length > MAX_PAYLOAD:
        return "implausible length"
    body = f.read(length + CRC.size)
    if len(body) < length + CRC.size:
        return "torn record"
    payload = body[:length]
    (crc,) = CRC.unpack_from(body, length)
    if zlib.crc32(payload, zlib.crc32(head)) != crc:
        return "bad crc"
    if index >= n_sensors:
        return "unknown sensor index"
    return t_host_s, index, payload


def read_recording(path: str | Path) -> Recording:
    """Open and validate a recording; :class:`RecordingError` says what is wrong with its header."""
    path = Path(path)
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
                raise RecordingError(f"{path}: metadata length {meta_len} is implausible (corrupt header)")
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
    check_meta(meta, str(path))
    return Recording(path, meta, FILE_HEADER.size + meta_len + CRC.size)


def check_meta(meta: object, where: str) -> None:
    """Metadata must be an object with ``sensors``: a list of objects with a unique ``sensor_id``."""
    if not isinstance(meta, dict):
        raise RecordingError(f"{where}: metadata must be a JSON object, got {type(meta).__name__}")
    sensors = meta.get("sensors")
    if not isinstance(sensors, list) or not all(isinstance(s, dict) and "sensor_id" in s for s in sensors):
        raise RecordingError(f"{where}: metadata needs 'sensors': a list of objects with a 'sensor_id'")
    ids = [str(s["sensor_id"]) for s in sensors]
    if len(set(ids)) != len(ids):
        raise RecordingError(f"{where}: metadata lists a sensor_id twice: {ids}")
    if len(ids) > 65535:
        raise RecordingError(f"{where}: at most 65535 sensors per recording")


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
