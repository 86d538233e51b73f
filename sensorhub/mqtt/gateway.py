"""``sensorhub gateway``: a packet source (BLE or simulator) -> raw packets on MQTT, one worker per athlete.

Packets are published unchanged with their host receive time: an athlete's packets of each
``[mqtt] raw_bundle_ms`` as one message on ``bundle/{athlete}`` (``topics.encode_bundle``; a broker and a
worker then handle one message where they handled a packet per sensor), or with ``raw_bundle_ms = 0`` each
on ``raw/{athlete}/{sensor_id}`` (``topics.encode_raw``). Which worker processes an athlete is settled
by the claim protocol (``sensorhub.mqtt.claims``):

    connect -> subscribe workers/+/status, claims/+ -> own echo on sync/{id} (the retained claims and
    statuses have arrived) -> offer every unclaimed athlete ONCE on announce/{athlete}
    claim seen (retained, by a worker not known offline) -> the athlete's packets flow to the broker
    no claim within ``offer_timeout_s`` -> offer again (the shared subscription may pick another worker)
    claim cleared, or its worker's status turns "offline" (last will) -> clear it (empty retained), re-offer

Until an athlete is claimed its packets wait in a bounded drop-oldest buffer (counted), then go out in
order. A publish the broker did not acknowledge because the connection dropped is re-queued (in host-time
order) and sent after the reconnect; the worker's timing stage drops the rare duplicate by sequence number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiomqtt

from sensorhub.config import BrokerConfig
from sensorhub.errors import ConfigError, ProtocolError
from sensorhub.model import RawPacket, SensorRef, athlete_id_problem, sensor_id_problem
from sensorhub.mqtt import topics
from sensorhub.mqtt.claims import WORKER_OFFLINE, WORKER_ONLINE, Claim, Offer
from sensorhub.mqtt.client import INFLIGHT_WINDOW, BrokerUnavailableError, MqttConnection, payload_bytes
from sensorhub.mqtt.rejects import BoundedTable, Rejections
from sensorhub.sources import PacketQueue, PacketSource

log = logging.getLogger(__name__)

# QoS 1 for raw packets: a broker hiccup is then a re-send, not a hole in the knee angles, and
# `sensorhub bench mqtt` measured its cost against QoS 0 as small at gateway rates (README, "Gateway").
RAW_QOS = 1
FAIR_SHARE = 8  # raw packets per athlete per round of the publisher (one packet per message)
MAX_BUNDLE_PACKETS = 256  # per bundle message (a backlog goes out in messages of at most this many)
MAX_WORKERS = 1024  # worker statuses remembered


@dataclass(frozen=True, slots=True)
class GatewayTiming:
    """Tuned constants of the hand-over and publishing policy."""

    offer_timeout_s: float = 5.0  # no claim this long after an offer: offer again (a worker refused/was busy)
    buffer_packets: int = 10_000  # per unclaimed athlete, drop-oldest (100 s of 4 sensors, 200 Hz, 8/packet)
    # Raw publishes awaiting their PUBACK at once: below paho's window, so that claims and offers never
    # queue in paho behind raw packets (they did with 256: a hand-over then took seconds).
    max_inflight: int = INFLIGHT_WINDOW - 4
    stop_timeout_s: float = 5.0  # on stop: time left to publish what was received for claimed athletes
    tick_s: float = 0.25  # how often offer time-outs are checked


@dataclass(slots=True)
class AthleteState:
    athlete: str
    sensors: tuple[SensorRef, ...]
    buffer: deque[RawPacket]
    worker: str | None = None  # holder of the claim
    offered_s: float | None = None  # monotonic time of the last unanswered offer
    retry: list[RawPacket] = field(default_factory=list)  # publishes lost with the connection


@dataclass(slots=True)
class GatewayStats:
    received: Counter[str] = field(default_factory=Counter)  # per sensor, from the source
    published: Counter[str] = field(default_factory=Counter)  # per sensor, acknowledged by the broker
    dropped: int = 0  # buffer overflow while an athlete waited for a worker (oldest first)
    resent: int = 0  # re-queued after the connection dropped before the PUBACK
    failed: int = 0  # refused by the broker (e.g. ACL); dropped
    offers: int = 0
    claims: int = 0
    handovers: int = 0  # claims cleared because the claiming worker went offline
    unsent: int = 0  # still buffered when the gateway stopped (athletes nobody claimed)
    rejected: Counter[str] = field(default_factory=Counter)  # malformed control messages, per reason

    def as_dict(self) -> dict[str, int]:
        return {
            "received": sum(self.received.values()),
            "published": sum(self.published.values()),
            "dropped": self.dropped,
            "resent": self.resent,
            "failed": self.failed,
            "offers": self.offers,
            "claims": self.claims,
            "handovers": self.handovers,
            "unsent": self.unsent,
            "rejected": self.rejected.total(),
        }


class Gateway:
    """Publishes ``source``'s packets for ``sensors`` (grouped by athlete) and runs the offer/claim side.

    ``await gateway.run(stop)`` until ``stop`` is set, or until a finite source ended and everything it
    produced was published. ``stats`` and ``claims()`` show progress."""

    def __init__(
        self,
        broker: BrokerConfig,
        source: PacketSource,
        sensors: Sequence[SensorRef],
        *,
        timing: GatewayTiming | None = None,
        qos: int = RAW_QOS,
        identifier: str | None = None,
    ) -> None:
        self.prefix = broker.topic_prefix
        self.source = source
        self.timing = timing or GatewayTiming()
        self.qos = qos
        self.bundle_s = broker.raw_bundle_ms / 1000.0
        self.conn = MqttConnection(broker, "gateway", on_connect=self._on_connect, identifier=identifier)
        self.gateway_id = self.conn.identifier
        self.stats = GatewayStats()
        self._athletes: dict[str, AthleteState] = {}
        for ref in sensors:
            if problem := athlete_id_problem(ref.athlete) or sensor_id_problem(ref.sensor_id):
                raise ConfigError(f"MQTT gateway: {problem}")
            st = self._athletes.get(ref.athlete)
            if st is None:
                st = AthleteState(ref.athlete, (), deque())
                self._athletes[ref.athlete] = st
            st.sensors += (ref,)
        self._topic = {s.sensor_id: topics.raw_topic(self.prefix, s.athlete, s.sensor_id) for s in sensors}
        self._bundle_topic = {a: topics.bundle_topic(self.prefix, a) for a in self._athletes}
        self._athlete_of = {s.sensor_id: self._athletes[s.athlete] for s in sensors}
        self._queue = PacketQueue()
        # Last status per worker id (True: online). Any client may invent worker ids: bounded, and the
        # least recently heard of is forgotten first (a claim naming it is then taken as it comes).
        self._workers: BoundedTable[str, bool] = BoundedTable(MAX_WORKERS)
        self.rejects = Rejections(f"gateway {self.gateway_id}", log, self.stats.rejected)
        self._sync = topics.sync_topic(self.prefix, self.gateway_id)
        self._sync_token = ""
        self._synced = False
        self._wake = asyncio.Event()  # packets, a claim or a reconnect: the publisher has work
        self._progress = asyncio.Event()  # something was published or claimed (stop/drain waits)
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.timing.max_inflight)
        self._source_done = asyncio.Event()

    def claims(self) -> dict[str, str | None]:
        """athlete -> the worker holding it (None: waiting for one)."""
        return {a: st.worker for a, st in self._athletes.items()}

    def buffered(self) -> int:
        return len(self._queue) + sum(len(st.buffer) + len(st.retry) for st in self._athletes.values())

    # ---- connection: state is rebuilt from the broker's retained messages after every (re)connect ----
    async def _on_connect(self, client: aiomqtt.Client) -> None:
        self._synced = False
        self._workers.clear()
        for st in self._athletes.values():
            st.worker = None
            st.offered_s = None
        self._sync_token = uuid.uuid4().hex
        client.pending_calls_threshold = self.timing.max_inflight + 16  # many in flight is the plan here
        await client.subscribe(topics.workers_status_filter(self.prefix), qos=1)
        await client.subscribe(topics.claims_filter(self.prefix), qos=1)
        await client.subscribe(self._sync, qos=1)
        # The broker sends retained messages before it routes this echo back: once it arrives, every
        # existing claim and worker status is known and only unclaimed athletes are offered.
        await client.publish(self._sync, self._sync_token, qos=1)
        self._wake.set()

    async def _offer(self, st: AthleteState) -> None:
        st.offered_s = time.monotonic()
        offer = Offer(st.athlete, st.sensors, self.gateway_id, time.time())
        try:
            await self.conn.publish(topics.announce_topic(self.prefix, st.athlete), offer.encode(), qos=1)
        except (BrokerUnavailableError, aiomqtt.MqttError) as exc:  # offered again on time-out/reconnect
            log.warning("athlete %s: the offer was not published (%s)", st.athlete, exc)
            return
        self.stats.offers += 1
        log.debug("offered %s", st.athlete)

    async def _clear_claim(self, st: AthleteState, why: str) -> None:
        log.info("athlete %s: clearing the claim of %s (%s); offering it again", st.athlete, st.worker, why)
        st.worker = None
        # Offered as of now: the time-out check must not offer it too while the clear is in flight.
        st.offered_s = time.monotonic()
        with contextlib.suppress(BrokerUnavailableError, aiomqtt.MqttError):  # a reconnect re-reads claims
            await self.conn.publish(topics.claim_topic(self.prefix, st.athlete), b"", qos=1, retain=True)
        await self._offer(st)

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic, data = str(message.topic), payload_bytes(message)
        worker = topics.parse_level(self.prefix, "workers", topic)
        if worker is not None:
            if data not in (WORKER_ONLINE, WORKER_OFFLINE, b""):
                self.rejects.reject("bad_status", f"{topic[:200]!r}: {data[:40]!r}")
                return
            if not data:  # a cleared retained status: nothing known about the worker
                self._workers.pop(worker)
                return
            self._workers[worker] = data == WORKER_ONLINE
            if data == WORKER_OFFLINE:
                orphans = [st for st in self._athletes.values() if st.worker == worker]
                self.stats.handovers += len(orphans)
                # All at once: each clear and offer waits for its PUBACK behind the raw packets in flight.
                await asyncio.gather(*(self._clear_claim(st, "its worker went offline") for st in orphans))
            return
        athlete = topics.parse_level(self.prefix, "claims", topic)
        if athlete is not None:
            claimed = self._athletes.get(athlete)
            if claimed is not None:
                await self._on_claim(claimed, data)
            return
        if topic == self._sync and data.decode(errors="replace") == self._sync_token:
            self._synced = True
            unclaimed = [st for st in self._athletes.values() if st.worker is None]
            for st in unclaimed:  # offered as of now: the time-out check must not offer them twice
                st.offered_s = time.monotonic()
            for st in unclaimed:
                await self._offer(st)

    async def _on_claim(self, st: AthleteState, data: bytes) -> None:
        try:
            claim = Claim.decode(data)
        except ProtocolError as exc:  # taken as "nobody": the athlete is offered again
            self.rejects.reject("bad_claim", f"claim of {st.athlete!r}: {exc}")
            claim = None
        if claim is None:
            st.worker = None
            if self._synced and self._offer_due(st, time.monotonic()):
                await self._offer(st)
            return
        if self._workers.get(claim.worker) is False:
            st.worker = claim.worker
            await self._clear_claim(st, "its worker is offline")
            return
        if st.worker != claim.worker:
            log.info("athlete %s claimed by %s", st.athlete, claim.worker)
            self.stats.claims += 1
        st.worker = claim.worker
        st.offered_s = None
        self._wake.set()
        self._progress.set()

    async def _follow(self) -> None:
        async for message in self.conn.messages():
            try:
                await self._on_message(message)
            except Exception as exc:  # no message may end the gateway
                self.rejects.reject("error", f"on {str(message.topic)[:200]!r}: {exc!r}", error=exc)

    async def _reoffer(self) -> None:
        while True:
            await asyncio.sleep(self.timing.tick_s)
            if not (self._synced and self.conn.connected):
                continue
            now_s = time.monotonic()
            for st in self._athletes.values():
                if st.worker is None and self._offer_due(st, now_s):
                    await self._offer(st)

    def _offer_due(self, st: AthleteState, now_s: float) -> bool:
        """Never offered, or offered and left unclaimed for ``offer_timeout_s``."""
        return st.offered_s is None or now_s - st.offered_s >= self.timing.offer_timeout_s

    # ---- packets -------------------------------------------------------------------------------------
    async def _run_source(self) -> None:
        try:
            await self.source.run(self._queue)
        finally:
            self._source_done.set()
            self._wake.set()

    def _route(self, packets: list[RawPacket]) -> None:
        for packet in packets:
            st = self._athlete_of.get(packet.sensor_id)
            if st is None:
                continue  # not one of the gateway's sensors (the source only yields configured ones)
            self.stats.received[packet.sensor_id] += 1
            if len(st.buffer) >= self.timing.buffer_packets:
                st.buffer.popleft()
                self.stats.dropped += 1
            st.buffer.append(packet)

    async def _wait_for_work(self) -> None:
        if len(self._queue):
            return
        waiters = {asyncio.ensure_future(self._queue.wait()), asyncio.ensure_future(self._wake.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        self._wake.clear()

    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        round_s = loop.time()
        while True:
            await self._wait_for_work()
            if self.bundle_s > 0.0:
                # the packets of one bundle period go out together (at most bundle_s later than alone)
                await asyncio.sleep(round_s + self.bundle_s - loop.time())
                round_s = loop.time()
            self._route(self._queue.drain())
            self._progress.set()
            for st in self._athletes.values():
                if st.retry:
                    merged = sorted([*st.retry, *st.buffer], key=lambda p: p.t_host_s)
                    self.stats.resent += len(st.retry)
                    st.retry.clear()
                    st.buffer.clear()
                    st.buffer.extend(merged)
            # Round robin, one message per athlete per pass: the backlog of an athlete that was waiting
            # for a worker must not hold up the live packets of every other athlete.
            per_message, share = (MAX_BUNDLE_PACKETS, 1) if self.bundle_s > 0.0 else (1, FAIR_SHARE)
            while ready := [st for st in self._athletes.values() if st.buffer and st.worker is not None]:
                for st in ready:
                    for _ in range(share):
                        if not st.buffer or st.worker is None or not self.conn.connected:
                            break
                        await self._slots.acquire()
                        packets = [st.buffer.popleft() for _ in range(min(per_message, len(st.buffer)))]
                        task = asyncio.create_task(self._publish(st, packets))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
                if not self.conn.connected:
                    break

    async def _publish(self, st: AthleteState, packets: list[RawPacket]) -> None:
        try:
            if self.bundle_s > 0.0:
                data = topics.encode_bundle([(p.sensor_id, p.t_host_s, p.payload) for p in packets])
                await self.conn.publish(self._bundle_topic[st.athlete], data, qos=self.qos)
            else:
                (packet,) = packets
                data = topics.encode_raw(packet.t_host_s, packet.payload)
                await self.conn.publish(self._topic[packet.sensor_id], data, qos=self.qos)
            self.stats.published.update(p.sensor_id for p in packets)
        except BrokerUnavailableError:
            st.retry.extend(packets)
            self._wake.set()
        except aiomqtt.MqttError as exc:
            before = self.stats.failed
            self.stats.failed += len(packets)
            if before == 0 or before // 1000 != self.stats.failed // 1000:
                log.warning("the broker refused %d raw packet(s) of %s: %s", len(packets), st.athlete, exc)
        finally:
            self._slots.release()
            self._progress.set()

    def _all_sent(self, claimed_only: bool) -> bool:
        if len(self._queue) or self._inflight:
            return False
        return all(
            not (st.buffer or st.retry) for st in self._athletes.values() if st.worker or not claimed_only
        )

    async def _until(self, done: Callable[[], bool]) -> None:
        while not done():
            self._progress.clear()
            await self._progress.wait()

    async def _drained(self) -> None:
        await self._source_done.wait()
        await self._until(lambda: self._all_sent(claimed_only=False))

    # ---- lifecycle -------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop if stop is not None else asyncio.Event()
        async with self.conn, asyncio.TaskGroup() as tg:
            source = tg.create_task(self._run_source(), name="gateway-source")
            helpers = [
                tg.create_task(self._follow(), name="gateway-claims"),
                tg.create_task(self._reoffer(), name="gateway-offers"),
                tg.create_task(self._publish_loop(), name="gateway-publish"),
            ]
            ends = {tg.create_task(stop.wait()), tg.create_task(self._drained())}
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            # Ordered stop: no new packets; what claimed athletes received is still published.
            source.cancel()
            await asyncio.wait({source})
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timing.stop_timeout_s):
                    await self._until(lambda: self._all_sent(claimed_only=True))
            for task in (*helpers, *ends, *self._inflight):
                task.cancel()
        self.stats.unsent = self.buffered()
        if self.stats.unsent:
            log.warning("gateway stopped with %d packets unsent (no worker took them)", self.stats.unsent)
