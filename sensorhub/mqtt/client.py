"""One MQTT v5 connection kept up against the ``[mqtt]`` broker (result sink, gateway, worker source).

aiomqtt has no hidden reconnection (by design); this module is the explicit loop its docs recommend,
written once: connect (with a last will), run ``on_connect`` (publish "online", subscribe), watch the
connection, and on loss back off (exponential, jittered, ``reconnect_min_s`` .. ``reconnect_max_s``)
and connect again with a fresh client. The connection's state and counters are plain data for /health.

``publish`` never waits on a dead connection: it races the broker's acknowledgement (QoS 1: PUBACK)
against the loss of the connection and raises :class:`BrokerUnavailableError` when the connection is down
or drops before the acknowledgement, so the caller decides what to re-send (the sink re-queues). No
acknowledgement within ``PUBLISH_TIMEOUT_S`` on a connection that looks up is a silent network drop: the
connection is dropped then and there (the keepalive alone takes up to twice ``keepalive_s``).
Incoming messages (after ``on_connect`` subscribed) are an async iterator, ``messages()``; no callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from sensorhub.config import BrokerConfig
from sensorhub.errors import SensorhubError
from sensorhub.mqtt.topics import check_id
from sensorhub.mqtt.transport import DrainingClient, inbox_type

log = logging.getLogger(__name__)

# A PUBACK (or a QoS 0 write) slower than this on a live connection counts as a failed publish.
PUBLISH_TIMEOUT_S = 10.0
# QoS 1/2 publishes paho puts on the wire before their PUBACKs (its default, set explicitly): more wait
# in paho's queue, in order. A bulk publisher must keep fewer in flight than this, or its control
# messages (claims, offers) queue behind its data (the gateway, GatewayTiming.max_inflight).
INFLIGHT_WINDOW = 20
# Incoming messages waiting for the consumer; beyond this the oldest are dropped (counted).
INCOMING_QUEUE_SIZE = 100_000
# CONNACK reason codes that retrying cannot fix (MQTT 3.1.1: 4, 5; MQTT 5: 0x86, 0x87, 0x8C).
AUTH_REFUSED_CODES = frozenset({4, 5, 0x86, 0x87, 0x8C})


class BrokerUnavailableError(SensorhubError):
    """The broker connection is down, or dropped before the broker acknowledged: retry after reconnect."""


class ConnectionState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKING_OFF = "backing_off"
    CLOSED = "closed"


@dataclass(slots=True)
class ConnectionStats:
    """What /health shows about one connection."""

    state: ConnectionState = ConnectionState.IDLE
    connects: int = 0  # successful CONNACKs
    reconnects: int = 0  # successful CONNACKs after the first
    failed_attempts: int = 0  # connects refused or unreachable
    lost: int = 0  # established connections that dropped
    incoming_dropped: int = 0
    last_error: str = ""
    backoff_s: float = 0.0
    state_since_s: float = field(default_factory=time.time)

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED

    def set_state(self, state: ConnectionState, error: str = "") -> None:
        if state is not self.state:
            self.state = state
            self.state_since_s = time.time()
        if error:
            self.last_error = error

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "connected": self.connected,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "failed_attempts": self.failed_attempts,
            "lost": self.lost,
            "incoming_dropped": self.incoming_dropped,
            "last_error": self.last_error,
        }


class Backoff:
    """Exponential backoff with jitter: attempt k waits uniform(d/2, d), d = min(max_s, min_s * 2^k), so
    many clients that lost the same broker do not all come back in the same instant."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not 0.0 < min_s <= max_s:
            raise ValueError(f"backoff needs 0 < min_s <= max_s, got {min_s}, {max_s}")
        self.min_s = min_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_s(self) -> float:
        delay_s = min(self.max_s, self.min_s * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return self._rng.uniform(delay_s / 2.0, delay_s)

    def reset(self) -> None:
        self.attempt = 0


def payload_bytes(message: aiomqtt.Message) -> bytes:
    """A received message's payload as bytes (aiomqtt types it loosely; ours are always bytes)."""
    data = message.payload
    return bytes(data) if isinstance(data, bytes | bytearray) else b""


def client_id(broker: BrokerConfig, role: str) -> str:
    """``<[mqtt] client_id>-<role>``, or ``sensorhub-<host>-<pid>-<role>`` when none is configured
    (two clients with one id knock each other off the broker)."""
    stem = broker.client_id or f"sensorhub-{socket.gethostname()}-{os.getpid()}"
    return check_id(f"{stem}-{role}", "MQTT client id")


def uses_tls(broker: BrokerConfig) -> bool:
    return broker.tls or bool(broker.ca_file or broker.cert_file or broker.key_file)


def tls_params(broker: BrokerConfig) -> aiomqtt.TLSParameters | None:
    """``[mqtt]`` TLS settings for aiomqtt (the broker's certificate is always verified against
    ``ca_file`` or the system's CAs; ``tls_insecure`` only skips the host name check)."""
    if not uses_tls(broker):
        return None
    return aiomqtt.TLSParameters(
        ca_certs=broker.ca_file or None,
        certfile=broker.cert_file or None,
        keyfile=broker.key_file or None,
        cert_reqs=ssl.CERT_REQUIRED,
    )


def _is_auth_refusal(exc: BaseException) -> bool:
    rc = getattr(exc, "rc", None)
    value = rc.value if isinstance(rc, ReasonCode) else rc
    return isinstance(value, int) and value in AUTH_REFUSED_CODES


OnConnect = Callable[[aiomqtt.Client], Awaitable[None]]


class MqttConnection:
    """``async with MqttConnection(broker, "sink", will=...) as conn:`` keeps one client connected until
    the block ends (then it disconnects cleanly, so the broker does NOT publish the will).

    ``on_connect(client)`` runs after every CONNACK, before ``publish`` is open to others: it uses the
    aiomqtt client it is given (restore subscriptions, publish "online"); an MqttError in it counts as a
    lost connection. Then use ``publish``, ``subscribe`` and ``messages()``; ``stats`` for /health.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        role: str,
        *,
        will: aiomqtt.Will | None = None,
        on_connect: OnConnect | None = None,
        identifier: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.broker = broker
        self.identifier = identifier or client_id(broker, role)
        self.will = will
        self._on_connect = on_connect
        self.backoff = Backoff(broker.reconnect_min_s, broker.reconnect_max_s, rng)
        self.stats = ConnectionStats()
        self._client: DrainingClient | None = None
        self._lost: asyncio.Future[None] | None = None  # resolved when the current connection ends
        self._up = asyncio.Event()
        self._incoming: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(INCOMING_QUEUE_SIZE)
        self._inbox = inbox_type(self._deliver)
        self._early: list[aiomqtt.Message] = []  # arrived during on_connect: consumers see them after it
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------
    async def __aenter__(self) -> MqttConnection:
        self._task = asyncio.create_task(self.run(), name=f"mqtt-{self.identifier}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Disconnect cleanly (no will) and stop reconnecting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.stats.set_state(ConnectionState.CLOSED)

    async def run(self) -> None:
        """The reconnect loop; runs until cancelled (``close``)."""
        try:
            while True:
                refused = await self._connect_once()
                # Retrying fast cannot fix refused credentials: wait the longest backoff.
                delay_s = self.broker.reconnect_max_s if refused else self.backoff.next_s()
                self.stats.backoff_s = delay_s
                self.stats.set_state(ConnectionState.BACKING_OFF)
                await asyncio.sleep(delay_s)
        finally:
            self._up.clear()
            self._client = None

    async def _connect_once(self) -> bool:
        """One connection from CONNECT to its loss; True when the broker refused our credentials."""
        b = self.broker
        self.stats.set_state(ConnectionState.CONNECTING)
        client = DrainingClient(
            b.host,
            b.port,
            username=b.username or None,
            password=b.password or None,
            identifier=self.identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=self.will,
            keepalive=b.keepalive_s,
            timeout=PUBLISH_TIMEOUT_S,
            queue_type=self._inbox,
            max_inflight_messages=INFLIGHT_WINDOW,
            tls_params=tls_params(b),
            tls_insecure=b.tls_insecure if uses_tls(b) else None,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            self.stats.failed_attempts += 1
            refused = _is_auth_refusal(exc)
            error = f"connect to {b.host}:{b.port} failed: {exc}"
            if refused:
                error += " (refused: check [mqtt] username and password, and the broker's ACL)"
            self.stats.set_state(ConnectionState.BACKING_OFF, error)
            log.warning("MQTT %s: %s", self.identifier, error)
            return refused
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._client, self._lost, self._early = client, lost, []
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        self.stats.set_state(ConnectionState.CONNECTED)
        self.backoff.reset()
        log.info("MQTT %s connected to %s:%d", self.identifier, b.host, b.port)
        try:
            if self._on_connect is not None:
                await self._on_connect(client)
            self._up.set()
            early, self._early = self._early, []
            for message in early:
                self._deliver(message)
            await self._pump(client)  # ends (raises) only when the connection is gone
        except (aiomqtt.MqttError, BrokerUnavailableError) as exc:
            self.stats.lost += 1
            self.stats.set_state(ConnectionState.BACKING_OFF, f"connection lost: {exc}")
            log.warning("MQTT %s: connection lost: %s", self.identifier, exc)
        finally:
            self._up.clear()
            self._client = None
            if not lost.done():
                lost.set_result(None)
            # A live connection gets a clean DISCONNECT (no will); a dead one only releases aiomqtt's lock.
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await client.__aexit__(None, None, None)
        return False

    def _deliver(self, message: aiomqtt.Message) -> None:
        """Called by aiomqtt's read callback for each message (no task, no loop turn per message)."""
        if not self._up.is_set():
            self._early.append(message)
            return
        if self._incoming.full():
            self._incoming.get_nowait()
            self.stats.incoming_dropped += 1
        self._incoming.put_nowait(message)

    async def _pump(self, client: aiomqtt.Client) -> None:
        """Until the connection is lost: messages go to ``_deliver``, so aiomqtt's iterator yields none
        and only raises MqttError on disconnection."""
        async for _ in client.messages:
            pass
        raise aiomqtt.MqttError("message iterator ended")

    # ---- use --------------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._client is not None and self._up.is_set()

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Until connected (and ``on_connect`` done); TimeoutError after ``timeout_s``."""
        await asyncio.wait_for(self._up.wait(), timeout_s)

    async def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        """Publish once; returns when written (QoS 0) or PUBACKed (QoS 1). Raises BrokerUnavailableError when
        not connected or when the connection drops first; aiomqtt.MqttError on a refused publish."""
        client, lost = self._client, self._lost
        if client is None or lost is None or not self._up.is_set():
            raise BrokerUnavailableError(f"MQTT {self.identifier}: not connected to the broker")
        call = asyncio.ensure_future(client.publish(topic, payload, qos=qos, retain=retain))
        try:
            await asyncio.wait({call, lost}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            call.cancel()
            raise
        if not call.done():
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await call
            raise BrokerUnavailableError(
                f"MQTT {self.identifier}: connection lost before the broker acknowledged"
            )
        try:
            call.result()
        except aiomqtt.MqttError as exc:
            if lost.done():
                raise BrokerUnavailableError(f"MQTT {self.identifier}: connection lost: {exc}") from exc
            if not isinstance(exc, aiomqtt.MqttCodeError):
                # No acknowledgement in PUBLISH_TIMEOUT_S on a connection that looks up: the network went
                # silent (a refusal has a reason code). Re-publishing on it would time out again until the
                # keepalive gives up (up to twice keepalive_s) and callers would drop the message as refused;
                # MQTT re-sends unacknowledged messages on a new connection instead.
                self._up.clear()  # at once: publishers wait for the next connection, not this dying one
                if not lost.done():
                    lost.set_result(None)
                client.abandon(exc)
                raise BrokerUnavailableError(
                    f"MQTT {self.identifier}: no acknowledgement within {PUBLISH_TIMEOUT_S:g} s, "
                    "the connection is dropped"
                ) from exc
            raise

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe on the current connection (to survive reconnects, subscribe in ``on_connect``)."""
        client = self._client
        if client is None:
            raise BrokerUnavailableError(f"MQTT {self.identifier}: not connected to the broker")
        await client.subscribe(topic, qos=qos)

    async def messages(self) -> AsyncIterator[aiomqtt.Message]:
        """Incoming messages of every connection, in arrival order (runs until cancelled)."""
        while True:
            yield await self._incoming.get()
