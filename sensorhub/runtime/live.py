"""The live loop: a packet source feeds a bounded queue; one task drains it through the pipeline and
publishes the results on the bus. Every task has an owner (one TaskGroup); shutdown is ordered. In the
service, ``IngestThread`` runs all of it on its own loop and thread, apart from dashboards and sinks.

Latency reported here (``packet_to_angle``) runs from a packet's host receive timestamp to the moment
the knee angles it completed are published (handed to the bus at the end of the batch the packet was
processed in), so it includes queueing, decoding, alignment and the filter. Grid points wait for both
sensors of a leg: the latency is charged to the packet that completed them (see the README, "Timing").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sensorhub.model import RawPacket
from sensorhub.runtime.bus import Publisher
from sensorhub.runtime.cueing import CueStage
from sensorhub.runtime.pipeline import LatencyRecorder, LegOutput, Pipeline
from sensorhub.sources.base import PacketQueue, PacketSource

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


def publish_outputs(bus: Publisher, outputs: list[LegOutput]) -> int:
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
        bus: Publisher,
        recorder: PacketWriter | None = None,
        clock: Callable[[], float] = time.time,
        cues: CueStage | None = None,
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.bus = bus
        self.recorder = recorder
        self.cues = cues
        self.queue = PacketQueue()
        self.stats = LiveStats()
        self._clock = clock
        self.source_done = asyncio.Event()

    def _process_batch(self, packets: list[RawPacket]) -> None:
        completed_host_s: list[float] = []  # receive times of the packets that completed angles
        for packet in packets:
            if self.recorder is not None:
                self.recorder.write(packet)
            outputs = self.pipeline.ingest(packet)
            self.stats.packets += 1
            if outputs:
                if self.cues is not None:
                    self.cues.process(outputs, packet.t_host_s)
                self.stats.angle_samples += publish_outputs(self.bus, outputs)
                completed_host_s.append(packet.t_host_s)
        self.bus.flush()  # published: handed to the bus's consumers (one hand-over per batch)
        if completed_host_s:
            now_s = self._clock()
            if self.stats.first_angle_s is None:
                self.stats.first_angle_s = now_s
            for t_host_s in completed_host_s:
                self.stats.packet_to_angle.add(now_s - t_host_s)

    async def _consume(self) -> None:
        while True:
            if not len(self.queue):
                if self.source_done.is_set():
                    return
                waiter = asyncio.ensure_future(self.queue.wait())
                done_waiter = asyncio.ensure_future(self.source_done.wait())
                try:
                    await asyncio.wait({waiter, done_waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    done_waiter.cancel()
                continue
            self._process_batch(self.queue.drain(MAX_PACKETS_PER_TURN))
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
                self._process_batch(self.queue.drain())
            self.stats.angle_samples += publish_outputs(self.bus, self.pipeline.finish())
            self.bus.flush()
            if self.recorder is not None:
                self.recorder.flush()


class IngestThread:
    """Runs a ``LiveRunner`` (source, pipeline, cue stage) on its own event loop in a dedicated thread.

    The service loop serves dashboards, sinks and the web server; a frame fanned out to 50 clients there
    holds that loop for milliseconds, which must not delay the packets behind it. Results reach the
    service loop's bus through a ``BusBridge``; control calls (cue settings) go the other way through
    ``call``. ``wait`` (on the service loop) ends when the runner ends and raises what it raised."""

    def __init__(self, runner: LiveRunner) -> None:
        self.runner = runner
        self.loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._stop_requested = False
        self._done: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._main, name="sensorhub-ingest", daemon=True)

    async def start(self) -> None:
        service_loop = asyncio.get_running_loop()
        self._done = service_loop.create_future()
        self._thread.start()
        await asyncio.to_thread(self._started.wait)

    def _main(self) -> None:
        assert self._done is not None
        done = self._done
        error: BaseException | None = None
        try:
            asyncio.run(self._run())
        except asyncio.CancelledError:
            pass  # stopped by ``stop``: the runner has processed and flushed what it received
        except BaseException as exc:  # handed to ``wait`` on the service loop
            error = exc
        finally:
            self._started.set()

            def finish() -> None:
                if done.done():
                    return
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

            with contextlib.suppress(RuntimeError):  # the service loop has already closed
                done.get_loop().call_soon_threadsafe(finish)

    async def _run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self.runner.run(), name="live")
        self._started.set()
        if self._stop_requested:
            self._task.cancel()
        await self._task

    def call(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the ingestion loop (thread-safe; e.g. a cue setting from the dashboard)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        """Cancel the runner: it processes what was received, flushes its tail, then ``wait`` returns."""
        self._stop_requested = True
        if self._task is not None and self.loop is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._task.cancel)

    async def wait(self) -> None:
        assert self._done is not None, "start() first"
        await asyncio.shield(self._done)

    def join(self, timeout_s: float) -> bool:
        """Blocking: True when the thread has ended (call through asyncio.to_thread)."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
