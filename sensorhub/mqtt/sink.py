"""The MQTT result sink: bus (angles, events, cues) + per-leg status -> bounded outbox -> broker.

The bus never waits on MQTT: the sink's consumer only turns bus messages into payloads and appends them
to the OUTBOX; one publisher task drains it, in order, one message at a time. While the broker is away
messages wait there and go out after the reconnect, still in order. When the outbox is full the sink
drops, oldest first, angles, then superseded leg status, and only then events and cues (every drop
counted per kind). A QoS 1 message is done when PUBACKed; one whose connection dropped first is sent
again after the reconnect (at-least-once: consumers dedupe, see ``sensorhub.mqtt.payloads``).

QoS / retain: events and cues QoS 1; angles QoS 0; leg status QoS 1 retained, every ``STATUS_PERIOD_S``;
``services/{client_id}/status`` retained "online" after each connect, "offline" on a clean shutdown and
as the last will (the broker publishes it when the connection dies).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from sensorhub.bus import Bus, Message, Subscription
from sensorhub.config import Config
from sensorhub.kinematics import concat_angles
from sensorhub.model import KneeAngles
from sensorhub.mqtt import payloads, topics
from sensorhub.mqtt.client import BrokerUnavailableError, MqttConnection
from sensorhub.timing import Decimator

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 1.0
# Decimated angles of a leg go out in batches spanning about this long (fewer, larger messages).
ANGLES_BATCH_S = 0.25
# Bus mailbox of the sink: it only builds payloads, so it lags only if the loop itself is starved.
BUS_QUEUE_SIZE = 100_000
# On shutdown: how long the outbox may take to reach the broker before what is left is dropped.
FLUSH_TIMEOUT_S = 3.0
# A publish refused on a live connection (not a lost one) is retried after this pause.
RETRY_PAUSE_S = 0.5
# ... at most this many times; then the message is dropped (counted) so the ones behind it go out.
PUBLISH_ATTEMPTS = 3

QOS = {"angles": 0, "status": 1, "events": 1, "cues": 1}
# Drop tiers when the outbox is full, first dropped first; events and cues share the last tier.
DROP_TIERS = (("angles",), ("status",), ("events", "cues"))


@dataclass(frozen=True, slots=True)
class OutMessage:
    seq: int  # global enqueue order: the publisher always sends the smallest
    kind: str  # "angles" | "events" | "cues" | "status"
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


class Outbox:
    """Bounded and ordered, with a drop policy by kind: one deque per drop tier, merged by ``seq``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._tiers: list[deque[OutMessage]] = [deque() for _ in DROP_TIERS]
        self._tier_of = {kind: i for i, kinds in enumerate(DROP_TIERS) for kind in kinds}
        self._seq = 0
        self._event = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.queued: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.superseded = 0  # leg status replaced by a newer one before it was sent

    def __len__(self) -> int:
        return sum(len(t) for t in self._tiers)

    def put(self, kind: str, topic: str, payload: bytes, retain: bool = False) -> None:
        tier = self._tiers[self._tier_of[kind]]
        if retain:  # a retained state: only the newest per topic is worth sending
            for old in [m for m in tier if m.topic == topic]:
                tier.remove(old)
                self.superseded += 1
        self._seq += 1
        tier.append(OutMessage(self._seq, kind, topic, payload, QOS[kind], retain))
        self.queued[kind] += 1
        while len(self) > self.capacity:
            victims = next(t for t in self._tiers if t)
            self.dropped[victims.popleft().kind] += 1
        self._event.set()
        self._empty.clear()

    def pop(self) -> OutMessage | None:
        heads = [t for t in self._tiers if t]
        if not heads:
            return None
        message = min(heads, key=lambda t: t[0].seq).popleft()
        if not len(self):
            self._event.clear()
        return message

    async def get(self) -> OutMessage:
        while True:
            message = self.pop()
            if message is not None:
                return message
            self._event.clear()
            await self._event.wait()

    def mark_empty(self) -> None:
        """The publisher has nothing in hand and nothing queued."""
        if not len(self):
            self._empty.set()

    async def wait_empty(self) -> None:
        await self._empty.wait()


@dataclass(slots=True)
class _LegAngles:
    """Decimation state and the pending batch of one leg."""

    parts: list[KneeAngles] = field(default_factory=list)
    first_t_s: float = math.nan


class AngleDecimator:
    """Keeps one sample per ``1 / rate_hz`` per leg and hands out batches of ``ANGLES_BATCH_S``."""

    def __init__(self, rate_hz: float, batch_s: float = ANGLES_BATCH_S) -> None:
        self.decimator = Decimator(rate_hz)
        self.min_dt_s = self.decimator.min_dt_s
        self.batch_s = batch_s
        self._legs: dict[str, _LegAngles] = {}

    def push(self, angles: KneeAngles) -> KneeAngles | None:
        leg = self._legs.setdefault(angles.leg_id, _LegAngles())
        idx = self.decimator.keep(angles.leg_id, angles.t_s)
        if not idx.size:
            return None
        kept = KneeAngles(
            angles.leg_id,
            angles.t_s[idx],
            angles.flexion_rad[idx],
            angles.valgus_rad[idx],
            angles.rotation_rad[idx],
            angles.quality[idx],
        )
        if not leg.parts:
            leg.first_t_s = float(kept.t_s[0])
        leg.parts.append(kept)
        if float(kept.t_s[-1]) - leg.first_t_s >= self.batch_s - self.min_dt_s * 0.5:
            return self._take(angles.leg_id, leg)
        return None

    def flush(self) -> list[KneeAngles]:
        """Every pending batch (stale legs, shutdown)."""
        return [self._take(leg_id, leg) for leg_id, leg in self._legs.items() if leg.parts]

    @staticmethod
    def _take(leg_id: str, leg: _LegAngles) -> KneeAngles:
        parts, leg.parts = leg.parts, []
        return concat_angles(parts, leg_id)


class MqttSink:
    """Publishes a service's results to the ``[mqtt]`` broker: ``await sink.run(bus, health)`` runs until
    cancelled, then flushes for at most ``flush_timeout_s``; ``counters()`` feeds /health."""

    def __init__(self, config: Config, *, flush_timeout_s: float = FLUSH_TIMEOUT_S) -> None:
        self.prefix = config.mqtt.topic_prefix
        self.settings = config.sinks.mqtt
        self.flush_timeout_s = flush_timeout_s
        self.outbox = Outbox(self.settings.outbox_size)
        rate_hz = self.settings.angles_rate_hz
        self.decimator = AngleDecimator(rate_hz) if rate_hz > 0.0 else None
        self.connection = MqttConnection(config.mqtt, "sink", on_connect=self._announce)
        self.status_topic = topics.service_status_topic(self.prefix, self.connection.identifier)
        self.connection.will = aiomqtt.Will(self.status_topic, payloads.SERVICE_OFFLINE, qos=1, retain=True)
        self.published: Counter[str] = Counter()
        self.publish_errors = 0
        self.failed: Counter[str] = Counter()  # per kind: messages that could not be sent, dropped
        self.flush_dropped = 0  # left in the outbox when the shutdown flush timed out
        self._sub: Subscription | None = None
        self._in_hand: OutMessage | None = None

    def counters(self) -> dict[str, Any]:
        """For /health: outbox and delivery counts, drops by kind, connection state."""
        conn = self.connection.stats
        return {
            "connected": conn.connected,
            "state": str(conn.state),
            "reconnects": conn.reconnects,
            "connection_lost": conn.lost,
            "failed_connects": conn.failed_attempts,
            "last_error": conn.last_error,
            "outbox": len(self.outbox) + (self._in_hand is not None),
            "outbox_size": self.outbox.capacity,
            "queued": sum(self.outbox.queued.values()),
            "published": sum(self.published.values()),
            "published_by_kind": dict(self.published),
            "dropped_by_kind": dict(self.outbox.dropped),
            "status_superseded": self.outbox.superseded,
            "bus_dropped": self._sub.dropped if self._sub is not None else 0,
            "publish_errors": self.publish_errors,
            "failed_by_kind": dict(self.failed),
            "flush_dropped": self.flush_dropped,
        }

    # ---- run ----------------------------------------------------------------------------------------
    async def run(self, bus: Bus, health: Callable[[], dict[str, Any]] | None = None) -> None:
        kinds = ["events", "cues"] + (["angles"] if self.decimator is not None else [])
        sub = self._sub = bus.subscribe(kinds, maxsize=BUS_QUEUE_SIZE)
        try:
            async with self.connection, asyncio.TaskGroup() as tg:
                publisher = tg.create_task(self._publish_loop(), name="mqtt-sink-publish")
                ticker = tg.create_task(self._tick_loop(health), name="mqtt-sink-status")
                try:
                    async for message in sub:
                        self.offer(message)
                finally:
                    # Ordered shutdown, connection still up: take what the bus still holds, give the
                    # outbox a bounded time to reach the broker, then say "offline" and disconnect.
                    ticker.cancel()
                    await self._flush(sub, publisher)
        finally:
            sub.close()

    def offer(self, message: Message) -> None:
        """A bus message -> payload -> outbox (never blocks)."""
        if message.topic == "angles":
            if self.decimator is not None:
                batch = self.decimator.push(message.payload)
                if batch is not None:
                    self._put_angles(batch)
        elif message.topic == "events":
            event = message.payload
            self.outbox.put("events", self._leg_topic(event.leg_id, "events"), payloads.event_payload(event))
        elif message.topic == "cues":
            cue = message.payload
            self.outbox.put("cues", self._leg_topic(cue.leg_id, "cues"), payloads.cue_payload(cue))

    def offer_status(self, health: dict[str, Any]) -> None:
        for leg_id, payload in payloads.leg_status_payloads(health, time.time()).items():
            self.outbox.put("status", self._leg_topic(leg_id, "status"), payload, retain=True)

    def _put_angles(self, batch: KneeAngles) -> None:
        self.outbox.put("angles", self._leg_topic(batch.leg_id, "angles"), payloads.angles_payload(batch))

    def _leg_topic(self, leg_id: str, kind: str) -> str:
        return topics.leg_topic(self.prefix, leg_id, kind)

    async def _announce(self, client: aiomqtt.Client) -> None:
        await client.publish(self.status_topic, payloads.SERVICE_ONLINE, qos=1, retain=True)

    async def _tick_loop(self, health: Callable[[], dict[str, Any]] | None) -> None:
        while True:
            await asyncio.sleep(STATUS_PERIOD_S)
            if health is not None:
                self.offer_status(health())
            if self.decimator is not None:  # a leg that went quiet still sends its last samples
                for batch in self.decimator.flush():
                    self._put_angles(batch)

    async def _publish_loop(self) -> None:
        while True:
            message = self.outbox.pop()
            if message is None:
                self.outbox.mark_empty()
                message = await self.outbox.get()
            self._in_hand = message
            sent = await self._deliver(message)
            self._in_hand = None
            if sent:
                self.published[message.kind] += 1

    async def _deliver(self, message: OutMessage) -> bool:
        """Until the broker has it (PUBACK for QoS 1), across reconnects; False when the message cannot
        be sent (refused by the client library, or failing on a live connection PUBLISH_ATTEMPTS times):
        it is dropped and counted, and the messages behind it go on."""
        attempts = 0
        while True:
            try:
                await self.connection.publish(message.topic, message.payload, message.qos, message.retain)
                return True
            except BrokerUnavailableError:
                await self.connection.wait_connected()
            except (ValueError, TypeError) as exc:  # paho refuses it (a wildcard in the topic, too large)
                self._failed(message, exc)
                return False
            except aiomqtt.MqttError as exc:  # refused or timed out on a live connection: try again
                self.publish_errors += 1
                attempts += 1
                if attempts >= PUBLISH_ATTEMPTS:
                    self._failed(message, exc)
                    return False
                log.warning("MQTT sink: publish to %s failed (%s); retrying", message.topic, exc)
                await asyncio.sleep(RETRY_PAUSE_S)

    def _failed(self, message: OutMessage, exc: Exception) -> None:
        self.failed[message.kind] += 1
        total = self.failed.total()
        if total == 1 or total % 1000 == 0:
            log.error(
                "MQTT sink: dropped a %s message to %r (%s); %d dropped so far",
                message.kind,
                message.topic,
                exc,
                total,
            )

    async def _flush(self, sub: Subscription, publisher: asyncio.Task[None]) -> None:
        for message in sub.drain():
            self.offer(message)
        if self.decimator is not None:
            for batch in self.decimator.flush():
                self._put_angles(batch)
        empty = asyncio.ensure_future(self.outbox.wait_empty())
        await asyncio.wait({empty, publisher}, timeout=self.flush_timeout_s)
        empty.cancel()
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        self.flush_dropped = len(self.outbox) + (self._in_hand is not None)
        if self.flush_dropped:
            log.warning(
                "MQTT sink: %d messages not sent within %.1f s of shutdown",
                self.flush_dropped,
                self.flush_timeout_s,
            )
        if self.connection.connected:  # a clean disconnect does not fire the will: say it ourselves
            with contextlib.suppress(BrokerUnavailableError, aiomqtt.MqttError):
                await asyncio.wait_for(
                    self.connection.publish(self.status_topic, payloads.SERVICE_OFFLINE, 1, retain=True),
                    self.flush_timeout_s,
                )
