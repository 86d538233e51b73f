"""Timing: clock drift/offset estimation, sequence handling, alignment on one grid, determinism."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorhub.model import LegSamples, RawPacket, Segment, SensorRef, Side, TimedSamples
from sensorhub.offline.export import concat_legs
from sensorhub.protocol import decode_packet
from sensorhub.timing import Front, LegAligner, SensorClock

G = 9.80665
ACC_SCALE = 16 * G / 32768  # m/s^2 per LSB at +-16 g
GYR_SCALE = 2000 * math.pi / 180 / 32768  # rad/s per LSB at +-2000 dps
HOST0_S = 1_764_000_000.0

Latency = Callable[[np.random.Generator, int], np.ndarray]


def ble_latency(rng: np.random.Generator, n: int) -> np.ndarray:
    """7.5 ms floor, most packets within a few ms of it, a tail up to 30 ms (retries, scheduling)."""
    return np.minimum(0.0075 + rng.exponential(0.004, n), 0.030)


def uniform_latency(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0.0075, 0.030, n)


def lattice_latency(connection_interval_s: float, phase_s: float = 0.003) -> Latency:
    """BLE connection events on the host clock: a packet waits for the next event, plus stack jitter.

    ``make_stream`` passes the true ready times through ``ready_s`` (set below) to this model.
    """

    def latency(rng: np.random.Generator, n: int) -> np.ndarray:
        ready_s = lattice_latency.ready_s  # type: ignore[attr-defined]
        wait_s = (phase_s - ready_s) % connection_interval_s
        return wait_s + 0.0003 * rng.random(n)

    return latency


def signal(t_s: np.ndarray, phase: float = 0.0) -> np.ndarray:
    """(n, 6) acc m/s^2 and gyro rad/s as smooth functions of true host time."""
    w = 2 * math.pi * 0.7
    return np.column_stack(
        (
            3 * np.sin(w * t_s + phase),
            2 * np.cos(w * t_s + phase),
            G + np.sin(3 * t_s),
            2 * np.sin(w * t_s + 1 + phase),
            np.cos(2 * t_s),
            0.5 * np.sin(w * t_s + phase),
        )
    )


def make_stream(
    sensor_id: str,
    *,
    duration_s: float,
    drift_ppm: float = 0.0,
    latency: Latency = ble_latency,
    seed: int = 0,
    rate_hz: int = 200,
    per_packet: int = 8,
    t0_us: int = 123_456,
    seq0: int = 0,
    host0_s: float = HOST0_S,
    phase: float = 0.0,
) -> tuple[list[RawPacket], np.ndarray]:
    """Packets of one sensor, in arrival order, and each packet's true host time of its first sample.

    True host time of sensor time x (seconds since t0_us): host0 + x / (1 + drift); received at
    true time of the packet's last sample + latency. Payloads follow docs/protocol.md's byte table.
    """
    rng = np.random.default_rng(seed)
    period_us = round(1e6 / rate_hz)
    n_packets = int(duration_s * rate_hz / per_packet)
    k = np.arange(n_packets * per_packet)
    true_s = host0_s + k * period_us * 1e-6 / (1 + drift_ppm * 1e-6)  # + drift: the sensor clock runs fast
    values = signal(true_s, phase)
    raw = np.round(values / np.array([ACC_SCALE] * 3 + [GYR_SCALE] * 3)).astype("<i2")
    lattice_latency.ready_s = true_s[per_packet - 1 :: per_packet] - host0_s  # type: ignore[attr-defined]
    arrival_s = true_s[per_packet - 1 :: per_packet] + latency(rng, n_packets)
    packets = []
    for j in range(n_packets):
        head = struct.pack(
            "<BBHIHBBH",
            1,
            4 if j == 0 else 0,
            (seq0 + j) % 65536,
            (t0_us + j * per_packet * period_us) % 2**32,
            period_us,
            16,
            per_packet,
            2000,
        )
        payload = head + raw[j * per_packet : (j + 1) * per_packet].tobytes()
        packets.append(RawPacket(sensor_id, float(arrival_s[j]), payload))
    order = np.argsort(arrival_s, kind="stable")  # the radio delivers in arrival order
    return [packets[i] for i in order], true_s[::per_packet][order]


def run_clock(clock: SensorClock, packets: list[RawPacket]) -> list[TimedSamples]:
    out: list[TimedSamples] = []
    for p in packets:
        out.extend(clock.push(decode_packet(p.sensor_id, p.t_host_s, p.payload), p.t_host_s))
    out.extend(clock.flush())
    return out


def times(chunks: list[TimedSamples]) -> np.ndarray:
    return np.concatenate([c.t_s for c in chunks])


# --- clock ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("drift_ppm", [-80.0, -20.0, 20.0, 80.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_drift_within_5_ppm_after_30_s(drift_ppm: float, seed: int) -> None:
    packets, _ = make_stream("s", duration_s=30.0, drift_ppm=drift_ppm, seed=seed)
    clock = SensorClock("s")
    run_clock(clock, packets)
    assert abs(clock.stats().drift_ppm - drift_ppm) < 5.0


@pytest.mark.parametrize("drift_ppm", [-60.0, 45.0])
def test_drift_within_5_ppm_with_wide_uniform_jitter_after_90_s(drift_ppm: float) -> None:
    # Uniform 7.5-30 ms jitter puts few packets near the floor: the envelope needs longer (docs/timing.md).
    packets, _ = make_stream("s", duration_s=90.0, drift_ppm=drift_ppm, latency=uniform_latency, seed=7)
    clock = SensorClock("s")
    run_clock(clock, packets)
    assert abs(clock.stats().drift_ppm - drift_ppm) < 5.0


def test_mapped_times_follow_the_true_clock_and_increase() -> None:
    packets, _ = make_stream("s", duration_s=40.0, drift_ppm=70.0, seed=4, t0_us=2**32 - 3_000_000)
    chunks = run_clock(SensorClock("s"), packets)
    t_s = times(chunks)
    true_s = HOST0_S + np.arange(t_s.size) * 0.005 / (1 + 70e-6)
    assert t_s.size == 40 * 200 and np.all(np.diff(t_s) > 0.0)
    err_s = t_s - true_s - 0.0075  # mapped time = arrival over the fastest link (7.5 ms floor)
    settled = err_s[5 * 200 :]
    assert np.max(np.abs(settled)) < 1e-3
    assert np.max(np.abs(err_s[-2000:])) < 3e-4
    # sample spacing stays near the period even while the estimate settles (slewing, no jumps)
    assert np.max(np.abs(np.diff(t_s) - 0.005)) < 0.005 * 0.06


@pytest.mark.parametrize("interval_s", [0.00787, 0.01357, 0.02183, 0.02586])
def test_mapping_stays_within_3_5_ms_on_a_connection_event_lattice(interval_s: float) -> None:
    # Arrivals quantised to connection events (host clock) carry less clock information than random
    # jitter (docs/timing.md); the mapped times still stay within a few ms of the truth.
    packets, _ = make_stream(
        "s", duration_s=40.0, drift_ppm=-35.0, latency=lattice_latency(interval_s), seed=3
    )
    t_s = times(run_clock(SensorClock("s"), packets))
    true_s = HOST0_S + np.arange(t_s.size) * 0.005 / (1 - 35e-6)
    err_s = (t_s - true_s)[5 * 200 :]
    assert np.all(np.diff(t_s) > 0.0)
    assert np.max(np.abs(err_s)) < 3.5e-3


def test_unwraps_sequence_and_sensor_clock() -> None:
    packets, _ = make_stream("s", duration_s=3.0, seq0=65530, t0_us=2**32 - 500_000, seed=5)
    clock = SensorClock("s")
    t_s = times(run_clock(clock, packets))
    stats = clock.stats()
    assert (stats.lost, stats.restarts, stats.duplicates, stats.late) == (0, 0, 0, 0)
    assert stats.packets == 75 and np.all(np.diff(t_s) > 0.004) and np.all(np.diff(t_s) < 0.006)


def test_gaps_are_counted_in_samples() -> None:
    packets, _ = make_stream("s", duration_s=5.0, seed=6)
    dropped = {10, 11, 40, 70}
    kept = [p for i, p in enumerate(packets) if i not in dropped]
    clock = SensorClock("s")
    chunks = run_clock(clock, kept)
    assert clock.stats().lost == 8 * len(dropped)
    assert [c.n_missing_before for c in chunks if c.n_missing_before] == [16, 8, 8]
    t_s = times(chunks)
    big_steps = np.diff(t_s)[np.diff(t_s) > 0.0075]
    assert np.allclose(np.sort(big_steps), [0.045, 0.045, 0.085], atol=2e-3)


def test_duplicates_are_dropped_without_changing_output() -> None:
    packets, _ = make_stream("s", duration_s=5.0, seed=8)
    duplicated: list[RawPacket] = []
    for i, p in enumerate(packets):
        duplicated.append(p)
        if i % 10 == 3:  # an MQTT redelivery a little later
            duplicated.append(replace(p, t_host_s=p.t_host_s + 0.001))
    clean_clock, dup_clock = SensorClock("s"), SensorClock("s")
    clean = run_clock(clean_clock, packets)
    dup = run_clock(dup_clock, duplicated)
    assert dup_clock.stats().duplicates == len(duplicated) - len(packets)
    assert np.array_equal(times(clean), times(dup))


def test_reordered_packets_are_put_back_in_order() -> None:
    packets, _ = make_stream("s", duration_s=5.0, seed=9)
    swapped = list(packets)
    for i in (20, 50, 80):  # the later packet overtakes (arrives 1 ms before the earlier one)
        a, b = swapped[i], swapped[i + 1]
        swapped[i], swapped[i + 1] = replace(b, t_host_s=a.t_host_s), replace(a, t_host_s=a.t_host_s + 0.001)
    clock = SensorClock("s")
    t_s = times(run_clock(clock, swapped))
    stats = clock.stats()
    assert stats.reordered == 3 and stats.lost == 0 and stats.late == 0
    assert t_s.size == len(packets) * 8 and np.all(np.diff(t_s) > 0.0)


def test_packet_later_than_the_reorder_window_is_dropped_as_late() -> None:
    packets, _ = make_stream("s", duration_s=5.0, seed=10)
    late = packets.pop(30)
    packets.insert(36, replace(late, t_host_s=packets[35].t_host_s + 0.001))  # > 3 packets and > 100 ms
    clock = SensorClock("s")
    t_s = times(run_clock(clock, packets))
    stats = clock.stats()
    assert (stats.late, stats.lost, stats.restarts) == (1, 8, 0)
    assert np.all(np.diff(t_s) > 0.0)


def test_overtaken_first_packet_is_late_not_a_restart() -> None:
    packets, _ = make_stream("s", duration_s=2.0, seed=14)
    first, second = packets[0], packets[1]
    packets[0], packets[1] = (
        replace(second, t_host_s=first.t_host_s),
        replace(first, t_host_s=first.t_host_s + 1e-3),
    )
    clock = SensorClock("s")
    t_s = times(run_clock(clock, packets))
    stats = clock.stats()
    assert (stats.restarts, stats.late, stats.packets) == (0, 1, 49) and np.all(np.diff(t_s) > 0.0)


@pytest.mark.parametrize("with_flag", [True, False])
def test_sensor_restart_starts_a_new_run(with_flag: bool) -> None:
    first, _ = make_stream("s", duration_s=5.0, seed=11, drift_ppm=50.0, t0_us=90_000_000)
    # After a reboot: seq and sensor clock restart, host time goes on. Without the flag the first
    # packet (carrying it) is lost.
    second, _ = make_stream("s", duration_s=5.0, seed=12, drift_ppm=50.0, t0_us=1_000, host0_s=HOST0_S + 7.0)
    if not with_flag:
        second = second[1:]
    clock = SensorClock("s")
    chunks = run_clock(clock, first + second)
    stats = clock.stats()
    assert stats.restarts == 1 and stats.duplicates == 0 and stats.late == 0
    t_s = times(chunks)
    assert np.all(np.diff(t_s) > 0.0)
    assert abs(t_s[-1] - (HOST0_S + 7.0 + 4.995 + 0.0075)) < 2e-3


def _with_t0(packet: RawPacket, t0_us: int) -> RawPacket:
    head = list(struct.unpack_from("<BBHIHBBH", packet.payload))
    head[3] = t0_us % 2**32
    return RawPacket(packet.sensor_id, packet.t_host_s, struct.pack("<BBHIHBBH", *head) + packet.payload[14:])


@pytest.mark.parametrize("ahead_s", [5.0, 123.0, 2147.0])
def test_a_sensor_time_jump_the_host_clock_does_not_see_starts_a_new_run(ahead_s: float) -> None:
    """One packet whose t0 ran ``ahead_s`` ahead (a corrupt or crafted header): its samples are not mapped
    into the future (they were, up to 0.95 * ahead_s: the grid then filled the jump with hundreds of
    thousands of rows in one turn); the stream goes on at its true times."""
    packets, _ = make_stream("s", duration_s=6.0, seed=3)
    k = len(packets) // 2
    head = struct.unpack_from("<BBHIHBBH", packets[k].payload)
    packets[k] = _with_t0(packets[k], head[3] + round(ahead_s * 1e6))
    clock = SensorClock("s")
    out: list[TimedSamples] = []
    for p in packets:
        got = clock.push(decode_packet(p.sensor_id, p.t_host_s, p.payload), p.t_host_s)
        for chunk in got:  # nothing is ever mapped after the time its packet was received
            assert chunk.t_s[-1] <= p.t_host_s + 0.05
        out.extend(got)
    t_s = times(out)
    assert np.all(np.diff(t_s) > 0.0) and t_s[-1] - t_s[0] < 6.1
    assert clock.stats().restarts == 2  # into the jump and back out of it


def test_a_long_silence_with_the_host_clock_is_not_a_jump() -> None:
    """A sensor silent for 10 minutes whose clock ran on with the host's (500 ppm at most): one run."""
    before, _ = make_stream("s", duration_s=3.0, seed=5, drift_ppm=400.0)
    after, _ = make_stream("s", duration_s=3.0, seed=6, drift_ppm=400.0, seq0=len(before),
                           t0_us=123_456 + 603_000_000, host0_s=HOST0_S + 603.0 / (1 + 400e-6))
    clock = SensorClock("s")
    run_clock(clock, before + after[1:])
    assert clock.stats().restarts == 0 and clock.stats().lost > 0


# --- aligner --------------------------------------------------------------------------------------


def _samples(sensor_id: str, t_s: np.ndarray, phase: float = 0.0) -> TimedSamples:
    v = signal(t_s, phase)
    return TimedSamples(sensor_id, t_s, v[:, :3].copy(), v[:, 3:].copy())


def test_aligner_interpolates_both_sensors_onto_one_grid() -> None:
    aligner = LegAligner("a/right", 200.0)
    t_thigh = HOST0_S + 0.0011 + np.arange(400) * 0.005
    t_shank = HOST0_S + 0.0037 + np.arange(400) * 0.005
    chunks: list[LegSamples] = []
    for i in range(0, 400, 8):
        for seg, t in ((Segment.THIGH, t_thigh), (Segment.SHANK, t_shank)):
            chunk = aligner.push(seg, _samples(seg.value, t[i : i + 8]))
            if chunk is not None:
                chunks.append(chunk)
    flushed = aligner.flush()
    leg = concat_legs([*chunks, *([flushed] if flushed is not None else [])])["a/right"]
    k = np.round(leg.t_s * 200.0)
    assert np.all(np.diff(k) == 1) and np.allclose(leg.t_s * 200.0, k, rtol=0, atol=1e-3)
    inside = (leg.t_s >= t_shank[0]) & (leg.t_s <= t_thigh[-1])
    truth = signal(leg.t_s[inside])
    assert np.nanmax(np.abs(leg.thigh_acc_m_s2[inside] - truth[:, :3])) < 5e-3
    assert np.nanmax(np.abs(leg.shank_gyr_rad_s[inside] - truth[:, 3:])) < 5e-3
    assert not np.isnan(leg.thigh_acc_m_s2[inside]).any() and not np.isnan(leg.shank_acc_m_s2[inside]).any()


def test_aligner_marks_gaps_with_nan_rows() -> None:
    aligner = LegAligner("a/right", 200.0)
    t = HOST0_S + 0.002 + np.arange(200) * 0.005
    keep = np.ones(200, bool)
    keep[100:103] = False  # 3 missing samples: a 20 ms hole
    chunks = []
    for i in range(0, 200, 8):
        sel = np.zeros(200, bool)
        sel[i : i + 8] = True
        for seg, mask in ((Segment.THIGH, sel & keep), (Segment.SHANK, sel)):
            chunk = aligner.push(seg, _samples(seg.value, t[mask]))
            if chunk is not None:
                chunks.append(chunk)
    flushed = aligner.flush()
    leg = concat_legs([*chunks, *([flushed] if flushed is not None else [])])["a/right"]
    nan_rows = np.asarray(np.isnan(leg.thigh_acc_m_s2).any(axis=1))
    hole = (leg.t_s > t[99]) & (leg.t_s < t[103])
    assert np.array_equal(nan_rows[leg.t_s >= t[0]], hole[leg.t_s >= t[0]])
    assert hole.sum() == 4 and not np.isnan(leg.shank_acc_m_s2[leg.t_s >= t[0]]).any()


def test_aligner_never_stalls_behind_a_silent_sensor() -> None:
    aligner = LegAligner("a/right", 200.0, max_wait_s=0.1)
    t = HOST0_S + np.arange(2000) * 0.005
    emitted_until = -math.inf
    for i in range(0, 2000, 8):
        if i < 400:  # the shank goes silent after 2 s
            aligner.push(Segment.SHANK, _samples("s", t[i : i + 8]))
        chunk = aligner.push(Segment.THIGH, _samples("t", t[i : i + 8]), now_s=float(t[i + 7]) + 0.01)
        if chunk is not None:
            emitted_until = chunk.t_s[-1]
            if t[i] > HOST0_S + 2.2:
                assert np.isnan(chunk.shank_acc_m_s2).all() and not np.isnan(chunk.thigh_acc_m_s2).any()
        assert emitted_until >= t[i + 7] + 0.01 - 0.1 - 0.005 - 1e-6


# --- the composed front -----------------------------------------------------------------------------

SENSORS = [
    SensorRef("thigh-r", "ann", Side.RIGHT, Segment.THIGH),
    SensorRef("shank-r", "ann", Side.RIGHT, Segment.SHANK),
]


def two_sensor_packets(duration_s: float = 10.0) -> list[RawPacket]:
    thigh, _ = make_stream("thigh-r", duration_s=duration_s, drift_ppm=40.0, seed=21, t0_us=5_000_000)
    shank, _ = make_stream("shank-r", duration_s=duration_s, drift_ppm=-30.0, seed=22, t0_us=77_000_000)
    return sorted(thigh + shank, key=lambda p: p.t_host_s)


def run_front(packets: list[RawPacket]) -> list[LegSamples]:
    front = Front(SENSORS, rate_hz=200.0)
    chunks: list[LegSamples] = []
    for p in packets:
        chunks.extend(front.ingest(p))
    return chunks + front.flush()


def test_front_aligns_a_leg_and_is_deterministic() -> None:
    packets = two_sensor_packets()
    packets.insert(100, RawPacket("thigh-r", packets[99].t_host_s, b"\x01\x00garbage"))
    packets.insert(200, RawPacket("stranger", packets[199].t_host_s, b""))
    a, b = run_front(packets), run_front(packets)
    assert len(a) == len(b) and all(
        x.t_s.tobytes() == y.t_s.tobytes()
        and x.thigh_acc_m_s2.tobytes() == y.thigh_acc_m_s2.tobytes()
        and x.shank_gyr_rad_s.tobytes() == y.shank_gyr_rad_s.tobytes()
        for x, y in zip(a, b, strict=True)
    )
    leg = concat_legs(a)["ann/right"]
    assert np.all(np.diff(leg.t_s) > 0.0049) and np.all(np.diff(leg.t_s) < 0.0051)
    # both sensors see the same motion: after the clocks settle they agree on the common grid
    late = leg.t_s > HOST0_S + 3.0
    truth = signal(leg.t_s[late] - 0.0075)
    assert np.nanmax(np.abs(leg.thigh_acc_m_s2[late] - truth[:, :3])) < 0.02
    assert np.nanmax(np.abs(leg.shank_acc_m_s2[late] - truth[:, :3])) < 0.02
    assert np.isnan(leg.thigh_acc_m_s2[late]).sum() == 0


@pytest.mark.parametrize(("rate_hz", "per_packet"), [(50, 19), (200, 19), (800, 4)])
def test_front_has_no_nan_rows_on_a_clean_link_whatever_the_packet_size(
    rate_hz: int, per_packet: int
) -> None:
    # BLE delivers in order (connection events); 19-sample packets at 50 Hz come every 0.38 s
    kwargs = {"duration_s": 8.0, "rate_hz": rate_hz, "per_packet": per_packet}
    thigh, _ = make_stream("thigh-r", drift_ppm=40.0, latency=lattice_latency(0.0113), **kwargs)  # type: ignore[arg-type]
    shank, _ = make_stream(
        "shank-r",
        drift_ppm=-30.0,
        t0_us=9_000_000,
        latency=lattice_latency(0.0152, 0.007),
        **kwargs,  # type: ignore[arg-type]
    )
    front = Front(SENSORS)
    chunks: list[LegSamples] = []
    for p in sorted(thigh + shank, key=lambda p: p.t_host_s):
        chunks.extend(front.ingest(p))
    leg = concat_legs(chunks + front.flush())["ann/right"]
    inner = (leg.t_s > leg.t_s[0] + 0.5) & (leg.t_s < leg.t_s[-1] - 0.5)  # both sensors started, not ended
    assert np.all(np.abs(np.diff(leg.t_s) * rate_hz - 1.0) < 1e-3)
    assert not np.isnan(leg.thigh_acc_m_s2[inner]).any() and not np.isnan(leg.shank_gyr_rad_s[inner]).any()


def test_front_stats_per_sensor() -> None:
    packets = two_sensor_packets(6.0)
    packets = [p for i, p in enumerate(packets) if i != 50]
    packets.insert(10, RawPacket("shank-r", packets[9].t_host_s, b"\x01"))
    front = Front(SENSORS)
    for p in packets:
        front.ingest(p)
    front.flush()
    stats = front.stats()
    lost_sensor = "thigh-r" if stats["thigh-r"].lost else "shank-r"
    assert stats[lost_sensor].lost == 8 and stats["shank-r"].malformed == 1
    assert stats["shank-r"].malformed_by_reason == {"too_short": 1}
    assert stats["thigh-r"].packets + stats["shank-r"].packets == len(packets) - 1
    assert stats["thigh-r"].leg_id == "ann/right" and 0.0 <= stats["thigh-r"].latency_s < 0.03


def test_aligner_waits_for_a_heard_sensor_but_not_forever() -> None:
    aligner = LegAligner("a/right", 200.0, max_wait_s=0.1, max_wait_heard_s=0.25)
    t = HOST0_S + np.arange(1000) * 0.005
    emitted_until = -math.inf
    for i in range(0, 1000, 8):
        now_s = float(t[i + 7]) + 0.01
        lagging = t[i : i + 8] - 1.0  # the shank arrives, but its samples lag 1 s (buffered data burst)
        aligner.heard(Segment.SHANK, now_s)
        for seg, chunk_t in ((Segment.THIGH, t[i : i + 8]), (Segment.SHANK, lagging[lagging >= HOST0_S])):
            chunk = aligner.push(seg, _samples(seg.value, chunk_t), now_s=now_s)
            if chunk is not None:
                emitted_until = float(chunk.t_s[-1])
        if i > 400:
            assert now_s - 0.25 - 0.005 - 1e-6 <= emitted_until <= now_s - 0.25 + 1e-6


@settings(max_examples=150, deadline=None)
@given(
    drop=st.sets(st.integers(1, 73), max_size=12),
    dup=st.sets(st.integers(0, 74), max_size=12),
    swap=st.sets(st.integers(1, 72), max_size=10),
)
def test_any_loss_duplication_and_swaps_keep_the_stream_consistent(
    drop: set[int], dup: set[int], swap: set[int]
) -> None:
    packets, _ = make_stream("s", duration_s=3.0, seed=13)  # 75 packets, 600 samples
    arrived = list(packets)
    for i in sorted(swap):  # the later packet overtakes by 1 ms
        a, b = arrived[i], arrived[i + 1]
        arrived[i], arrived[i + 1] = replace(b, t_host_s=a.t_host_s), replace(a, t_host_s=a.t_host_s + 0.001)
    stream: list[RawPacket] = []
    for i, p in enumerate(arrived):
        if i in drop:
            continue
        stream.append(p)
        if i in dup:
            stream.append(replace(p, t_host_s=p.t_host_s + 0.0005))
    clock = SensorClock("s")
    t_s = times(run_clock(clock, stream))
    stats = clock.stats()
    assert stats.restarts == 0  # (chained swaps can make a packet late: its samples then count as lost)
    assert np.all(np.diff(t_s) > 0.0)
    assert stats.samples + stats.lost == 600
    assert stats.duplicates == len(stream) - stats.packets - stats.late


def test_front_on_a_firmware_sim_recording(tmp_path: Path) -> None:
    """The independent encoder, its link model (connection events, loss, reordering) and clock errors."""
    cli = pytest.importorskip("firmware_sim.cli")
    from sensorhub.offline.export import recording_legs
    from sensorhub.recording import read_recording

    out = tmp_path / "session"
    argv = ["record", "--drill", "drop_jump", "--out", str(out), "--reps", "2", "--seed", "5"]
    assert cli.main([*argv, "--sides", "right", "--link", "typical", "--standing-s", "10"]) == 0
    truth = json.loads((out / "truth.json").read_text())
    recording = read_recording(out / "recording.shrec")
    legs, stats = recording_legs(recording)
    mapped_checked = 0
    for sensor_id, front_stats in stats.items():
        sim = truth["sensors"][sensor_id]
        assert front_stats.malformed == 0 and front_stats.restarts == 0 and front_stats.duplicates == 0
        assert front_stats.packets == sim["packets_delivered"] - front_stats.late
        trailing = sum(1 for i in sim["lost_packet_indices"] if i >= sim["packets_sent"] - 3)
        assert (
            8 * (sim["packets_lost"] - trailing)
            <= front_stats.lost + 8 * front_stats.late
            <= 8 * sim["packets_lost"]
        )
        # mapped sample times against the simulator's true host times
        clock = SensorClock(sensor_id)
        packets = [p for p in recording.packets() if p.sensor_id == sensor_id]
        t_s = times(run_clock(clock, packets))
        decoded = sorted((decode_packet(p.sensor_id, 0.0, p.payload) for p in packets), key=lambda k: k.seq)
        sensor_us = np.concatenate([k.t0_sensor_us + np.arange(k.n_samples) * k.period_us for k in decoded])
        sensor_us = np.unwrap(sensor_us.astype(np.float64), period=2.0**32)
        if clock.stats().late == 0:
            true_s = truth["host_epoch_s"] + (sensor_us - sim["clock_offset_us"]) * 1e-6 / (
                1 + sim["clock_drift_ppm"] * 1e-6
            )
            err_s = (t_s - true_s)[5 * 200 :]
            assert np.max(np.abs(err_s)) < 3.5e-3
            mapped_checked += 1
    assert mapped_checked >= 1
    leg = legs["sim/right"]
    assert np.all(np.diff(leg.t_s) > 0.0049) and np.isnan(leg.thigh_acc_m_s2[:, 0]).mean() < 0.05


def test_aligner_jumps_over_a_long_silence_of_both_sensors() -> None:
    aligner = LegAligner("a/right", 200.0, max_fill_s=10.0)
    before = HOST0_S + np.arange(200) * 0.005
    after = HOST0_S + 3600.0 + np.arange(200) * 0.005  # an hour later (e.g. a host clock step)
    chunks = []
    for t in (before, after):
        for seg in (Segment.THIGH, Segment.SHANK):
            chunk = aligner.push(seg, _samples(seg.value, t))
            if chunk is not None:
                chunks.append(chunk)
    leg = concat_legs(chunks)["a/right"]
    assert len(leg) < 500 and leg.t_s[-1] >= after[-1] - 0.1
    gap = np.diff(leg.t_s).max()
    assert 3599.0 < gap < 3600.1 and not np.isnan(leg.thigh_acc_m_s2[leg.t_s > after[0]]).any()


def test_aligner_gives_up_a_long_silence_before_any_new_sample() -> None:
    """Both sensors silent and the host clock a minute on (packets dropped by a full queue): the grid
    moves past the silence without NaN rows, and the samples that come later are aligned. (With no
    sample past the grid yet, the jump target was infinite: OverflowError, and the leg failed for good.)"""
    aligner = LegAligner("a/right", 200.0, max_fill_s=10.0)
    before = HOST0_S + np.arange(200) * 0.005
    chunks = []
    for seg in (Segment.THIGH, Segment.SHANK):
        chunks.append(aligner.push(seg, _samples(seg.value, before)))
    chunks.append(aligner.advance(HOST0_S + 60.0))  # a minute later, nothing new
    after = HOST0_S + 61.0 + np.arange(200) * 0.005
    for seg in (Segment.THIGH, Segment.SHANK):
        chunks.append(aligner.push(seg, _samples(seg.value, after)))
    leg = concat_legs([c for c in chunks if c is not None])["a/right"]
    assert leg.t_s[-1] >= after[-1] - 0.1 and np.all(np.diff(leg.t_s) > 0.0)
    skipped = (leg.t_s > before[-1] + 1.0) & (leg.t_s < HOST0_S + 59.0)
    assert not skipped.any()  # no NaN rows for the minute of silence (at most the last second's)
    assert not np.isnan(leg.thigh_acc_m_s2[leg.t_s >= after[0]]).any()


_BASE_PACKETS = two_sensor_packets(2.0)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["thigh-r", "shank-r", "stranger"]),
            st.floats(-0.2, 0.2),
            st.binary(max_size=40),
            st.integers(0, 250),
            st.sampled_from(["valid", "mutated", "garbage"]),
        ),
        max_size=80,
    )
)
def test_front_never_raises_and_keeps_the_grid_ordered(ops: list[tuple[str, float, bytes, int, str]]) -> None:
    base = _BASE_PACKETS
    front = Front(SENSORS)
    host_s = HOST0_S
    chunks: list[LegSamples] = []
    for i, (sensor_id, dt_s, junk, pos, kind) in enumerate(ops):
        valid = base[(i * 7) % len(base)].payload
        if kind == "valid":
            payload = valid
        elif kind == "mutated":
            payload = valid[: pos % len(valid)] + junk + valid[pos % len(valid) + len(junk) :]
        else:
            payload = junk
        host_s += dt_s
        chunks.extend(front.ingest(RawPacket(sensor_id, host_s, payload)))
    chunks.extend(front.flush())
    for chunk in chunks:
        n = len(chunk)
        assert chunk.thigh_acc_m_s2.shape == (n, 3) and chunk.shank_gyr_rad_s.shape == (n, 3)
    if chunks:
        t_s = np.concatenate([c.t_s for c in chunks])
        assert np.all(np.diff(t_s) > 0.0)
    stats = front.stats()
    assert all(s.packets + s.malformed + s.duplicates + s.late >= 0 for s in stats.values())
