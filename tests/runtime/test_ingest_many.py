"""``Pipeline.ingest_many`` (a loop turn's packets checked and decoded at once, each leg's rows of the turn
stepped as one chunk) gives each leg bit for bit the angles, events and calibration that
``Pipeline.ingest`` gives one packet at a time, each output with the first packet of the turn that brought
rows for its leg."""

from __future__ import annotations

import math

import numpy as np

from sensorhub.bench.packets import generate
from sensorhub.model import RawPacket
from sensorhub.runtime import LegOutput, Pipeline


def _per_leg(outputs: list[LegOutput]) -> dict[str, list[object]]:
    """Per leg, everything its outputs carry in order (angles joined, as bytes: == is bit for bit, NaN
    included), except the live phase (reported once per turn by ingest_many)."""
    legs: dict[str, list[LegOutput]] = {}
    for o in outputs:
        legs.setdefault(o.leg_id, []).append(o)
    flat: dict[str, list[object]] = {}
    for leg_id, outs in legs.items():
        arrays = [np.concatenate([getattr(o.angles, name) for o in outs])
                  for name in ("t_s", "flexion_rad", "valgus_rad", "rotation_rad", "quality")]
        flat[leg_id] = [
            *(np.ascontiguousarray(x).tobytes() for x in arrays),
            repr([e for o in outs for e in o.events]),
            repr([o.calibration for o in outs if o.calibration is not None]),
        ]
    return flat


def test_ingest_many_is_bit_identical_to_ingest_on_a_multi_athlete_run() -> None:
    packet_set = generate(3, 2, 11)
    packets = packet_set.packets(1.7e9)
    # Also the paths that drop a packet: malformed payloads, a bad host time, an unknown sensor.
    packets[500] = RawPacket(packets[500].sensor_id, packets[500].t_host_s, packets[500].payload[:20])
    packets[900] = RawPacket(packets[900].sensor_id, math.nan, packets[900].payload)
    packets[1300] = RawPacket("nobody", packets[1300].t_host_s, packets[1300].payload)
    bad_version = b"\x02" + packets[1700].payload[1:]
    packets[1700] = RawPacket(packets[1700].sensor_id, packets[1700].t_host_s, bad_version)
    one = Pipeline(packet_set.refs())
    many = Pipeline(packet_set.refs())
    rng = np.random.default_rng(0)
    expected = [one.ingest(p) for p in packets]
    got: list[list[LegOutput]] = []
    k = 0
    while k < len(packets):
        n = int(rng.integers(1, 400))
        turn = packets[k : k + n]
        outputs = list(many.ingest_many(turn))
        assert len(outputs) == len(turn)
        # each leg's output of the turn comes with the turn's first packet that brought rows for it
        for j, outs in enumerate(outputs):
            for o in outs:
                legs_before = {out.leg_id for e in expected[k : k + j] for out in e if len(out.angles.t_s)}
                assert o.leg_id not in legs_before or not len(o.angles.t_s), (k, j, o.leg_id)
        got.extend(outputs)
        k += n
    assert len(got) == len(expected)
    assert sum(1 for e in expected if e) > 100  # angles, events and calibrations were produced
    assert sum(1 for g in got if g) < sum(1 for e in expected if e)  # ... in fewer, larger steps
    everything = [o for out in got for o in out] + many.finish()
    assert _per_leg(everything) == _per_leg([o for out in expected for o in out] + one.finish())
    assert many.stats() == one.stats()
    assert many.front.unknown_packets == one.front.unknown_packets == 1
