"""Source factory: the configured ``[source]`` -> a running ``PacketSource`` and its sensors.

Each kind has its own factory next to its source; the simulator's comes from the caller (the faces:
``sensorhub demo`` and the CLI pass ``sensorhub.demo.simulated_source``), because the runtime never
imports firmware_sim.
"""

from __future__ import annotations

from sensorhub.config import Config
from sensorhub.errors import ConfigError
from sensorhub.sources import SourceFactory, SourceSetup


def make_source(config: Config, simulator: SourceFactory | None = None) -> SourceSetup:
    kind = config.source.kind
    if kind == "simulator":
        if simulator is None:
            raise ConfigError(
                f"{config.source_file}: source.kind = 'simulator': the runtime does not import the "
                "simulator; pass it: make_source(config, simulator=sensorhub.demo.simulated_source)"
            )
        return simulator(config)
    if kind == "replay":
        from sensorhub.sources import make_replay_source

        return make_replay_source(config)
    if kind == "ble":
        from sensorhub.sources import make_ble_source

        return make_ble_source(config)
    if kind == "mqtt":
        from sensorhub.mqtt import make_mqtt_source

        return make_mqtt_source(config)
    raise ConfigError(f"{config.source_file}: source.kind = {kind!r} is not available in this release yet")
