"""``sensorhub bench mqtt``: raw-packet throughput gateway -> Mosquitto -> workers, on this machine.

A Mosquitto is started on a free loopback port. Simulated athletes' packets are generated first (not
timed); then a gateway process (``sensorhub.mqtt.gateway.Gateway``) publishes them as fast as it can
once every athlete is claimed, and worker processes (``MqttSource`` -> ``LiveRunner`` + ``Pipeline``, as
``sensorhub run`` with ``[source] kind = "mqtt"``) decode and process them. Each process has its own
interpreter, as on a real deployment. Reported per raw-packet QoS: packets/s published by the gateway
(broker-acknowledged), packets/s through to the workers' pipelines (first packet offered -> last packet
processed), samples/s, and the events/s the workers' pipelines produced on the way.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import queue
import time
from dataclasses import dataclass
from typing import Any

from sensorhub.bench.services import Mosquitto
from sensorhub.config import BrokerConfig
from sensorhub.model import RawPacket, SensorRef
from sensorhub.sources import PacketQueue, SensorLink

DRILLS = ("squat", "drop_jump", "cut_45", "step_down")
TIMEOUT_S = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--athletes", type=int, default=8, help="simulated athletes (2 legs, 4 sensors each)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes sharing the athletes")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each athlete's drill")
    parser.add_argument("--qos", type=int, nargs="+", choices=(0, 1), default=[1, 0], help="raw packet QoS")
    parser.add_argument("--result-events", type=int, default=5000, help="events through the result sink")


def simulated_packets(n_athletes: int, reps: int) -> tuple[list[RawPacket], list[SensorRef]]:
    """Every packet of ``n_athletes`` simulated athletes (one drill each), in host arrival order."""
    from firmware_sim.athletes import SimulatedAthlete, simulate_motion
    from firmware_sim.transports.inprocess import SimSession, raw_packet
    from sensorhub.runtime import sensor_refs_from_meta

    athletes = [
        SimulatedAthlete(
            f"athlete{k + 1}",
            simulate_motion(DRILLS[k % len(DRILLS)], reps=reps, sides=("right", "left"), seed=k),
            seed=k,
        )
        for k in range(n_athletes)
    ]
    session = SimSession(athletes, host_epoch_s=time.time())
    packets = [raw_packet(d) for d in session.deliveries()]
    return packets, sensor_refs_from_meta(session.sensor_refs())


# ---- processes (spawned: each a fresh interpreter) -------------------------------------------------------


def _broker(port: int, client_id: str) -> BrokerConfig:
    return BrokerConfig(port=port, client_id=client_id)


def _worker_process(
    port: int,
    name: str,
    sensors: list[SensorRef],
    reports: mp.Queue[Any],
    stop: Any,  # multiprocessing Event
) -> None:
    from sensorhub.bus import Bus
    from sensorhub.mqtt import MqttSource
    from sensorhub.runtime import LiveRunner, Pipeline
    from sensorhub.runtime.warmup import warmup

    warmup()

    async def main() -> None:
        source = MqttSource(_broker(port, name), sensors)
        bus = Bus()
        events = bus.subscribe(["events"], maxsize=1_000_000)
        runner = LiveRunner(source, Pipeline(sensors), bus)
        task = asyncio.create_task(runner.run())
        await asyncio.wait_for(source.ready.wait(), 30.0)
        reports.put(("ready", name, 0, 0, 0, 0.0))
        last = (-1, -1)
        while not stop.is_set():
            await asyncio.sleep(0.05)
            received = sum(source.received.values())
            now = (received, runner.stats.packets)
            if now != last:  # the time of the last change is when the last packet was processed
                last = now
                reports.put(
                    (
                        "progress",
                        name,
                        received,
                        runner.stats.packets,
                        runner.stats.angle_samples,
                        time.time(),
                    )
                )
        reports.put(("events", name, len(events.drain()), 0, 0, time.time()))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


class _ListSource:
    """A PacketSource releasing prepared packets as fast as the gateway takes them, once ``go`` is set."""

    def __init__(self, packets: list[RawPacket], go: asyncio.Event) -> None:
        self.packets = packets
        self.go = go
        self.started_s = 0.0

    async def run(self, out: PacketQueue) -> None:
        await self.go.wait()
        self.started_s = time.time()
        for i, packet in enumerate(self.packets):
            out.put_nowait(packet)
            if i % 256 == 255:
                await asyncio.sleep(0)
        await asyncio.Event().wait()  # live sources never end by themselves

    def links(self) -> dict[str, SensorLink]:
        return {}


def _gateway_process(
    port: int, packets: list[RawPacket], sensors: list[SensorRef], qos: int, reports: mp.Queue[Any]
) -> None:
    from sensorhub.mqtt import Gateway, GatewayTiming

    async def main() -> None:
        go = asyncio.Event()
        source = _ListSource(packets, go)
        timing = GatewayTiming(buffer_packets=len(packets))
        gateway = Gateway(_broker(port, f"bench-gw-q{qos}"), source, sensors, timing=timing, qos=qos)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        while not all(gateway.claims().values()):
            await asyncio.sleep(0.01)
        go.set()
        while sum(gateway.stats.published.values()) < len(packets):
            await asyncio.sleep(0.002)
        done_s = time.time()
        reports.put(("gateway", "gw", len(packets), source.started_s, gateway.stats.resent, done_s))
        stop.set()
        await task

    asyncio.run(main())


@dataclass(frozen=True, slots=True)
class Result:
    qos: int
    packets: int
    samples: int
    events: int
    publish_s: float
    end_to_end_s: float

    def row(self) -> str:
        return (
            f"| {self.qos} | {self.packets} | {self.packets / self.publish_s:,.0f} | "
            f"{self.packets / self.end_to_end_s:,.0f} | {self.samples / self.end_to_end_s:,.0f} | "
            f"{self.events / self.end_to_end_s:,.1f} |"
        )


def measure(port: int, packets: list[RawPacket], sensors: list[SensorRef], workers: int, qos: int) -> Result:
    ctx = mp.get_context("spawn")
    reports: mp.Queue[Any] = ctx.Queue()
    stop = ctx.Event()
    names = [f"bench-w{i + 1}-q{qos}" for i in range(workers)]
    procs = [ctx.Process(target=_worker_process, args=(port, n, sensors, reports, stop)) for n in names]
    for p in procs:
        p.start()
    progress: dict[str, tuple[int, int, int, float]] = {}
    events: dict[str, int] = {}
    gateway: tuple[float, float] | None = None
    ready: set[str] = set()
    deadline = time.monotonic() + TIMEOUT_S
    gw_proc = None
    try:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench mqtt (QoS {qos}) did not finish within {TIMEOUT_S} s")
            try:
                kind, name, a, b, c, t = reports.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "ready":
                ready.add(name)
                if ready == set(names):  # every worker is in the group: now the gateway offers
                    gw_proc = ctx.Process(
                        target=_gateway_process, args=(port, packets, sensors, qos, reports)
                    )
                    gw_proc.start()
            elif kind == "gateway":
                gateway = (b, t)
            elif kind == "progress":
                progress[name] = (a, b, c, t)
            elif kind == "events":
                events[name] = a
                if len(events) == workers:
                    break
            processed = sum(p[1] for p in progress.values())
            if gateway is not None and processed >= len(packets) and not stop.is_set():
                stop.set()
    finally:
        stop.set()
        for p in [*procs, *([gw_proc] if gw_proc else [])]:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert gateway is not None
    started_s, published_s = gateway
    finished_s = max(p[3] for p in progress.values())
    return Result(
        qos=qos,
        packets=sum(p[1] for p in progress.values()),
        samples=sum(p[2] for p in progress.values()),
        events=sum(events.values()),
        publish_s=published_s - started_s,
        end_to_end_s=finished_s - started_s,
    )


def measure_result_events(port: int, n_events: int) -> float:
    """Events/s from the service's bus through the MQTT sink (QoS 1, each PUBACKed) and the broker to a
    subscriber, which counts them all: the result path of a worker."""
    from dataclasses import replace

    import aiomqtt

    from sensorhub.bus import Bus
    from sensorhub.config import Config, MqttConfig, SinksConfig
    from sensorhub.model import Event
    from sensorhub.mqtt import MqttSink, topics

    config = replace(
        Config(),
        mqtt=_broker(port, "bench-results"),
        sinks=SinksConfig(mqtt=MqttConfig(enabled=True, angles_rate_hz=0.0, outbox_size=n_events + 100)),
    )
    metrics = {"depth_deg": 85.0, "eccentric_s": 1.2, "concentric_s": 0.9, "peak_valgus_deg": 4.0}

    async def main() -> float:
        bus = Bus()
        sink = MqttSink(config)
        async with aiomqtt.Client("127.0.0.1", port, identifier="bench-results-counter") as counter:
            await counter.subscribe(topics.leg_topic(config.mqtt.topic_prefix, "+/+", "events"), qos=1)
            task = asyncio.create_task(sink.run(bus))
            await sink.connection.wait_connected()
            t0 = time.perf_counter()
            for i in range(n_events):
                leg_id = f"a{i % 8}/right"
                bus.publish("events", leg_id, Event("rep", leg_id, t0 + i, metrics, 80.0))
                if i % 500 == 499:
                    await asyncio.sleep(0)  # let the sink drain its bus mailbox as a live service would
            received = 0
            async for _ in counter.messages:
                received += 1
                if received == n_events:
                    break
            elapsed_s = time.perf_counter() - t0
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return n_events / elapsed_s

    return asyncio.run(main())


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    packets, sensors = simulated_packets(args.athletes, args.reps)
    span_s = packets[-1].t_host_s - packets[0].t_host_s
    print(
        f"{len(packets)} packets of {len(sensors)} sensors ({args.athletes} athletes, {span_s:.0f} s of "
        f"200 Hz data) simulated in {time.perf_counter() - t0:.1f} s; {args.workers} worker processes"
    )
    results = []
    with Mosquitto() as broker:
        for qos in args.qos:
            results.append(measure(broker.port, packets, sensors, args.workers, qos))
        events_per_s = measure_result_events(broker.port, args.result_events)
    print("| raw QoS | packets | gateway -> broker /s | -> worker pipelines /s | samples/s | events/s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(r.row())
    print(
        f"result events, bus -> MQTT sink -> broker -> subscriber (QoS 1, {args.result_events} events): "
        f"{events_per_s:,.0f} events/s"
    )
    return 0
