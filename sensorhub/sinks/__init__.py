"""Result sinks on the bus: the raw-packet recorder (off the event loop) and the InfluxDB writer with
its disk spool (the MQTT result sink lives in ``sensorhub.mqtt``, the dashboard in ``sensorhub.web``).
Each knows the bus and its own server; the runtime wires them. Modules are imported on first use
(influxdb-client only when InfluxDB is enabled)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensorhub.lazy import lazy_exports

if TYPE_CHECKING:
    from sensorhub.sinks.influx import InfluxSink, InfluxStats, spool_path
    from sensorhub.sinks.influx_schema import SCHEMA, KneeAngleLines
    from sensorhub.sinks.recorder import BackgroundRecorder
    from sensorhub.sinks.spool import Spool

__all__ = [
    "SCHEMA",
    "BackgroundRecorder",
    "InfluxSink",
    "InfluxStats",
    "KneeAngleLines",
    "Spool",
    "spool_path",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "InfluxSink": "influx",
        "InfluxStats": "influx",
        "spool_path": "influx",
        "SCHEMA": "influx_schema",
        "KneeAngleLines": "influx_schema",
        "BackgroundRecorder": "recorder",
        "Spool": "spool",
    },
)
