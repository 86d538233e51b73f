"""Calibrating legs are stepped in a worker thread and their buffered seconds published in slices, with
every angle, event and calibration equal, bit for bit, to the synchronous pipeline's."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from firmware_sim.athletes import SimulatedAthlete
from firmware_sim.body import simulate
from firmware_sim.transports.inprocess import InProcessTransport
from sensorhub.analysis import event_to_json
from sensorhub.bus import Bus
from sensorhub.kinematics import knee
from sensorhub.model import KneeAngles, RawPacket
from sensorhub.runtime import live, offload
from sensorhub.runtime.live import LiveRunner
from sensorhub.runtime.pipeline import LegOutput, Pipeline, sensor_refs_from_meta
from sensorhub.sources.base import IteratorSource

ANGLE_FIELDS = ("t_s", "flexion_rad", "valgus_rad", "rotation_rad", "quality")


@pytest.fixture(scope="module")
def session() -> tuple[list[dict[str, str]], list[RawPacket]]:
    """Two athletes (squats with faults, drop jumps), their packets as the host receives them."""
    athletes = []
    for k, drill in enumerate(("squat", "drop_jump")):
        motion = simulate(drill=drill, reps=3, sides=("right", "left"), seed=20 + k, calibration_bends=True,
                          faults={"valgus": 0.5, "fast_eccentric": 0.5})
        athletes.append(SimulatedAthlete(f"a{k}", motion, errors="realistic", seed=20 + k))
    transport = InProcessTransport(athletes, realtime=False, seed=7)

    async def collect() -> list[RawPacket]:
        return [p async for p in transport]

    return transport.sensor_refs(), asyncio.run(collect())


def _collect(outputs: list[LegOutput], into: dict[str, dict[str, Any]]) -> None:
    for out in outputs:
        leg = into[out.leg_id]
        leg["parts"].append(out.angles)
        leg["events"].extend(event_to_json(e) for e in out.events)
        if out.calibration is not None:
            leg["calibration"].append(out.calibration)


def _legs() -> dict[str, dict[str, Any]]:
    return defaultdict(lambda: {"parts": [], "events": [], "calibration": []})


def _synchronous(meta: list[dict[str, str]], packets: list[RawPacket]) -> dict[str, dict[str, Any]]:
    pipeline = Pipeline(sensor_refs_from_meta(meta))
    legs = _legs()
    for packet in packets:
        _collect(pipeline.ingest(packet), legs)
    _collect(pipeline.finish(), legs)
    return legs


async def _released(packets: list[RawPacket]) -> AsyncIterator[RawPacket]:
    for k, packet in enumerate(packets):
        if k % 16 == 15:
            await asyncio.sleep(0)  # give the worker's hand-backs a turn, as live arrivals do
        yield packet


async def _offloaded(meta: list[dict[str, str]], packets: list[RawPacket],
                     emitted_rows: list[int]) -> dict[str, dict[str, Any]]:
    refs = sensor_refs_from_meta(meta)
    bus = Bus()
    sub = bus.subscribe(["angles", "events", "calibration"], maxsize=10_000_000)
    runner = LiveRunner(IteratorSource(_released(packets), [r.sensor_id for r in refs]), Pipeline(refs), bus)
    assert runner.offload is not None
    emit = runner.offload.emit

    def counted_emit() -> list[offload.Deferred]:
        items = emit()
        emitted_rows.append(sum(len(item.output.angles.t_s) for item in items if item.output.backlog))
        return items

    runner.offload.emit = counted_emit  # type: ignore[method-assign]
    await runner.run()
    legs = _legs()
    for message in sub.drain():
        leg = legs[message.key]
        if message.topic == "angles":
            leg["parts"].append(message.payload)
        elif message.topic == "events":
            leg["events"].append(event_to_json(message.payload))
        else:
            leg["calibration"].append(message.payload)
    return legs


def _joined(parts: list[Any], field: str) -> np.ndarray:
    return np.concatenate([getattr(p, field) for p in parts])


def test_offloaded_calibration_gives_the_synchronous_outputs_in_slices(
    session: tuple[list[dict[str, str]], list[RawPacket]],
) -> None:
    meta, packets = session
    expected = _synchronous(meta, packets)
    emitted_rows: list[int] = []
    got = asyncio.run(_offloaded(meta, packets, emitted_rows))
    assert set(got) == set(expected) == {"a0/right", "a0/left", "a1/right", "a1/left"}
    for leg_id, want in expected.items():
        have = got[leg_id]
        for field in ANGLE_FIELDS:
            a, b = _joined(want["parts"], field), _joined(have["parts"], field)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (leg_id, field)
        assert have["events"] == want["events"], leg_id
        assert len(want["events"]) >= 5
        assert have["calibration"] == want["calibration"] and len(want["calibration"]) == 1
        # the buffered seconds came in one part before, in slices now; the other parts are the same rows,
        # a loop turn's rows of a leg joined (Pipeline.ingest_many): each ends where a packet's part ended
        sizes = [len(p.t_s) for p in want["parts"]]
        i = int(np.argmax(sizes))
        burst = sizes[i]
        assert burst > 4 * offload.SLICE_ROWS
        have_sizes = [len(p.t_s) for p in have["parts"]]
        start = sum(sizes[:i])
        assert have_sizes[: i + burst // offload.SLICE_ROWS] == sizes[:i] + [offload.SLICE_ROWS] * (
            burst // offload.SLICE_ROWS), leg_id
        wanted_ends = set(np.cumsum(sizes).tolist())
        for end in np.cumsum(have_sizes).tolist():
            assert end in wanted_ends or (end > start and (end - start) % offload.SLICE_ROWS == 0), leg_id
    assert max(emitted_rows) <= offload.ROWS_PER_TURN


def test_calibration_is_solved_off_the_event_loop(
    session: tuple[list[dict[str, str]], list[RawPacket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    meta, packets = session
    threads: list[threading.Thread] = []
    solve = knee.calibrate_knee

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return solve(*args, **kwargs)

    monkeypatch.setattr(knee, "calibrate_knee", recorded)
    asyncio.run(_offloaded(meta, packets, []))
    assert len(threads) >= 4  # at least one attempt per leg
    assert threading.main_thread() not in threads


def _output(leg_id: str, rows: int, backlog: bool) -> LegOutput:
    z = np.zeros(rows)
    return LegOutput(leg_id, KneeAngles(leg_id, z, z, z, z, np.zeros(rows, np.uint8)), backlog=backlog)


def test_catching_up_legs_outputs_are_not_held_to_the_per_turn_budget() -> None:
    """100 legs that calibrated and still catch up hand back 8 rows each: all are published in the turn,
    only the buffered seconds behind them are paced. (A budget on every row let the hand-back queue grow
    without bound once the loop turned fewer than 20 000 rows / 200 a second: 50 athletes, a busy loop.)"""
    pipeline = Pipeline([])
    off = offload.CalibrationOffload(pipeline, rows_per_turn=200)
    for k in range(100):
        off._hand_back(f"a{k}/right", [offload.Deferred(_output(f"a{k}/right", 8, False), 0.0)])
    off._hand_back("b/right", [offload.Deferred(_output("b/right", 50, True), 0.0) for _ in range(10)])
    turns = [[(d.output.leg_id, d.output.backlog) for d in off.emit()] for _ in range(3)]
    assert turns[0][:100] == [(f"a{k}/right", False) for k in range(100)]
    assert [len(t) for t in turns] == [104, 4, 2]  # the backlog: 200 rows a turn
    assert not off.ready.is_set()


def test_under_overload_no_turn_is_taken_while_the_workers_are_behind_and_the_queue_drops(
    session: tuple[list[dict[str, str]], list[RawPacket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker far slower than the packets come (every chunk it steps takes 20 ms), small turns: the loop
    takes a turn of packets only while at most ``max_pending_rows`` rows wait for the worker (so they
    stay bounded: at most a turn's chunks past it), and the packets that do not fit are dropped by the
    bounded source queue, counted. (Without the bound they grew with the stream: +100 MB in the last
    minutes of a 60-minute soak on an overloaded machine.)"""
    meta, packets = session
    refs = sensor_refs_from_meta(meta)
    monkeypatch.setattr(live, "MAX_PACKETS_PER_TURN", 100)
    pipeline = Pipeline(refs)
    step_chunk = pipeline.step_chunk

    def slow_step(chunk: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            threading.Event().wait(0.02)  # off the loop (the worker)
        return step_chunk(chunk)

    monkeypatch.setattr(pipeline, "step_chunk", slow_step)
    runner = LiveRunner(IteratorSource(_released(packets), [r.sensor_id for r in refs]), pipeline, Bus())
    off = runner.offload
    assert off is not None
    off.max_pending_rows = 400
    runner.queue._maxsize = 300
    waiting_at_turns: list[int] = []
    process_batch = runner.process_batch

    def watched(batch: list[RawPacket]) -> None:
        waiting_at_turns.append(off.pending_rows)
        process_batch(batch)

    monkeypatch.setattr(runner, "process_batch", watched)
    asyncio.run(runner.run())
    assert max(waiting_at_turns) <= 400 and max(waiting_at_turns) > 0
    assert runner.stats.offload_waits > 0 and runner.queue.dropped > 0
    assert runner.stats.packets + runner.queue.dropped == len(packets)


def test_a_worker_job_that_raises_loses_its_outputs_not_the_service(
    session: tuple[list[dict[str, str]], list[RawPacket]], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    """The pipeline guards each leg's step, so a worker job raising is a defect; it must cost that job's
    outputs (logged), not wedge the stream: the leg's later chunks are stepped, the run ends, nothing is
    left counted as waiting. (A raising job left its leg's chunks pending for ever and the runner waiting.)"""
    meta, packets = session
    refs = sensor_refs_from_meta(meta)
    pipeline = Pipeline(refs)
    step_chunk = pipeline.step_chunk
    raised: list[str] = []

    def failing_once(chunk: Any) -> Any:
        if threading.current_thread() is not threading.main_thread() and not raised:
            raised.append(chunk.leg_id)
            raise RuntimeError("a defect in the worker")
        return step_chunk(chunk)

    monkeypatch.setattr(pipeline, "step_chunk", failing_once)
    bus = Bus()
    sub = bus.subscribe(["angles"], maxsize=10_000_000)
    runner = LiveRunner(IteratorSource(_released(packets), [r.sensor_id for r in refs]), pipeline, bus)

    async def main() -> None:
        async with asyncio.timeout(120.0):
            await runner.run()

    asyncio.run(main())
    assert raised and runner.offload is not None and runner.offload.pending_rows == 0
    assert any("raised" in r.getMessage() for r in caplog.records)
    legs = {m.key for m in sub.drain()}
    assert raised[0] in legs and len(legs) == 4  # the leg goes on after the lost job
