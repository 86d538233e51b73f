"""bleak scanner backend on a Bumble host: advertisements -> ``BLEDevice`` + ``AdvertisementData``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bumble import core
from bumble.core import AdvertisingData
from bumble.device import Advertisement

from sensorhub.sources.bumble_backend.links import BumbleAdapter, get_adapter
from sensorhub.sources.bumble_backend.specs import resolve_spec
from sensorhub.sources.bumble_backend.uuids import to_bleak_uuid

log = logging.getLogger(__name__)

_SERVICE_LIST_TYPES = (
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)


@dataclass(frozen=True, slots=True)
class BumbleDeviceDetails:
    """``BLEDevice.details`` of this backend: how to reach the device again (no ``path`` key: the
    BlueZ helpers of bleak-retry-connector then leave it alone)."""

    spec: str
    adapter: str
    address: Any  # bumble.hci.Address, with its address type (public / random)


def advertisement_data(adv: Advertisement) -> AdvertisementData:
    """One Bumble advertisement (advertising data merged with its scan response) in bleak's shape."""
    data = adv.data
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
    service_uuids: list[str] = []
    for ad_type in _SERVICE_LIST_TYPES:
        for value in data.get_all(ad_type):
            uuids = value if isinstance(value, list) else [value]
            for u in uuids:
                # a merged scan response may repeat the advertising data's list
                if isinstance(u, core.UUID) and (text := to_bleak_uuid(u)) not in service_uuids:
                    service_uuids.append(text)
    manufacturer: dict[int, bytes] = {}
    for value in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA):
        if isinstance(value, tuple) and len(value) == 2:
            manufacturer[int(value[0])] = bytes(value[1])
    service_data: dict[str, bytes] = {}
    for value in data.get_all(AdvertisingData.SERVICE_DATA):
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], core.UUID):
            service_data[to_bleak_uuid(value[0])] = bytes(value[1])
    tx_power = data.get(AdvertisingData.TX_POWER_LEVEL)
    return AdvertisementData(
        local_name=name if isinstance(name, str) else None,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=service_uuids,
        tx_power=tx_power if isinstance(tx_power, int) else None,
        rssi=int(adv.rssi),
        platform_data=(adv,),
    )


class BumbleScanner(BaseBleakScanner):
    """``BleakScanner(..., backend=BumbleScanner, bumble_transport="local:NAME", bumble_adapter="hci0")``.

    Extra keyword arguments: ``bumble_transport`` (a transport spec, see :mod:`.links`; default from
    ``SENSORHUB_BUMBLE_TRANSPORT`` or ``local``) and ``bumble_adapter`` (a name grouping connections on one
    Bumble host). Bleak's platform arguments (``bluez``, ``cb``) are accepted and ignored.
    """

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        bumble_transport: str | None = None,
        bumble_adapter: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode == "active"
        self._spec = resolve_spec(bumble_transport)
        self._adapter_name = bumble_adapter
        self._adapter: BumbleAdapter | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._adapter = await get_adapter(self._spec, self._adapter_name)
        await self._adapter.add_scan_listener(self._on_advertisement, active=self._active)

    async def stop(self) -> None:
        if self._adapter is not None:
            await self._adapter.remove_scan_listener(self._on_advertisement)
            self._adapter = None

    def _on_advertisement(self, adv: Advertisement) -> None:
        data = advertisement_data(adv)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = str(adv.address).split("/")[0]  # Bumble appends "/P" to public addresses
        details = BumbleDeviceDetails(self._spec, self._adapter_name, adv.address)
        device = self.create_or_update_device(address, address, data.local_name, details, data)
        self.call_detection_callbacks(device, data)
