"""Reading raw recordings (written by :mod:`sensorhub.sinks.recorder`) and replaying them.

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

import asyncio
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sensorhub.errors import RecordingError
from sensorhub.model import RawPacket, SensorRef
from sensorhub.sources.base import IteratorSource, PacketQueue, SensorLink

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


class ReplaySource:
    """Replays a recording's packets with their recorded host times.

    ``speed`` paces delivery by the recorded host times (1.0 = real time, 2.0 = twice as fast);
    ``None`` delivers as fast as possible (yielding to the event loop every ``batch`` packets).
    Use as ``async for packet in ReplaySource(path, speed=1.0)``, or as a ``PacketSource`` (``run``).
    """

    def __init__(self, path: str | Path, speed: float | None = 1.0, *, batch: int = 256) -> None:
        if speed is not None and not speed > 0.0:
            raise ValueError(f"speed must be > 0 or None, got {speed}")
        self.recording = read_recording(path)
        self.speed = speed
        self.batch = batch
        self.delivered = 0
        self._source = IteratorSource(aiter(self), list(self.recording.sensor_ids))

    def __aiter__(self) -> AsyncIterator[RawPacket]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RawPacket]:
        start_wall_s = time.monotonic()
        first_host_s: float | None = None
        for packet in self.recording.packets():
            if self.speed is None:
                if self.delivered % self.batch == self.batch - 1:
                    await asyncio.sleep(0)
            else:
                if first_host_s is None:
                    first_host_s = packet.t_host_s
                due_s = start_wall_s + (packet.t_host_s - first_host_s) / self.speed
                wait_s = due_s - time.monotonic()
                if wait_s > 0.0:
                    await asyncio.sleep(wait_s)
            self.delivered += 1
            yield packet

    async def run(self, out: PacketQueue) -> None:
        """``PacketSource`` protocol: put every packet into ``out``, then return (end of recording)."""
        await self._source.run(out)

    def links(self) -> dict[str, SensorLink]:
        return self._source.links()
