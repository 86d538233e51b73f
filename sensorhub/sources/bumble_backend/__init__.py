"""A bleak backend on Bumble: sensorhub's unchanged BLE code (bleak's public API) over a Bumble host.

``BleakScanner(..., backend=BumbleScanner)`` and ``BleakClient(..., backend=BumbleClient)`` reach
peripherals on an in-process Bumble link (tests), on ``firmware-sim serve-ble`` over TCP HCI, or on a
USB dongle; see :mod:`.specs` for the transport specs. For tests and demos only, never the default.

Names are imported lazily: importing :mod:`.specs` (as the BLE source always does) must not need Bumble.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sensorhub.sources.bumble_backend.client import BumbleClient
    from sensorhub.sources.bumble_backend.links import (
        BumbleTransportError,
        close_adapters,
        forget_local_link,
        local_link,
    )
    from sensorhub.sources.bumble_backend.scanner import BumbleDeviceDetails, BumbleScanner

_EXPORTS = {
    "BumbleClient": "client",
    "BumbleScanner": "scanner",
    "BumbleDeviceDetails": "scanner",
    "BumbleTransportError": "links",
    "close_adapters": "links",
    "forget_local_link": "links",
    "local_link": "links",
}

__all__ = [
    "BumbleClient",
    "BumbleDeviceDetails",
    "BumbleScanner",
    "BumbleTransportError",
    "close_adapters",
    "forget_local_link",
    "local_link",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
