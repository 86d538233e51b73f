"""``sensorhub scan``: which sensors are advertising nearby, with name, address, RSSI and protocol."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from sensorhub.errors import SourceError
from sensorhub.protocol import metamotion, movella_dot, spec, witmotion

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScanResult:
    name: str
    address: str
    rssi_dbm: int
    protocol: str  # "sensorhub-v1", "witmotion", "movella-dot", "metamotion" or "" (unknown device)


def detect_protocol(device: BLEDevice, adv: AdvertisementData) -> str:
    """From the advertised service UUIDs (or Movella's company id), then from the advertised name."""
    uuids = {u.lower() for u in adv.service_uuids}
    name = adv.local_name or device.name or ""
    if spec.SERVICE_UUID in uuids or name.startswith(spec.DEVICE_NAME_PREFIX):
        return spec.PROTOCOL_NAME
    if witmotion.SERVICE_UUID in uuids or name.startswith(witmotion.NAME_PREFIXES):
        return witmotion.PROTOCOL_NAME
    if movella_dot.COMPANY_ID in adv.manufacturer_data or name.startswith(movella_dot.NAME_PREFIXES):
        return movella_dot.PROTOCOL_NAME
    if metamotion.SERVICE_UUID in uuids or name.startswith(metamotion.NAME_PREFIXES):
        return metamotion.PROTOCOL_NAME
    return ""


async def scan(
    timeout_s: float = 5.0,
    transport: str = "bleak",
    *,
    bumble_transport: str | None = None,
    adapter: str = "",
    all_devices: bool = False,
) -> list[ScanResult]:
    """Scan for ``timeout_s``; IMUs sensorhub can read, strongest first (``all_devices``: everything)."""
    kwargs: dict[str, object] = {}
    if transport == "bumble":
        from sensorhub.sources.bumble_backend import BumbleScanner

        kwargs = {"backend": BumbleScanner, "bumble_transport": bumble_transport, "bumble_adapter": adapter}
    elif adapter:
        kwargs = {"bluez": {"adapter": adapter}}
    try:
        found = await BleakScanner.discover(timeout=timeout_s, return_adv=True, **kwargs)  # type: ignore[call-overload]
    except BleakError as exc:
        raise SourceError(f"BLE scan failed: {exc}; is Bluetooth on and the adapter present?") from exc
    finally:
        if transport == "bumble":
            from sensorhub.sources.bumble_backend import close_adapters

            await close_adapters()
    results = []
    for device, adv in found.values():
        protocol = detect_protocol(device, adv)
        if protocol or all_devices:
            name = adv.local_name or device.name or ""
            results.append(ScanResult(name, device.address, int(adv.rssi), protocol))
    return sorted(results, key=lambda r: (-r.rssi_dbm, r.name))


def format_results(results: list[ScanResult]) -> str:
    if not results:
        return "no sensors found (switched on, charged, not connected elsewhere?)"
    lines = [f"{'name':<20} {'address':<18} {'rssi':>5}  protocol"]
    for r in results:
        lines.append(f"{r.name or '-':<20} {r.address:<18} {r.rssi_dbm:>5}  {r.protocol or '?'}")
    return "\n".join(lines)


def scan_main(
    timeout_s: float = 5.0,
    transport: str = "bleak",
    *,
    bumble_transport: str | None = None,
    adapter: str = "",
    all_devices: bool = False,
) -> int:
    """CLI entry: print the table; exit code 0 if any sensor was found, 1 otherwise."""
    results = asyncio.run(
        scan(
            timeout_s, transport, bumble_transport=bumble_transport, adapter=adapter, all_devices=all_devices
        )
    )
    print(format_results(results))
    return 0 if any(r.protocol for r in results) else 1
