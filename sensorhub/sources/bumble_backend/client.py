"""bleak client backend on a Bumble host: connect, MTU exchange, discovery, read/write, notify.

The ATT MTU is exchanged during ``connect`` (as CoreBluetooth and WinRT do on their own), so a
sensorhub sensor can send 19-sample packets; ``mtu_size`` reports the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import core, hci
from bumble.att import ATT_Error
from bumble.device import Connection, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy
from bumble.hci import HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR, Address

from sensorhub.sources.bumble_backend.links import BumbleAdapter, get_adapter
from sensorhub.sources.bumble_backend.scanner import BumbleDeviceDetails
from sensorhub.sources.bumble_backend.specs import resolve_spec
from sensorhub.sources.bumble_backend.uuids import to_bleak_uuid, to_bumble_uuid

log = logging.getLogger(__name__)

DEFAULT_ATT_MTU = 247
"""Requested at connect: 247 bytes carry a 242-byte, 19-sample packet (the data length extension size)."""
MIN_ATT_MTU = 23
ABANDON_GRACE_S = 0.5
"""How long an abandoned connection attempt may take to wind down at each step."""

_PROPERTY_NAMES: tuple[tuple[Characteristic.Properties, CharacteristicPropertyName], ...] = (
    (Characteristic.Properties.BROADCAST, "broadcast"),
    (Characteristic.Properties.READ, "read"),
    (Characteristic.Properties.WRITE_WITHOUT_RESPONSE, "write-without-response"),
    (Characteristic.Properties.WRITE, "write"),
    (Characteristic.Properties.NOTIFY, "notify"),
    (Characteristic.Properties.INDICATE, "indicate"),
    (Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes"),
    (Characteristic.Properties.EXTENDED_PROPERTIES, "extended-properties"),
)


async def _abandon(attempt: asyncio.Future[Connection], adapter: BumbleAdapter) -> None:
    """Stop a connection attempt for good: cancel the task, and the pending connect at the controller."""
    attempt.cancel()
    await asyncio.wait({attempt}, timeout=ABANDON_GRACE_S)
    if not attempt.done():  # the cancellation was swallowed inside Bumble: end the HCI procedure
        with contextlib.suppress(core.BaseBumbleError, TimeoutError):
            await adapter.device.send_command(hci.HCI_LE_Create_Connection_Cancel_Command())
        await asyncio.wait({attempt}, timeout=ABANDON_GRACE_S)
    if attempt.done() and not attempt.cancelled() and attempt.exception() is None:
        with contextlib.suppress(core.BaseBumbleError):  # it connected after all: nobody wants this link
            await attempt.result().disconnect()


def _property_names(properties: Characteristic.Properties) -> list[CharacteristicPropertyName]:
    return [name for flag, name in _PROPERTY_NAMES if properties & flag]


class BumbleClient(BaseBleakClient):
    """``BleakClient(device, backend=BumbleClient)``; the transport comes from the ``BLEDevice`` a
    :class:`~.scanner.BumbleScanner` returned, else from the ``bumble_transport=`` and ``bumble_adapter=``
    keywords."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        bumble_transport: str | None = None,
        bumble_adapter: str = "",
        att_mtu: int = DEFAULT_ATT_MTU,
        services: set[str] | None = None,
        **kwargs: Any,  # bleak's platform arguments (bluez, winrt, pair, ...) do not apply here
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        if isinstance(details, BumbleDeviceDetails):
            self._spec, self._adapter_name = details.spec, details.adapter
            self._peer_address = details.address
        else:
            self._spec = resolve_spec(bumble_transport)
            self._adapter_name = bumble_adapter
            self._peer_address = Address(self.address, Address.RANDOM_DEVICE_ADDRESS)
        given_name = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._name = given_name or self.address.replace(":", "-")
        self._att_mtu = att_mtu
        self._service_filter = sorted(services) if services else None
        self._connection: Connection | None = None
        self._notify: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else MIN_ATT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connection is not None:
            return
        timeout = float(kwargs.get("timeout", self._timeout))
        adapter = await get_adapter(self._spec, self._adapter_name)
        async with adapter.connect_lock:
            connection = await self._create_connection(adapter, timeout)
        self._connection = connection
        connection.on("disconnection", self._on_disconnection)
        try:
            peer = Peer(connection)
            if self._att_mtu > MIN_ATT_MTU:
                await peer.request_mtu(self._att_mtu)
            self.services = await self._discover(peer)
            if pair:
                await connection.pair()
        except (core.BaseBumbleError, ATT_Error, core.ProtocolError) as exc:
            await self.disconnect()
            raise BleakError(f"{self.address}: GATT setup failed: {exc}") from exc

    async def _create_connection(self, adapter: BumbleAdapter, timeout: float) -> Connection:
        """``Device.connect`` in a task of its own, awaited with ``asyncio.wait``.

        Bumble awaits HCI responses with ``asyncio.wait_for``, which on Python 3.11 drops a cancellation
        that arrives in the same loop step as the response; awaiting the attempt through ``asyncio.wait``
        keeps our caller cancellable, and an abandoned attempt is cancelled at the controller too.
        """
        attempt = asyncio.ensure_future(adapter.device.connect(self._peer_address, timeout=timeout))
        try:
            await asyncio.wait({attempt}, timeout=timeout + ABANDON_GRACE_S)
        except asyncio.CancelledError:
            await _abandon(attempt, adapter)
            raise
        if not attempt.done():
            await _abandon(attempt, adapter)
        try:
            return attempt.result()
        except (core.TimeoutError, asyncio.CancelledError) as exc:
            raise TimeoutError(
                f"{self.address}: no connection within {timeout:.1f} s (is it advertising and in range?)"
            ) from exc
        except core.ConnectionError as exc:
            raise BleakError(f"{self.address}: connection failed: {exc}") from exc
        except core.InvalidStateError as exc:
            raise BleakError(f"{self.address}: adapter busy: {exc}") from exc

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        uuids = [to_bumble_uuid(u) for u in self._service_filter] if self._service_filter else []
        collection = BleakGATTServiceCollection()
        for service in await peer.discover_services(uuids):
            bleak_service = BleakGATTService(service, service.handle, to_bleak_uuid(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in await service.discover_characteristics():
                bleak_char = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    to_bleak_uuid(characteristic.uuid),
                    _property_names(characteristic.properties),
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_char)
                for descriptor in await characteristic.discover_descriptors():
                    uuid = to_bleak_uuid(descriptor.type)
                    bleak_descriptor = BleakGATTDescriptor(descriptor, descriptor.handle, uuid, bleak_char)
                    collection.add_descriptor(bleak_descriptor)
        return collection

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self._notify.clear()
        log.debug("%s: disconnected (HCI reason %#04x)", self.address, reason)
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        # A disconnect we ask for is not "unsolicited": bleak only reports those.
        callback, self._disconnected_callback = self._disconnected_callback, None
        try:
            await connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
        except (core.BaseBumbleError, ConnectionError) as exc:
            log.debug("%s: disconnect: %r", self.address, exc)
        finally:
            self._connection = None
            self._notify.clear()
            self._disconnected_callback = callback

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        if self._connection is None:
            raise BleakError("Not connected")
        await self._connection.pair()

    async def unpair(self) -> None:
        raise BleakError("unpair is not supported by the Bumble backend (keys live in the Bumble keystore)")

    def _require_connected(self) -> None:
        if self._connection is None:
            raise BleakError("Not connected")

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require_connected()
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        try:
            return bytearray(await proxy.read_value())
        except ATT_Error as exc:
            raise BleakGATTProtocolError(int(exc.error_code)) from exc

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require_connected()
        proxy: DescriptorProxy = descriptor.obj
        try:
            return bytearray(await proxy.read_value())
        except ATT_Error as exc:
            raise BleakGATTProtocolError(int(exc.error_code)) from exc

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        self._require_connected()
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        try:
            await proxy.write_value(bytes(data), with_response=response)
        except ATT_Error as exc:
            raise BleakGATTProtocolError(int(exc.error_code)) from exc

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        self._require_connected()
        proxy: DescriptorProxy = descriptor.obj
        try:
            await proxy.write_value(bytes(data), with_response=True)
        except ATT_Error as exc:
            raise BleakGATTProtocolError(int(exc.error_code)) from exc

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._require_connected()
        proxy: CharacteristicProxy[bytes] = characteristic.obj

        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        self._notify[characteristic.handle] = on_value
        try:
            await proxy.subscribe(on_value, prefer_notify=True)
        except ATT_Error as exc:
            raise BleakGATTProtocolError(int(exc.error_code)) from exc

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._require_connected()
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        on_value = self._notify.pop(characteristic.handle, None)
        await proxy.unsubscribe(on_value)
