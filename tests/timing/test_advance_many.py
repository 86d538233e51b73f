"""``Front.advance_many`` (a loop turn's clock mapping and alignment, its sample times and grid points
computed at the end in one numba call each) gives every leg bit for bit the grid rows and every sensor the
stats of ``Front.advance`` packet by packet, on links that lose, duplicate, reorder and restart; and the
front's output is still the one of the per-packet implementation it replaced (digest recorded from it)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from sensorhub.bench.packets import generate
from sensorhub.model import LegSamples, RawPacket, Segment, SensorRef, Side
from sensorhub.protocol.spec import FLAG_RESTART, HEADER_SIZE, HEADER_STRUCT
from sensorhub.timing import Front

FIELDS = ("t_s", "thigh_acc_m_s2", "thigh_gyr_rad_s", "shank_acc_m_s2", "shank_gyr_rad_s")


def per_leg(chunks: list[LegSamples]) -> dict[str, bytes]:
    """Each leg's rows joined, as bytes (== is bit for bit, NaN included)."""
    legs: dict[str, list[LegSamples]] = {}
    for chunk in chunks:
        legs.setdefault(chunk.leg_id, []).append(chunk)
    return {leg_id: b"".join(np.ascontiguousarray(getattr(c, f)).tobytes() for f in FIELDS for c in parts)
            for leg_id, parts in legs.items()}


def restarted(packet: RawPacket, flagged: bool) -> RawPacket:
    """The packet of a sensor that rebooted: its sequence and clock start elsewhere."""
    head = list(HEADER_STRUCT.unpack_from(packet.payload))
    head[2] = (head[2] + 40_000) % 65536
    head[3] = (head[3] - 7_000_000) % 2**32
    if flagged:
        head[1] |= FLAG_RESTART
    payload = HEADER_STRUCT.pack(*head) + packet.payload[HEADER_SIZE:]
    return RawPacket(packet.sensor_id, packet.t_host_s, payload)


def with_link_faults(packets: list[RawPacket], seed: int) -> list[RawPacket]:
    """1 % lost, 1 % duplicated, 2 % overtaken by their sensor's next packet, a third of the sensors
    restarting (half of them without the restart flag), one malformed packet."""
    rng = np.random.default_rng(seed)
    t0_s, t1_s = packets[0].t_host_s, packets[-1].t_host_s
    ids = sorted({p.sensor_id for p in packets})
    restart_s = {sid: (t0_s + rng.uniform(0.3, 0.8) * (t1_s - t0_s), bool(k % 2))
                 for k, sid in enumerate(ids[::3])}
    out: list[RawPacket] = []
    flagged: set[str] = set()
    for p in packets:
        at = restart_s.get(p.sensor_id)
        if at is not None and p.t_host_s > at[0]:
            p = restarted(p, at[1] and p.sensor_id not in flagged)
            flagged.add(p.sensor_id)
        r = rng.random()
        if r < 0.01:
            continue
        out.append(p)
        if r > 0.99:
            out.append(replace(p, t_host_s=p.t_host_s + 0.0005))
    last: dict[str, int] = {}
    for i, p in enumerate(out):
        j = last.get(p.sensor_id)
        if j is not None and rng.random() < 0.02 and out[j].t_host_s < p.t_host_s:
            a, b = out[j], p
            out[j], out[i] = replace(b, t_host_s=a.t_host_s), replace(a, t_host_s=b.t_host_s)
        last[p.sensor_id] = i
    out[len(out) // 2] = replace(out[len(out) // 2], payload=out[len(out) // 2].payload[:15])
    return out


def test_advance_many_is_bit_identical_to_advance_on_a_faulty_multi_athlete_run() -> None:
    packet_set = generate(2, 2, 5)
    packets = with_link_faults(packet_set.packets(1.7e9), 1)
    one, many = Front(packet_set.refs()), Front(packet_set.refs())
    expected: list[LegSamples] = []
    for p in packets:
        expected.extend(one.ingest(p))
    got: list[LegSamples] = []
    rng = np.random.default_rng(0)
    k = 0
    while k < len(packets):
        turn = packets[k : k + int(rng.integers(1, 300))]
        chunks = many.advance_many(turn, many.decode_many(turn))
        assert len({c.leg_id for _, c in chunks}) == len(chunks)  # one chunk per leg and turn
        assert all(0 <= j < len(turn) for j, _ in chunks)
        got.extend(c for _, c in chunks)
        k += len(turn)
    stats = one.stats()
    assert sum(s.restarts for s in stats.values()) >= 2 and sum(s.reordered for s in stats.values()) > 10
    assert sum(s.duplicates for s in stats.values()) > 10 and sum(s.malformed for s in stats.values()) == 1
    assert per_leg(got + many.flush()) == per_leg(expected + one.flush())
    assert repr(many.stats()) == repr(one.stats())  # (repr: NaN drift of a sensor that did not settle)


def test_advance_many_reports_the_packet_that_completed_each_legs_first_row() -> None:
    packet_set = generate(1, 1, 3)
    packets = packet_set.packets(1.7e9)[:400]
    one, many = Front(packet_set.refs()), Front(packet_set.refs())
    first: dict[str, int] = {}
    for k, p in enumerate(packets):
        for chunk in one.ingest(p):
            first.setdefault(chunk.leg_id, k)
    assert {c.leg_id: k for k, c in many.advance_many(packets, many.decode_many(packets))} == first


def _leg_stream(rng: np.random.Generator) -> list[RawPacket]:
    """Two legs of integer samples (no transcendental function: the same bytes on every machine), 200 Hz,
    8 per packet, drifting clocks and uniform link jitter; faults: loss, duplicates, swaps, a restart, a
    shank silent for 2 s (the grid goes on without it), a leg silent for 15 s (the grid jumps)."""
    packets: list[RawPacket] = []
    for s, sensor_id in enumerate(("t-r", "s-r", "t-l", "s-l")):
        drift = 1.0 + 40e-6 * (s - 1.5)
        seq, t0_us = 100 * s, 1_000_000 * s
        for k in range(1000):
            t_true_s = 1000.0 + (k + 1) * 0.04 * drift
            if sensor_id == "s-r" and 300 <= k < 350:
                continue  # silent
            if sensor_id in ("t-l", "s-l") and 500 <= k < 880:
                continue  # both sensors of the leg silent for 15 s
            flags = FLAG_RESTART if sensor_id == "t-r" and k == 700 else 0
            if flags:
                seq, t0_us = 5, 77
            raw = rng.integers(-3000, 3000, (8, 6)).astype("<i2")
            head = HEADER_STRUCT.pack(1, flags, seq % 65536, t0_us % 2**32, 5000, 16, 8, 2000)
            t_host_s = t_true_s + float(rng.uniform(0.0075, 0.03))
            packets.append(RawPacket(sensor_id, t_host_s, head + raw.tobytes()))
            seq, t0_us = seq + 1, t0_us + 40_000
    packets.sort(key=lambda p: p.t_host_s)
    out: list[RawPacket] = []
    for p in packets:
        r = float(rng.uniform())
        if r < 0.02:
            continue
        out.append(p)
        if r > 0.98:
            out.append(replace(p, t_host_s=p.t_host_s + 0.001))
    for i in range(5, len(out) - 1, 97):
        a, b = out[i], out[i + 1]
        out[i], out[i + 1] = replace(b, t_host_s=a.t_host_s), replace(a, t_host_s=b.t_host_s)
    return out


# sha256 of the per-leg rows and the stats of ``_leg_stream(default_rng(7))`` through ``Front.ingest``,
# recorded with the per-packet implementation before the turn-level one (commit 77d5eed).
DIGEST_BEFORE_TURNS = "f1e53ab1aa9ad9884f24284c45811eac75205414c3a5c3a067262094231ed093"


def test_front_output_is_that_of_the_per_packet_implementation() -> None:
    refs = [SensorRef(sid, "x", side, seg) for sid, side, seg in (
        ("t-r", Side.RIGHT, Segment.THIGH), ("s-r", Side.RIGHT, Segment.SHANK),
        ("t-l", Side.LEFT, Segment.THIGH), ("s-l", Side.LEFT, Segment.SHANK))]
    packets = _leg_stream(np.random.default_rng(7))
    for front_turns in ((1,), (1, 64, 300)):
        front = Front(refs)
        chunks: list[LegSamples] = []
        k, j = 0, 0
        while k < len(packets):
            turn = packets[k : k + front_turns[j % len(front_turns)]]
            chunks.extend(c for _, c in front.advance_many(turn, front.decode_many(turn)))
            k, j = k + len(turn), j + 1
        rows = per_leg(chunks + front.flush())
        digest = hashlib.sha256(b"".join(rows[leg] for leg in sorted(rows)) + repr(front.stats()).encode())
        assert digest.hexdigest() == DIGEST_BEFORE_TURNS, front_turns
