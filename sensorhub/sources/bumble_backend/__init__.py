"""A bleak backend on Bumble: sensorhub's unchanged BLE code (bleak's public API) over a Bumble host.

``BleakScanner(..., backend=BumbleScanner)`` and ``BleakClient(..., backend=BumbleClient)`` reach
peripherals on an in-process Bumble link (tests), on ``firmware-sim serve-ble`` over TCP HCI, or on a
USB dongle; see :mod:`.specs` for the transport specs. For tests and demos only, never the default.

Names are imported lazily: importing :mod:`.specs` (as the BLE source always does) must not need Bumble.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensorhub.lazy import lazy_exports

if TYPE_CHECKING:
    from sensorhub.sources.bumble_backend.client import BumbleClient
    from sensorhub.sources.bumble_backend.links import (
        BumbleTransportError,
        close_adapters,
        forget_local_link,
        local_link,
    )
    from sensorhub.sources.bumble_backend.scanner import BumbleDeviceDetails, BumbleScanner
    from sensorhub.sources.bumble_backend.simulator import serve_ble_process

__all__ = [
    "BumbleClient",
    "BumbleDeviceDetails",
    "BumbleScanner",
    "BumbleTransportError",
    "close_adapters",
    "forget_local_link",
    "local_link",
    "serve_ble_process",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "BumbleClient": "client",
        "BumbleScanner": "scanner",
        "BumbleDeviceDetails": "scanner",
        "BumbleTransportError": "links",
        "close_adapters": "links",
        "forget_local_link": "links",
        "local_link": "links",
        "serve_ble_process": "simulator",
    },
)
