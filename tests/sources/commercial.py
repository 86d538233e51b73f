"""Shared by the commercial-profile tests: one leg of simulated sensors of a protocol served over Bumble
inside the live service (bleak's public API through sensorhub's Bumble backend), the raw packets the
recorder kept, and the service's /health."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_sim.serve_ble import build_peripherals
from firmware_sim.transports.ble_peripheral import BlePeripheral, serve_peripherals
from sensorhub.config import Config, load_config
from sensorhub.model import RawPacket, SensorRef
from sensorhub.recording import read_recording
from sensorhub.runtime.service import ServiceHandle, Stage, serve_in_thread
from sensorhub.sources.base import PacketSource
from sensorhub.sources.ble import make_ble_source
from sensorhub.sources.bumble_backend import forget_local_link

CONFIG = """
[service]
data_dir = "{data_dir}"
[source]
kind = "ble"
transport = "bumble"
[sinks.recorder]
enabled = true
dir = "rec"
[[athletes]]
id = "ath"
  [[athletes.sensors]]
  id = "ath-right-thigh"
  side = "right"
  segment = "thigh"
  name = "{name} thigh"
  protocol = "{protocol}"
  [[athletes.sensors]]
  id = "ath-right-shank"
  side = "right"
  segment = "shank"
  name = "{name} shank"
  protocol = "{protocol}"
"""


@dataclass
class LegRun:
    peripherals: dict[str, BlePeripheral]  # by sensor id
    health: dict[str, Any]
    packets: dict[str, list[RawPacket]]  # recorded raw packets by sensor id, in arrival order


def _serve(peripherals: Sequence[BlePeripheral], link: str) -> Stage:
    async def serve_sensors(_handle: ServiceHandle) -> None:
        async with serve_peripherals(peripherals, f"local:{link}"):
            await asyncio.Event().wait()

    return serve_sensors


def run_leg(protocol: str, name: str, tmp_path: Path, timeout_s: float = 45.0) -> LegRun:
    """Serve a right leg's thigh and shank (body model: standing, knee bends, squats) until the service
    computes knee angles from them (or ``timeout_s``), then stop in order."""
    path = tmp_path / "leg.toml"
    path.write_text(CONFIG.format(data_dir=tmp_path, protocol=protocol, name=name))
    config: Config = load_config(path, env={})
    peripherals = build_peripherals(config, motion="body", drills=("squat",), motion_s=120.0, seed=3)
    link = f"{protocol}-{uuid.uuid4().hex[:8]}"

    def make() -> tuple[PacketSource, list[SensorRef], list[Stage]]:
        setup = make_ble_source(config, bumble_transport=f"local:{link}")
        return setup.source, setup.sensors, [_serve(peripherals, link)]

    health: dict[str, Any] = {}
    try:
        with serve_in_thread(config, make, port=0, store_path=tmp_path / "h.sqlite3") as handle:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                time.sleep(1.0)
                url = f"http://127.0.0.1:{handle.port}/health"
                health = json.loads(urllib.request.urlopen(url, timeout=5).read())
                if health.get("angle_samples", 0) > 200:
                    break
    finally:
        forget_local_link(link)
    (recording,) = (tmp_path / "rec").glob("*.shrec")
    packets: dict[str, list[RawPacket]] = {}
    for packet in read_recording(recording).packets():
        packets.setdefault(packet.sensor_id, []).append(packet)
    sensors = [s for a in config.athletes for s in a.sensors]
    return LegRun({s.id: p for s, p in zip(sensors, peripherals, strict=True)}, health, packets)
