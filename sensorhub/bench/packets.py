"""Simulator packets generated before a bench times anything, and sources that replay them.

The simulation (body model, IMU errors, devices, BLE links) costs more than the service itself; a bench
that simulated while it measured would time the simulator. ``generate`` runs it once, up front; the
sources below only hand the stored packets to the service's queue.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sensorhub.model import FloatArray, RawPacket, SensorRef
from sensorhub.sources import IteratorSource, PacketQueue, SensorLink

DRILL_CYCLE = ("squat", "cmj", "lunge", "step_down", "drop_jump")
PACKET_SPAN_S = 0.04  # one packet of the default stream: 8 samples at 200 Hz
PACKETS_PER_YIELD = 64  # as-fast-as-possible replay still lets the loop's other tasks run


@dataclass(frozen=True, slots=True)
class PacketSet:
    """Packets in host arrival order; ``t_host_s`` on a virtual host clock (0 = session start)."""

    sensors: tuple[dict[str, str], ...]  # sensor_refs metadata (SensorRef.from_meta)
    drills: dict[str, str]  # athlete -> drill
    sensor_index: np.ndarray  # (n,) index into ``sensors``
    t_host_s: FloatArray  # (n,)
    payloads: tuple[bytes, ...]

    def __len__(self) -> int:
        return len(self.payloads)

    @property
    def duration_s(self) -> float:
        return float(self.t_host_s[-1]) if len(self) else 0.0

    def refs(self) -> list[SensorRef]:
        return [SensorRef.from_meta(s) for s in self.sensors]

    def packets(self, epoch_s: float) -> list[RawPacket]:
        """Every packet stamped on a host clock whose session started at ``epoch_s``."""
        ids = [s["sensor_id"] for s in self.sensors]
        return [
            RawPacket(ids[int(i)], epoch_s + float(t), p)
            for i, t, p in zip(self.sensor_index, self.t_host_s, self.payloads, strict=True)
        ]

    def replicate(self, copies: int) -> PacketSet:
        """``copies`` teams streaming the same motion under other athlete and sensor names, each shifted
        by a fraction of a packet so their packets interleave as independent sensors would."""
        if copies == 1:
            return self
        n_sensors = len(self.sensors)
        sensors: list[dict[str, str]] = []
        drills: dict[str, str] = {}
        for c in range(copies):
            for s in self.sensors:
                sensors.append({**s, "sensor_id": f"{s['sensor_id']}-c{c}",
                                "athlete": f"{s['athlete']}-c{c}"})
            drills.update({f"{a}-c{c}": d for a, d in self.drills.items()})
        t = np.concatenate([self.t_host_s + PACKET_SPAN_S * c / copies for c in range(copies)])
        index = np.concatenate([self.sensor_index + n_sensors * c for c in range(copies)])
        order = np.argsort(t, kind="stable")
        payloads = self.payloads * copies
        return PacketSet(
            tuple(sensors), drills, index[order], t[order], tuple(payloads[int(k)] for k in order)
        )


def generate(n_athletes: int, reps: int, seed: int, *, fault_rate: float = 0.4) -> PacketSet:
    """``n_athletes`` simulated athletes (2 legs, 4 sensors each; drills cycling through
    ``DRILL_CYCLE``, calibration bends first), default stream settings and a typical BLE link."""
    from firmware_sim.athletes import SimulatedAthlete
    from firmware_sim.body import simulate
    from firmware_sim.transports.inprocess import SimSession
    from sensorhub.demo import fault_rates

    faults = fault_rates(fault_rate)
    athletes = []
    drills: dict[str, str] = {}
    for k in range(n_athletes):
        drill = DRILL_CYCLE[k % len(DRILL_CYCLE)]
        motion = simulate(
            drill=drill, reps=reps, sides=("right", "left"), seed=seed + k, faults=faults,
            calibration_bends=True,
        )
        name = f"a{k:03d}"
        athletes.append(SimulatedAthlete(name, motion, errors="realistic", seed=seed + k))
        drills[name] = drill
    session = SimSession(athletes, seed=seed, host_epoch_s=0.0)
    metas = session.sensor_refs()
    index_of = {m["sensor_id"]: i for i, m in enumerate(metas)}
    deliveries = list(session.deliveries())
    return PacketSet(
        tuple(metas),
        drills,
        np.array([index_of[d.packet.sensor_id] for d in deliveries], dtype=np.int64),
        np.array([d.t_host_s for d in deliveries]),
        tuple(d.packet.payload for d in deliveries),
    )


def fast_source(packets: Sequence[RawPacket], sensor_ids: list[str]) -> IteratorSource:
    """Every packet as fast as possible (yielding to the loop every ``PACKETS_PER_YIELD``)."""

    async def iterate() -> AsyncIterator[RawPacket]:
        for count, packet in enumerate(packets):
            if count % PACKETS_PER_YIELD == PACKETS_PER_YIELD - 1:
                await asyncio.sleep(0)
            yield packet

    return IteratorSource(iterate(), sensor_ids)


class PacedSource:
    """Replays a ``PacketSet`` in real time, after a calibration phase that is not measured.

    Packets before ``measure_from_s`` (virtual) go to the queue at once: every leg calibrates. The rest
    are released when the wall clock reaches their due time, ``delay_s`` after their host stamp: the
    stamps keep one host timeline for the pipeline (no clock step after the warm phase), and
    ``delay_s`` (how long the warm phase took) is subtracted from every latency measured against them.
    A release is stamped with its due time, not the time it happened, so a busy loop counts as latency.
    The window starts once the queue is empty and ``settled()`` (the service's calibration workers idle:
    every leg tracking, the buffered seconds published), so it measures the steady state, not the
    catch-up. ``on_measure`` runs (on the loop) when the paced window starts; ``done`` is set when it
    ends and the queue is empty.
    """

    def __init__(
        self,
        packet_set: PacketSet,
        *,
        measure_from_s: float,
        window_s: float,
        on_measure: Callable[[], None],
        settled: Callable[[], bool] = lambda: True,
        tick_s: float = 0.001,
    ) -> None:
        self._settled = settled
        self._set = packet_set
        self._measure_from_s = measure_from_s
        self._window_s = window_s
        self._on_measure = on_measure
        self._tick_s = tick_s
        self._ids = [s["sensor_id"] for s in packet_set.sensors]
        self._links = {sid: SensorLink(sid) for sid in self._ids}
        self.delay_s = 0.0
        self.measured_packets = 0
        self.window_wall_s = 0.0
        self.window_cpu_s = 0.0  # CPU time of the loop's thread over the window
        self.done = threading.Event()

    def links(self) -> dict[str, SensorLink]:
        return self._links

    async def run(self, out: PacketQueue) -> None:
        t_v, index, payloads, ids = self._set.t_host_s, self._set.sensor_index, self._set.payloads, self._ids
        start = int(np.searchsorted(t_v, self._measure_from_s))
        end = int(np.searchsorted(t_v, self._measure_from_s + self._window_s))
        epoch_s = time.time() - self._measure_from_s
        for k in range(start):
            out.put_nowait(RawPacket(ids[int(index[k])], epoch_s + float(t_v[k]), payloads[k]))
            if k % PACKETS_PER_YIELD == PACKETS_PER_YIELD - 1:
                await asyncio.sleep(0)
        while len(out) or not self._settled():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # the warm phase's outputs reach the hub and the sinks
        self.delay_s = time.time() - (epoch_s + self._measure_from_s)
        self._on_measure()
        due0 = epoch_s + self.delay_s
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        k = start
        while k < end:
            now = time.time()
            while k < end and due0 + t_v[k] <= now:
                out.put_nowait(RawPacket(ids[int(index[k])], epoch_s + float(t_v[k]), payloads[k]))
                k += 1
            await asyncio.sleep(self._tick_s)
        while len(out):
            await asyncio.sleep(0.001)
        self.window_wall_s = time.perf_counter() - wall0
        self.window_cpu_s = time.thread_time() - cpu0
        self.measured_packets = end - start
        self.done.set()
