"""The bleak backend on Bumble, through bleak's public API, against firmware_sim served as a GATT
peripheral on an in-memory Bumble link; plus the canary for the bleak internals the backend relies on."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError, BleakGATTProtocolError

from firmware_sim.device import SensorClock, SimulatedDevice
from firmware_sim.errors_model import ImuErrorModel, preset, sensor_seed
from firmware_sim.transports.ble_peripheral import BlePeripheral, PeripheralGroup, serve_peripherals
from sensorhub.model import FloatArray
from sensorhub.protocol import decode_packet, spec
from sensorhub.sources.ble_scan import scan
from sensorhub.sources.bumble_backend import BumbleClient, BumbleScanner, close_adapters, forget_local_link

GRAVITY_M_S2 = 9.80665


def still(t_s: FloatArray) -> tuple[FloatArray, FloatArray]:
    gyr = np.zeros((t_s.shape[0], 3))
    acc = np.zeros((t_s.shape[0], 3))
    acc[:, 2] = GRAVITY_M_S2
    return gyr, acc


def make_peripheral(name: str) -> BlePeripheral:
    device = SimulatedDevice(
        sensor_id=name,
        signal=still,
        clock=SensorClock(offset_us=1e6),
        errors=ImuErrorModel(preset("clean"), sensor_seed(0, name)),
        battery_start_pct=87.5,  # int(level) reads 87 for the first minutes
    )
    return BlePeripheral(device, name=name)


@pytest.fixture
async def sim() -> AsyncIterator[tuple[str, PeripheralGroup]]:
    link_name = f"test-{uuid.uuid4().hex[:8]}"
    peripherals = [make_peripheral("SH-IMU-T001"), make_peripheral("SH-IMU-T002")]
    async with serve_peripherals(peripherals, f"local:{link_name}") as group:
        yield f"local:{link_name}", group
        await close_adapters()
    forget_local_link(link_name)


async def discover(spec_: str) -> dict[str | None, tuple[BLEDevice, AdvertisementData]]:
    found = await BleakScanner.discover(  # type: ignore[call-overload]  # backend keyword
        timeout=0.4, return_adv=True, service_uuids=[spec.SERVICE_UUID], backend=BumbleScanner,
        bumble_transport=spec_,
    )
    return {adv.local_name: (device, adv) for device, adv in found.values()}


async def test_scan_finds_peripherals_with_name_uuid_and_rssi(sim: tuple[str, PeripheralGroup]) -> None:
    spec_, group = sim
    found = await discover(spec_)
    assert set(found) == {"SH-IMU-T001", "SH-IMU-T002"}
    device, adv = found["SH-IMU-T001"]
    assert device.address == group.by_name("SH-IMU-T001").address
    assert adv.service_uuids == [spec.SERVICE_UUID]
    assert -100 <= adv.rssi <= 0


async def test_scan_filter_drops_other_services(sim: tuple[str, PeripheralGroup]) -> None:
    spec_, _ = sim
    found = await BleakScanner.discover(  # type: ignore[call-overload]  # backend keyword
        timeout=0.3, service_uuids=["0000feed-0000-1000-8000-00805f9b34fb"], backend=BumbleScanner,
        bumble_transport=spec_,
    )
    assert found == []


async def test_connect_discover_read_write_notify_disconnect(sim: tuple[str, PeripheralGroup]) -> None:
    spec_, group = sim
    device, _ = (await discover(spec_))["SH-IMU-T001"]
    received: list[bytes] = []
    dropped = asyncio.Event()
    on_drop = lambda _client: dropped.set()  # noqa: E731
    async with BleakClient(device, disconnected_callback=on_drop, backend=BumbleClient) as client:
        assert client.is_connected
        assert client.mtu_size == 247  # exchanged at connect: 19-sample packets fit
        service = client.services.get_service(spec.SERVICE_UUID)
        assert service is not None
        props = {c.uuid: c.properties for c in service.characteristics}
        assert props[spec.DATA_UUID] == ["notify"]
        assert props[spec.CONTROL_UUID] == ["write"]
        assert props[spec.INFO_UUID] == ["read"]
        assert (await client.read_gatt_char(spec.BATTERY_LEVEL_UUID))[0] == 87
        info = spec.parse_info(bytes(await client.read_gatt_char(spec.INFO_UUID)))
        assert info.state == spec.DeviceState.IDLE

        await client.start_notify(spec.DATA_UUID, lambda _ch, data: received.append(bytes(data)))
        settings = spec.StreamSettings(rate_hz=400, acc_range_g=8, gyr_range_dps=1000, samples_per_packet=19)
        await client.write_gatt_char(spec.CONTROL_UUID, spec.encode_start(settings), response=True)
        info = spec.parse_info(bytes(await client.read_gatt_char(spec.INFO_UUID)))
        assert info.state == spec.DeviceState.STREAMING and info.settings == settings
        with pytest.raises(BleakGATTProtocolError) as rejected:
            await client.write_gatt_char(spec.CONTROL_UUID, b"\x01\x07\x00", response=True)
        assert rejected.value.args[0] == 0x80  # ATT application error, settings unchanged
        await asyncio.sleep(0.6)
        packets = [decode_packet("t", 0.0, p) for p in received]
        assert len(packets) >= 8  # 400 Hz / 19 per packet = 21 packets/s
        assert [p.seq for p in packets] == list(range(len(packets)))
        assert packets[0].flags & spec.FLAG_RESTART
        assert all(p.n_samples == 19 and p.period_us == 2500 for p in packets)
        assert np.allclose(packets[-1].acc_m_s2[:, 2], GRAVITY_M_S2, atol=8 * GRAVITY_M_S2 / 32768)

        await group.by_name("SH-IMU-T001").drop_connection()
        await asyncio.wait_for(dropped.wait(), 2.0)
        assert not client.is_connected
        with pytest.raises(BleakError):
            await client.read_gatt_char(spec.INFO_UUID)
    # The sensor stops streaming when the central is gone and advertises again.
    assert group.by_name("SH-IMU-T001").device.state.value == "idle"
    assert "SH-IMU-T001" in await discover(spec_)


async def test_requested_disconnect_is_not_reported_as_a_drop(sim: tuple[str, PeripheralGroup]) -> None:
    spec_, _ = sim
    device, _ = (await discover(spec_))["SH-IMU-T002"]
    calls: list[object] = []
    client = BleakClient(device, disconnected_callback=calls.append, backend=BumbleClient)
    await client.connect()
    await client.disconnect()
    await asyncio.sleep(0.05)
    assert not client.is_connected and calls == []


async def test_scan_command_lists_sensors_with_protocol(sim: tuple[str, PeripheralGroup]) -> None:
    spec_, _ = sim
    results = await scan(0.4, "bumble", bumble_transport=spec_)
    assert sorted(r.name for r in results) == ["SH-IMU-T001", "SH-IMU-T002"]
    assert {r.protocol for r in results} == {spec.PROTOCOL_NAME}
    assert all(len(r.address) == 17 and r.rssi_dbm < 0 for r in results)


async def test_connect_to_absent_address_times_out() -> None:
    client = BleakClient(
        "C1:22:33:44:55:66", backend=BumbleClient, bumble_transport=f"local:absent-{uuid.uuid4().hex[:6]}"
    )
    try:
        with pytest.raises(TimeoutError):
            await client._backend.connect(False, timeout=0.3)
    finally:
        await close_adapters()


# --- canary: the bleak / bleak-retry-connector internals this backend and the BLE source rely on -----


def test_canary_bleak_backend_contract() -> None:
    import bleak
    import bleak_retry_connector
    from bleak.backends.characteristic import BleakGATTCharacteristic
    from bleak.backends.client import BaseBleakClient
    from bleak.backends.descriptor import BleakGATTDescriptor
    from bleak.backends.scanner import BaseBleakScanner
    from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection

    assert "backend" in inspect.signature(bleak.BleakScanner.__init__).parameters
    assert "backend" in inspect.signature(bleak.BleakClient.__init__).parameters
    for name in ("seen_devices", "create_or_update_device", "call_detection_callbacks", "is_allowed_uuid"):
        assert hasattr(BaseBleakScanner, name) or name in BaseBleakScanner.__annotations__, name
    assert list(inspect.signature(BaseBleakScanner.__init__).parameters)[1:3] == [
        "detection_callback", "service_uuids",
    ]
    assert {"disconnected_callback", "timeout"} <= set(inspect.signature(BaseBleakClient.__init__).parameters)
    # Every abstract member is implemented (instantiation fails otherwise).
    assert not getattr(BumbleClient, "__abstractmethods__", set())
    assert not getattr(BumbleScanner, "__abstractmethods__", set())
    assert list(inspect.signature(BleakGATTService.__init__).parameters)[1:] == ["obj", "handle", "uuid"]
    assert list(inspect.signature(BleakGATTCharacteristic.__init__).parameters)[1:] == [
        "obj", "handle", "uuid", "properties", "max_write_without_response_size", "service",
    ]
    assert list(inspect.signature(BleakGATTDescriptor.__init__).parameters)[1:] == [
        "obj", "handle", "uuid", "characteristic",
    ]
    for name in ("add_service", "add_characteristic", "add_descriptor"):
        assert hasattr(BleakGATTServiceCollection, name)
    assert BleakGATTProtocolError(0x80).args[0] == 0x80
    # The BLE source reads the negotiated MTU through BlueZ's private helper when it is there.
    from bleak.backends.bluezdbus.client import BleakClientBlueZDBus

    assert hasattr(BleakClientBlueZDBus, "_acquire_mtu")
    assert hasattr(bleak.BleakClient("00:00:00:00:00:01", backend=BumbleClient), "_backend")
    params = set(inspect.signature(bleak_retry_connector.establish_connection).parameters)
    assert {"client_class", "device", "name", "disconnected_callback", "max_attempts", "kwargs"} <= params
    for name in ("calculate_backoff_time", "BleakNotFoundError", "BleakOutOfConnectionSlotsError",
                 "BleakAbortedError", "BleakConnectionError"):
        assert hasattr(bleak_retry_connector, name), name
