"""Scale-out through a real Mosquitto: `sensorhub gateway` (simulated athletes) -> broker -> workers
(`[source] kind = "mqtt"`, each an MqttSource feeding its own live pipeline), with the claim protocol
deciding which worker processes which athlete."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest

from sensorhub.bench.tcp_proxy import TcpProxy
from sensorhub.bus import Bus
from sensorhub.config import Config, load_config
from sensorhub.demo import simulated_source
from sensorhub.errors import ProtocolError
from sensorhub.model import Segment, SensorRef, Side
from sensorhub.mqtt import topics
from sensorhub.mqtt.claims import Claim, Offer
from sensorhub.mqtt.gateway import Gateway, GatewayTiming
from sensorhub.mqtt.source import MqttSource
from sensorhub.runtime.live import LiveRunner
from sensorhub.runtime.pipeline import Pipeline
from sensorhub.runtime.sources import make_source
from sensorhub.runtime.warmup import warmup
from tests.services import Mosquitto

SEGMENTS = (("right", "thigh"), ("right", "shank"), ("left", "thigh"), ("left", "shank"))


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    warmup()  # numba kernels loaded before any worker pipeline runs
    with Mosquitto() as mosquitto:
        yield mosquitto


def team(
    tmp_path: Path,
    port: int,
    client_id: str,
    athletes: dict[str, list[str]],
    kind: str,
    bundle_ms: float = 20.0,
) -> Config:
    """A configuration naming ``athletes`` (id -> sensor ids in SEGMENTS order) on the test broker."""
    lines = [
        f'[source]\nkind = "{kind}"',
        "[sinks.recorder]\nenabled = false",
        '[simulator]\ndrills = ["squat", "drop_jump"]\nerrors = "clean"',
        f'[mqtt]\nport = {port}\nclient_id = "{client_id}"\nreconnect_min_s = 0.2\nreconnect_max_s = 1.0\n'
        f"raw_bundle_ms = {bundle_ms}",
    ]
    for athlete, sensor_ids in athletes.items():
        lines.append(f'[[athletes]]\nid = "{athlete}"')
        for sensor_id, (side, segment) in zip(sensor_ids, SEGMENTS, strict=True):
            lines.append(f'[[athletes.sensors]]\nid = "{sensor_id}"\nside = "{side}"\nsegment = "{segment}"')
    path = tmp_path / f"{client_id}.toml"
    path.write_text("\n\n".join(lines) + "\n")
    return load_config(path, env={})


def numbered(n: int) -> dict[str, list[str]]:
    """What the simulator calls its athletes and sensors by default."""
    return {f"athlete{i}": [f"athlete{i}-{s}-{g}" for s, g in SEGMENTS] for i in range(1, n + 1)}


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def worker(config: Config) -> AsyncIterator[tuple[MqttSource, LiveRunner]]:
    setup = make_source(config)
    assert isinstance(setup.source, MqttSource)
    runner = LiveRunner(setup.source, Pipeline(setup.sensors), Bus())
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(setup.source.ready.wait(), 15.0)
        yield setup.source, runner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def gateway(config: Config, realtime: bool) -> AsyncIterator[tuple[Gateway, asyncio.Event]]:
    setup = await asyncio.to_thread(simulated_source, config, None, realtime)
    # A generous offer time-out: on a loaded CI machine a slow claim must not look like a refusal.
    gw = Gateway(config.mqtt, setup.source, setup.sensors, timing=GatewayTiming(offer_timeout_s=20.0))
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        yield gw, stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30.0)


@pytest.mark.parametrize("bundle_ms", [20.0, 0.0], ids=["bundled", "one-per-message"])
async def test_two_workers_split_eight_athletes_and_every_packet_reaches_its_worker(
    broker: Mosquitto, tmp_path: Path, bundle_ms: float
) -> None:
    athletes = numbered(8)
    configs = [team(tmp_path, broker.port, name, athletes, "mqtt") for name in ("w1", "w2")]
    gw_config = team(tmp_path, broker.port, f"gw1-{bundle_ms:g}", athletes, "simulator", bundle_ms)
    async with worker(configs[0]) as (w1, r1), worker(configs[1]) as (w2, r2):
        # Real time: the simulator shares this event loop with the gateway and both workers; as fast as
        # it goes it would starve them (`sensorhub bench mqtt` measures throughput in separate processes).
        async with gateway(gw_config, realtime=True) as (gw, stop):
            await until(lambda: all(gw.claims().values()), 25.0, "every athlete claimed")
            await until(lambda: sum(gw.stats.received.values()) >= 3000, 25.0, "3000 packets")
            stop.set()
        published = gw.stats.published
        await until(lambda: w1.received + w2.received == published, 15.0, "every packet at a worker")
        held1, held2 = set(w1.held), set(w2.held)

    assert gw.stats.dropped == gw.stats.unsent == gw.stats.failed == 0
    assert published == gw.stats.received  # nothing lost between source and broker, none sent twice
    assert held1.isdisjoint(held2) and held1 | held2 == set(athletes)
    assert held1 and held2, "the shared subscription should split the athletes"
    assert gw.stats.claims == 8 and gw.stats.handovers == 0
    assert gw.claims() == {a: (w1 if a in held1 else w2).worker_id for a in athletes}
    for athlete, sensor_ids in athletes.items():
        holder, other = (w1, w2) if athlete in held1 else (w2, w1)
        for sensor_id in sensor_ids:
            assert holder.received[sensor_id] == published[sensor_id] > 0, sensor_id
            assert other.received[sensor_id] == 0, f"{sensor_id} reached both workers"
    # ... and the workers' pipelines decoded what their sources received.
    assert r1.stats.packets + r2.stats.packets == sum(published.values())
    assert w1.malformed.total() == w2.malformed.total() == 0


async def test_a_dead_workers_athletes_go_to_the_other_worker(broker: Mosquitto, tmp_path: Path) -> None:
    athletes = numbered(8)
    gw_config = team(tmp_path, broker.port, "gw2", athletes, "simulator")
    async with TcpProxy(broker.port) as proxy:
        config_dying = team(tmp_path, proxy.port, "dying", athletes, "mqtt")
        config_alive = team(tmp_path, broker.port, "alive", athletes, "mqtt")
        async with worker(config_dying) as (dying, _), worker(config_alive) as (alive, _):
            async with gateway(gw_config, realtime=True) as (gw, _stop):
                await until(lambda: all(gw.claims().values()), 25.0, "every athlete claimed")
                taken = set(dying.held)
                assert taken and alive.held, "both workers should hold athletes before the failure"
                before = dict(alive.received)
                await proxy.shut()
                proxy.cut()  # the dying worker's connection drops without DISCONNECT: its will fires
                t_cut_s = time.monotonic()
                await until(
                    lambda: (
                        set(gw.claims().values()) == {alive.worker_id}
                        and alive.held.keys() == athletes.keys()
                    ),
                    10.0,
                    "the other worker holding every athlete",
                )
                handover_s = time.monotonic() - t_cut_s
                moved = [s for a in taken for s in athletes[a]]
                await until(
                    lambda: all(alive.received[s] > before.get(s, 0) + 10 for s in moved),
                    10.0,
                    "packets of the moved athletes at the surviving worker",
                )
            assert gw.stats.handovers == len(taken)
    print(f"\nhand-over of {len(taken)} athletes after a worker died: {handover_s * 1e3:.0f} ms")


async def test_malformed_raw_messages_are_counted_and_survived(broker: Mosquitto, tmp_path: Path) -> None:
    # Configured sensor ids unlike the simulator's names: the gateway's simulator uses these.
    athletes = {"ana": ["SH-A1", "SH-A2", "SH-A3", "SH-A4"]}
    gw_config = team(tmp_path, broker.port, "gw3", athletes, "simulator")
    w_config = team(tmp_path, broker.port, "w3", athletes, "mqtt")
    async with worker(w_config) as (w, runner), gateway(gw_config, realtime=True) as (gw, _stop):
        await until(lambda: w.received["SH-A1"] >= 10, 25.0, "good packets")
        assert gw.claims() == {"ana": w.worker_id}
        raw = topics.raw_topic("sensorhub/v1", "ana", "SH-A1")
        unknown = topics.raw_topic("sensorhub/v1", "ana", "SH-X9")
        async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as bad:
            await bad.publish(raw, b"\x01\x02\x03", qos=1)  # shorter than the host-time header
            await bad.publish(unknown, topics.encode_raw(1.0, b"x"), qos=1)
            await bad.publish("sensorhub/v1/raw/ana/", topics.encode_raw(1.0, b"x"), qos=1)  # empty level
            await bad.publish(raw, topics.encode_raw(time.time(), b"\x07" * 30), qos=1)  # not a v1 packet
            bundle = topics.bundle_topic("sensorhub/v1", "ana")
            await bad.publish(bundle, b"\x09" + bytes(20), qos=1)  # a bundle version nobody knows
            await bad.publish(bundle, topics.encode_bundle([("SH-X9", 1.0, b"x")]), qos=1)
        await until(lambda: w.malformed.total() == 5, 10.0, "the malformed messages counted")
        await until(lambda: runner.pipeline.stats()["SH-A1"].malformed == 1, 10.0, "the decoder's count")
        after = runner.stats.packets
        await until(lambda: runner.stats.packets > after + 40, 10.0, "good packets after the bad ones")
    assert dict(w.malformed) == {"short_header": 1, "unknown_sensor": 2, "bad_topic": 1, "bad_bundle": 1}
    assert w.diagnostics()["malformed"] == {
        "bad_topic": 1,
        "unknown_sensor": 2,
        "short_header": 1,
        "bad_bundle": 1,
        "bad_offer": 0,
        "bad_claim": 0,
        "error": 0,
    }
    assert "short_header" in w.links()["SH-A1"].last_error
    assert w.held == {} and w.links()["SH-A1"].state == "missing"  # released on the worker's stop


def test_offer_and_claim_payloads_round_trip_and_refuse_garbage() -> None:
    refs = tuple(
        SensorRef(f"s{i}", "ana", Side(side), Segment(seg)) for i, (side, seg) in enumerate(SEGMENTS)
    )
    offer = Offer("ana", refs, "gw-gateway", 1.5)
    assert Offer.decode(offer.encode()) == offer
    assert offer.mismatch(list(refs)) == ""
    assert "not configured" in offer.mismatch([])
    moved = [SensorRef("s0", "ana", Side.LEFT, Segment.THIGH), *refs[1:]]
    assert "s0 (right thigh)" in offer.mismatch(moved) and "s0 (left thigh)" in offer.mismatch(moved)
    assert Claim.decode(Claim("w1-worker", 2.0).encode()) == Claim("w1-worker", 2.0)
    assert Claim.decode(b"") is None
    for garbage in (b"{", b"[]", b'{"worker": 3, "t_s": 1}', b'{"worker": "w", "t_s": true}'):
        with pytest.raises(ProtocolError):
            Claim.decode(garbage)
    with pytest.raises(ProtocolError):
        Offer.decode(
            b'{"athlete": "ana", "sensors": [{"sensor_id": "s0", "side": "up"}], "gateway": "g", "t_s": 1}'
        )
    assert topics.parse_level("p", "claims", "p/claims/ana") == "ana"
    assert topics.parse_level("p", "workers", "p/workers/w1/status") == "w1"
    assert topics.parse_level("p", "claims", "p/claims/ana/x") is None


def test_bundles_round_trip_and_refuse_what_they_cannot_read() -> None:
    packets = [("a-right-thigh", 1.7e9 + 0.004, b"\x01\x02"), ("a-left-shank", 1.7e9 + 0.009, b""),
               ("\u00e9t\u00e9", float("nan"), bytes(300))]
    data = topics.encode_bundle(packets)
    back = topics.decode_bundle(data)
    assert [(s, p) for s, _, p in back] == [(s, p) for s, _, p in packets]
    assert back[0][1] == packets[0][1] and back[2][1] != back[2][1]  # exact times; NaN kept (gated later)
    assert topics.decode_bundle(topics.encode_bundle([])) == []
    not_utf8 = bytes([topics.BUNDLE_VERSION]) + topics.BUNDLE_ENTRY.pack(2, 0.0, 0) + b"\xff\xfe"
    for bad, why in ((b"", "version"), (b"\x02" + data[1:], "version"), (data[:-1], "cut off"),
                     (data[:5], "cut off"), (not_utf8, "not UTF-8")):
        with pytest.raises(ValueError, match=why):
            topics.decode_bundle(bad)
