"""Which Bumble link or HCI transport the bleak backend uses, and the host-side "adapters" on it.

A transport spec is either ``local`` / ``local:NAME`` (an in-process Bumble ``LocalLink``: every
controller on it hears every other one; tests put the simulated peripherals on the same link) or any
Bumble HCI transport string (``tcp-client:127.0.0.1:28700`` for ``firmware-sim serve-ble`` running in
another process, ``usb:0`` for a USB Bluetooth dongle, ``hci-socket:0``, ...).

An :class:`BumbleAdapter` is one Bumble host (``Device``) on one transport, shared by every scanner and
client that names the same ``(spec, adapter)`` pair, like ``hci0`` is shared on a PC. Adapters open
lazily on first use and stay open until :func:`close_adapters` (the BLE source and the scan command
call it on exit; tests call it in teardown): reopening an HCI transport per connection would reset the
controller under the other connections.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bumble import hci
from bumble.controller import Controller
from bumble.device import Advertisement, Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport

from sensorhub.errors import SourceError
from sensorhub.sources.bumble_backend.specs import DEFAULT_LOCAL_LINK, is_local, local_link_name

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 1.0  # per connection when an adapter closes

_links: dict[str, LocalLink] = {}
_adapters: dict[tuple[int, str, str], BumbleAdapter] = {}


class VirtualController(Controller):
    """Bumble's virtual controller, completing *LE Create Connection Cancel* as real controllers do.

    The stock one acknowledges the cancel but keeps the pending connection and never reports its end,
    so a host's connect timeout waits forever and a later advertisement connects a link nobody wants.
    Here the pending connection is dropped and reported as failed (Unknown Connection Identifier).
    """

    def on_hci_le_create_connection_cancel_command(self, command: Any) -> Any:
        pending = self.pending_le_connection
        self.pending_le_connection = None
        result = super().on_hci_le_create_connection_cancel_command(command)
        if pending is not None:
            event = hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address.address_type,
                peer_address=pending.peer_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            )
            # After the cancel's Command Complete, as the specification orders them.
            asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return result


class BumbleTransportError(SourceError):
    """A Bumble transport cannot be opened (wrong spec, simulator not running, dongle missing)."""


def local_link(name: str = DEFAULT_LOCAL_LINK) -> LocalLink:
    """The process-wide in-memory link called ``name`` (created on first use).

    Peripherals served on it (``firmware_sim.transports.ble_peripheral``) are visible to the backend when
    its transport spec is ``local:NAME``.
    """
    link = _links.get(name)
    if link is None:
        link = _links[name] = LocalLink()
    return link


def forget_local_link(name: str) -> None:
    """Drop a named link (tests use a fresh name per test; this keeps the registry small)."""
    _links.pop(name, None)


def host_address(spec: str, adapter: str) -> Address:
    """A stable random static address for the host side of ``(spec, adapter)``."""
    digest = bytearray(hashlib.sha256(f"{spec}|{adapter}".encode()).digest()[:6])
    digest[0] |= 0xC0  # static random address: two most significant bits set
    return Address(":".join(f"{b:02X}" for b in digest))


AdvertisementListener = Callable[[Advertisement], None]


@dataclass(eq=False)
class BumbleAdapter:
    """One Bumble host on one transport; scanning is reference-counted, LE connects are serialised."""

    spec: str
    name: str
    device: Device
    close_transport: Callable[[], Any] | None = None
    controller: Controller | None = None
    link: LocalLink | None = None
    # A controller creates one LE connection at a time (BlueZ likewise allows one pending connect).
    connect_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _scan_listeners: list[AdvertisementListener] = field(default_factory=list)
    closed: bool = False
    loop: asyncio.AbstractEventLoop | None = None

    async def add_scan_listener(self, listener: AdvertisementListener, *, active: bool) -> None:
        self.device.on("advertisement", listener)
        self._scan_listeners.append(listener)
        if len(self._scan_listeners) == 1:
            # filter_duplicates=False: RSSI and presence updates keep arriving while scanning.
            await self.device.start_scanning(active=active, filter_duplicates=False)

    async def remove_scan_listener(self, listener: AdvertisementListener) -> None:
        if listener not in self._scan_listeners:
            return
        self._scan_listeners.remove(listener)
        self.device.remove_listener("advertisement", listener)
        if not self._scan_listeners and not self.closed:
            await self.device.stop_scanning()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for connection in list(self.device.connections.values()):
            try:
                await asyncio.wait_for(connection.disconnect(), CLOSE_TIMEOUT_S)
            except Exception as exc:  # a dying transport may fail or stall the disconnect; it closes anyway
                log.debug("adapter %s: disconnect on close failed: %r", self.name, exc)
        if self.link is not None and self.controller is not None:
            self.link.remove_controller(self.controller)
        if self.close_transport is not None:
            await self.close_transport()


async def get_adapter(spec: str, adapter: str = "") -> BumbleAdapter:
    """The open adapter for ``(spec, adapter)`` on the running event loop, opened on first use."""
    loop = asyncio.get_running_loop()
    key = (id(loop), spec, adapter)
    found = _adapters.get(key)
    if found is not None and not found.closed and found.loop is loop:
        return found
    opened = await _open_adapter(spec, adapter)
    opened.loop = loop
    _adapters[key] = opened
    return opened


async def _open_adapter(spec: str, adapter: str) -> BumbleAdapter:
    name = f"sensorhub-{adapter or 'host'}"
    address = host_address(spec, adapter)
    if is_local(spec):
        link = local_link(local_link_name(spec))
        device = Device(name=name, address=address)
        controller = VirtualController(name, link=link)
        device.host = Host()
        device.host.controller = controller
        await device.power_on()
        return BumbleAdapter(spec, adapter, device, controller=controller, link=link)
    try:
        transport = await open_transport(spec)
    except Exception as exc:  # bumble raises plain OSError/ValueError/... depending on the transport
        raise BumbleTransportError(
            f"cannot open Bumble transport {spec!r}: {exc}. For the simulator start "
            f"`firmware-sim serve-ble` first; for a dongle check the USB index (`bumble-usb-probe`)."
        ) from exc
    device = Device.with_hci(name, address, transport.source, transport.sink)
    try:
        await asyncio.wait_for(device.power_on(), timeout=10.0)
    except Exception as exc:
        await transport.close()
        raise BumbleTransportError(
            f"Bumble transport {spec!r} opened but the controller did not answer: {exc!r}"
        ) from exc
    return BumbleAdapter(spec, adapter, device, close_transport=transport.close)


async def close_adapters() -> None:
    """Close every adapter opened on the running loop (and forget adapters of closed loops)."""
    loop = asyncio.get_running_loop()
    for key, adapter in list(_adapters.items()):
        if adapter.loop is loop:
            del _adapters[key]
            await adapter.close()
        elif adapter.loop is None or adapter.loop.is_closed():
            del _adapters[key]  # left behind by a finished event loop (e.g. an earlier test)
