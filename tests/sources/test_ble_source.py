"""BleSource end to end: bleak -> sensorhub's Bumble backend -> firmware_sim GATT peripherals.

Realism on purpose: real bleak (public API + bleak-retry-connector), a real Bumble host and virtual
controllers exchanging HCI/LL/ATT PDUs over an in-memory link (or HCI over TCP to another process).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest

from firmware_sim.device import SensorClock, SimulatedDevice
from firmware_sim.errors_model import ImuErrorModel, preset, sensor_seed
from firmware_sim.transports.ble_peripheral import BlePeripheral, PeripheralGroup, serve_peripherals
from sensorhub.config import AthleteConfig, Config, SensorConfig, SourceConfig, StreamConfig, load_config
from sensorhub.model import FloatArray, RawPacket
from sensorhub.protocol import DecodeStats, decode_or_count, decode_packet, make_decoder, spec
from sensorhub.sources.base import LinkState, PacketQueue
from sensorhub.sources.ble import BleSource, BleStateError, BleTiming, max_samples_per_packet, move
from sensorhub.sources.bumble_backend import close_adapters, forget_local_link
from sensorhub.sources.bumble_backend.simulator import serve_ble_process


def knee_bends(t_s: FloatArray) -> tuple[FloatArray, FloatArray]:
    n = t_s.shape[0]
    gyr = np.zeros((n, 3))
    gyr[:, 1] = 2.0 * np.sin(2.0 * np.pi * 0.5 * t_s)
    acc = np.zeros((n, 3))
    acc[:, 2] = 9.80665
    return gyr, acc


def make_peripheral(sensor: SensorConfig) -> BlePeripheral:
    device = SimulatedDevice(
        sensor_id=sensor.id,
        signal=knee_bends,
        clock=SensorClock(offset_us=5e6, drift_ppm=20.0),
        errors=ImuErrorModel(preset("clean"), sensor_seed(0, sensor.id)),
    )
    return BlePeripheral(device, name=sensor.name)


def make_config(n_athletes: int = 2, adapters: tuple[str, ...] = ("",), rate_hz: int = 200) -> Config:
    athletes = []
    for a in range(n_athletes):
        sensors = tuple(
            SensorConfig(
                id=f"a{a}-right-{segment}",
                side="right",
                segment=segment,  # type: ignore[arg-type]
                name=f"SH-IMU-{a}{i}",
                adapter=adapters[a % len(adapters)],
            )
            for i, segment in enumerate(("thigh", "shank"))
        )
        athletes.append(AthleteConfig(id=f"a{a}", sensors=sensors))
    return Config(
        stream=StreamConfig(rate_hz=rate_hz, samples_per_packet=8),
        source=SourceConfig(kind="ble", transport="bumble"),
        athletes=tuple(athletes),
    )


@dataclass
class Rig:
    source: BleSource
    queue: PacketQueue
    group: PeripheralGroup
    spec: str

    def streaming(self) -> bool:
        return all(link.state is LinkState.STREAMING for link in self.source.links().values())

    async def wait_until(self, predicate: object, timeout_s: float) -> float:
        t0 = time.monotonic()
        while not predicate():  # type: ignore[operator]
            if time.monotonic() - t0 > timeout_s:
                raise AssertionError(f"not reached within {timeout_s} s: {self.source.links()}")
            await asyncio.sleep(0.02)
        return time.monotonic() - t0


@contextlib.asynccontextmanager
async def rig(
    config: Config, peripherals: list[BlePeripheral], timing: BleTiming | None = None
) -> AsyncIterator[Rig]:
    link_name = f"ble-{uuid.uuid4().hex[:8]}"
    spec_ = f"local:{link_name}"
    queue = PacketQueue()
    async with serve_peripherals(peripherals, spec_) as group:
        source = BleSource(config, bumble_transport=spec_, timing=timing)
        task = asyncio.create_task(source.run(queue))
        try:
            yield Rig(source, queue, group, spec_)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await close_adapters()
    forget_local_link(link_name)


def by_sensor(packets: list[RawPacket]) -> dict[str, list[RawPacket]]:
    out: dict[str, list[RawPacket]] = {}
    for p in packets:
        out.setdefault(p.sensor_id, []).append(p)
    return out


def seqs(packets: list[RawPacket]) -> list[int]:
    return [decode_packet(p.sensor_id, p.t_host_s, p.payload).seq for p in packets]


@pytest.mark.slow
async def test_two_athletes_two_sensors_200hz_30s_zero_loss() -> None:
    config = make_config(2, adapters=("hci0", "hci1"))  # two adapters, two sensors each
    sensors = [s for a in config.athletes for s in a.sensors]
    peripherals = [make_peripheral(s) for s in sensors]
    for p in peripherals:
        p.trace = []
    async with rig(config, peripherals) as r:
        startup_s = await r.wait_until(r.streaming, 5.0)
        await asyncio.sleep(30.0)
        received = by_sensor(r.queue.drain())
        sent = {p.device.sensor_id: p.notifications_sent for p in peripherals}
        links = {k: (v.state, v.connects, v.battery_pct) for k, v in r.source.links().items()}
        stats = r.source.stats()
    assert startup_s < 3.0
    assert r.queue.dropped == 0
    latencies_s = []
    for p, sensor in zip(peripherals, sensors, strict=True):
        got = received[sensor.id]
        seq = seqs(got)
        assert seq == list(range(len(seq))), f"{sensor.id}: sequence gap"
        assert sent[sensor.id] - len(seq) <= 1  # at most the one in flight at the snapshot
        assert len(seq) * 8 >= 0.97 * 30.0 * 200  # >= 5820 samples each in the 30 s
        assert links[sensor.id][0] is LinkState.STREAMING and links[sensor.id][1] == 1
        battery_pct = links[sensor.id][2]
        assert battery_pct is not None and 0 < battery_pct <= 100
        assert stats[sensor.id]["att_mtu"] == 247 and stats[sensor.id]["gaps"] == 0
        sent_at = dict(p.trace or [])
        latencies_s += [pkt.t_host_s - sent_at[s] for pkt, s in zip(got, seq, strict=True) if s in sent_at]
    p99_ms = float(np.percentile(latencies_s, 99)) * 1e3
    print(f"\nnotify -> enqueue latency over bleak+Bumble: p50 {np.median(latencies_s) * 1e3:.2f} ms, "
          f"p99 {p99_ms:.2f} ms, startup {startup_s:.2f} s")
    assert p99_ms < 20.0


async def test_drop_reconnects_within_3s_gap_reported_others_uninterrupted() -> None:
    config = make_config(2)
    sensors = [s for a in config.athletes for s in a.sensors]
    peripherals = [make_peripheral(s) for s in sensors]
    victim = sensors[0]
    async with rig(config, peripherals) as r:
        await r.wait_until(r.streaming, 5.0)
        await asyncio.sleep(0.5)
        t_drop = time.time()
        await r.group.by_name(victim.name).drop_connection()
        link = r.source.links()[victim.id]
        await r.wait_until(lambda: link.connects == 2 and r.source.gaps(victim.id), 3.0)
        reconnect_s = time.time() - t_drop
        await asyncio.sleep(0.5)
        received = by_sensor(r.queue.drain())
        gaps = r.source.gaps(victim.id)
    assert reconnect_s < 3.0
    assert link.disconnects == 1
    assert len(gaps) == 1 and 0.0 < gaps[0].duration_s < 3.0
    victim_packets = [decode_packet(p.sensor_id, p.t_host_s, p.payload) for p in received[victim.id]]
    restart = [i for i, p in enumerate(victim_packets) if p.flags & spec.FLAG_RESTART]
    assert len(restart) == 2 and victim_packets[restart[1]].seq == 0  # START again after the reconnect
    assert victim_packets[restart[1]].t_host_s == gaps[0].resumed_host_s  # closed by its first packet
    for sensor in sensors[1:]:
        packets = received[sensor.id]
        assert seqs(packets) == list(range(len(packets))), f"{sensor.id} lost packets"
        arrivals = np.array([p.t_host_s for p in packets])
        assert np.max(np.diff(arrivals)) < 0.25, f"{sensor.id} stalled"  # packets every 40 ms
        assert r.source.links()[sensor.id].connects == 1


async def test_malformed_packets_are_counted_and_survived() -> None:
    config = make_config(1)
    sensors = [s for a in config.athletes for s in a.sensors]
    peripherals = [make_peripheral(s) for s in sensors]
    peripherals[0].faults.malformed_every = 4
    async with rig(config, peripherals) as r:
        await r.wait_until(r.streaming, 5.0)
        await asyncio.sleep(1.5)
        received = by_sensor(r.queue.drain())
        states = {k: (v.state, v.connects) for k, v in r.source.links().items()}
    bad = sensors[0].id
    stats = DecodeStats(bad)
    decoder = make_decoder(spec.PROTOCOL_NAME)
    decoded = [d for p in received[bad] if (d := decode_or_count(p, decoder, stats)) is not None]
    assert stats.malformed_total >= 8 and stats.malformed_total == len(received[bad]) - len(decoded)
    assert abs(stats.malformed_total - peripherals[0].faults.malformed_sent) <= 1
    assert [d.seq % 4 for d in decoded[:6]] == [0, 1, 2, 0, 1, 2]  # every 4th is the corrupted one
    assert states[bad] == (LinkState.STREAMING, 1)
    assert seqs(received[sensors[1].id]) == list(range(len(received[sensors[1].id])))


async def test_sensor_that_never_appears_is_reported_missing_not_waited_on() -> None:
    config = make_config(2)
    sensors = [s for a in config.athletes for s in a.sensors]
    absent = sensors[-1]
    peripherals = [make_peripheral(s) for s in sensors[:-1]]
    timing = BleTiming(find_timeout_s=0.5)
    async with rig(config, peripherals, timing) as r:
        links = r.source.links()
        present = [links[s.id] for s in sensors[:-1]]
        await r.wait_until(lambda: all(link.state is LinkState.STREAMING for link in present), 5.0)
        await r.wait_until(lambda: links[absent.id].state is LinkState.MISSING, 2.0)
        assert "not seen" in links[absent.id].last_error and absent.name in links[absent.id].last_error
        # It switches on later: found and streaming without a restart of anything else.
        async with serve_peripherals([make_peripheral(absent)], r.spec):
            await r.wait_until(lambda: links[absent.id].state is LinkState.STREAMING, 3.0)
            await asyncio.sleep(0.3)
        received = by_sensor(r.queue.drain())
    assert len(received[absent.id]) >= 3
    assert all(link.connects == 1 for link in present)


async def test_peripherals_in_another_process_over_tcp_hci() -> None:
    spec_ = f"tcp-client:127.0.0.1:{28_000 + uuid.uuid4().int % 1000}"
    config = load_config("configs/sim-ble.toml")
    args = ["--motion", "synthetic", "--duration-s", "30"]
    async with serve_ble_process("configs/sim-ble.toml", spec_, args, stderr=asyncio.subprocess.PIPE) as proc:
        # Twice: the second host (a restarted sensorhub) finds the sensors advertising again.
        for round_ in range(2):
            queue = PacketQueue()
            source = BleSource(config, bumble_transport=spec_)
            task = asyncio.create_task(source.run(queue))
            try:
                t0 = time.monotonic()
                while not all(link.state is LinkState.STREAMING for link in source.links().values()):
                    assert time.monotonic() - t0 < 5.0, (round_, source.links())
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            received = by_sensor(queue.drain())
            assert set(received) == {s.id for a in config.athletes for s in a.sensors}
            for packets in received.values():
                assert len(packets) >= 20 and seqs(packets) == list(range(len(packets)))
    assert proc.stderr is not None
    stderr = await proc.stderr.read()
    assert b"Traceback" not in stderr and b"ERROR" not in stderr, stderr.decode()[-2000:]


def test_state_machine_rejects_illegal_transitions() -> None:
    from sensorhub.sources.base import SensorLink

    link = SensorLink("x")
    move(link, LinkState.SCANNING)
    move(link, LinkState.CONNECTING)
    with pytest.raises(BleStateError):
        move(link, LinkState.MISSING)
    move(link, LinkState.STREAMING)
    with pytest.raises(BleStateError):
        move(link, LinkState.CONNECTING)  # a streaming link must be lost first
    move(link, LinkState.LOST)
    move(link, LinkState.CONNECTING)


def test_samples_per_packet_follow_the_mtu() -> None:
    assert max_samples_per_packet(23) == 1  # the default MTU: one sample would not fit; clamp to 1
    assert max_samples_per_packet(185) == 14  # iOS-typical MTU
    assert max_samples_per_packet(247) == 19
    assert max_samples_per_packet(517) == 19


async def test_failed_setup_backs_off_and_recovers() -> None:
    config = make_config(1)
    sensors = [s for a in config.athletes for s in a.sensors]
    peripherals = [make_peripheral(s) for s in sensors]
    peripherals[0].faults.reject_starts = 2  # the sensor refuses START twice, then behaves
    async with rig(config, peripherals) as r:
        await r.wait_until(r.streaming, 6.0)
        history = [state for _, state in r.source.stats()[sensors[0].id]["recent_states"]]
        link = r.source.links()[sensors[0].id]
        error = link.last_error
    assert history == [
        "scanning", "connecting", "backing_off",
        "scanning", "connecting", "backing_off",
        "scanning", "connecting", "streaming",
    ]
    assert "GATT Protocol Error" in error or "0x80" in error
    assert link.connects == 1  # only the successful setup counts as a connection
    assert r.source.stats()[sensors[1].id]["recent_states"][-1][1] == "streaming"


async def test_bluez_mtu_read_back_is_best_effort() -> None:
    from types import SimpleNamespace

    from bleak.exc import BleakError

    sensor = make_config(1).athletes[0].sensors[0]

    async def acquire_ok() -> None:
        return None

    async def acquire_fails() -> None:
        raise BleakError("No characteristic to acquire the MTU")

    def client(acquire: object) -> object:
        return SimpleNamespace(_backend=SimpleNamespace(_acquire_mtu=acquire))

    assert await BleSource._read_back_mtu(client(acquire_ok), sensor) is True  # type: ignore[arg-type]
    assert await BleSource._read_back_mtu(client(acquire_fails), sensor) is False  # type: ignore[arg-type]
    assert await BleSource._read_back_mtu(SimpleNamespace(_backend=None), sensor) is True  # type: ignore[arg-type]
