"""The MQTT result sink against a real Mosquitto on a free loopback port: the topic tree and payloads of a
simulated session, retained status and the last will, a broker restart mid-session (no event or cue
lost), and the outbox overflow policy (angles dropped first, every drop counted).

The sink reaches the broker through a small TCP proxy owned by the test: cutting it kills the sink's
connection without a DISCONNECT (so the broker publishes the will), and holding it shut orders the
reconnects (the test's subscriber is back before the sink re-sends its outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np

from firmware_sim.athletes import SimulatedAthlete
from firmware_sim.body import simulate
from firmware_sim.transports.inprocess import InProcessTransport
from sensorhub.bench.tcp_proxy import TcpProxy
from sensorhub.bus import Bus
from sensorhub.config import (
    BrokerConfig,
    Config,
    MqttConfig,
    RecorderConfig,
    ServiceConfig,
    SinksConfig,
)
from sensorhub.cues import DEFAULT_RULES, Cue, parse_rules
from sensorhub.model import Event, KneeAngles, RawPacket, SensorRef
from sensorhub.mqtt import topics
from sensorhub.mqtt.sink import MqttSink
from sensorhub.runtime.pipeline import sensor_refs_from_meta
from sensorhub.runtime.service import ServiceHandle, Stage, serve_in_thread
from sensorhub.sources.base import IteratorSource, PacketSource
from tests.services import Mosquitto, free_port

PREFIX = "sensorhub/v1"
CLIENT_ID = "test-svc"
SINK_ID = f"{CLIENT_ID}-sink"
ANGLES_RATE_HZ = 20.0
LANDING_KEYS = {"flexion_at_contact_deg", "peak_flexion_deg", "peak_valgus_deg", "jump_height_m"}
REP_KEYS = {"depth_deg", "eccentric_s", "concentric_s", "peak_valgus_deg", "valgus_excursion_deg"}


# ---- test plumbing ----------------------------------------------------------------------------------
@dataclass
class Received:
    """Everything a plain subscriber got: (topic, payload, retain) in arrival order."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def json(self, kind: str) -> list[dict[str, Any]]:
        return [
            json.loads(p) for t, p, _ in self.messages if t.endswith(f"/{kind}") and "/services/" not in t
        ]

    def service_status(self) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topics.service_status_topic(PREFIX, SINK_ID)]


async def subscriber(port: int, received: Received) -> None:
    """Subscribes to the whole tree and reconnects by itself (the broker may restart under it)."""
    while True:
        try:
            async with aiomqtt.Client(
                "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, identifier="test-subscriber"
            ) as client:
                await client.subscribe(f"{PREFIX}/#", qos=1)
                received.connected.set()
                async for m in client.messages:
                    received.messages.append((str(m.topic), _bytes(m.payload), bool(m.retain)))
        except aiomqtt.MqttError:
            received.connected.clear()
            await asyncio.sleep(0.05)


def _bytes(payload: object) -> bytes:
    return bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload).encode()


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        await asyncio.sleep(0.05)


def _config(
    tmp_path: Path, port: int, outbox_size: int = 10000, angles_rate_hz: float = ANGLES_RATE_HZ
) -> Config:
    return replace(
        Config(),
        service=ServiceConfig(data_dir=str(tmp_path)),
        mqtt=BrokerConfig(
            port=port, client_id=CLIENT_ID, keepalive_s=5, reconnect_min_s=0.05, reconnect_max_s=0.3
        ),
        sinks=SinksConfig(
            recorder=RecorderConfig(enabled=False),
            mqtt=MqttConfig(enabled=True, angles_rate_hz=angles_rate_hz, outbox_size=outbox_size),
        ),
        cues=parse_rules(DEFAULT_RULES, "<test>"),
    )


def _athletes() -> list[SimulatedAthlete]:
    squats = simulate(
        "squat", reps=3, sides=("right", "left"), seed=1, calibration_bends=True,
        faults={"valgus": 0.7, "fast_eccentric": 0.7},
    )  # fmt: skip
    jumps = simulate(
        "drop_jump", reps=2, sides=("right", "left"), seed=2, calibration_bends=True,
        faults={"valgus": 0.7, "stiff_landing": 0.7},
    )  # fmt: skip
    return [
        SimulatedAthlete("ana", squats, errors="clean", seed=1),
        SimulatedAthlete("ben", jumps, errors="clean", seed=2),
    ]


class Session:
    """A simulated session fed to ``serve`` paced at ``speed`` x real time (on the packets' virtual
    clock) and then held open, plus the ground truth: every event and cue the pipeline put on the bus."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.source_done = threading.Event()
        self.truth: list[tuple[float, str, Any]] = []  # (monotonic time, bus topic, payload)
        self._lock = threading.Lock()

    def make(self) -> tuple[PacketSource, list[SensorRef], list[Stage]]:
        transport = InProcessTransport(_athletes(), realtime=False, seed=1)
        refs = sensor_refs_from_meta(transport.sensor_refs())
        return IteratorSource(self._paced(transport), [r.sensor_id for r in refs]), refs, [self._truth]

    async def _paced(self, transport: InProcessTransport) -> AsyncIterator[RawPacket]:
        loop = asyncio.get_running_loop()
        t0: tuple[float, float] | None = None
        async for packet in transport:
            if t0 is None:
                t0 = (loop.time(), packet.t_host_s)
            wait_s = t0[0] + (packet.t_host_s - t0[1]) / self.speed - loop.time()
            if wait_s > 0.0:
                await asyncio.sleep(wait_s)
            yield packet
        self.source_done.set()
        await asyncio.Event().wait()  # held open: the test decides when the service stops

    async def _truth(self, handle: ServiceHandle) -> None:
        sub = handle.bus.subscribe(["events", "cues"], maxsize=1_000_000)
        async for message in sub:
            with self._lock:
                self.truth.append((time.monotonic(), message.topic, message.payload))

    def keys(self) -> set[tuple[str, ...]]:
        with self._lock:
            return {_truth_key(p) for _, _, p in self.truth}


def _truth_key(payload: Event | Cue) -> tuple[str, ...]:
    athlete, _, side = payload.leg_id.rpartition("/")
    if isinstance(payload, Event):
        return ("events", athlete, side, payload.type, f"{payload.t_s:.4f}")
    return ("cues", athlete, side, payload.rule, f"{payload.t_s:.4f}")


def _received_keys(received: Received) -> set[tuple[str, ...]]:
    keys = {("events", e["athlete"], e["leg"], e["type"], f"{e['t_s']:.4f}") for e in received.json("events")}
    return keys | {
        ("cues", c["athlete"], c["leg"], c["rule"], f"{c['t_s']:.4f}") for c in received.json("cues")
    }


@contextlib.asynccontextmanager
async def running(config: Config, session: Session) -> AsyncIterator[ServiceHandle]:
    """serve_in_thread entered and left off the test's loop (its subscriber keeps running)."""
    cm = serve_in_thread(config, session.make, store_path=None, timeout_s=60.0)
    handle = await asyncio.to_thread(cm.__enter__)
    try:
        yield handle
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


def _sink_counters(handle: ServiceHandle) -> dict[str, Any]:
    return handle.sink_stats["mqtt"]()


# ---- tests ------------------------------------------------------------------------------------------
async def test_topics_payloads_retained_status_and_last_will(tmp_path: Path) -> None:
    with Mosquitto() as broker:
        received = Received()
        listener = asyncio.create_task(subscriber(broker.port, received))
        await asyncio.wait_for(received.connected.wait(), 10)
        session = Session(speed=1e9)  # as fast as the pipeline goes
        async with TcpProxy(broker.port) as proxy, running(_config(tmp_path, proxy.port), session) as handle:
            await until(session.source_done.is_set, 30, "the simulated session")
            await until(handle.runner.idle, 10, "the pipeline and its calibration worker")
            truth = session.keys()
            await until(lambda: truth <= _received_keys(received), 10, "every event and cue over MQTT")
            await until(lambda: len(received.json("status")) >= 4, 5, "leg status")

            # The topic tree: results per leg, the service's own status; nothing else.
            legs = {f"{a}/{s}" for a in ("ana", "ben") for s in ("left", "right")}
            allowed = {topics.leg_topic(PREFIX, leg, k) for leg in legs for k in topics.RESULT_KINDS}
            allowed.add(topics.service_status_topic(PREFIX, SINK_ID))
            assert {t for t, _, _ in received.messages} <= allowed
            assert {t for t, _, _ in received.messages} >= {
                topics.leg_topic(PREFIX, leg, "angles") for leg in legs
            }

            # Angles: parallel arrays in degrees at about angles_rate_hz, in time order per leg.
            for leg in legs:
                athlete, side = leg.split("/")
                frames = [a for a in received.json("angles") if (a["athlete"], a["leg"]) == (athlete, side)]
                assert all(a["schema"] == 1 for a in frames)
                t_s = [t for a in frames for t in a["t_s"]]
                for name in ("flexion_deg", "valgus_deg", "rotation_deg", "quality_flags"):
                    assert sum(len(a[name]) for a in frames) == len(t_s)
                steps_s = np.diff(t_s)
                assert np.all(steps_s > 0) and abs(float(np.median(steps_s)) - 1 / ANGLES_RATE_HZ) < 0.006
                flexion = [f for a in frames for f in a["flexion_deg"] if f is not None]
                assert 40.0 < max(flexion) < 150.0, "flexion must be in degrees"

            events = received.json("events")
            assert {e["type"] for e in events} >= {"rep", "landing"}
            for e in events:
                assert {"schema", "athlete", "leg", "type", "t_s", "control_score"} <= e.keys()
                assert (REP_KEYS if e["type"] == "rep" else LANDING_KEYS) <= e.keys()
                assert e["control_score"] is None or 0.0 <= e["control_score"] <= 100.0
            cues = received.json("cues")
            assert cues, "faulty reps and landings must give cues"
            for c in cues:
                assert {
                    "phrase",
                    "rule",
                    "priority",
                    "t_s",
                    "latency_s",
                    "audio_id",
                    "athlete",
                    "leg",
                } <= c.keys()
                assert c["phrase"] and c["audio_id"] and math.isfinite(c["latency_s"])
            status = received.json("status")[-1]
            assert len(status["sensors"]) == 2 and {s["segment"] for s in status["sensors"].values()} == {
                "thigh",
                "shank",
            }
            assert all(
                {"state", "battery_pct", "rate_hz", "loss_pct"} <= s.keys()
                for s in status["sensors"].values()
            )

            # Retained: a late subscriber gets every leg's status and the service "online" at once.
            late = Received()
            retained = {topics.leg_topic(PREFIX, leg, "status") for leg in legs} | {
                topics.service_status_topic(PREFIX, SINK_ID)
            }
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5
            ) as client:
                await client.subscribe(f"{PREFIX}/#", qos=1)
                # every retained message (a loaded machine may take a while), then 0.5 s for any extra one
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(10.0) as window:
                        async for m in client.messages:
                            if m.retain:  # live status updates may arrive too: not retained deliveries
                                late.messages.append((str(m.topic), _bytes(m.payload), True))
                            if {t for t, _, _ in late.messages} >= retained:
                                window.reschedule(min(window.when() or math.inf,
                                                      asyncio.get_running_loop().time() + 0.5))
            assert {t for t, _, _ in late.messages} == retained
            assert late.service_status() == [b"online"]

            # Killed connection: the broker publishes the will, then the sink reconnects and is back online.
            n_before = len(received.service_status())
            proxy.cut()
            await until(lambda: b"offline" in received.service_status()[n_before:], 10, "the last will")
            await until(lambda: received.service_status()[-1] == b"online", 10, "online after reconnect")
            assert _sink_counters(handle)["reconnects"] >= 1
        # A clean shutdown says "offline" itself (a clean DISCONNECT does not fire the will).
        await until(lambda: received.service_status()[-1] == b"offline", 5, "offline at shutdown")
        counters = _sink_counters(handle)
        assert counters["dropped_by_kind"] == {} and counters["flush_dropped"] == 0
        assert counters["published"] + counters["status_superseded"] == counters["queued"]
        await stop(listener)


async def test_broker_restart_mid_session_loses_no_event_or_cue(tmp_path: Path) -> None:
    with Mosquitto() as broker:
        received = Received()
        listener = asyncio.create_task(subscriber(broker.port, received))
        await asyncio.wait_for(received.connected.wait(), 10)
        session = Session(speed=4.0)
        async with TcpProxy(broker.port) as proxy, running(_config(tmp_path, proxy.port), session) as handle:
            await until(lambda: len(received.json("events")) >= 1, 30, "the first event over MQTT")
            await proxy.shut()  # the sink comes back only once the subscriber is back (see module doc)
            down_s = time.monotonic()
            await asyncio.to_thread(broker.stop)
            n_truth = len(session.truth)
            await until(lambda: len(session.truth) >= n_truth + 3, 20, "events and cues during the outage")
            await asyncio.sleep(1.0)
            await asyncio.to_thread(broker.start)
            up_s = time.monotonic()
            await asyncio.wait_for(received.connected.wait(), 10)
            await proxy.open()
            await until(session.source_done.is_set, 30, "the simulated session")
            await until(handle.runner.idle, 10, "the pipeline and its calibration worker")
            truth = session.keys()
            await until(
                lambda: truth <= _received_keys(received), 15, "every event and cue after the restart"
            )
            during = [p for t, _, p in session.truth if down_s <= t <= up_s]
            counters = _sink_counters(handle)
        await stop(listener)
    assert len(during) >= 3, "the outage must overlap events and cues"
    assert any(isinstance(p, Cue) for _, _, p in session.truth)
    assert counters["reconnects"] >= 1 and counters["connection_lost"] >= 1
    assert "events" not in counters["dropped_by_kind"] and "cues" not in counters["dropped_by_kind"]


def _angles(leg_id: str, t0_s: float, duration_s: float = 0.3, rate_hz: float = 200.0) -> KneeAngles:
    t_s = t0_s + np.arange(round(duration_s * rate_hz)) / rate_hz
    ramp = np.radians(t_s - t0_s)
    return KneeAngles(leg_id, t_s, ramp, ramp, ramp, np.zeros(t_s.shape[0], dtype=np.uint8))


async def test_outbox_overflow_drops_angles_first_and_counts(tmp_path: Path) -> None:
    outbox_size = 10
    with Mosquitto() as broker:
        received = Received()
        listener = asyncio.create_task(subscriber(broker.port, received))
        await asyncio.wait_for(received.connected.wait(), 10)
        async with TcpProxy(broker.port) as proxy:
            await proxy.shut()  # broker unreachable: everything waits in the outbox
            sink = MqttSink(_config(tmp_path, proxy.port, outbox_size=outbox_size), flush_timeout_s=5.0)
            bus = Bus()
            task = asyncio.create_task(sink.run(bus))
            await until(lambda: sink.connection.stats.failed_attempts >= 1, 5, "a refused connect")
            sent: list[tuple[str, float]] = []
            for i in range(20):  # 0.3 s of angles each -> one decimated batch each
                bus.publish("angles", "ana/right", _angles("ana/right", 10.0 + 0.3 * i))
                sent.append(("angles", 10.0 + 0.3 * i))
            for i in range(4):
                event = Event("rep", "ana/right", 20.0 + i, {"depth_deg": 80.0 + i}, float("nan"))
                bus.publish("events", "ana/right", event)
            for i in range(2):
                cue = Cue(
                    "ana", "ana/right", "knees_out", "knees out", 1, 30.0 + i, "rep", 8.0, 0.01, "knees-out"
                )
                bus.publish("cues", "ana/right", cue)
            for i in range(5):
                bus.publish("angles", "ana/right", _angles("ana/right", 40.0 + 0.3 * i))
            await until(lambda: sink.counters()["queued"] == 31, 5, "the sink to take every bus message")
            counters = sink.counters()
            assert counters["outbox"] <= outbox_size + 1  # + the one the publisher holds
            assert set(counters["dropped_by_kind"]) == {"angles"}
            assert counters["dropped_by_kind"]["angles"] == 31 - counters["outbox"]

            await proxy.open()  # the broker is reachable: the outbox drains, in order
            await until(lambda: sink.counters()["outbox"] == 0, 10, "the outbox to drain")
            await until(lambda: len(received.json("cues")) == 2, 5, "the cues")
            await stop(task)
        await stop(listener)
    events = received.json("events")
    assert [e["depth_deg"] for e in events] == [80.0, 81.0, 82.0, 83.0]
    assert all(e["control_score"] is None for e in events)  # NaN -> null
    assert [c["t_s"] for c in received.json("cues")] == [30.0, 31.0]
    angle_t0 = [a["t_s"][0] for a in received.json("angles")]
    assert angle_t0 == sorted(angle_t0) and len(angle_t0) == 31 - 6 - counters["dropped_by_kind"]["angles"]
    assert angle_t0[-1] == 41.2  # the newest angles survive, the oldest were dropped
    final = sink.counters()
    assert final["published"] + final["dropped_by_kind"]["angles"] == final["queued"]


def test_sink_counters_before_it_runs() -> None:
    sink = MqttSink(_config(Path("/nonexistent"), free_port()))
    counters = sink.counters()
    assert counters["connected"] is False and counters["outbox"] == 0 and counters["published"] == 0


async def test_a_message_the_broker_cannot_take_is_dropped_counted_and_the_sink_goes_on(
    tmp_path: Path,
) -> None:
    """An athlete id with '+' (from a recording made before ids were validated) makes a topic paho
    refuses: that one message is dropped and counted, the ones behind it still go out."""
    with Mosquitto() as broker:
        received = Received()
        listener = asyncio.create_task(subscriber(broker.port, received))
        await asyncio.wait_for(received.connected.wait(), 10)
        sink = MqttSink(_config(tmp_path, broker.port))
        bus = Bus()
        task = asyncio.create_task(sink.run(bus))
        await sink.connection.wait_connected(10)
        for leg_id in ("a+b/right", "ana/right"):
            bus.publish("events", leg_id, Event("rep", leg_id, 20.0, {"depth_deg": 80.0}, 0.5))
        await until(lambda: len(received.json("events")) == 1, 10, "the good event")
        assert not task.done()
        await stop(task)
        await stop(listener)
    assert [e["athlete"] for e in received.json("events")] == ["ana"]
    counters = sink.counters()
    assert counters["failed_by_kind"] == {"events": 1} and counters["published_by_kind"]["events"] == 1
