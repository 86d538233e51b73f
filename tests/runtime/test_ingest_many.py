"""``Pipeline.ingest_many`` (a loop turn's packets checked and decoded at once) gives, packet by packet,
bit for bit what ``Pipeline.ingest`` gives one packet at a time."""

from __future__ import annotations

import math

import numpy as np

from sensorhub.bench.packets import generate
from sensorhub.model import RawPacket
from sensorhub.runtime import LegOutput, Pipeline


def _flatten(outputs: list[LegOutput]) -> list[object]:
    """Everything an output carries, arrays as bytes (so that == is bit for bit, NaN included)."""
    flat: list[object] = []
    for o in outputs:
        a = o.angles
        flat.append((o.leg_id, *(np.ascontiguousarray(x).tobytes() for x in
                                 (a.t_s, a.flexion_rad, a.valgus_rad, a.rotation_rad, a.quality))))
        flat.append(repr(o.events))
        flat.append(repr(o.phase))
        flat.append(repr(o.calibration))
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
    expected = [_flatten(one.ingest(p)) for p in packets]
    got: list[list[object]] = []
    k = 0
    while k < len(packets):
        n = int(rng.integers(1, 400))
        got.extend(_flatten(out) for out in many.ingest_many(packets[k : k + n]))
        k += n
    assert len(got) == len(expected)
    assert sum(1 for e in expected if e) > 100  # angles, events and calibrations were produced
    for g, e in zip(got, expected, strict=True):
        assert g == e
    assert _flatten(many.finish()) == _flatten(one.finish())
    assert many.stats() == one.stats()
    assert many.front.unknown_packets == one.front.unknown_packets == 1
