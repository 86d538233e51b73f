"""The processing core shared by live, replay and offline runs: raw packets in, knee angles and events out.

``Pipeline`` is synchronous and deterministic: the same packet sequence (bytes and host receive times)
gives bit-identical outputs, which is what makes a replayed session equal to the live one. Async
plumbing (sources, queues, sinks) lives in ``sensorhub.runtime.live``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sensorhub.analysis import EventDetector, LivePhase
from sensorhub.errors import CalibrationError
from sensorhub.kinematics import KneeEstimator, OneSidedWatch
from sensorhub.model import Event, KneeAngles, LegCalibration, LegMotion, LegSamples, RawPacket, SensorRef
from sensorhub.timing import Front, SensorStats

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LegOutput:
    """What one ingest step produced for one leg."""

    leg_id: str
    angles: KneeAngles
    events: list[Event] = field(default_factory=list)
    phase: LivePhase | None = None  # a rep descent in progress (for live cues)
    calibration: LegCalibration | None = None  # set by the step in which the leg calibrated
    backlog: bool = False  # rows of a calibration backlog (the past): not cued


class LatencyRecorder:
    """Keeps the last ``capacity`` latencies (seconds) for percentile reporting."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._values = np.zeros(capacity)
        self._n = 0
        self.count = 0

    def add(self, latency_s: float) -> None:
        self._values[self._n % self._values.shape[0]] = latency_s
        self._n += 1
        self.count += 1

    def percentiles_ms(self, qs: Sequence[float] = (50.0, 99.0)) -> dict[str, float]:
        n = min(self._n, self._values.shape[0])
        if n == 0:
            return {f"p{q:g}_ms": float("nan") for q in qs}
        vals = np.percentile(self._values[:n], qs) * 1e3
        return {f"p{q:g}_ms": float(v) for q, v in zip(qs, vals, strict=True)}


@dataclass(frozen=True, slots=True)
class LegFailure:
    """A leg whose processing raised: its samples are no longer processed (its raw packets still are
    recorded), every other leg goes on."""

    leg_id: str
    t_s: float  # time of the last sample handed to the leg when it failed
    error: str  # ``ExceptionType: message``


class Pipeline:
    """decode -> timing -> orientation + kinematics (per leg) -> analysis, for a fixed set of sensors."""

    def __init__(self, sensors: Sequence[SensorRef], rate_hz: float | None = None,
                 protocols: Mapping[str, str] | None = None) -> None:
        self.sensors = tuple(sensors)
        self.front = Front(self.sensors, rate_hz=rate_hz, protocols=protocols)  # sensor id -> its decoder
        self._sides = {s.leg_id: str(s.side) for s in self.sensors}
        self._knees: dict[str, KneeEstimator] = {}
        self._watches: dict[str, OneSidedWatch] = {}  # a calibrated leg's flexion must bend one way
        self._detectors: dict[str, EventDetector] = {}
        self._rate_hz = rate_hz
        # Processing time of one ingest call (decode .. angles), excluding queueing.
        self.processing = LatencyRecorder()
        self.calibration_errors: dict[str, str] = {}
        self.failed_legs: dict[str, LegFailure] = {}
        # The live runner's hook (``sensorhub.runtime.offload``): takes the chunks of the legs it steps
        # off the event loop (while they calibrate); None processes every chunk here, in order.
        self.divert: Callable[[LegSamples], bool] | None = None

    def _knee(self, chunk: LegSamples) -> KneeEstimator:
        knee = self._knees.get(chunk.leg_id)
        if knee is None:
            # The grid rate is fixed by the first chunk (the Front derives it from the sensor period).
            rate_hz = self._rate_hz or self.front.grid_rate_hz(chunk.leg_id)
            knee = KneeEstimator(self._sides[chunk.leg_id], rate_hz, leg_id=chunk.leg_id)
            self._knees[chunk.leg_id] = knee
        return knee

    def _analyse(
        self, leg_id: str, angles: KneeAngles, motion: LegMotion, rate_hz: float
    ) -> LegOutput | None:
        """Events and the live phase from the rows the knee estimator produced in this step."""
        det = self._detectors.get(leg_id)
        if det is None:
            det = EventDetector(self._sides[leg_id], rate_hz, leg_id)
            self._detectors[leg_id] = det
        step = det.step(angles, motion)
        if angles.t_s.shape[0] or step.events or step.phase is not None:
            return LegOutput(leg_id, angles, list(step.events), step.phase)
        return None

    def _fail(self, leg_id: str, t_s: float, exc: Exception) -> None:
        """A bug or a broken install in one leg's processing must not stop the other athletes: the leg is
        marked failed (``leg_states``, /health, the coach page) with one log record carrying the traceback."""
        if leg_id in self.failed_legs:
            return  # already stopped and reported once
        failure = LegFailure(leg_id, t_s, f"{type(exc).__name__}: {exc}")
        self.failed_legs[leg_id] = failure
        self._knees.pop(leg_id, None)
        self._watches.pop(leg_id, None)
        self._detectors.pop(leg_id, None)
        log.error("leg %s failed at t=%.3f s, its processing stopped (other legs go on): %s", leg_id, t_s,
                  failure.error, exc_info=exc)

    def _step_leg(self, chunk: LegSamples) -> LegOutput | None:
        try:
            knee = self._knee(chunk)
            was_calibrated = knee.calibration is not None
            angles, motion = knee.step(chunk)
            if knee.calibration is not None:
                watch = self._watches.get(chunk.leg_id)
                if watch is None:
                    watch = self._watches[chunk.leg_id] = OneSidedWatch(knee.rate_hz)
                watch.push(angles.flexion_rad)
        except CalibrationError as exc:
            # Calibration refused (e.g. no bends within the allowed time), or a calibration whose angles
            # bend both ways: say why and start over from the next samples; the other legs go on.
            self.calibration_errors[chunk.leg_id] = str(exc)
            del self._knees[chunk.leg_id]
            self._watches.pop(chunk.leg_id, None)
            self._detectors.pop(chunk.leg_id, None)
            return None
        result = self._analyse(chunk.leg_id, angles, motion, knee.rate_hz)
        if not was_calibrated and knee.calibration is not None:
            result = result or LegOutput(chunk.leg_id, angles)
            report = knee.calibration.report.as_dict()
            result.calibration = LegCalibration(chunk.leg_id, knee.calibrated_t_s, report)
        return result

    def _finish_leg(self, leg_id: str, knee: KneeEstimator) -> LegOutput | None:
        try:
            angles, motion = knee.finish_step()
        except CalibrationError as exc:
            # The stream ended before this leg could be calibrated: nothing to compute, but
            # the reason is kept for the report and every raw packet stays recorded.
            self.calibration_errors[leg_id] = str(exc)
            return None
        result = self._analyse(leg_id, angles, motion, knee.rate_hz)
        tail = self._detectors[leg_id].finish() if leg_id in self._detectors else []
        if result is None and tail:
            result = LegOutput(leg_id, angles)
        if result is not None:
            result.events.extend(tail)
            result.phase = None
        return result

    def tracking(self, leg_id: str) -> bool:
        """The leg is calibrated: each chunk costs about its own rows, no buffered seconds."""
        knee = self._knees.get(leg_id)
        return knee is not None and knee.calibration is not None

    def step_chunk(self, chunk: LegSamples) -> LegOutput | None:
        """One grid chunk of one leg through kinematics and analysis (a leg that raises is failed). Chunks
        of one leg must come in order, one call at a time; other legs' calls may run in other threads."""
        if chunk.leg_id in self.failed_legs:
            return None
        try:
            return self._step_leg(chunk)
        except Exception as exc:
            self._fail(chunk.leg_id, float(chunk.t_s[-1]), exc)
            return None

    def _process(self, chunks: Iterable[LegSamples], final: bool = False) -> list[LegOutput]:
        out: list[LegOutput] = []
        for chunk in chunks:
            if len(chunk) == 0 or chunk.leg_id in self.failed_legs:
                continue
            if self.divert is not None and self.divert(chunk):
                continue
            result = self.step_chunk(chunk)
            if result is not None:
                out.append(result)
        if final:
            for leg_id, knee in list(self._knees.items()):
                try:
                    result = self._finish_leg(leg_id, knee)
                except Exception as exc:
                    self._fail(leg_id, math.nan, exc)
                    continue
                if result is not None:
                    out.append(result)
        return out

    def leg_states(self) -> dict[str, dict[str, str | float | None]]:
        """Per leg: ``waiting`` (no samples yet), ``calibrating`` (with what is still missing),
        ``tracking``, or ``failed`` (with the error); ``calibration_error`` is the last refusal."""
        out: dict[str, dict[str, str | float | None]] = {}
        for leg_id in dict.fromkeys(s.leg_id for s in self.sensors):
            knee = self._knees.get(leg_id)
            failure = self.failed_legs.get(leg_id)
            doc: dict[str, str | float | None] = {"state": "waiting", "error": None}
            if failure is not None:
                doc = {"state": "failed", "error": failure.error, "failed_at_s": failure.t_s}
            elif knee is not None and knee.calibration is not None:
                doc["state"] = "tracking"
            elif knee is not None:
                doc = {"state": "calibrating", "error": None, "waiting_for": knee.pending_reason}
            if leg_id in self.calibration_errors:
                doc["calibration_error"] = self.calibration_errors[leg_id]
            out[leg_id] = doc
        return out

    def ingest(self, packet: RawPacket) -> list[LegOutput]:
        t0 = time.perf_counter()
        try:
            chunks = self.front.ingest(packet)
        except Exception as exc:
            chunks = self._front_failed(packet, exc)
        out = self._process(chunks)
        self.processing.add(time.perf_counter() - t0)
        return out

    def ingest_many(self, packets: Sequence[RawPacket]) -> Iterator[list[LegOutput]]:
        """:meth:`ingest` of a loop turn's packets: one result per packet, in order. The host-time checks
        and the decoding run for all of them at once (one numba call), and each leg's grid rows of the
        turn go through kinematics and analysis as one chunk, its outputs given with the first of the
        turn's packets that brought rows for it (so a delivery's latency counts from that packet). A
        leg's angles, events and calibration are bit for bit those of :meth:`ingest` (tested); only the
        live phase is reported once per turn instead of once per packet. A busy turn thus costs the
        per-chunk overhead once per leg, not once per packet: a backlog is worked off in larger,
        cheaper steps instead of growing."""
        t0 = time.perf_counter()
        decoded = self.front.decode_many(packets)
        given: list[list[LegOutput]] = [[] for _ in packets]
        for k, chunk in self.front.advance_many(packets, decoded, self._front_failed):
            given[k] += self._process([chunk])
        share_s = (time.perf_counter() - t0) / max(1, len(packets))
        for outputs in given:
            self.processing.add(share_s)
            yield outputs

    def _front_failed(self, packet: RawPacket, exc: Exception) -> list[LegSamples]:
        # The leg's timing state may be half-updated: stop that leg, never the service.
        leg_id = self.front.leg_of(packet.sensor_id)
        if leg_id is None:
            raise exc
        self._fail(leg_id, packet.t_host_s, exc)
        return []

    def finish(self) -> list[LegOutput]:
        """End of stream: flush the aligners and the calibration buffers."""
        return self._process(self.front.flush(), final=True)

    def stats(self) -> dict[str, SensorStats]:
        return self.front.stats()


def sensor_refs_from_meta(sensors: Iterable[dict[str, str]]) -> list[SensorRef]:
    """SensorRefs from recording metadata / simulator descriptions."""
    return [SensorRef.from_meta(s) for s in sensors]
