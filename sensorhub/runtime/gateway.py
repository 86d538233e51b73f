"""``sensorhub gateway``: the configured sensors (BLE, or the simulator) -> raw packets on the ``[mqtt]``
broker, for workers running ``sensorhub run`` with ``[source] kind = "mqtt"`` (see sensorhub.mqtt.gateway)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from sensorhub.config import load_config
from sensorhub.errors import ConfigError
from sensorhub.mqtt import Gateway
from sensorhub.runtime.run import simulated_ble_peripherals
from sensorhub.runtime.sources import make_source
from sensorhub.sources import SourceFactory

log = logging.getLogger(__name__)

STATUS_PERIOD_S = 10.0


async def _report(gateway: Gateway) -> None:
    previous = 0
    while True:
        await asyncio.sleep(STATUS_PERIOD_S)
        stats = gateway.stats.as_dict()
        claimed = sum(1 for w in gateway.claims().values() if w is not None)
        log.info(
            "gateway: %.0f packets/s, %d/%d athletes claimed, %d buffered, %d dropped, %d re-sent (%s)",
            (stats["published"] - previous) / STATUS_PERIOD_S,
            claimed,
            len(gateway.claims()),
            gateway.buffered(),
            stats["dropped"],
            stats["resent"],
            gateway.conn.stats.state,
        )
        previous = stats["published"]


async def gateway_async(config_path: Path | None, simulator: SourceFactory | None = None) -> Gateway:
    config = load_config(config_path)
    if config.source.kind not in ("ble", "simulator"):
        raise ConfigError(
            f"{config.source_file}: source.kind: a gateway publishes sensors, so 'ble' or 'simulator', "
            f"not {config.source.kind!r}"
        )
    # Off the loop: building simulated athletes takes seconds.
    setup = await asyncio.to_thread(make_source, config, simulator)
    gateway = Gateway(config.mqtt, setup.source, setup.sensors)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    athletes = sorted({s.athlete for s in setup.sensors})
    print(
        f"sensorhub gateway {gateway.gateway_id}: {len(setup.sensors)} sensors of {len(athletes)} athletes "
        f"-> mqtt://{config.mqtt.host}:{config.mqtt.port}/{config.mqtt.topic_prefix} (Ctrl-C stops)",
        flush=True,
    )
    spec = str(getattr(setup.source, "bumble_spec", ""))
    async with simulated_ble_peripherals(config, config_path, spec), asyncio.TaskGroup() as tg:
        reporter = tg.create_task(_report(gateway))
        await gateway.run(stop)
        reporter.cancel()
    return gateway


def gateway_main(config_path: Path | None, simulator: SourceFactory | None = None) -> int:
    gateway = asyncio.run(gateway_async(config_path, simulator))
    print(f"sensorhub gateway stopped: {gateway.stats.as_dict()}")
    return 0
