"""The parts of ``sensorhub bench capacity`` that decide what it reports (no timing here)."""

from __future__ import annotations

import numpy as np

from sensorhub.bench.packets import PacketSet
from sensorhub.bench.stage_costs import attribute


def _set() -> PacketSet:
    sensors = (
        {"sensor_id": "a-thigh", "athlete": "a", "side": "right", "segment": "thigh"},
        {"sensor_id": "a-shank", "athlete": "a", "side": "right", "segment": "shank"},
    )
    return PacketSet(sensors, {"a": "squat"}, np.array([0, 1, 0, 1]), np.array([0.0, 0.001, 0.04, 0.041]),
                     (b"t0", b"s0", b"t1", b"s1"))


def test_replicate_gives_independent_sensors_with_the_same_streams() -> None:
    big = _set().replicate(3)
    ids = [s["sensor_id"] for s in big.sensors]
    assert len(set(ids)) == 6 and len(big) == 12
    assert set(big.drills) == {"a-c0", "a-c1", "a-c2"}
    assert np.all(np.diff(big.t_host_s) >= 0.0)
    for k, sid in enumerate(ids):
        mine = [p for i, p in zip(big.sensor_index, big.payloads, strict=True) if i == k]
        assert mine == ([b"t0", b"t1"] if "thigh" in sid else [b"s0", b"s1"])
    # Copies are shifted by a fraction of a packet, not stacked on the same instants.
    assert len(np.unique(big.t_host_s)) == 12


def test_attribute_charges_library_time_to_the_calling_stage() -> None:
    decode = ("/x/sensorhub/protocol/decode.py", 1, "decode")
    knee = ("/x/sensorhub/kinematics/knee.py", 1, "step")
    numpy_fn = ("~", 0, "<built-in method numpy.empty>")
    loop = ("/usr/lib/python3/asyncio/base_events.py", 1, "_run_once")
    stats = {
        decode: (1, 1, 1.0, 1.0, {}),
        knee: (1, 1, 2.0, 5.0, {}),
        # 3 s in numpy: 1 s called from decode, 2 s from the knee
        numpy_fn: (3, 3, 3.0, 3.0, {decode: (1, 1, 1.0, 1.0), knee: (2, 2, 2.0, 2.0)}),
        loop: (1, 1, 0.5, 9.0, {}),
    }
    out = attribute(stats)
    assert out["decode"] == 2.0
    assert out["knee"] == 4.0
    assert out["other (event loop, threads)"] == 0.5
