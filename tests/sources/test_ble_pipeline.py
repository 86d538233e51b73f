"""The full live pipeline on simulated BLE sensors: `firmware-sim serve-ble` in another process (HCI over
TCP), sensorhub's BLE source through bleak and the Bumble backend, the service with /health."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from firmware_sim.serve_ble import READY_LINE
from sensorhub.config import load_config
from sensorhub.model import SensorRef
from sensorhub.runtime.service import serve_in_thread
from sensorhub.sources.base import PacketSource
from sensorhub.sources.ble import make_ble_source

CONFIG = "configs/sim-ble.toml"


@pytest.mark.slow
def test_sim_ble_config_streams_through_the_service_without_loss(tmp_path: Path) -> None:
    port = 29_000 + (uuid.uuid4().int % 1000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim.serve_ble", "--config", CONFIG, "--hci",
         f"tcp-server:127.0.0.1:{port}", "--motion", "body", "--motion-s", "60", "--duration-s", "60"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith(READY_LINE)
        config = load_config(CONFIG)

        def make() -> tuple[PacketSource, list[SensorRef], list[object]]:
            setup = make_ble_source(config, bumble_transport=f"tcp-client:127.0.0.1:{port}")
            return setup.source, setup.sensors, []

        with serve_in_thread(config, make, port=0, store_path=tmp_path / "history.sqlite") as handle:  # type: ignore[arg-type]
            time.sleep(12.0)
            url = f"http://127.0.0.1:{handle.port}/health"
            health = json.loads(urllib.request.urlopen(url, timeout=5).read())
            latency = handle.runner.stats.packet_to_angle.percentiles_ms((50.0, 99.0))
    finally:
        proc.terminate()
        proc.wait(10)
    sensors = health["sensors"]
    assert set(sensors) == {s.id for a in config.athletes for s in a.sensors}
    for sensor_id, s in sensors.items():
        assert s["state"] == "streaming" and s["connected"], sensor_id
        assert s["lost"] == 0 and s["malformed"] == 0, sensor_id
        assert s["samples"] >= 8 * 200, sensor_id  # >= 8 s of 200 Hz after connecting
        assert s["battery_pct"] is not None
    assert health["queue"]["dropped"] == 0
    print(f"\npacket->angle over BLE (bleak+Bumble, TCP HCI): p50 {latency['p50_ms']:.2f} ms, "
          f"p99 {latency['p99_ms']:.2f} ms; {health['angle_samples']} angle samples")
    assert health["angle_samples"] > 0
