"""Bluetooth LE ingestion with bleak: scan, connect one sensor at a time, subscribe, stream, reconnect.

One :class:`BleSource` owns every configured sensor. Per adapter it runs one scanner and serialises
connection attempts (BlueZ allows one pending LE connect per adapter); per sensor it runs a small,
explicit state machine (:data:`TRANSITIONS`):

    idle -> scanning -> connecting -> streaming -> lost -> connecting ...
                 \\-> missing (not seen within ``find_timeout_s``; keeps listening)
    connecting -> backing_off (failure classified by bleak-retry-connector) -> scanning

Notification callbacks only timestamp the bytes and enqueue a :class:`RawPacket`. A drop is a *gap*:
its start and end are recorded (``gaps()``), the sensor restarts its sequence numbers (flag bit 2) and
the timing stage bridges the hole; other sensors never wait for it.

``source.transport = "bumble"`` runs the same code through sensorhub's bleak backend on Bumble
(:mod:`sensorhub.sources.bumble_backend`) for tests and demos.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak_retry_connector import (
    BleakAbortedError,
    BleakConnectionError,
    BleakNotFoundError,
    BleakOutOfConnectionSlotsError,
    calculate_backoff_time,
    establish_connection,
)

from sensorhub.config import Config, SensorConfig
from sensorhub.errors import SourceError
from sensorhub.model import RawPacket
from sensorhub.protocol import spec
from sensorhub.sources.base import LinkState, PacketQueue, SensorLink
from sensorhub.sources.bumble_backend.specs import DEFAULT_TCP_SPEC, ENV_TRANSPORT
from sensorhub.sources.gatt_profiles import PROFILES
from sensorhub.sources.setup import SourceSetup, configured_sensors

log = logging.getLogger(__name__)

ATT_HEADER_SIZE = 3  # opcode + handle in front of every notification value
HISTORY_LENGTH = 32  # recent state transitions kept per sensor (why is it flapping?)


class BleStateError(SourceError):
    """A sensor link was asked to make a transition its state machine does not allow (a bug)."""


TRANSITIONS: dict[LinkState, frozenset[LinkState]] = {
    LinkState.IDLE: frozenset({LinkState.SCANNING}),
    LinkState.SCANNING: frozenset({LinkState.CONNECTING, LinkState.MISSING, LinkState.IDLE}),
    LinkState.MISSING: frozenset({LinkState.CONNECTING, LinkState.IDLE}),
    LinkState.CONNECTING: frozenset({LinkState.STREAMING, LinkState.BACKING_OFF, LinkState.IDLE}),
    LinkState.STREAMING: frozenset({LinkState.LOST, LinkState.IDLE}),
    LinkState.LOST: frozenset({LinkState.CONNECTING, LinkState.IDLE}),
    LinkState.BACKING_OFF: frozenset({LinkState.SCANNING, LinkState.IDLE}),
}


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation that a racing timeout swallowed (Python 3.11 ``asyncio.timeout`` and
    ``wait_for`` can return normally when their inner await finishes in the same loop step as the
    cancel), so shutdown never waits for another connection attempt."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def move(link: SensorLink, state: LinkState, error: str = "") -> None:
    """Checked transition; an illegal one raises :class:`BleStateError`."""
    if state not in TRANSITIONS[link.state]:
        raise BleStateError(f"sensor {link.sensor_id}: illegal transition {link.state} -> {state}")
    link.set_state(state, error)


@dataclass(frozen=True, slots=True)
class BleTiming:
    """Tuned constants of the connection policy (seconds)."""

    find_timeout_s: float = 10.0  # no advertisement within this: reported MISSING (still listening)
    connect_timeout_s: float = 15.0  # one establish_connection call, all its retries included
    connect_attempts: int = 3  # attempts inside establish_connection before its error is classified
    setup_timeout_s: float = 10.0  # MTU + subscribe + START after the link is up
    backoff_min_s: float = 0.5  # after a failed connect; doubles per consecutive failure ...
    backoff_max_s: float = 15.0  # ... up to this
    battery_period_s: float = 60.0  # battery level read interval while streaming
    stop_timeout_s: float = 1.0  # best-effort STOP + disconnect on shutdown


def max_samples_per_packet(att_mtu: int) -> int:
    """Samples that fit one notification at this ATT MTU (1..19)."""
    fit = (att_mtu - ATT_HEADER_SIZE - spec.HEADER_SIZE) // spec.SAMPLE_SIZE
    return max(spec.MIN_SAMPLES, min(spec.MAX_SAMPLES, fit))


# --- discovery: one scanner per adapter, sessions wait for "their" advertisement ---------------------


def matches(sensor: SensorConfig, device: BLEDevice, adv: AdvertisementData) -> bool:
    """By address when one is configured, else by advertised name."""
    if sensor.address:
        return device.address.upper() == sensor.address.upper()
    return bool(sensor.name) and (adv.local_name or device.name) == sensor.name


@dataclass(slots=True)
class Sighting:
    device: BLEDevice
    adv: AdvertisementData
    t_host_s: float


_Matcher = Callable[[BLEDevice, AdvertisementData], bool]


class Discovery:
    """The advertisements one adapter's scanner has seen, and sessions waiting for a sensor."""

    def __init__(self) -> None:
        self.seen: dict[str, Sighting] = {}
        self._waiters: list[tuple[_Matcher, asyncio.Future[Sighting]]] = []

    def on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        sighting = Sighting(device, adv, time.time())
        self.seen[device.address] = sighting
        for match, future in self._waiters:
            if not future.done() and match(device, adv):
                future.set_result(sighting)

    async def wait_for(
        self, sensor: SensorConfig, timeout_s: float | None, seen_after_s: float = 0.0
    ) -> Sighting | None:
        for sighting in self.seen.values():
            if sighting.t_host_s >= seen_after_s and matches(sensor, sighting.device, sighting.adv):
                return sighting
        future: asyncio.Future[Sighting] = asyncio.get_running_loop().create_future()
        entry = (lambda d, a: matches(sensor, d, a), future)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._waiters.remove(entry)


# --- the source ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkGap:
    """A hole in one sensor's stream: from the drop to the first packet after the reconnect."""

    sensor_id: str
    lost_host_s: float
    resumed_host_s: float

    @property
    def duration_s(self) -> float:
        return self.resumed_host_s - self.lost_host_s


@dataclass(slots=True)
class _SensorExtras:
    """Per-sensor facts beyond :class:`SensorLink` (reported by :meth:`BleSource.stats`)."""

    adapter: str
    protocol: str
    address: str = ""
    rssi_dbm: int | None = None
    att_mtu: int = 0
    samples_per_packet: int = 0
    open_gap_s: float | None = None  # host time of the drop while a gap is open
    first_packet_host_s: float | None = None  # first notification of the current connection
    gaps: list[LinkGap] = field(default_factory=list)
    history: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=HISTORY_LENGTH))


class BleSource:
    """All configured BLE sensors. ``BleSource(config)``; ``await source.run(queue)`` until cancelled.

    ``bumble_transport`` overrides ``config.source.bumble_transport`` (when ``transport = "bumble"``);
    ``timing`` holds the connection policy constants.
    """

    def __init__(
        self,
        config: Config,
        *,
        bumble_transport: str | None = None,
        timing: BleTiming | None = None,
    ) -> None:
        self._config = config
        self._timing = timing or BleTiming()
        self._sensors: list[SensorConfig] = [s for a in config.athletes for s in a.sensors]
        for sensor in self._sensors:
            if sensor.protocol not in PROFILES:
                raise SourceError(
                    f"sensor {sensor.id}: protocol {sensor.protocol!r} has no BLE profile; "
                    f"known: {', '.join(sorted(PROFILES))}"
                )
        self._use_bumble = config.source.transport == "bumble"
        # Until SourceConfig grows ``bumble_transport``: the simulator in another process by default.
        configured = getattr(config.source, "bumble_transport", "")
        from_env = os.environ.get(ENV_TRANSPORT, "")
        self._bumble_spec = bumble_transport or configured or from_env or DEFAULT_TCP_SPEC
        self._links = {s.id: SensorLink(s.id) for s in self._sensors}
        self._extras = {s.id: _SensorExtras(s.adapter, s.protocol) for s in self._sensors}
        self._discovery: dict[str, Discovery] = {}
        self._connect_locks: dict[str, asyncio.Lock] = {}
        self._lost_events: dict[str, asyncio.Event] = {}

    @property
    def bumble_spec(self) -> str:
        """The Bumble transport used when ``source.transport = "bumble"``."""
        return self._bumble_spec

    # -- PacketSource ---------------------------------------------------------------------------------

    def links(self) -> dict[str, SensorLink]:
        return self._links

    def gaps(self, sensor_id: str) -> list[LinkGap]:
        return list(self._extras[sensor_id].gaps)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-sensor link details for /health: adapter, protocol, MTU, RSSI, gaps."""
        out: dict[str, dict[str, Any]] = {}
        for sensor_id, extra in self._extras.items():
            out[sensor_id] = {
                "adapter": extra.adapter or "default",
                "protocol": extra.protocol,
                "address": extra.address,
                "rssi_dbm": extra.rssi_dbm,
                "att_mtu": extra.att_mtu,
                "samples_per_packet": extra.samples_per_packet,
                "gaps": len(extra.gaps),
                "last_gap_s": round(extra.gaps[-1].duration_s, 3) if extra.gaps else None,
                "gap_open": extra.open_gap_s is not None,
                "recent_states": list(extra.history),
            }
        return out

    async def run(self, out: PacketQueue) -> None:
        adapters = sorted({s.adapter for s in self._sensors})
        scanners: list[BleakScanner] = []
        try:
            for adapter in adapters:
                discovery = self._discovery[adapter] = Discovery()
                self._connect_locks[adapter] = asyncio.Lock()
                on_this = [s for s in self._sensors if s.adapter == adapter]
                uuids = None
                if all(PROFILES[s.protocol].advertises_service for s in on_this):
                    uuids = sorted({PROFILES[s.protocol].service_uuid for s in on_this})
                scanner = BleakScanner(discovery.on_advertisement, uuids, **self._scanner_kwargs(adapter))
                await scanner.start()
                scanners.append(scanner)
            async with asyncio.TaskGroup() as group:
                for sensor in self._sensors:
                    group.create_task(self._session(sensor, out), name=f"ble-{sensor.id}")
        finally:
            for scanner in scanners:
                with contextlib.suppress(BleakError, OSError):
                    await scanner.stop()
            for link in self._links.values():
                if link.state is not LinkState.IDLE:
                    link.set_state(LinkState.IDLE)
            if self._use_bumble:
                from sensorhub.sources.bumble_backend import close_adapters

                await close_adapters()

    # -- backend selection --------------------------------------------------------------------------

    def _scanner_kwargs(self, adapter: str) -> dict[str, Any]:
        if self._use_bumble:
            from sensorhub.sources.bumble_backend import BumbleScanner

            spec_ = self._bumble_spec
            return {"backend": BumbleScanner, "bumble_transport": spec_, "bumble_adapter": adapter}
        return {"bluez": {"adapter": adapter}} if adapter else {}

    def _client_kwargs(self) -> dict[str, Any]:
        if self._use_bumble:
            from sensorhub.sources.bumble_backend import BumbleClient

            return {"backend": BumbleClient}
        return {}

    # -- one sensor ---------------------------------------------------------------------------------

    def _move(self, link: SensorLink, state: LinkState, error: str = "") -> None:
        move(link, state, error)
        self._extras[link.sensor_id].history.append((round(time.time(), 3), state.value))

    async def _session(self, sensor: SensorConfig, out: PacketQueue) -> None:
        link = self._links[sensor.id]
        extra = self._extras[sensor.id]
        discovery = self._discovery[sensor.adapter]
        timing = self._timing
        failures = 0
        sighting: Sighting | None = None
        self._move(link, LinkState.SCANNING)
        try:
            while True:
                _raise_if_cancelled()
                if link.state is LinkState.SCANNING:
                    sighting = await discovery.wait_for(sensor, timing.find_timeout_s)
                    if sighting is None:
                        self._move(link, LinkState.MISSING, self._missing_message(sensor))
                        log.warning("sensor %s: %s", sensor.id, link.last_error)
                        sighting = await discovery.wait_for(sensor, None)
                assert sighting is not None
                extra.address, extra.rssi_dbm = sighting.device.address, sighting.adv.rssi
                self._move(link, LinkState.CONNECTING)
                try:
                    client = await self._connect_and_start(sensor, sighting.device, out)
                except BleStateError:
                    raise
                except Exception as exc:  # any failure to connect is classified, logged and retried
                    if not isinstance(exc, BleakError | TimeoutError | OSError):
                        log.exception("sensor %s: unexpected connection failure", sensor.id)
                    failures += 1
                    delay_s = self._backoff_s(exc, failures)
                    self._move(link, LinkState.BACKING_OFF, self._failure_message(sensor, exc))
                    log.warning("sensor %s: %s; retrying in %.1f s", sensor.id, link.last_error, delay_s)
                    await asyncio.sleep(delay_s)
                    self._move(link, LinkState.SCANNING)
                    continue
                _raise_if_cancelled()
                failures = 0
                link.connects += 1
                self._move(link, LinkState.STREAMING)
                try:
                    await self._stream(client, sensor, link)
                finally:
                    with contextlib.suppress(BleakError, TimeoutError, OSError):
                        async with asyncio.timeout(timing.stop_timeout_s):
                            await client.disconnect()
                _raise_if_cancelled()
                link.disconnects += 1
                extra.open_gap_s = link.last_packet_host_s or time.time()  # the gap starts after this packet
                self._move(link, LinkState.LOST, "link dropped; reconnecting")
                log.warning("sensor %s: link lost; reconnecting", sensor.id)
        finally:
            if link.state is not LinkState.IDLE:
                link.set_state(LinkState.IDLE)

    async def _connect_and_start(
        self, sensor: SensorConfig, device: BLEDevice, out: PacketQueue
    ) -> BleakClient:
        timing = self._timing
        profile = PROFILES[sensor.protocol]
        extra = self._extras[sensor.id]
        link = self._links[sensor.id]
        lost = self._lost_events.setdefault(sensor.id, asyncio.Event())
        lost.clear()
        async with self._connect_locks[sensor.adapter], asyncio.timeout(timing.connect_timeout_s):
            client = await establish_connection(
                BleakClient,
                device,
                sensor.id,
                disconnected_callback=lambda _client: lost.set(),
                max_attempts=timing.connect_attempts,
                **self._client_kwargs(),
            )
        try:
            async with asyncio.timeout(timing.setup_timeout_s):
                mtu_known = await self._read_back_mtu(client, sensor)
                extra.att_mtu = client.mtu_size
                per_packet_max = max_samples_per_packet(extra.att_mtu) if mtu_known else spec.MAX_SAMPLES
                extra.samples_per_packet = min(self._config.stream.samples_per_packet, per_packet_max)
                if extra.samples_per_packet < self._config.stream.samples_per_packet:
                    log.warning(
                        "sensor %s: ATT MTU %d fits %d samples per packet (configured %d)",
                        sensor.id, extra.att_mtu, per_packet_max, self._config.stream.samples_per_packet,
                    )
                sensor_id = sensor.id
                extra.first_packet_host_s = None

                def on_data(_char: BleakGATTCharacteristic, data: bytearray) -> None:
                    t_host_s = time.time()
                    out.put_nowait(RawPacket(sensor_id, t_host_s, bytes(data)))
                    link.last_packet_host_s = t_host_s
                    if extra.first_packet_host_s is None:
                        extra.first_packet_host_s = t_host_s  # closes an open gap exactly

                await client.start_notify(profile.data_uuid, on_data)
                for uuid, command in profile.start_writes(self._config.stream, per_packet_max):
                    control = client.services.get_characteristic(uuid)
                    if control is None:
                        raise BleakError(f"{profile.protocol}: no control characteristic {uuid}")
                    # With response where offered (sensorhub profile); some WitMotion units: commands only.
                    with_response = "write" in control.properties
                    await client.write_gatt_char(control, command, response=with_response)
                with contextlib.suppress(BleakError):  # a sensor without a battery service still streams
                    await self._read_battery(client, sensor)
        except BaseException:
            with contextlib.suppress(BleakError, TimeoutError, OSError):
                await client.disconnect()
            raise
        return client

    @staticmethod
    async def _read_back_mtu(client: BleakClient, sensor: SensorConfig) -> bool:
        """BlueZ exchanges a large MTU by itself but reports 23 until it is read back through a private
        helper (pinned by the canary test). False when the MTU stays unknown: trust the configuration."""
        acquire_mtu = getattr(getattr(client, "_backend", None), "_acquire_mtu", None)
        if acquire_mtu is None:
            return True  # CoreBluetooth, WinRT, Bumble: mtu_size is the negotiated value
        try:
            await acquire_mtu()
        except (BleakError, AssertionError, StopIteration, OSError) as exc:
            log.warning("sensor %s: cannot read back the ATT MTU (%r); keeping the configured packet size",
                        sensor.id, exc)
            return False
        return True

    async def _stream(self, client: BleakClient, sensor: SensorConfig, link: SensorLink) -> None:
        """Until the link drops: close the open gap at the first packet, read the battery now and then."""
        extra = self._extras[sensor.id]
        lost = self._lost_events[sensor.id]
        next_battery_s = time.monotonic() + self._timing.battery_period_s
        while not lost.is_set() and client.is_connected:
            _raise_if_cancelled()
            poll_s = 0.05 if extra.open_gap_s is not None else 1.0  # a gap closes at its first packet
            wait_s = min(poll_s, max(0.0, next_battery_s - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await lost.wait()
            if extra.open_gap_s is not None and extra.first_packet_host_s is not None:
                gap = LinkGap(sensor.id, extra.open_gap_s, extra.first_packet_host_s)
                extra.gaps.append(gap)
                extra.open_gap_s = None
                log.info("sensor %s: streaming again after a %.2f s gap", sensor.id, gap.duration_s)
            if time.monotonic() >= next_battery_s and not lost.is_set():
                next_battery_s = time.monotonic() + self._timing.battery_period_s
                with contextlib.suppress(BleakError, TimeoutError):
                    await self._read_battery(client, sensor)

    async def _read_battery(self, client: BleakClient, sensor: SensorConfig) -> None:
        uuid = PROFILES[sensor.protocol].battery_uuid
        if uuid is None:
            return
        async with asyncio.timeout(self._timing.setup_timeout_s):
            value = await client.read_gatt_char(uuid)
        if value:
            self._links[sensor.id].battery_pct = int(value[0])

    # -- failure policy -----------------------------------------------------------------------------

    def _backoff_s(self, exc: BaseException, failures: int) -> float:
        """bleak-retry-connector's per-class delay, grown exponentially for repeated failures."""
        classified = calculate_backoff_time(exc) if isinstance(exc, Exception) else 0.0
        exponential = self._timing.backoff_min_s * 2.0 ** (failures - 1)
        return min(self._timing.backoff_max_s, max(classified, exponential))

    @staticmethod
    def _failure_message(sensor: SensorConfig, exc: BaseException) -> str:
        if isinstance(exc, BleakOutOfConnectionSlotsError):
            adapter = sensor.adapter or "default"
            return f"adapter {adapter} is out of connection slots: spread the sensors over more adapters"
        if isinstance(exc, BleakNotFoundError):
            return "sensor not reachable (out of range or switched off)"
        if isinstance(exc, BleakAbortedError):
            return "connection aborted by interference or range; move the adapter closer"
        if isinstance(exc, BleakConnectionError):
            return f"connection failed: {exc}"
        if isinstance(exc, TimeoutError):
            return "connection or setup timed out"
        return f"{type(exc).__name__}: {exc}"

    def _missing_message(self, sensor: SensorConfig) -> str:
        what = f"address {sensor.address}" if sensor.address else f"name {sensor.name!r}"
        return (
            f"not seen for {self._timing.find_timeout_s:.0f} s ({what}); is it charged, switched on and in "
            f"range? `sensorhub scan` lists what is advertising"
        )


def make_ble_source(config: Config, *, bumble_transport: str | None = None) -> SourceSetup:
    """``source.kind = "ble"``: every configured sensor over bleak (or Bumble)."""
    source = BleSource(config, bumble_transport=bumble_transport)
    sensors = [s for a in config.athletes for s in a.sensors]
    meta: dict[str, object] = {
        "source": "ble",
        "transport": config.source.transport,
        "rate_hz": config.stream.rate_hz,
        "sensors": [
            {"sensor_id": s.id, "protocol": s.protocol, "address": s.address, "name": s.name} for s in sensors
        ],
    }
    if config.source.transport == "bumble":
        meta["bumble_transport"] = source.bumble_spec
    return SourceSetup(source, configured_sensors(config), {s.id: s.protocol for s in sensors}, meta)
