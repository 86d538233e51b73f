"""The live loop: a packet source feeds a bounded queue; one task drains it through the pipeline and
publishes the results on the bus. Every task has an owner (one TaskGroup); shutdown is ordered.

Latency reported here (``packet_to_angle``) runs from a packet's host receive timestamp to the moment
the knee angles it completed are published, so it includes queueing, decoding, alignment and the
filter. Grid points wait for both sensors of a leg: the latency is charged to the packet that completed
them (see the README, "Timing"). It is the tracking legs' latency: a calibrating leg is stepped in a
worker thread (``sensorhub.runtime.offload``) and what it hands back, published later, is measured apart
(``calibrating_to_angle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from sensorhub.bus import Bus
from sensorhub.model import RawPacket
from sensorhub.runtime.cueing import CueStage
from sensorhub.runtime.offload import CalibrationOffload, Deferred
from sensorhub.runtime.pipeline import LatencyRecorder, LegOutput, Pipeline
from sensorhub.sources import PacketQueue, PacketSource

log = logging.getLogger(__name__)

# Drain at most this many packets before yielding to the loop, so sinks and websockets stay served.
MAX_PACKETS_PER_TURN = 2000


class PacketWriter(Protocol):
    """Where received packets are recorded (``RecordingWriter``, or ``BackgroundRecorder`` off the loop)."""

    def write(self, packet: RawPacket) -> None: ...

    def flush(self) -> None: ...


@dataclass(slots=True)
class LiveStats:
    packets: int = 0
    angle_samples: int = 0
    started_s: float = field(default_factory=time.time)
    first_angle_s: float | None = None
    packet_to_angle: LatencyRecorder = field(default_factory=LatencyRecorder)
    # Packets whose processing raised, by exception type (dropped; the service goes on).
    ingest_errors: dict[str, int] = field(default_factory=dict)
    # Wall and CPU time of each turn of the processing task: what every other task on the loop waits
    # for at most (the CPU time tells a slow turn from one the OS preempted on a busy machine).
    turn: LatencyRecorder = field(default_factory=LatencyRecorder)
    turn_cpu: LatencyRecorder = field(default_factory=LatencyRecorder)
    # packet -> angle of the legs still calibrating (their buffered seconds, and the packets that came
    # while the worker stepped them): not in ``packet_to_angle``, which is the tracking legs' latency
    calibrating_to_angle: LatencyRecorder = field(default_factory=LatencyRecorder)
    # Turns the loop waited for the calibration workers (their pending rows over MAX_PENDING_ROWS):
    # the machine cannot keep up; the source queue drops meanwhile (``dropped``)
    offload_waits: int = 0


def publish_outputs(bus: Bus, outputs: list[LegOutput]) -> int:
    n = 0
    for out in outputs:
        bus.publish("angles", out.leg_id, out.angles)
        n += int(out.angles.t_s.shape[0])
        for event in out.events:
            bus.publish("events", out.leg_id, event)
        if out.calibration is not None:
            bus.publish("calibration", out.leg_id, out.calibration)
    return n


class LiveRunner:
    """Owns the queue, the processing task and the source task for one pipeline."""

    def __init__(
        self,
        source: PacketSource,
        pipeline: Pipeline,
        bus: Bus,
        recorder: PacketWriter | None = None,
        clock: Callable[[], float] = time.time,
        cues: CueStage | None = None,
        offload: bool = True,
    ) -> None:
        """``offload``: step calibrating legs in a worker thread (``sensorhub.runtime.offload``); False
        steps every chunk on the loop (the same outputs, but each calibration stalls the loop)."""
        self.source = source
        self.pipeline = pipeline
        self.bus = bus
        self.recorder = recorder
        self.cues = cues
        self.queue = PacketQueue()
        self.stats = LiveStats()
        self._clock = clock
        self.source_done = asyncio.Event()
        self.offload = CalibrationOffload(pipeline) if offload else None

    def idle(self) -> bool:
        """Everything received so far is processed and published (the queue is empty and no calibration
        work is in flight)."""
        return not len(self.queue) and (self.offload is None or self.offload.idle())

    def process_batch(self, packets: list[RawPacket]) -> None:
        """One loop turn's packets: recorded, through the pipeline (checked and decoded together, then
        packet by packet) and the cue stage, results on the bus as each packet's are ready."""
        if self.recorder is not None:
            for packet in packets:
                self.recorder.write(packet)
        results = self.pipeline.ingest_many(packets)
        for k, packet in enumerate(packets):
            if self.offload is not None:  # what a diverted chunk's outputs are timed against
                self.offload.packet_host_s = packet.t_host_s
            try:
                outputs = next(results)
            except StopIteration:
                break
            except Exception as exc:  # the pipeline itself broke: this turn's other packets are lost
                self._count_error(packet.sensor_id, exc, len(packets) - k)
                break
            try:
                self._deliver(packet, outputs)
            except Exception as exc:
                self._count_error(packet.sensor_id, exc)
        if self.offload is not None:
            self._publish_deferred(self.offload.emit())

    def _count_error(self, source: str, exc: Exception, n: int = 1) -> None:
        """The pipeline guards its stages; this is the last line: a packet must never stop the service.
        Counted by type (/health ``ingest_errors``), logged once per type."""
        kind = type(exc).__name__
        errors = self.stats.ingest_errors
        errors[kind] = errors.get(kind, 0) + n
        if errors[kind] == n:
            log.error("output of %s dropped: its processing raised (counted from now on)", source,
                      exc_info=exc)

    def _deliver(self, packet: RawPacket, outputs: list[LegOutput]) -> None:
        self.stats.packets += 1
        if outputs:
            if self.cues is not None:
                self.cues.process(outputs, packet.t_host_s)
            n = publish_outputs(self.bus, outputs)
            self.stats.angle_samples += n
            now_s = self._clock()
            if self.stats.first_angle_s is None:
                self.stats.first_angle_s = now_s
            self.stats.packet_to_angle.add(now_s - packet.t_host_s)

    def _publish_deferred(self, items: list[Deferred]) -> None:
        for item in items:
            try:
                self._deliver_deferred(item)
            except Exception as exc:
                self._count_error(item.output.leg_id, exc)

    def _deliver_deferred(self, item: Deferred) -> None:
        if self.cues is not None:
            self.cues.process([item.output], item.packet_host_s)
        n = publish_outputs(self.bus, [item.output])
        self.stats.angle_samples += n
        if n:
            now_s = self._clock()
            if self.stats.first_angle_s is None:
                self.stats.first_angle_s = now_s
            self.stats.calibrating_to_angle.add(now_s - item.packet_host_s)

    async def _consume(self) -> None:
        offload = self.offload
        while True:
            if not len(self.queue) and (offload is None or not offload.ready.is_set()):
                if self.source_done.is_set() and (offload is None or offload.idle()):
                    return
                waits: list[Coroutine[Any, Any, Any]] = [self.queue.wait()]
                if not self.source_done.is_set():
                    waits.append(self.source_done.wait())
                if offload is not None:  # the source ended: wait for the workers on the loop
                    waits.append(offload.ready.wait())
                waiters = {asyncio.ensure_future(w) for w in waits}
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
                continue
            if offload is not None and offload.full():  # overloaded: the workers first, the queue drops
                self.stats.offload_waits += 1
                self._publish_deferred(offload.emit())
                await (asyncio.sleep(0) if offload.ready.is_set() else offload.ready.wait())
                continue
            t0, c0 = time.perf_counter(), time.thread_time()
            self.process_batch(self.queue.drain(MAX_PACKETS_PER_TURN))
            self.stats.turn.add(time.perf_counter() - t0)
            self.stats.turn_cpu.add(time.thread_time() - c0)
            await asyncio.sleep(0)

    async def _produce(self) -> None:
        try:
            await self.source.run(self.queue)
        finally:
            self.source_done.set()

    async def run(self) -> None:
        """Until the source ends (replay) or the task is cancelled (live); then flush in order."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._produce(), name="source")
                tg.create_task(self._consume(), name="pipeline")
        finally:
            # Ordered shutdown: whatever was received is processed and recorded, then the tail flushed.
            with contextlib.suppress(Exception):
                self.process_batch(self.queue.drain())
            if self.offload is not None:
                self._publish_deferred(self.offload.finish())
            self.stats.angle_samples += publish_outputs(self.bus, self.pipeline.finish())
            if self.recorder is not None:
                self.recorder.flush()
