"""InfluxDB sink: angles (decimated), events, cues and sensor status as line protocol, batched, with a
disk spool so that a database outage never blocks the pipeline and loses nothing.

Writes go through ``influxdb-client``'s async API to ``/api/v2/write`` (InfluxDB 1.8+, 2.x, 3.x,
VictoriaMetrics), nanosecond timestamps from the DATA time (``t_s``), never the time of writing.
The measurements, tags and fields are the table ``SCHEMA`` (in ``influx_schema``, re-exported here; the
Grafana dashboards are checked against it); nothing outside it is written.

Delivery, in order:
- the bus consumer turns messages into lines; a batch leaves when it holds ``batch_size`` points or its
  oldest point is ``flush_interval_s`` old;
- the deliverer writes each batch, or, when the spool is not empty, appends it to the spool (a batch
  never overtakes older spooled data);
- a failed write (connection refused, timeout, 5xx, 429, and 401/403 after start-up) goes to the spool
  and the drainer writes the spool back oldest first with backoff, deleting each segment once written;
- any other 4xx (a malformed line, a field type conflict) is logged and the batch dropped (counted), so
  a bad batch cannot wedge the spool.
The spool is on disk, bounded by ``spool_max_mb``: past it the oldest spooled points are dropped
(counted in ``points_spool_dropped``), so an outage keeps the newest data. A batch that cannot be
spooled (disk full, I/O error) is dropped and counted in ``points_lost``/``spool_errors``; the service
keeps running and the next batch tries again. A spool left by a previous run is written back at start;
a segment interrupted mid write-back is sent again whole (at-least-once; InfluxDB overwrites an
identical point, so this is harmless there).

Start-up check: a zero-point write (auth and bucket checked by the server) must succeed; an unreachable
URL, a wrong scheme or rejected credentials is a :class:`SinkError`, not a silent spool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from influxdb_client import WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.rest import ApiException
from influxdb_client.service.write_service import WriteService

from sensorhub.bus import Bus, Message, Subscription
from sensorhub.config import Config, InfluxConfig, data_dir
from sensorhub.errors import SinkError
from sensorhub.model import Event, KneeAngles
from sensorhub.sinks.influx_schema import (
    SCHEMA,
    AngleBlock,
    KneeAngleLines,
    Lines,
    TagSource,
    cue_line,
    event_line,
    leg_tags,
    status_lines,
    warm_up,
)
from sensorhub.sinks.spool import Spool
from sensorhub.timing import Decimator

log = logging.getLogger(__name__)

BUS_QUEUE = 100_000  # bus mailbox (drop-oldest, counted): ~5 s of 1000 legs at 20 Hz
# A loop turn with more knee-angle rows than this converts them in a worker thread (the kernel releases
# the GIL): about 1 ms of conversion here; 5000 rows took 3.6 ms (median) to 9 ms on the loop.
OFFLOAD_ROWS = 2000
# Batches waiting in memory for the server at most; the next ones go through the disk spool.
MAX_QUEUED_BATCHES = 16


__all__ = ["SCHEMA", "InfluxSink", "InfluxStats", "spool_path"]

# --------------------------------------------------------------------------------------------------
# Failure classes


class Failure(StrEnum):
    TRANSIENT = "transient"  # server away, overloaded or slow: spool and retry
    AUTH = "auth"  # credentials rejected: fatal at start-up, spooled later (a token can be fixed)
    REJECTED = "rejected"  # the server refuses this batch (bad line, type conflict, too large): drop


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        if status in (401, 403):
            return Failure.AUTH
        if status == 0 or status == 429 or status >= 500 or status in (404, 408):
            # 404 at run time: a bucket being recreated, a proxy in front restarting
            return Failure.TRANSIENT
        return Failure.REJECTED
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return Failure.TRANSIENT
    raise exc  # a programming error: let it surface


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
        return f"HTTP {exc.status} {exc.reason or ''} {body or ''}".strip()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --------------------------------------------------------------------------------------------------
# The sink


@dataclass(slots=True)
class InfluxStats:
    points_written: int = 0
    batches_written: int = 0
    points_spooled: int = 0  # points that went through the spool (counted when appended)
    points_dropped: int = 0  # rejected by the server (4xx other than auth)
    batches_dropped: int = 0
    write_errors: int = 0  # failed write attempts (each retry counts)
    bus_dropped: int = 0  # messages the bus mailbox evicted (the sink fell behind)
    points_spool_dropped: int = 0  # spooled, then removed to keep the spool within spool_max_mb
    points_lost: int = 0  # could not be spooled (disk full, I/O error)
    spool_errors: int = 0  # failed spool appends, reads and removals
    spool_torn: int = 0  # torn spool records skipped at write-back
    spool_files: int = 0
    spool_bytes: int = 0
    last_error: str = ""
    written_seqs: list[int] = field(default_factory=list, repr=False)  # kept only with track_order

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("written_seqs")
        return out


@dataclass(frozen=True, slots=True)
class Batch:
    seq: int  # order of creation; the spool keeps it, written_seqs proves it
    chunks: list[bytes | memoryview]  # newline-terminated lines
    n_points: int

    def body(self) -> bytes:
        return b"".join(self.chunks)


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SinkError(
            f"sinks.influxdb.url = {url!r}: expected http://HOST:PORT or https://HOST:PORT "
            "(the InfluxDB HTTP API, e.g. http://127.0.0.1:8086)"
        )


class InfluxSink:
    """Bus -> InfluxDB. ``async with InfluxSink(config, dir) as sink: await sink.run(bus, ...)``; cancel
    ``run`` to stop (what is still queued is written, or spooled when the server is away)."""

    def __init__(self, config: InfluxConfig, spool_dir: Path, *, track_order: bool = False) -> None:
        self.config = config
        self.stats = InfluxStats()
        self._tags: TagSource | None = None
        self._status: Callable[[], Mapping[str, Any]] | None = None
        self._track_order = track_order
        self._spool = Spool(spool_dir, max_bytes=round(config.spool_max_mb * 1024 * 1024))
        self._spool_lock = asyncio.Lock()
        self._spool_pending = asyncio.Event()
        self._decimator = Decimator(config.angles_rate_hz) if config.angles_rate_hz > 0.0 else None
        self._angle_lines = KneeAngleLines()
        self._pending: list[bytes | memoryview] = []
        self._pending_n = 0
        self._turn: asyncio.Future[None] | None = None  # taken from the bus, not yet in a batch
        self._pending_since_s = 0.0
        self._batches: asyncio.Queue[Batch] = asyncio.Queue()
        self._inflight: Batch | None = None
        self._seq = 0
        self._client: InfluxDBClientAsync | None = None
        self._sub: Subscription | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> InfluxSink:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the spool and check the server: reachable, credentials and bucket accepted."""
        cfg = self.config
        check_url(cfg.url)
        await asyncio.to_thread(self._spool.open)
        self._update_spool_stats()
        if not self._spool.empty:
            log.info("influxdb: %d spooled segment(s) from a previous run to write", self._spool.n_segments)
            self._spool_pending.set()
        self._client = InfluxDBClientAsync(
            url=cfg.url,
            token=cfg.token,
            org=cfg.org,
            timeout=round(cfg.timeout_s * 1000),
            auth_basic=cfg.auth_basic,
        )
        try:
            # Zero points: the server still authenticates and looks up the bucket, and stores nothing.
            await WriteService(self._client.api_client).post_write_async(
                org=cfg.org, bucket=cfg.bucket, body=b"", precision=WritePrecision.NS
            )
        except Exception as exc:
            failure = classify(exc)
            if failure is Failure.AUTH:
                raise SinkError(
                    f"InfluxDB at {cfg.url} rejected the credentials ({_reason(exc)}): check "
                    "sinks.influxdb.token (an API token; with auth_basic = true, 'user:password')"
                ) from None
            if isinstance(exc, ApiException) and exc.status == 404:
                raise SinkError(
                    f"InfluxDB at {cfg.url}: org {cfg.org!r} / bucket {cfg.bucket!r} not found, or the URL "
                    f"is not an InfluxDB API ({_reason(exc)}): check sinks.influxdb.url, org and bucket"
                ) from None
            if not (isinstance(exc, ApiException) and exc.status == 400):
                raise SinkError(
                    f"cannot reach InfluxDB at {cfg.url} ({_reason(exc)}): is it running, and is "
                    "sinks.influxdb.url right?"
                ) from None
            # 400: past auth and bucket lookup; only the empty body was refused (some versions)
        # the knee-angle kernel, off the loop (a cold numba compile takes seconds), before any sample
        await asyncio.to_thread(warm_up)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def run(
        self,
        bus: Bus,
        tags: TagSource | None = None,
        status: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        """Until cancelled. ``tags(athlete)``: extra tags (drill, session); ``status()``: a /health report
        whose ``sensors`` become ``sensor_status`` points."""
        if self._client is None:
            raise SinkError("InfluxSink.run before start(): use `async with InfluxSink(...)`")
        self._tags, self._status = tags, status
        self._sub = bus.subscribe(["angles", "events", "cues"], maxsize=BUS_QUEUE)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._consume(), name="influx-consume")
                tg.create_task(self._tick(), name="influx-flush")
                tg.create_task(self._deliver(), name="influx-deliver")
                tg.create_task(self._drain(), name="influx-drain")
                if self._status is not None and self.config.status_interval_s > 0:
                    tg.create_task(self._status_loop(), name="influx-status")
        finally:
            await self._shutdown()
            self._sub.close()

    async def _shutdown(self) -> None:
        """Everything received is written, or spooled when the server is away (never dropped)."""
        if self._turn is not None:
            await self._turn
            self._turn = None
        await self._on_messages(self._sub.drain() if self._sub is not None else [])
        self._flush()
        pending = [self._inflight] if self._inflight is not None else []
        while not self._batches.empty():
            pending.append(self._batches.get_nowait())
        for batch in pending:
            await self._write_or_spool(batch)

    def stats_dict(self) -> dict[str, Any]:
        self.stats.bus_dropped = self._sub.dropped if self._sub is not None else 0
        out = self.stats.as_dict()
        out["batches_queued"] = self._batches.qsize() + (self._inflight is not None)
        out["points_pending"] = len(self._pending)
        return out

    @property
    def idle(self) -> bool:
        """Nothing waiting anywhere: every point received so far is written (or dropped as rejected)."""
        return (
            self._turn is None
            and not self._pending
            and self._batches.empty()
            and self._inflight is None
            and self._spool.empty
        )

    # ---- bus -> batches --------------------------------------------------------------------------

    async def _on_messages(self, messages: Sequence[Message]) -> None:
        """Messages -> lines, in order; consecutive knee-angle blocks are converted in one call."""
        blocks: list[AngleBlock] = []
        for message in messages:
            payload = message.payload
            if message.topic == "angles" and isinstance(payload, KneeAngles):
                decimator = self._decimator
                keep = decimator.keep(payload.leg_id, payload.t_s) if decimator is not None else None
                if keep is not None and keep.size:
                    blocks.append((payload, keep, leg_tags(payload.leg_id, self._tags)))
                continue
            if blocks:
                self._add(await self._convert(blocks))
                blocks = []
            line = None
            if message.topic == "events" and isinstance(payload, Event):
                line = event_line(payload, leg_tags(payload.leg_id, self._tags))
            elif message.topic == "cues":
                line = cue_line(payload, self._tags)
            if line is not None:
                self._add_text([line])
        if blocks:
            self._add(await self._convert(blocks))

    async def _convert(self, blocks: list[AngleBlock]) -> Lines:
        if sum(keep.shape[0] for _, keep, _ in blocks) > OFFLOAD_ROWS:
            return await asyncio.to_thread(self._angle_lines, blocks)
        return self._angle_lines(blocks)

    def _add_text(self, lines: Sequence[str]) -> None:
        if lines:
            encoded = [line.encode() + b"\n" for line in lines]
            self._add(Lines(b"".join(encoded), np.cumsum([len(e) for e in encoded], dtype=np.int64)))

    def _add(self, lines: Lines) -> None:
        """Into batches of batch_size points, cut at line ends."""
        start, i = 0, 0
        while i < len(lines):
            if not self._pending_n:
                self._pending_since_s = time.monotonic()
            take = min(len(lines) - i, self.config.batch_size - self._pending_n)
            end = int(lines.ends[i + take - 1])
            self._pending.append(lines.body[start:end])
            self._pending_n += take
            start, i = end, i + take
            if self._pending_n >= self.config.batch_size:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._batches.put_nowait(Batch(self._seq, self._pending, self._pending_n))
            self._seq += 1
            self._pending, self._pending_n = [], 0

    async def _consume(self) -> None:
        """Every message waiting is taken at once: a loop turn converts all its knee-angle blocks in one
        kernel call."""
        assert self._sub is not None
        async for message in self._sub:
            # shielded: when the sink is cancelled mid-conversion, the shutdown still adds these lines
            self._turn = asyncio.ensure_future(self._on_messages([message, *self._sub.drain()]))
            await asyncio.shield(self._turn)
            self._turn = None

    async def _tick(self) -> None:
        interval_s = self.config.flush_interval_s
        while True:
            await asyncio.sleep(min(interval_s / 2.0, 0.25))
            if self._pending and time.monotonic() - self._pending_since_s >= interval_s:
                self._flush()

    async def _status_loop(self) -> None:
        assert self._status is not None
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            self._add_text(status_lines(self._status(), time.time()))

    # ---- batches -> server or spool --------------------------------------------------------------

    async def _write(self, body: bytes, n_points: int) -> Failure | None:
        """One write attempt; None when written."""
        assert self._client is not None
        try:
            await self._client.write_api().write(
                bucket=self.config.bucket, org=self.config.org, record=body
            )  # the client's default precision: ns, as the lines are
        except Exception as exc:
            failure = classify(exc)
            self.stats.write_errors += 1
            self.stats.last_error = _reason(exc)[:300]
            if failure is Failure.REJECTED:
                self.stats.points_dropped += n_points
                self.stats.batches_dropped += 1
                log.error(
                    "influxdb rejected a batch of %d points, dropped: %s", n_points, self.stats.last_error
                )
            else:
                log.warning("influxdb write failed (%s), spooling: %s", failure, self.stats.last_error)
            return failure
        self.stats.points_written += n_points
        self.stats.batches_written += 1
        return None

    def _written(self, seq: int) -> None:
        if self._track_order:
            self.stats.written_seqs.append(seq)

    async def _write_or_spool(self, batch: Batch) -> None:
        # Past MAX_QUEUED_BATCHES waiting, the oldest go to the spool (then every later one, in order, as
        # in an outage): a server slower than the points come in fails nothing, and grew this queue and
        # the process without bound (`sensorhub bench soak`); the spool is bounded by spool_max_mb.
        if self._spool.empty and self._batches.qsize() < MAX_QUEUED_BATCHES:
            failure = await self._write(batch.body(), batch.n_points)
            if failure is None:
                self._written(batch.seq)
                return
            if failure is Failure.REJECTED:
                return
        await self._append_to_spool(batch)

    async def _append_to_spool(self, batch: Batch) -> None:
        # The batch number rides along as a comment line, so order can be checked after write-back.
        body = f"#seq {batch.seq}\n".encode() + batch.body()
        try:
            async with self._spool_lock:
                await asyncio.to_thread(self._spool.append, body)
                self._spool_pending.set()
        except OSError as exc:
            self.stats.points_lost += batch.n_points
            self._spool_error(f"cannot spool a batch of {batch.n_points} points, dropped", exc)
        else:
            self.stats.points_spooled += batch.n_points
        self._update_spool_stats()

    def _spool_error(self, what: str, exc: OSError) -> None:
        self.stats.spool_errors += 1
        self.stats.last_error = f"spool: {exc.strerror or exc}"
        log.error("influxdb spool %s: %s: %s", self._spool.directory, what, exc.strerror or exc)

    async def _deliver(self) -> None:
        while True:
            self._inflight = await self._batches.get()
            await self._write_or_spool(self._inflight)
            self._inflight = None

    async def _drain(self) -> None:
        """Writes the spool back, oldest segment first; a disk error is counted and retried later, it
        never ends the sink."""
        while True:
            await self._spool_pending.wait()
            try:
                await self._drain_one()
            except OSError as exc:
                self._spool_error("write-back failed, retrying", exc)
                await asyncio.sleep(self.config.retry_max_s)

    async def _drain_one(self) -> None:
        """The oldest segment, in chunks of batch_size; backoff while the server fails."""
        backoff_s = self.config.retry_min_s
        async with self._spool_lock:
            segment = await asyncio.to_thread(self._spool.take_oldest)
            if segment is None:
                self._spool_pending.clear()
                return
        try:
            lines = await asyncio.to_thread(self._spool.read, segment)
        except FileNotFoundError:
            lines = []  # gone (removed by hand): nothing to send
        self.stats.spool_torn = self._spool.torn_records
        for seqs, chunk in _chunks(lines, self.config.batch_size):
            failure = None
            while chunk:
                failure = await self._write(b"\n".join(chunk) + b"\n", len(chunk))
                if failure is None or failure is Failure.REJECTED:
                    break
                await asyncio.sleep(backoff_s)
                backoff_s = min(2.0 * backoff_s, self.config.retry_max_s)
            backoff_s = self.config.retry_min_s
            for seq in seqs if failure is None else ():
                self._written(seq)
        async with self._spool_lock:
            await asyncio.to_thread(self._spool.remove, segment)
        self._update_spool_stats()

    def _update_spool_stats(self) -> None:
        self.stats.spool_files = self._spool.n_segments
        self.stats.spool_bytes = self._spool.size_bytes()
        self.stats.points_spool_dropped = self._spool.dropped_lines


def _chunks(lines: list[bytes], size: int) -> Iterable[tuple[list[int], list[bytes]]]:
    """Spooled lines in write chunks of at most ``size`` points, with the numbers of the batches that
    start in each chunk."""
    chunk: list[bytes] = []
    seqs: list[int] = []
    for line in lines:
        if line.startswith(b"#seq "):
            seqs.append(int(line[5:]))
            continue
        chunk.append(line)
        if len(chunk) >= size:
            yield seqs, chunk
            chunk, seqs = [], []
    if chunk or seqs:
        yield seqs, chunk


def spool_path(config: Config) -> Path:
    path = Path(os.path.expanduser(config.sinks.influxdb.spool_dir))
    return path if path.is_absolute() else data_dir(config) / path
