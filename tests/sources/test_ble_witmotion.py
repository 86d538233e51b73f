"""WitMotion (WT901BLE family) support: the decoder against hand-built frames, and the BLE source
streaming from a WitMotion-profile peripheral (Bumble) through bleak."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import numpy as np
import pytest
from bumble import gatt
from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import Connection, Device
from bumble.hci import Address
from bumble.host import Host

from sensorhub.config import AthleteConfig, Config, SensorConfig, SourceConfig
from sensorhub.errors import ProtocolError
from sensorhub.protocol import DecodeStats, decode_or_count, witmotion
from sensorhub.sources.base import LinkState, PacketQueue
from sensorhub.sources.ble import BleSource
from sensorhub.sources.bumble_backend import close_adapters, forget_local_link, local_link

G = 9.80665


def test_frame_scaling_matches_the_published_protocol() -> None:
    # 2048 / 32768 * 16 g = 1 g; 16384 / 32768 * 2000 deg/s = 1000 deg/s.
    frame = witmotion.encode_frame((0, -2048, 2048), (16384, 0, -16384), (100, 200, 300))
    packet = witmotion.WitMotionDecoder(rate_hz=100).decode("w", 10.0, frame)
    assert packet.n_samples == 1
    assert np.allclose(packet.acc_m_s2, [[0.0, -G, G]])
    assert np.allclose(packet.gyr_rad_s, [[np.radians(1000.0), 0.0, -np.radians(1000.0)]])
    assert packet.period_us == 10_000 and packet.acc_range_m_s2 == pytest.approx(16 * G)


def test_several_frames_per_notification_and_numbering() -> None:
    decoder = witmotion.WitMotionDecoder(rate_hz=50)
    two = witmotion.encode_frame((1, 2, 3), (4, 5, 6)) + witmotion.encode_frame((7, 8, 9), (10, 11, 12))
    first = decoder.decode("w", 1.0, two)
    second = decoder.decode("w", 1.04, witmotion.encode_frame((0, 0, 0), (0, 0, 0)))
    assert first.n_samples == 2 and (first.seq, second.seq) == (0, 1)
    assert np.allclose(first.acc_m_s2[1] / (16 * G / 32768), [7, 8, 9])
    # The last frame of a notification is stamped at its arrival; earlier ones one period before.
    assert first.t0_sensor_us == round(1.0 * 1e6) - 20_000


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x55\x61" + bytes(17), b"\x54\x61" + bytes(18), b"\x55\x71" + bytes(18), bytes(25)],
)
def test_malformed_frames_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        witmotion.WitMotionDecoder().decode("w", 0.0, payload)


def test_rate_command_bytes() -> None:
    assert witmotion.rate_command(200) == bytes.fromhex("ffaa030b00")
    assert witmotion.rate_command(100) == bytes.fromhex("ffaa030900")
    assert witmotion.rate_command(400) == bytes.fromhex("ffaa030b00")  # 200 Hz is the fastest


class FakeWitMotion:
    """A peripheral with WitMotion's GATT layout: notify ffe4, write ffe9 (rate command starts output)."""

    def __init__(self, name: str, address: str) -> None:
        self.name, self.address = name, address
        self.rate_hz = 0
        self.writes: list[bytes] = []
        self.frames_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._device: Device | None = None

    async def start(self, link_name: str) -> None:
        device = Device(name=self.name, address=Address(self.address))
        device.host = Host()
        device.host.controller = Controller(self.name, link=local_link(link_name))
        self._notify: gatt.Characteristic[bytes] = gatt.Characteristic(
            witmotion.NOTIFY_UUID, gatt.Characteristic.Properties.NOTIFY, gatt.Characteristic.READABLE, b""
        )
        write: gatt.Characteristic[bytes] = gatt.Characteristic(
            witmotion.WRITE_UUID,
            gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE | gatt.Characteristic.Properties.WRITE,
            gatt.Characteristic.WRITEABLE,
            gatt.CharacteristicValue(write=self._on_write),
        )
        device.add_service(gatt.Service(witmotion.SERVICE_UUID, [self._notify, write]))
        name = (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode())
        device.advertising_data = bytes(AdvertisingData([name]))
        await device.power_on()
        await device.start_advertising(advertising_interval_min=50, advertising_interval_max=50)
        self._device = device

    def _on_write(self, _connection: Connection, value: bytes) -> None:
        self.writes.append(bytes(value))
        if value[:3] == b"\xff\xaa\x03":
            codes = {code: rate for rate, code in witmotion.RATE_CODES.items()}
            self.rate_hz = codes[value[3]]
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._stream())

    async def _stream(self) -> None:
        assert self._device is not None
        while True:
            await asyncio.sleep(1.0 / self.rate_hz)
            frame = witmotion.encode_frame((0, 0, 2048), (0, 100, 0), (0, 0, 0))
            await self._device.notify_subscribers(self._notify, frame)
            self.frames_sent += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def test_ble_source_streams_from_a_witmotion_profile_device() -> None:
    link_name = f"wit-{uuid.uuid4().hex[:8]}"
    fake = FakeWitMotion("WT901BLE68", "E0:11:22:33:44:55")
    await fake.start(link_name)
    sensor = SensorConfig(
        id="w-right-shank", side="right", segment="shank", name="WT901BLE68",
        protocol="witmotion",  # type: ignore[arg-type]  # config.py's Literal gains it on registration
    )
    config = Config(
        source=SourceConfig(kind="ble", transport="bumble"),
        athletes=(AthleteConfig(id="w", sensors=(sensor,)),),
    )
    queue = PacketQueue()
    source = BleSource(config, bumble_transport=f"local:{link_name}")
    task = asyncio.create_task(source.run(queue))
    try:
        for _ in range(100):
            if source.links()[sensor.id].state is LinkState.STREAMING and len(queue) >= 20:
                break
            await asyncio.sleep(0.05)
        state = source.links()[sensor.id].state
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await fake.stop()
        await close_adapters()
        forget_local_link(link_name)
    assert state is LinkState.STREAMING
    assert fake.writes == [witmotion.rate_command(200)] and fake.rate_hz == 200
    stats = DecodeStats(sensor.id)
    decoder = witmotion.WitMotionDecoder(rate_hz=200)
    packets = [p for raw in queue.drain() if (p := decode_or_count(raw, decoder, stats)) is not None]
    assert len(packets) >= 20 and stats.malformed_total == 0
    assert np.allclose(packets[-1].acc_m_s2, [[0.0, 0.0, G]])
    assert [p.seq for p in packets] == list(range(len(packets)))
