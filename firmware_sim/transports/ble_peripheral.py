"""A simulated sensor served as a real BLE GATT peripheral on Bumble (sensorhub profile v1; subclasses
serve the commercial profiles: ``movella_dot_peripheral``, ``metamotion_peripheral``).

The GATT layer only moves bytes: :class:`firmware_sim.device.SimulatedDevice` parses control writes,
keeps the clock and builds every data packet; this module advertises, accepts connections, maps
``CommandRejected`` to ATT error 0x80 and notifies the packets the device produces as time passes.

Where the peripherals live is a transport spec (see :func:`serve_peripherals`):
- ``local`` / ``local:NAME`` or a ``LocalLink``: on an in-process link (tests; the host side uses the
  bleak Bumble backend with the same spec);
- ``tcp-server:HOST:PORT``: on a private link inside this process, reached by a remote Bumble host over
  HCI-over-TCP (``firmware-sim serve-ble``; sensorhub uses ``tcp-client:HOST:PORT``); every accepted
  TCP connection gets its own virtual controller, dropped with its connections when the socket closes;
- any other Bumble transport (``usb:0``, ``hci-socket:1``, ``serial:...``): one peripheral on a real
  controller, i.e. a real radio that sensorhub's OS stack sees as a sensor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from bumble import gatt
from bumble.att import ATT_Error
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData, BaseBumbleError
from bumble.device import Connection, Device
from bumble.hci import HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR, Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import PacketParser, StreamPacketSink

from firmware_sim.device import DevicePacket, DeviceState, SimulatedDevice
from firmware_sim.encoder import ATT_APPLICATION_ERROR, CommandRejected
from sensorhub.sources.bumble_backend.links import VirtualController

log = logging.getLogger(__name__)

# The sensorhub GATT profile, version 1 (docs/protocol.md), written here from the spec's table.
SERVICE_UUID = "6a3e0001-8f4b-4c6e-9d2a-5e4e534f5248"
DATA_UUID = "6a3e0002-8f4b-4c6e-9d2a-5e4e534f5248"
CONTROL_UUID = "6a3e0003-8f4b-4c6e-9d2a-5e4e534f5248"
INFO_UUID = "6a3e0004-8f4b-4c6e-9d2a-5e4e534f5248"
BATTERY_SERVICE_UUID = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"

ADVERTISING_INTERVAL_MS = 50.0
"""Fast advertising (real sensors use 20-100 ms while unconnected): a reconnect finds it within ~0.1 s."""
TICK_S = 0.010
"""How often the device clock is advanced; packets leave at the first tick after their last sample."""
DEFAULT_LOCAL_LINK = "default"


def peripheral_address(name: str) -> str:
    """A stable random static address derived from the advertised name (distinct per sensor)."""
    digest = bytearray(hashlib.sha256(name.encode()).digest()[:6])
    digest[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in digest)


@dataclass(slots=True)
class PeripheralFaults:
    """Misbehaviour on demand, for the host's robustness tests."""

    malformed_every: int = 0  # every n-th data notification is truncated to a non-protocol length
    malformed_sent: int = 0
    reject_starts: int = 0  # answer this many START commands with ATT 0x80 (a flaky sensor)


@dataclass(eq=False)
class BlePeripheral:
    """One :class:`SimulatedDevice` as a Bumble GATT peripheral. ``clock`` gives the device's true time."""

    device: SimulatedDevice
    name: str
    address: str = ""
    faults: PeripheralFaults = field(default_factory=PeripheralFaults)
    clock: Callable[[], float] = time.monotonic
    virtual_controller: bool = True  # set by serve_peripherals: False on a real (USB/UART) controller
    notifications_sent: int = 0
    trace: list[tuple[int, float]] | None = None  # (seq, time.time() at notify) when set to a list
    connections_accepted: int = 0
    _t0_s: float = 0.0
    _bumble: Device | None = None
    _data_char: gatt.Characteristic[bytes] | None = None
    _connection: Connection | None = None
    _stream_task: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)  # re-advertising after a disconnect

    def __post_init__(self) -> None:
        self.address = self.address or peripheral_address(self.name)
        self._t0_s = self.clock()

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def now_true_s(self) -> float:
        return self.clock() - self._t0_s

    def build(self, host: Host) -> Device:
        """The Bumble device with the GATT database; ``host`` reaches its controller."""
        device = Device(name=self.name, address=Address(self.address))
        device.host = host
        for service in self.services():
            device.add_service(service)
        flags = (AdvertisingData.FLAGS, bytes([0x06]))  # LE general discoverable, BR/EDR not supported
        name = (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode())
        if self.virtual_controller:
            # Bumble's virtual controller answers scan requests with the advertising data itself and has
            # no 31-byte limit: everything goes in one payload.
            device.advertising_data = bytes(AdvertisingData([flags, *self.advertised(), name]))
        else:
            # Real radio, 31-byte legacy advertising: flags + service UUID; the name in the scan response.
            device.advertising_data = bytes(AdvertisingData([flags, *self.advertised()]))
            device.scan_response_data = bytes(AdvertisingData([name]))
        device.on("connection", self._on_connection)
        self._bumble = device
        return device

    # -- the profile: what a subclass for another device's GATT profile replaces --------------------

    def services(self) -> list[gatt.Service]:
        """The GATT services (sensorhub profile v1 and the Battery service); sets the data characteristic."""
        self._data_char = gatt.Characteristic(
            DATA_UUID, gatt.Characteristic.Properties.NOTIFY, gatt.Characteristic.READABLE, b""
        )
        control: gatt.Characteristic[bytes] = gatt.Characteristic(
            CONTROL_UUID,
            gatt.Characteristic.Properties.WRITE,
            gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(write=self._on_control_write),
        )
        info: gatt.Characteristic[bytes] = gatt.Characteristic(
            INFO_UUID,
            gatt.Characteristic.Properties.READ,
            gatt.Characteristic.READABLE,
            gatt.CharacteristicValue(read=lambda _conn: self.device.read_info()),
        )
        battery: gatt.Characteristic[bytes] = gatt.Characteristic(
            BATTERY_LEVEL_UUID,
            gatt.Characteristic.Properties.READ | gatt.Characteristic.Properties.NOTIFY,
            gatt.Characteristic.READABLE,
            gatt.CharacteristicValue(read=lambda _conn: bytes([self.device.battery_pct(self.now_true_s())])),
        )
        return [gatt.Service(SERVICE_UUID, [self._data_char, control, info]),
                gatt.Service(BATTERY_SERVICE_UUID, [battery])]

    def advertised(self) -> list[tuple[int, bytes]]:
        """Advertising data fields besides the flags and the name: here the service UUID."""
        return [(AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, UUID(SERVICE_UUID).to_bytes())]

    def notifications(self, packet: DevicePacket) -> list[tuple[gatt.Characteristic[bytes], bytes]]:
        """What the radio sends for one device packet: (characteristic, value) in order."""
        assert self._data_char is not None
        payload = packet.payload
        if self.faults.malformed_every and (packet.index + 1) % self.faults.malformed_every == 0:
            payload = payload[:-5]  # not 14 + 12 n bytes: the host must count and drop it
            self.faults.malformed_sent += 1
        return [(self._data_char, payload)]

    async def start(self) -> None:
        assert self._bumble is not None, "build() first"
        await self._bumble.power_on()
        await self._advertise()
        loop = asyncio.get_running_loop()
        self._stream_task = loop.create_task(self._stream(), name=f"ble-sim-{self.name}")

    async def stop(self) -> None:
        if self._stream_task is not None:
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stream_task
            self._stream_task = None
        if self._connection is not None:
            await self.drop_connection()
        for task in list(self._tasks):
            task.cancel()
        if self._bumble is not None and self._bumble.is_advertising:
            await self._bumble.stop_advertising()

    async def drop_connection(self) -> None:
        """Terminate the link from the sensor side (out of range, brown-out): the host sees a drop."""
        if self._connection is not None:
            await self._connection.disconnect(HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)

    async def _advertise(self) -> None:
        assert self._bumble is not None
        await self._bumble.start_advertising(
            auto_restart=False,
            advertising_interval_min=ADVERTISING_INTERVAL_MS,
            advertising_interval_max=ADVERTISING_INTERVAL_MS,
        )

    def _on_connection(self, connection: Connection) -> None:
        self._connection = connection
        self.connections_accepted += 1
        connection.on("disconnection", lambda reason: self._on_disconnection(connection, reason))
        log.info("sensor %s: connected by %s", self.name, connection.peer_address)

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        if self._connection is connection:
            self._connection = None
        # Firmware stops sampling when the central goes away and advertises again.
        if self.device.state is DeviceState.STREAMING:
            self.device.stop(self.now_true_s())
        log.info("sensor %s: disconnected (reason %#04x); advertising", self.name, reason)
        self.spawn(self._readvertise())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` on the loop as a task this peripheral owns (cancelled by ``stop``)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _readvertise(self) -> None:
        if self._bumble is not None and self._connection is None and not self._bumble.is_advertising:
            await self._advertise()

    def _on_control_write(self, _connection: Connection, value: bytes) -> None:
        if self.faults.reject_starts > 0 and bytes(value[:1]) == b"\x01":
            self.faults.reject_starts -= 1
            raise ATT_Error(ATT_APPLICATION_ERROR, message="fault injection: START rejected")
        try:
            self.device.write_control(bytes(value), self.now_true_s())
        except CommandRejected as exc:
            log.info("sensor %s: rejected control write %s: %s", self.name, bytes(value).hex(), exc)
            raise ATT_Error(ATT_APPLICATION_ERROR, message=str(exc)) from exc

    async def _stream(self) -> None:
        assert self._bumble is not None
        while True:
            await asyncio.sleep(TICK_S)
            packets = self.device.advance(self.now_true_s())
            connection = self._connection
            for packet in packets:
                sends = self.notifications(packet)
                if connection is None:
                    continue  # no central: the radio has nobody to send to
                if self.trace is not None:
                    self.trace.append((packet.seq, time.time()))
                for characteristic, payload in sends:
                    try:
                        await self._bumble.notify_subscriber(connection, characteristic, payload)
                    except (BaseBumbleError, ConnectionError) as exc:  # the link ended: keep sampling
                        log.debug("sensor %s: notification not sent: %r", self.name, exc)
                        break
                    self.notifications_sent += 1
                    self.sent(packet, payload)

    def sent(self, packet: DevicePacket, payload: bytes) -> None:
        """A notification reached the radio (a subclass may log what it carried)."""


class _RemoteHostProtocol(asyncio.Protocol):
    """One TCP client = one remote Bumble host = one virtual controller on the private link."""

    def __init__(self, group: PeripheralGroup) -> None:
        self._group = group
        self._parser = PacketParser()
        self._controller: Controller | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        name = f"remote-host-{id(self):x}"
        sink = StreamPacketSink(transport)
        self._controller = VirtualController(name, host_sink=sink, link=self._group.link)
        self._parser.set_packet_sink(self._controller)
        log.info("serve-ble: host connected from %s", transport.get_extra_info("peername"))

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        controller, self._controller = self._controller, None
        if controller is None:
            return
        log.info("serve-ble: host went away; dropping its connections")
        self._group.track(asyncio.get_running_loop().create_task(self._group.retire(controller)))


@dataclass(eq=False)
class PeripheralGroup:
    """The peripherals being served and where."""

    peripherals: list[BlePeripheral]
    link: LocalLink
    server: asyncio.AbstractServer | None = None
    transports: list[Any] = field(default_factory=list)

    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def track(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def retire(self, controller: Controller) -> None:
        """A remote host is gone: end its links from the sensor side (they advertise again), then take
        its controller off the link."""
        addresses = {controller.random_address, controller.public_address}
        for p in self.peripherals:
            connection = p._connection
            if connection is not None and connection.peer_address in addresses:
                await p.drop_connection()
        self.link.remove_controller(controller)

    def by_name(self, name: str) -> BlePeripheral:
        for p in self.peripherals:
            if p.name == name:
                return p
        raise KeyError(name)


def _local_host(link: LocalLink, name: str) -> Host:
    host = Host()
    host.controller = Controller(name, link=link)
    return host


@contextlib.asynccontextmanager
async def serve_peripherals(
    peripherals: Sequence[BlePeripheral], transport: str | LocalLink = "local"
) -> AsyncIterator[PeripheralGroup]:
    """Serve ``peripherals`` until the block exits (then they stop and disconnect).

    ``transport``: a ``LocalLink``, ``local[:NAME]`` (the link named so by
    ``sensorhub.sources.bumble_backend.local_link``), ``tcp-server:HOST:PORT``, or a Bumble HCI transport
    for one peripheral on a real controller (``usb:0``).
    """
    group: PeripheralGroup
    if isinstance(transport, LocalLink) or transport == "local" or transport.startswith("local:"):
        link = transport if isinstance(transport, LocalLink) else _named_link(transport)
        group = PeripheralGroup(list(peripherals), link)
        for p in peripherals:
            p.build(_local_host(link, p.name))
    elif transport.startswith("tcp-server:"):
        group = PeripheralGroup(list(peripherals), LocalLink())
        for p in peripherals:
            p.build(_local_host(group.link, p.name))
        host, _, port = transport.removeprefix("tcp-server:").rpartition(":")
        group.server = await asyncio.get_running_loop().create_server(
            lambda: _RemoteHostProtocol(group), host or "127.0.0.1", int(port)
        )
    else:
        if len(peripherals) != 1:
            raise ValueError(f"a hardware controller ({transport}) serves exactly one peripheral")
        hci = await open_transport(transport)
        group = PeripheralGroup(list(peripherals), LocalLink(), transports=[hci])
        peripherals[0].virtual_controller = False
        peripherals[0].build(Host(controller_source=hci.source, controller_sink=hci.sink))
    try:
        for p in peripherals:
            await p.start()
        yield group
    finally:
        if group.server is not None:
            group.server.close()
        for task in list(group.tasks):
            task.cancel()
        for p in peripherals:
            await p.stop()
        for hci in group.transports:
            await hci.close()


def _named_link(spec: str) -> LocalLink:
    # The host side's registry owns named links, so both ends of an in-process test share one object.
    from sensorhub.sources.bumble_backend.links import local_link

    _, _, name = spec.partition(":")
    return local_link(name or DEFAULT_LOCAL_LINK)
