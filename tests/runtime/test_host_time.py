"""A packet with a non-finite or absurd host receive time (a crafted recording, an MQTT gateway's payload)
is rejected with a counted reason, visible on /health; nothing else is lost and the service goes on."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from functools import cache

import numpy as np
import pytest

from sensorhub.bench.packets import PacketSet, generate
from sensorhub.bus import Bus
from sensorhub.cues import Cue
from sensorhub.model import RawPacket, SensorRef
from sensorhub.runtime import CueStage, LegOutput, LiveRunner, Pipeline
from sensorhub.runtime.health import HealthReporter, MeasuredPipeline
from sensorhub.runtime.live import LiveStats
from sensorhub.sources import IteratorSource

EPOCH_S = 1.7e9
BAD_AT = 400


@cache
def _set() -> PacketSet:
    return generate(1, 1, 5)


def _packets() -> list[RawPacket]:
    return _set().packets(EPOCH_S)


def _refs() -> list[SensorRef]:
    return _set().refs()


def _angles(pipeline: Pipeline, packets: list[RawPacket]) -> dict[str, np.ndarray]:
    rows: dict[str, list[np.ndarray]] = {}
    outs: list[LegOutput] = []
    for p in packets:
        outs.extend(pipeline.ingest(p))
    outs.extend(pipeline.finish())
    for o in outs:
        a = o.angles
        cols = [a.t_s, a.flexion_rad, a.valgus_rad, a.rotation_rad]
        rows.setdefault(o.leg_id, []).append(np.column_stack(cols))
    return {leg: np.concatenate(parts) for leg, parts in rows.items()}


@pytest.mark.parametrize(
    ("t_host_s", "reason"),
    [
        (math.nan, "host_time_not_finite"),
        (math.inf, "host_time_not_finite"),
        (-math.inf, "host_time_not_finite"),
        (1e300, "host_time_out_of_range"),
        (-1e300, "host_time_out_of_range"),
        (1e12, "host_time_out_of_range"),
        (0.0, "host_time_jump"),  # 54 years back
        (EPOCH_S + 86_400.0, "host_time_jump"),  # a day ahead of every other packet
    ],
)
def test_bad_host_time_is_rejected_and_nothing_else_is_lost(t_host_s: float, reason: str) -> None:
    good = _packets()
    bad = good[BAD_AT]
    with_bad = [*good[:BAD_AT], RawPacket(bad.sensor_id, t_host_s, bad.payload), *good[BAD_AT + 1 :]]
    expected = _angles(Pipeline(_refs()), good[:BAD_AT] + good[BAD_AT + 1 :])
    pipeline = MeasuredPipeline(_refs())
    got = _angles(pipeline, with_bad)
    assert not pipeline.failed_legs
    assert set(got) == set(expected)
    for leg, rows in expected.items():
        np.testing.assert_array_equal(got[leg], rows)  # bit for bit: the packet is dropped, nothing else
    assert pipeline.stats()[bad.sensor_id].malformed_by_reason == {reason: 1}
    sensors = HealthReporter(pipeline, links=dict, live=LiveStats).report()["sensors"]
    assert sensors[bad.sensor_id]["malformed_by_reason"] == {reason: 1}


def test_a_host_clock_step_of_hours_stops_only_that_leg_with_a_reason() -> None:
    """The clock mapping cannot follow a step of hours (it used to stall the leg or fill hours of grid
    rows): the leg's packets are rejected as ``host_time_jump``, counted; the other leg goes on."""
    good = _packets()
    right = [r.sensor_id for r in _refs() if r.leg_id.endswith("right")]
    moved = [p.sensor_id in right and k >= BAD_AT for k, p in enumerate(good)]
    stepped = [RawPacket(p.sensor_id, p.t_host_s + 86_400.0, p.payload) if m else p
               for p, m in zip(good, moved, strict=True)]
    expected = _angles(Pipeline(_refs()), [p for p, m in zip(good, moved, strict=True) if not m])
    pipeline = Pipeline(_refs())
    got = _angles(pipeline, stepped)
    left = next(leg for leg in expected if leg.endswith("left"))
    np.testing.assert_array_equal(got[left], expected[left])
    n_stepped = sum(moved)
    assert sum(pipeline.stats()[s].malformed_by_reason.get("host_time_jump", 0) for s in right) == n_stepped


class _RaisingCues(CueStage):
    """A cue stage with a bug that one packet's outputs trigger (stands for any unforeseen error)."""

    raised = False

    def process(self, outputs: list[LegOutput], packet_host_s: float) -> list[Cue]:
        if not self.raised:
            self.raised = True
            raise RuntimeError("bug")
        return super().process(outputs, packet_host_s)


def test_live_runner_survives_a_packet_whose_processing_raises() -> None:
    packets = _packets()

    async def it() -> AsyncIterator[RawPacket]:
        for p in packets:
            yield p

    refs = _refs()
    bus = Bus()
    runner = LiveRunner(IteratorSource(it(), [r.sensor_id for r in refs]), Pipeline(refs), bus,
                        cues=_RaisingCues(bus))
    asyncio.run(runner.run())
    assert runner.stats.packets == len(packets)
    assert runner.stats.ingest_errors == {"RuntimeError": 1}
    assert runner.stats.angle_samples > 0
