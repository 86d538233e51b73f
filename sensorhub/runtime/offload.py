"""Calibrating legs are stepped off the event loop.

Until a leg is calibrated its knee estimator buffers the leg's samples, tries to calibrate on the buffer
every second (3-4 ms each time here) and, once it succeeds, runs the buffered seconds through the filters
and the event detector at once (15-20 ms per leg). On the loop, every other athlete's packets would wait
for that, and all legs calibrate at the start of a session. ``CalibrationOffload`` takes the chunks of
every leg that is not tracking yet (``Pipeline.divert``) and steps them in order in a worker thread (a
second one steps the chunks of the legs that calibrated and still catch up); the loop then publishes
what came back a few rows per turn, the buffered seconds cut into slices.

Thread, not process: the leg's whole state (filters, detector) stays where it is. The numba kernels of
the orientation, kinematics and analysis stages release the GIL (``nogil``), so their loops run beside
the event loop on the second core; the rest of the step (numpy, Python) holds it. A thread waiting for
the GIL gets it after the switch interval (5 ms by default): the event loop, woken by a packet, would
wait that long each time, so while the worker runs the interval is ``GIL_SWITCH_S`` (measured: the
latency bench's loop lag and the legs' calibration time both fall, see the README).

A leg goes back to the loop once it is tracking and everything it handed over has been published, so a
leg's outputs (rows, events, calibration, their order) are those of the synchronous pipeline: live,
replay and offline stay bit-identical. Only the buffered seconds are cut, into slices with the burst's
events, live phase and calibration on the last one (where the burst had them), all marked ``backlog``
(the cue stage says nothing about the past).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from sensorhub.model import KneeAngles, LegSamples
from sensorhub.runtime.pipeline import LegOutput, Pipeline

log = logging.getLogger(__name__)

# At most this many rows of handed-back outputs are published per loop turn (plus one output if a
# single one is larger): subscribers then see at most about a second of one 200 Hz leg per turn...
ROWS_PER_TURN = 200
# ...and the buffered seconds arrive in slices of this many rows (each a bus message).
SLICE_ROWS = 50
# Rows handed to the workers and not yet stepped (waiting or in a running job), at most: past it the
# loop takes no more packets until a job comes back, so that under sustained overload the bounded source
# queue drops (counted) instead of this growing without bound. Normal operation stays far below (the
# workers keep up: a turn's chunks).
MAX_PENDING_ROWS = 100_000
# The GIL switch interval while the worker runs (the loop waits at most about this long for the GIL).
GIL_SWITCH_S = 0.0005


@dataclass(frozen=True, slots=True)
class Deferred:
    """An output stepped in the worker, with the receive time of the packet that delivered its chunk."""

    output: LegOutput
    packet_host_s: float


def backlog_slices(out: LegOutput, rows: int) -> Iterator[LegOutput]:
    """The buffered seconds of a leg's calibration step in slices of ``rows`` rows (views, no copy)."""
    a = out.angles
    n = int(a.t_s.shape[0])
    for start in range(0, n, rows):
        end = min(n, start + rows)
        part = KneeAngles(a.leg_id, a.t_s[start:end], a.flexion_rad[start:end], a.valgus_rad[start:end],
                          a.rotation_rad[start:end], a.quality[start:end])
        last = end == n
        yield LegOutput(out.leg_id, part, out.events if last else [], out.phase if last else None,
                        out.calibration if last else None, backlog=True)


class CalibrationOffload:
    """Owns the worker threads and the legs handed to them; the loop calls ``take`` (through the pipeline's
    ``divert``) and ``emit``; ``finish`` at the end of the stream."""

    def __init__(self, pipeline: Pipeline, rows_per_turn: int = ROWS_PER_TURN,
                 slice_rows: int = SLICE_ROWS, max_pending_rows: int = MAX_PENDING_ROWS) -> None:
        self.pipeline = pipeline
        self.max_pending_rows = max_pending_rows
        self.pending_rows = 0  # rows of the chunks taken and not stepped yet (waiting or in a job)
        self.rows_per_turn = rows_per_turn
        self.slice_rows = slice_rows
        self.packet_host_s = float("nan")  # receive time of the packet being ingested (set by the runner)
        self.ready = asyncio.Event()  # a job came back: outputs may wait to be published
        # One thread for the calibrating legs (their attempts and buffered seconds: 3-20 ms a job), one
        # for the legs that calibrated and still catch up (their chunks of a few rows): those must not
        # wait behind the other legs' calibrations. A leg has one job at a time, so its order holds.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="calibration")
        self._catch_up = ThreadPoolExecutor(1, thread_name_prefix="catch-up")
        self._pending: dict[str, list[tuple[LegSamples, float]]] = {}
        self._running: dict[str, tuple[Future[list[Deferred]], int]] = {}  # per leg: its job, and rows
        self._out: deque[Deferred] = deque()
        self._held: Counter[str] = Counter()  # per leg: outputs handed back, not yet published
        self._switch_s = sys.getswitchinterval()  # restored whenever the worker is idle
        pipeline.divert = self.take

    def busy(self, leg_id: str) -> bool:
        return leg_id in self._pending or leg_id in self._running or self._held[leg_id] > 0

    def idle(self) -> bool:
        return not (self._pending or self._running or self._out)

    def take(self, chunk: LegSamples) -> bool:
        """Whether the worker steps this chunk: yes while its leg calibrates or has outputs in flight."""
        leg = chunk.leg_id
        if not self.busy(leg) and self.pipeline.tracking(leg):
            return False
        self._pending.setdefault(leg, []).append((chunk, self.packet_host_s))
        self.pending_rows += len(chunk)
        self._submit(leg)
        return True

    def full(self) -> bool:
        """Whether the loop should wait for the workers before it takes more packets."""
        return self.pending_rows > self.max_pending_rows

    def _submit(self, leg: str) -> None:
        if leg in self._running or leg not in self._pending:
            return
        if not self._running:
            self._switch_s = sys.getswitchinterval()
            sys.setswitchinterval(GIL_SWITCH_S)
        executor = self._catch_up if self.pipeline.tracking(leg) else self._executor
        chunks = self._pending.pop(leg)
        job = executor.submit(self._step, chunks)
        self._running[leg] = job, sum(len(chunk) for chunk, _ in chunks)
        asyncio.wrap_future(job).add_done_callback(partial(self._done, leg, job))

    def _step(self, chunks: list[tuple[LegSamples, float]]) -> list[Deferred]:
        """In the worker thread: the chunks of one leg, in order."""
        out: list[Deferred] = []
        for chunk, packet_host_s in chunks:
            result = self.pipeline.step_chunk(chunk)
            if result is None:
                continue
            parts = [result] if result.calibration is None else backlog_slices(result, self.slice_rows)
            out.extend(Deferred(part, packet_host_s) for part in parts)
        return out

    def _done(self, leg: str, job: Future[list[Deferred]], wrapped: asyncio.Future[list[Deferred]]) -> None:
        if not wrapped.cancelled():
            wrapped.exception()  # retrieved here (from ``job``): else asyncio logs it when collected
        running = self._running.get(leg)
        if running is None or running[0] is not job:
            return  # collected by ``finish``
        del self._running[leg]
        self.pending_rows -= running[1]
        self._hand_back(leg, self._results(leg, job))
        self._submit(leg)  # the chunks that arrived meanwhile
        if not self._running:
            sys.setswitchinterval(self._switch_s)

    @staticmethod
    def _results(leg: str, job: Future[list[Deferred]]) -> list[Deferred]:
        """A job's outputs; a job that raised (the pipeline guards each leg's step, so only a defect here)
        loses its chunks' outputs, logged, rather than wedging the loop that waits for the workers."""
        try:
            return job.result()
        except Exception:
            log.exception("calibration worker: the job of leg %s raised; its outputs are lost", leg)
            return []

    def _hand_back(self, leg: str, results: list[Deferred]) -> None:
        self._out.extend(results)
        self._held[leg] += len(results)
        self.ready.set()

    def depth(self) -> int:
        """Chunks waiting for a worker plus outputs waiting to be published (a queue /health watches)."""
        return sum(len(chunks) for chunks in self._pending.values()) + len(self._out)

    def emit(self) -> list[Deferred]:
        """The outputs to publish in this turn, oldest first (each leg's in its own order). Only the
        buffered seconds (``backlog``) are paced, ``rows_per_turn`` a turn: a catching-up leg's outputs
        come at the live rate, and a per-turn budget on them would fall behind whenever the loop turns
        fewer than rate / budget times a second (many legs, a busy loop), the legs never leaving the
        worker and the outputs piling up here without bound."""
        taken: list[Deferred] = []
        rows = 0
        while self._out:
            head = self._out[0].output
            n = int(head.angles.t_s.shape[0]) if head.backlog else 0
            if n and rows and rows + n > self.rows_per_turn:
                break
            item = self._out.popleft()
            self._held[item.output.leg_id] -= 1
            taken.append(item)
            rows += n
        if not self._out:
            self.ready.clear()
        return taken

    def finish(self) -> list[Deferred]:
        """At shutdown: waits for the workers, steps what is still pending here and returns everything not
        yet published; from now on the pipeline steps every chunk itself. (A source that ends is waited
        for on the loop until ``idle``; only a cancelled runner has work left here.)"""
        self.pipeline.divert = None
        running, self._running = self._running, {}
        for leg, (job, _) in running.items():
            self._hand_back(leg, self._results(leg, job))
        pending, self._pending = self._pending, {}
        self.pending_rows = 0
        for leg, chunks in pending.items():
            self._hand_back(leg, self._step(chunks))
        self._executor.shutdown(wait=False)
        self._catch_up.shutdown(wait=False)
        if running:
            sys.setswitchinterval(self._switch_s)
        out = list(self._out)
        self._out.clear()
        self._held.clear()
        self.ready.clear()
        return out
