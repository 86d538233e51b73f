"""Source factory: the configured ``[source]`` -> a running ``PacketSource`` and its sensors.

This is composition-root code: it is the one place that may bring in firmware_sim (lazily, for
``kind = "simulator"``); the pipeline stages never import it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sensorhub.config import Config
from sensorhub.errors import ConfigError
from sensorhub.model import RawPacket, Segment, SensorRef, Side
from sensorhub.runtime.pipeline import sensor_refs_from_meta
from sensorhub.sources.base import IteratorSource, PacketSource


@dataclass(frozen=True, slots=True)
class SourceSetup:
    source: PacketSource
    sensors: list[SensorRef]
    protocols: dict[str, str]
    meta: dict[str, object]  # stored in recordings made from this source


def configured_sensors(config: Config) -> list[SensorRef]:
    return [
        SensorRef(s.id, a.id, Side(s.side), Segment(s.segment)) for a in config.athletes for s in a.sensors
    ]


def simulated_source(config: Config, athletes: int | None = None, realtime: bool = True) -> SourceSetup:
    """Simulated athletes looping the configured drills with faults: the configured ``[[athletes]]``
    (their sensors) unless ``athletes`` is given, else ``athletes`` (default ``simulator.athletes``)
    athletes with both legs instrumented."""
    from firmware_sim.athletes import SimulatedAthlete
    from firmware_sim.body import DRILLS, session
    from firmware_sim.device import StreamSettings
    from firmware_sim.transports.inprocess import InProcessTransport

    sim = config.simulator
    unknown = [d for d in sim.drills if d not in DRILLS]
    if unknown:
        raise ConfigError(
            f"{config.source_file}: simulator.drills: unknown drill {unknown[0]!r}; "
            f"allowed: {', '.join(DRILLS)}"
        )
    # The configured athletes when there are any (their ids, sides and sensor ids), else `athletes`
    # anonymous ones with both legs. The simulator names a sensor "{athlete}-{side}-{segment}".
    configured = [a for a in config.athletes if a.sensors] if athletes is None else []
    cast = [(a.id, tuple(sorted({s.side for s in a.sensors}))) for a in configured]
    rename = {f"{a.id}-{s.side}-{s.segment}": s.id for a in configured for s in a.sensors}
    if not configured:
        n = athletes if athletes is not None else sim.athletes
        cast = [(f"athlete{i + 1}", ("right", "left")) for i in range(n)]
    faults = {"valgus": sim.fault_rate, "stiff_landing": sim.fault_rate, "fast_eccentric": sim.fault_rate}
    plan = [(drill, 5) for drill in sim.drills]
    sim_athletes = []
    for i, (name, sides) in enumerate(cast):
        motion = session(plan=plan, sides=sides, seed=sim.seed + i, faults=faults, min_duration_s=600.0)
        sim_athletes.append(SimulatedAthlete(name, motion, errors=sim.errors, seed=sim.seed + i))
    stream = config.stream
    settings = StreamSettings(
        rate_hz=stream.rate_hz,
        acc_range_g=stream.acc_range_g,
        gyr_range_dps=stream.gyr_range_dps,
        samples_per_packet=stream.samples_per_packet,
    )
    transport = InProcessTransport(sim_athletes, realtime=realtime, settings=settings, seed=sim.seed)
    refs = transport.sensor_refs()
    packets: AsyncIterator[RawPacket] = aiter(transport)
    identity = set(rename) == {r["sensor_id"] for r in refs} and all(k == v for k, v in rename.items())
    if rename and not identity:
        refs = [{**r, "sensor_id": rename[r["sensor_id"]]} for r in refs if r["sensor_id"] in rename]
        packets = _renamed(packets, rename)
    sensors = sensor_refs_from_meta(refs)
    source = IteratorSource(packets, [s.sensor_id for s in sensors])
    meta: dict[str, object] = {"source": "simulator", "sensors": refs, "rate_hz": stream.rate_hz}
    return SourceSetup(source, sensors, {r["sensor_id"]: r["protocol"] for r in refs}, meta)


async def _renamed(packets: AsyncIterator[RawPacket], ids: dict[str, str]) -> AsyncIterator[RawPacket]:
    """Simulated sensor names -> the configured ids; sensors the configuration lacks are left out."""
    async for packet in packets:
        sensor_id = ids.get(packet.sensor_id)
        if sensor_id is not None:
            yield RawPacket(sensor_id, packet.t_host_s, packet.payload)


def make_source(config: Config) -> SourceSetup:
    kind = config.source.kind
    if kind == "simulator":
        return simulated_source(config)
    if kind == "replay":
        from sensorhub.sources.replay import ReplaySource

        if not config.source.replay_file:
            raise ConfigError(
                f"{config.source_file}: source.replay_file is required when source.kind = 'replay'"
            )
        replay = ReplaySource(config.source.replay_file, speed=1.0)
        rec = replay.recording
        return SourceSetup(replay, rec.sensors, rec.protocols, dict(rec.meta))
    if kind == "ble":
        from sensorhub.sources.ble import make_ble_source

        return make_ble_source(config)
    if kind == "mqtt":
        from sensorhub.sources.mqtt import MqttSource

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
        return SourceSetup(
            MqttSource(config.mqtt, sensors), sensors, {s.id: s.protocol for s in configured}, meta
        )
    raise ConfigError(f"{config.source_file}: source.kind = {kind!r} is not available in this release yet")
