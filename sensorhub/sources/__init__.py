"""Packet sources: what every source looks like (``base``), a configured source with its sensors
(``setup``), BLE (bleak, or sensorhub's bleak backend on Bumble), replay of a recording, and the BLE
scan command. The MQTT worker source lives in ``sensorhub.mqtt``; the simulator's in ``sensorhub.demo``.
Modules are imported on first use (bleak only when BLE is)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensorhub.lazy import lazy_exports

if TYPE_CHECKING:
    from sensorhub.sources.base import IteratorSource, LinkState, PacketQueue, PacketSource, SensorLink
    from sensorhub.sources.ble import BleSource, BleTiming, make_ble_source
    from sensorhub.sources.ble_scan import scan, scan_main
    from sensorhub.sources.replay import ReplaySource, make_replay_source
    from sensorhub.sources.setup import SourceFactory, SourceSetup, configured_sensors

__all__ = [
    "BleSource",
    "BleTiming",
    "IteratorSource",
    "LinkState",
    "PacketQueue",
    "PacketSource",
    "ReplaySource",
    "SensorLink",
    "SourceFactory",
    "SourceSetup",
    "configured_sensors",
    "make_ble_source",
    "make_replay_source",
    "scan",
    "scan_main",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "IteratorSource": "base",
        "LinkState": "base",
        "PacketQueue": "base",
        "PacketSource": "base",
        "SensorLink": "base",
        "BleSource": "ble",
        "BleTiming": "ble",
        "make_ble_source": "ble",
        "scan": "ble_scan",
        "scan_main": "ble_scan",
        "ReplaySource": "replay",
        "make_replay_source": "replay",
        "SourceFactory": "setup",
        "SourceSetup": "setup",
        "configured_sensors": "setup",
    },
)
