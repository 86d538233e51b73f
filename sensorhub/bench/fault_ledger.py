"""What ``sensorhub bench faults`` counts: every packet the simulator sent, every event and cue the pipeline
published, and where each of them ended up (recording, history, MQTT subscriber, InfluxDB server).

Outputs are matched one by one (leg, kind, data time), not only counted, so a loss hidden by a duplicate
still shows. Output times carry rounding (MQTT payloads: 4 digits, VictoriaMetrics: ms), hence a tolerance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

from sensorhub.bus import Bus
from sensorhub.model import Event, RawPacket
from sensorhub.recording import read_recording
from sensorhub.sources import PacketQueue

MATCH_TOL_S = 0.002
HEALTH_PERIOD_S = 0.2
# The InfluxDB sink's measurements (sinks/influx_schema.py); VictoriaMetrics names a series measurement_field.
MEASUREMENTS = ("knee_angles", "sensor_status", "landing", "cut", "rep", "cue")
Key = tuple[str, str, float]  # (leg id, event type or cue phrase, data time)


@dataclass(slots=True)
class Row:
    fault: str
    injected: str = ""
    health_ok: int = 0
    health_failed: int = 0
    longest_gap_s: float = 0.0
    max_loop_lag_s: float = 0.0  # the poller's own loop: the service's loop when in-process
    lost: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (lost, of)
    allowed: dict[str, int] = field(default_factory=dict)  # kind -> loss the fault explains
    notes: list[str] = field(default_factory=list)
    skipped: str = ""  # why the fault could not be injected here
    counters: dict[str, int] = field(default_factory=dict)  # what the fault did (packets dropped, spooled)

    @property
    def serving(self) -> bool:
        """Every /health poll answered (200 within its 1 s timeout); the longest gap is reported."""
        return self.health_failed == 0 and self.health_ok > 0

    @property
    def ok(self) -> bool:
        return self.serving and all(
            lost == self.allowed.get(kind, 0) for kind, (lost, _) in self.lost.items()
        )


async def poll_health(base_url: str, row: Row, stop: asyncio.Event) -> None:
    last_ok = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while not stop.is_set():
            try:
                async with http.get(f"{base_url}/health") as resp:
                    await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            now = time.monotonic()
            if ok:
                row.health_ok += 1
                row.longest_gap_s = max(row.longest_gap_s, now - last_ok)
                last_ok = now
            else:
                row.health_failed += 1
            t_sleep = time.monotonic()
            await asyncio.sleep(HEALTH_PERIOD_S)
            row.max_loop_lag_s = max(row.max_loop_lag_s, time.monotonic() - t_sleep - HEALTH_PERIOD_S)


class TapQueue(PacketQueue):
    """The source's queue, seen by the bench: counts what the simulator sent, drops what a fault says."""

    def __init__(self, inner: PacketQueue) -> None:
        super().__init__(1)
        self.inner = inner
        self.sent = 0
        self.dropped_by_fault = 0
        self.drop_sensors: frozenset[str] = frozenset()
        self.sent_by_sensor: Counter[str] = Counter()
        self.recent: deque[RawPacket] = deque(maxlen=256)  # real packets, templates for the fuzz

    def put_nowait(self, packet: RawPacket) -> None:
        self.sent += 1
        self.sent_by_sensor[packet.sensor_id] += 1
        self.recent.append(packet)
        if packet.sensor_id in self.drop_sensors:
            self.dropped_by_fault += 1
            return
        self.inner.put_nowait(packet)


@dataclass(slots=True)
class Published:
    """Events and cues as the pipeline published them, with the monotonic time of publication."""

    events: list[tuple[float, Key]] = field(default_factory=list)
    cues: list[tuple[float, Key]] = field(default_factory=list)

    async def collect(self, bus: Bus) -> None:
        sub = bus.subscribe(["events", "cues"], maxsize=1_000_000)
        try:
            async for message in sub:
                self._add(message.topic, message.payload)
        finally:
            sub.close()
            for message in sub.drain():  # the pipeline's final flush at shutdown
                self._add(message.topic, message.payload)

    def _add(self, topic: str, payload: Any) -> None:
        now = time.monotonic()
        if topic == "events" and isinstance(payload, Event):
            self.events.append((now, (payload.leg_id, payload.type, float(payload.t_s))))
        elif topic == "cues":
            self.cues.append((now, (str(payload.leg_id), str(payload.phrase), float(payload.t_s))))


def unmatched(expected: Iterable[Key], got: Iterable[Key], tol_s: float = MATCH_TOL_S) -> list[Key]:
    """The expected keys with no counterpart in ``got`` (same leg and kind, time within ``tol_s``); each
    output matches at most once."""
    pool: dict[tuple[str, str], list[float]] = defaultdict(list)
    for leg, kind, t in got:
        pool[(leg, kind)].append(t)
    missing = []
    for leg, kind, t in expected:
        times = pool.get((leg, kind), [])
        best = min(range(len(times)), key=lambda i: abs(times[i] - t), default=None)
        if best is not None and abs(times[best] - t) <= tol_s:
            times.pop(best)
        else:
            missing.append((leg, kind, t))
    return missing


class MqttCounter:
    """A subscriber to every result topic (QoS 1) that reconnects while the broker is away."""

    def __init__(self, port: int, prefix: str, identifier: str = "faults-bench-counter") -> None:
        self.identifier = identifier
        self.port = port
        self.prefix = prefix
        self.events: list[Key] = []
        self.cues: list[Key] = []
        self.events_at: list[float] = []  # wall-clock arrival of each of ``events``
        self.subscribed = asyncio.Event()
        self.connects = 0

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.identifier) as c:
                    await c.subscribe(f"{self.prefix}/+/+/events", qos=1)
                    await c.subscribe(f"{self.prefix}/+/+/cues", qos=1)
                    self.connects += 1
                    self.subscribed.set()
                    async for message in c.messages:
                        self._add(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.1)

    def _add(self, topic: str, payload: bytes) -> None:
        body = json.loads(payload)
        leg = f"{body['athlete']}/{body['leg']}"
        if topic.endswith("/events"):
            self.events.append((leg, str(body["type"]), float(body["t_s"])))
            self.events_at.append(time.time())
        else:
            self.cues.append((leg, str(body["phrase"]), float(body["t_s"])))


class RawTap:
    """A subscriber to every raw packet topic, bundled or not (QoS 1): what the gateways published and the
    broker delivered, keyed (sensor id, host receive time), with the arrival time of each."""

    def __init__(self, port: int, prefix: str, identifier: str = "faults-bench-raw-tap") -> None:
        self.port, self.prefix, self.identifier = port, prefix, identifier
        self.packets: dict[tuple[str, float], float] = {}  # (sensor id, t_host_s) -> arrival (time.time)
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        from sensorhub.mqtt.topics import bundle_topic, decode_bundle, decode_raw, parse_raw_topic, raw_filter

        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.identifier) as c:
                    await c.subscribe(raw_filter(self.prefix), qos=1)
                    await c.subscribe(bundle_topic(self.prefix, "+"), qos=1)
                    self.subscribed.set()
                    async for message in c.messages:
                        if not isinstance(message.payload, bytes):
                            continue
                        now_s = time.time()
                        where = parse_raw_topic(self.prefix, str(message.topic))
                        if where is not None:
                            t_host_s, _ = decode_raw(message.payload)
                            self.packets.setdefault((where[1], t_host_s), now_s)
                            continue
                        for sensor_id, t_host_s, _ in decode_bundle(message.payload):
                            self.packets.setdefault((sensor_id, t_host_s), now_s)
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.1)


def recorded_keys(rec_dir: Path) -> set[tuple[str, float]]:
    """(sensor id, host receive time) of every packet in the recording(s) under ``rec_dir``."""
    firsts = sorted(p for p in rec_dir.glob("*.shrec") if ".part" not in p.name)
    return {(pk.sensor_id, pk.t_host_s) for p in firsts for pk in read_recording(p).packets()}


def history_rows(path: Path) -> tuple[list[Key], list[Key]]:
    """Events and cues the history store committed (read after the service closed it)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        events = [(r[0], r[1], float(r[2])) for r in conn.execute("SELECT leg_id, type, t_s FROM events")]
        cues = [(r[0], r[1], float(r[2])) for r in conn.execute("SELECT leg_id, phrase, t_s FROM cues")]
    return events, cues


def recorded_packets(rec_dir: Path) -> Counter[str]:
    """Packets by sensor in the service's recording(s) (later parts included)."""
    firsts = sorted(p for p in rec_dir.glob("*.shrec") if ".part" not in p.name)
    return Counter(packet.sensor_id for p in firsts for packet in read_recording(p).packets())


def influx_points(url: str, since_s: float) -> tuple[list[Key], list[Key], int]:
    """Event and cue points on the server and the number of points of every measurement (a point's
    numeric fields are separate series there: merged back by measurement, tags and time), from
    VictoriaMetrics' export API."""
    with urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10):
        pass
    query = urllib.parse.urlencode({"match[]": '{__name__=~".+"}', "start": f"{since_s - 60:.0f}"})
    points: dict[tuple[str, str, str, int], None] = {}
    every: set[tuple[str, tuple[tuple[str, str], ...], int]] = set()
    with urllib.request.urlopen(f"{url}/api/v1/export?{query}", timeout=60) as resp:
        for line in resp:
            series = json.loads(line)
            metric = series["metric"]
            name = str(metric.pop("__name__"))
            measurement = next((m for m in MEASUREMENTS if name.startswith(f"{m}_")), name)
            tags = tuple(sorted(metric.items()))
            every.update((measurement, tags, int(ts)) for ts in series["timestamps"])
            if measurement not in ("landing", "cut", "rep", "cue"):
                continue
            leg = f"{metric.get('athlete', '')}/{metric.get('leg', '')}"
            kind = metric.get("phrase", "") if measurement == "cue" else measurement
            for ts in series["timestamps"]:
                points[(measurement, leg, kind, int(ts))] = None
    events = [(leg, kind, ts / 1000.0) for m, leg, kind, ts in points if m != "cue"]
    cues = [(leg, kind, ts / 1000.0) for m, leg, kind, ts in points if m == "cue"]
    return events, cues, len(every)
