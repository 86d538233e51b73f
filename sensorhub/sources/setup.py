"""A configured source and what the runtime needs next to it: its sensors, their protocols and the
metadata stored in recordings made from it. Every source kind has a factory ``config -> SourceSetup``
(``make_ble_source``, ``make_replay_source``, ``make_mqtt_source``, the simulator's in ``sensorhub.demo``);
the runtime picks one by ``[source] kind``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sensorhub.config import Config
from sensorhub.model import Segment, SensorRef, Side
from sensorhub.sources.base import PacketSource


@dataclass(frozen=True, slots=True)
class SourceSetup:
    source: PacketSource
    sensors: list[SensorRef]
    protocols: dict[str, str]
    meta: dict[str, object]  # stored in recordings made from this source


SourceFactory = Callable[[Config], SourceSetup]


def configured_sensors(config: Config) -> list[SensorRef]:
    return [
        SensorRef(s.id, a.id, Side(s.side), Segment(s.segment)) for a in config.athletes for s in a.sensors
    ]
