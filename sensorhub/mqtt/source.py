"""MQTT ingest for scale-out workers (``[source] kind = "mqtt"``): raw packets from ``sensorhub gateway``s.

A worker takes athletes, not packets (see ``sensorhub.mqtt.claims``): it listens to the gateways' offers
through the shared subscription ``$share/{[mqtt] worker_group}/{prefix}/announce/+`` (each offer reaches
one worker of the group), and for an athlete it is configured for, with the same sensors, it subscribes
to ``raw/{athlete}/+`` and ``bundle/{athlete}`` and only after the broker's SUBACK publishes its retained
claim. Its status
(``workers/{id}/status``) is retained "online" with the last will "offline", so when the worker dies the
gateway hands its athletes to another worker; on a clean stop it releases its claims itself first.

Each raw message, and each packet of a bundle, becomes a ``RawPacket(sensor_id, t_host_s, payload)`` in
the queue; a malformed one (topic not parseable, unknown sensor, payload shorter than the header, a bundle
of an unknown version or cut off) is counted per reason and dropped (a bad bundle as a whole).
Packet-level faults are left to the decoder, as for BLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiomqtt

from sensorhub.config import BrokerConfig, Config
from sensorhub.errors import ConfigError, ProtocolError
from sensorhub.model import RawPacket, SensorRef, athlete_id_problem, sensor_id_problem
from sensorhub.mqtt import topics
from sensorhub.mqtt.claims import WORKER_OFFLINE, WORKER_ONLINE, Claim, Offer
from sensorhub.mqtt.client import BrokerUnavailableError, MqttConnection, client_id, payload_bytes
from sensorhub.mqtt.rejects import BoundedTable, Rejections
from sensorhub.sources import LinkState, PacketQueue, SensorLink, SourceSetup, configured_sensors

log = logging.getLogger(__name__)

RAW_SUBSCRIBE_QOS = 1  # the gateway publishes at QoS 1; the broker delivers at min(publish, subscribe)
RELEASE_TIMEOUT_S = 2.0  # on stop: time to release claims and say "offline" before disconnecting
MALFORMED_REASONS = (
    "bad_topic", "unknown_sensor", "short_header", "bad_bundle", "bad_offer", "bad_claim", "error"
)
MAX_REFUSED = 256  # athletes whose refused offers /health explains (ids come from the wire: bounded)


class MqttSource:
    """A ``PacketSource`` taking the configured athletes from gateways; ``links()`` has one entry per
    configured sensor (MISSING while its athlete is not held, STREAMING while its packets arrive)."""

    def __init__(
        self, broker: BrokerConfig, sensors: Sequence[SensorRef], identifier: str | None = None
    ) -> None:
        self.prefix = broker.topic_prefix
        self.group = broker.worker_group
        self._by_athlete: dict[str, list[SensorRef]] = {}
        for ref in sensors:
            if problem := athlete_id_problem(ref.athlete) or sensor_id_problem(ref.sensor_id):
                raise ConfigError(f"MQTT worker: {problem}")
            self._by_athlete.setdefault(ref.athlete, []).append(ref)
        self._athlete_of = {s.sensor_id: s.athlete for s in sensors}
        self._links = {s.sensor_id: SensorLink(s.sensor_id, state=LinkState.MISSING) for s in sensors}
        self.worker_id = identifier or client_id(broker, "worker")
        self._status_topic = topics.worker_status_topic(self.prefix, self.worker_id)
        will = aiomqtt.Will(self._status_topic, WORKER_OFFLINE, qos=1, retain=True)
        self.conn = MqttConnection(
            broker, "worker", will=will, on_connect=self._on_connect, identifier=self.worker_id
        )
        self._sync_topic = topics.sync_topic(self.prefix, self.worker_id)
        self._client: aiomqtt.Client | None = None
        self._sync_token = ""
        self.ready = asyncio.Event()  # connected, subscribed and in step with the retained claims
        self.held: dict[str, float] = {}  # athlete -> wall time of the claim
        self._claiming: set[str] = set()  # claimed, our claim not yet seen back from the broker
        self.received: Counter[str] = Counter()  # packets per sensor handed to the pipeline
        self.rejects = Rejections(f"worker {self.worker_id}", log)
        self.malformed = self.rejects.counts  # per reason (MALFORMED_REASONS)
        self.unclaimed = 0  # packets of an athlete this worker no longer holds (in flight at a hand-over)
        self.refused: BoundedTable[str, str] = BoundedTable(MAX_REFUSED)  # athlete -> why it was refused

    def links(self) -> dict[str, SensorLink]:
        return self._links

    def diagnostics(self) -> dict[str, Any]:
        """For /health: the broker connection, the athletes held, and what was refused or dropped."""
        return {
            "worker": self.worker_id,
            "connection": self.conn.stats.as_dict(),
            "athletes": sorted(self.held),
            "malformed": {r: self.malformed[r] for r in MALFORMED_REASONS},
            "unclaimed_packets": self.unclaimed,
            "refused": self.refused.as_dict(),
            "refused_evicted": self.refused.evicted,
        }

    # ---- connection ------------------------------------------------------------------------------------
    async def _on_connect(self, client: aiomqtt.Client) -> None:
        """Fresh session: nothing held; retained claims naming this worker are stale and get cleared."""
        self._client = client
        self.ready.clear()
        for athlete in list(self.held):
            self._drop(athlete, "reconnected")
        self._claiming.clear()
        self._sync_token = uuid.uuid4().hex
        await client.publish(self._status_topic, WORKER_ONLINE, qos=1, retain=True)
        await client.subscribe(self._status_topic, qos=1)
        await client.subscribe(topics.claims_filter(self.prefix), qos=1)
        await client.subscribe(self._sync_topic, qos=1)
        await client.publish(self._sync_topic, self._sync_token, qos=1)
        await client.subscribe(topics.shared_announce_filter(self.prefix, self.group), qos=1)

    def _drop(self, athlete: str, why: str) -> None:
        if self.held.pop(athlete, None) is not None:
            log.info("worker %s: athlete %s released (%s)", self.worker_id, athlete, why)
        for ref in self._by_athlete.get(athlete, []):
            self._links[ref.sensor_id].set_state(LinkState.MISSING)
            self._links[ref.sensor_id].disconnects += 1

    async def _take(self, offer: Offer) -> None:
        client = self._client
        if client is None:
            return
        if offer.athlete not in self.held:
            reason = offer.mismatch(self._by_athlete.get(offer.athlete, []))
            if reason:
                self.refused[offer.athlete] = reason
                log.warning("worker %s: refusing the offer of %s: %s", self.worker_id, offer.gateway, reason)
                return
            # Subscribed (SUBACK) before the claim: no packet sent after the claim can miss this worker.
            for raw_filter in self._raw_filters(offer.athlete):
                await client.subscribe(raw_filter, qos=RAW_SUBSCRIBE_QOS)
            self.held[offer.athlete] = time.time()
            for ref in self._by_athlete[offer.athlete]:
                self._links[ref.sensor_id].set_state(LinkState.CONNECTING)
                self._links[ref.sensor_id].connects += 1
            log.info("worker %s: took athlete %s from %s", self.worker_id, offer.athlete, offer.gateway)
        claim = Claim(self.worker_id, time.time())
        self._claiming.add(offer.athlete)
        await self.conn.publish(
            topics.claim_topic(self.prefix, offer.athlete), claim.encode(), qos=1, retain=True
        )

    async def _on_claim(self, athlete: str, data: bytes) -> None:
        try:
            claim = Claim.decode(data)
        except ProtocolError as exc:
            self.rejects.reject("bad_claim", f"claim of {athlete!r}: {exc}")
            return
        mine = claim is not None and claim.worker == self.worker_id
        if not self.ready.is_set():  # before our sync echo: the retained claims of earlier connections
            if mine:  # left from an earlier connection of this worker: let the gateway re-offer it
                await self.conn.publish(topics.claim_topic(self.prefix, athlete), b"", qos=1, retain=True)
            return
        if athlete in self._claiming:
            # Claims before our own echo were made before ours (the broker keeps one order): ours wins.
            if mine:
                self._claiming.discard(athlete)
            return
        if athlete in self.held and not mine:
            # Cleared by the gateway (it saw this worker as offline) or taken by another worker.
            self._drop(athlete, f"claimed by {claim.worker}" if claim else "claim cleared")
            client = self._client
            if client is not None:
                with contextlib.suppress(aiomqtt.MqttError):
                    for raw_filter in self._raw_filters(athlete):
                        await client.unsubscribe(raw_filter)

    # ---- messages ----------------------------------------------------------------------------------------
    def _count_malformed(self, reason: str, detail: str, sensor_id: str | None = None) -> None:
        self.rejects.reject(reason, detail)
        if sensor_id is not None and sensor_id in self._links:
            self._links[sensor_id].last_error = f"mqtt {reason}: {detail}"

    def _raw_filters(self, athlete: str) -> tuple[str, str]:
        """Where a gateway publishes an athlete's packets: bundled, or one message per packet."""
        return topics.bundle_topic(self.prefix, athlete), topics.raw_filter(self.prefix, athlete)

    def _on_raw(self, topic: str, data: bytes, out: PacketQueue) -> None:
        parsed = topics.parse_raw_topic(self.prefix, topic)
        if parsed is None:
            self._count_malformed("bad_topic", f"topic {topic!r}")
            return
        athlete, sensor_id = parsed
        if athlete not in self.held:
            self.unclaimed += 1
            return
        if not self._configured(athlete, sensor_id):
            return
        try:
            t_host_s, payload = topics.decode_raw(data)
        except ValueError as exc:
            self._count_malformed("short_header", str(exc), sensor_id)
            return
        self._accept(sensor_id, t_host_s, payload, out)

    def _on_bundle(self, athlete: str, data: bytes, out: PacketQueue) -> None:
        try:
            packets = topics.decode_bundle(data)
        except ValueError as exc:
            self._count_malformed("bad_bundle", f"bundle of {athlete[:200]!r}: {exc}")
            return
        if athlete not in self.held:
            self.unclaimed += len(packets)
            return
        for sensor_id, t_host_s, payload in packets:
            if self._configured(athlete, sensor_id):
                self._accept(sensor_id, t_host_s, payload, out)

    def _configured(self, athlete: str, sensor_id: str) -> bool:
        if self._athlete_of.get(sensor_id) == athlete:
            return True
        self._count_malformed("unknown_sensor", f"{sensor_id[:200]!r} is not configured for {athlete!r}")
        return False

    def _accept(self, sensor_id: str, t_host_s: float, payload: bytes, out: PacketQueue) -> None:
        out.put_nowait(RawPacket(sensor_id, t_host_s, payload))
        self.received[sensor_id] += 1
        link = self._links[sensor_id]
        link.last_packet_host_s = t_host_s
        if link.state is not LinkState.STREAMING:
            link.set_state(LinkState.STREAMING)

    async def _on_message(self, message: aiomqtt.Message, out: PacketQueue) -> None:
        topic, data = str(message.topic), payload_bytes(message)
        if topic.startswith(f"{self.prefix}/raw/"):
            self._on_raw(topic, data, out)
            return
        if (bundled := topics.parse_level(self.prefix, "bundle", topic)) is not None:
            self._on_bundle(bundled, data, out)
            return
        athlete = topics.parse_level(self.prefix, "claims", topic)
        if athlete is not None:
            if athlete_id_problem(athlete):
                self._count_malformed("bad_claim", f"topic {topic[:200]!r}: {athlete_id_problem(athlete)}")
            else:
                await self._on_claim(athlete, data)
        elif (offered := topics.parse_level(self.prefix, "announce", topic)) is not None:
            try:
                offer = Offer.decode(data)
            except ProtocolError as exc:
                self._count_malformed("bad_offer", f"on {topic[:200]!r}: {exc}")
                return
            if offer.athlete != offered:
                self._count_malformed("bad_offer", f"on {topic[:200]!r}: offers athlete {offer.athlete!r}")
                return
            await self._take(offer)
        elif topic == self._status_topic and data == WORKER_OFFLINE and self._client is not None:
            # A will of an earlier connection under this id arrived after our "online": correct it.
            await self.conn.publish(self._status_topic, WORKER_ONLINE, qos=1, retain=True)
        elif topic == self._sync_topic and data.decode(errors="replace") == self._sync_token:
            self.ready.set()

    async def _release(self) -> None:
        """Clean stop: leave the group first (an offer must not come back here), then free every athlete
        so the gateways re-offer them at once, then say "offline"."""
        client = self._client
        if client is None or not self.conn.connected:
            return
        await client.unsubscribe(topics.shared_announce_filter(self.prefix, self.group))
        for athlete in list(self.held):
            await self.conn.publish(topics.claim_topic(self.prefix, athlete), b"", qos=1, retain=True)
            self._drop(athlete, "worker stopping")
        await self.conn.publish(self._status_topic, WORKER_OFFLINE, qos=1, retain=True)

    async def run(self, out: PacketQueue) -> None:
        async with self.conn:
            try:
                async for message in self.conn.messages():
                    try:
                        await self._on_message(message, out)
                    except (BrokerUnavailableError, aiomqtt.MqttError) as exc:
                        log.info("worker %s: %s (the reconnect restores the state)", self.worker_id, exc)
                    except Exception as exc:  # no message may end the worker
                        self.rejects.reject("error", f"on {str(message.topic)[:200]!r}: {exc!r}", error=exc)
            finally:
                with contextlib.suppress(TimeoutError, aiomqtt.MqttError, BrokerUnavailableError):
                    async with asyncio.timeout(RELEASE_TIMEOUT_S):
                        await self._release()


def make_mqtt_source(config: Config) -> SourceSetup:
    """``source.kind = "mqtt"``: a worker taking the configured athletes from the gateways."""
    sensors = configured_sensors(config)
    if not sensors:
        raise ConfigError(
            f"{config.source_file}: source.kind = 'mqtt' needs [[athletes]] with their sensors: a worker "
            "only takes the athletes it is configured for"
        )
    configured = [s for a in config.athletes for s in a.sensors]
    meta: dict[str, object] = {
        "source": "mqtt",
        "broker": f"{config.mqtt.host}:{config.mqtt.port}",
        "sensors": [{"sensor_id": s.id, "protocol": s.protocol} for s in configured],
    }
    protocols: dict[str, str] = {s.id: s.protocol for s in configured}
    return SourceSetup(MqttSource(config.mqtt, sensors), sensors, protocols, meta)
