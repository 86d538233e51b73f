"""The MQTT connection under load, against a real Mosquitto: a burst that arrived while the loop was busy
reaches the consumer in a few loop turns (not one or two per message), and the gateway's raw packets in
flight never hold up its claims and offers. Both made a dead worker's hand-over take over 10 s on a
loaded machine (test_mqtt_scale::test_a_dead_workers_athletes_go_to_the_other_worker)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import aiomqtt
import pytest

from sensorhub.bench.tcp_proxy import TcpProxy
from sensorhub.config import BrokerConfig
from sensorhub.mqtt import client as client_module
from sensorhub.mqtt.client import BrokerUnavailableError, MqttConnection, payload_bytes
from sensorhub.mqtt.gateway import GatewayTiming
from tests.services import Mosquitto

BURST = 1000
BUSY_TURNS = 100


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    with Mosquitto() as mosquitto:
        yield mosquitto


class HoldingProxy:
    """TCP relay to the broker; while ``held``, nothing flows from the broker back to the client (its
    PUBACKs stay away), while what the client sends still reaches the broker."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.flowing.set()
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        for src, dst, gate in ((reader, up_writer, None), (up_reader, writer, self.flowing)):
            task = asyncio.create_task(self._pump(src, dst, gate))
            self._tasks.add(task)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, gate: asyncio.Event | None) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if gate is not None:
                    await gate.wait()
                dst.write(data)
                await dst.drain()


@contextlib.asynccontextmanager
async def connected(port: int, role: str, topic: str | None = None) -> AsyncIterator[MqttConnection]:
    async def subscribe(client: aiomqtt.Client) -> None:
        if topic is not None:
            await client.subscribe(topic, qos=1)

    conn = MqttConnection(BrokerConfig(port=port), role, on_connect=subscribe, identifier=f"test-{role}")
    async with conn:
        await conn.wait_connected(10.0)
        yield conn


async def test_a_backlog_is_taken_in_while_the_loop_is_busy_not_one_message_per_loop_turn(
    broker: Mosquitto,
) -> None:
    async with connected(broker.port, "burst", "burst/#") as conn:
        lines = "\n".join(str(i) for i in range(BURST)) + "\n"
        pub = ["mosquitto_pub", "-p", str(broker.port), "-V", "5", "-q", "1", "-t", "burst/x", "-l"]
        subprocess.run(pub, input=lines.encode(), check=True, timeout=30)  # the broker holds the backlog
        got: list[bytes] = []

        async def consume() -> None:
            async for message in conn.messages():
                got.append(payload_bytes(message))

        consumer = asyncio.create_task(consume())
        # A busy loop (a worker's pipeline): every turn blocks for a while; the broker has time to send.
        for _ in range(BUSY_TURNS):
            time.sleep(0.005)
            await asyncio.sleep(0)
        taken = len(got)
        consumer.cancel()
    # aiomqtt alone reads one packet per readable event and spends a task on each message: < BUSY_TURNS.
    assert taken == BURST, f"{taken} of {BURST} messages taken in {BUSY_TURNS} busy loop turns"
    assert got == [str(i).encode() for i in range(BURST)]


async def test_a_gateways_raw_packets_in_flight_never_hold_up_its_claims_and_offers(
    broker: Mosquitto,
) -> None:
    seen: list[str] = []
    async with connected(broker.port, "watcher", "control/#") as watcher, HoldingProxy(broker.port) as proxy:
        follow = asyncio.create_task(_collect(watcher, seen))
        async with connected(proxy.port, "gateway") as gateway:
            proxy.flowing.clear()  # the broker's PUBACKs stop reaching the gateway
            raw = [
                asyncio.create_task(gateway.publish(f"raw/{i}", b"x", qos=1))
                for i in range(GatewayTiming().max_inflight)
            ]
            control = asyncio.create_task(gateway.publish("control/offer", b"offer", qos=1))
            try:
                async with asyncio.timeout(10.0):
                    while "control/offer" not in seen:
                        await asyncio.sleep(0.05)
            finally:
                proxy.flowing.set()
            await asyncio.gather(control, *raw)
        follow.cancel()


async def _collect(conn: MqttConnection, seen: list[str]) -> None:
    async for message in conn.messages():
        seen.append(str(message.topic))


async def test_a_silently_dropped_connection_is_given_up_at_the_publish_timeout_and_the_message_resent(
    broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The network between client and broker goes dark (no FIN/RST). A publish that gets no PUBACK is not
    a refusal to drop: the connection is given up (long before its 60 s keepalive would notice) and the
    message goes out on the next one."""
    monkeypatch.setattr(client_module, "PUBLISH_TIMEOUT_S", 1.0)
    seen: list[str] = []
    async with connected(broker.port, "watcher", "silent/#") as watcher, TcpProxy(broker.port) as proxy:
        follow = asyncio.create_task(_collect(watcher, seen))
        config = BrokerConfig(port=proxy.port, keepalive_s=60, reconnect_min_s=0.1, reconnect_max_s=0.2)
        async with MqttConnection(config, "silent") as conn:
            await conn.wait_connected(10.0)
            assert proxy.blackhole() == 1
            with pytest.raises(BrokerUnavailableError):
                await conn.publish("silent/1", b"1", qos=1)
            await conn.wait_connected(10.0)
            await conn.publish("silent/1", b"1", qos=1)
            assert conn.stats.lost == 1 and conn.stats.reconnects == 1
        async with asyncio.timeout(10.0):
            while "silent/1" not in seen:
                await asyncio.sleep(0.05)
        follow.cancel()
