"""End to end: firmware-sim recordings through `sensorhub replay`, and replay == live, bit for bit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from firmware_sim.athletes import SimulatedAthlete
from firmware_sim.body import simulate
from firmware_sim.cli import main as firmware_sim_main
from firmware_sim.transports.inprocess import InProcessTransport
from sensorhub.bus import Bus
from sensorhub.cli import main as sensorhub_main
from sensorhub.model import Segment, SensorRef, Side
from sensorhub.recording import RecordingWriter
from sensorhub.runtime.live import LiveRunner
from sensorhub.runtime.pipeline import Pipeline
from sensorhub.runtime.replay import ReplayResult, replay_async
from sensorhub.sources.base import IteratorSource


@pytest.fixture(scope="module")
def drop_jump_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dj")
    code = firmware_sim_main(
        [
            "record",
            "--drill",
            "drop_jump",
            "--out",
            str(out),
            "--seed",
            "3",
            "--reps",
            "4",
            "--errors",
            "realistic",
        ]
    )
    assert code == 0
    return out


def test_replay_reports_what_the_simulator_injected(drop_jump_dir: Path) -> None:
    truth = json.loads((drop_jump_dir / "truth.json").read_text())
    result = asyncio.run(replay_async(drop_jump_dir / "recording.shrec", speed=None))
    spp = int(truth["stream"]["samples_per_packet"])
    assert set(result.sensors) == set(truth["sensors"])
    for sensor_id, injected in truth["sensors"].items():
        stats = result.sensors[sensor_id]
        assert stats.packets == injected["packets_delivered"]
        assert stats.malformed == 0
        # Lost packets inside the stream are counted in samples; a loss at the very end is invisible.
        lost_idx = np.asarray(injected["lost_packet_indices"], dtype=int)
        interior = int(np.count_nonzero(lost_idx < injected["packets_sent"] - 1))
        assert stats.lost == interior * spp
    assert sum(int(p.t_s.shape[0]) for parts in result.angles.values() for p in parts) > 0


@pytest.fixture(scope="module")
def long_recording_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("long")
    code = firmware_sim_main(
        ["record", "--drill", "standing", "--standing-s", "240", "--out", str(out), "--seed", "11"]
    )
    assert code == 0
    return out


def test_replay_clock_drift_matches_injected(long_recording_dir: Path) -> None:
    """BLE connection events quantise arrival times (7.5-30 ms), so the drift needs minutes of data:
    after four minutes every sensor's estimate is within 5 ppm of the injected value."""
    truth = json.loads((long_recording_dir / "truth.json").read_text())
    assert truth["duration_s"] > 120.0
    result = asyncio.run(replay_async(long_recording_dir / "recording.shrec", speed=None))
    for sensor_id, injected in truth["sensors"].items():
        drift_ppm = result.sensors[sensor_id].drift_ppm
        assert abs(drift_ppm - injected["clock_drift_ppm"]) < 5.0, (
            sensor_id,
            drift_ppm,
            injected["clock_drift_ppm"],
        )


def test_replay_cli_runs_to_the_end(
    drop_jump_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = sensorhub_main(
        ["replay", str(drop_jump_dir / "recording.shrec"), "--as-fast-as-possible", "--csv", str(tmp_path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "sim-right-shank" in out and "sim-right-thigh" in out
    csvs = list(tmp_path.glob("*.csv"))
    assert len(csvs) == 1
    header = csvs[0].read_text().splitlines()[0]
    assert header.startswith("time_s,thigh_ax")


def _refs(transport: InProcessTransport) -> list[SensorRef]:
    return [
        SensorRef(r["sensor_id"], r["athlete"], Side(r["side"]), Segment(r["segment"]))
        for r in transport.sensor_refs()
    ]


async def _live_session(recording: Path) -> ReplayResult:
    motion = simulate(drill="squat", reps=3, sides=("right", "left"), seed=5, calibration_bends=True)
    athlete = SimulatedAthlete("ana", motion, errors="realistic", seed=5)
    transport = InProcessTransport([athlete], realtime=False, seed=5)
    refs = _refs(transport)
    pipeline = Pipeline(refs)
    bus = Bus()
    sub = bus.subscribe(["angles"], maxsize=1_000_000)
    meta = {"source": "test", "sensors": transport.sensor_refs()}
    with RecordingWriter(recording, meta) as writer:
        runner = LiveRunner(
            IteratorSource(aiter(transport), [r.sensor_id for r in refs]), pipeline, bus, writer
        )
        await runner.run()
    result = ReplayResult(sensors=pipeline.stats(), packets=runner.stats.packets)
    for message in sub.drain():
        result.angles.setdefault(message.key, []).append(message.payload)
    return result


def test_replay_is_bit_identical_to_live(tmp_path: Path) -> None:
    recording = tmp_path / "live.shrec"
    live = asyncio.run(_live_session(recording))
    replayed = asyncio.run(replay_async(recording, speed=None))
    assert live.packets == replayed.packets > 0
    assert set(live.angles) == {"ana/right", "ana/left"}
    n_live = sum(int(p.t_s.shape[0]) for parts in live.angles.values() for p in parts)
    assert n_live > 1000
    assert live.angles_digest() == replayed.angles_digest()
    for sensor_id, stats in live.sensors.items():
        assert replayed.sensors[sensor_id] == stats
