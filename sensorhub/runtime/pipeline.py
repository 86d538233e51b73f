"""The processing core shared by live, replay and offline runs: raw packets in, knee angles and events out.

``Pipeline`` is synchronous and deterministic: the same packet sequence (bytes and host receive times)
gives bit-identical outputs, which is what makes a replayed session equal to the live one. Async
plumbing (sources, queues, sinks) lives in ``sensorhub.runtime.live``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sensorhub.analysis import EventDetector, LivePhase
from sensorhub.errors import CalibrationError
from sensorhub.kinematics import KneeEstimator
from sensorhub.model import Event, KneeAngles, LegCalibration, LegSamples, RawPacket, SensorRef
from sensorhub.timing import Front, SensorStats


@dataclass(slots=True)
class LegOutput:
    """What one ingest step produced for one leg."""

    leg_id: str
    angles: KneeAngles
    events: list[Event] = field(default_factory=list)
    phase: LivePhase | None = None  # a rep descent in progress (for live cues)
    calibration: LegCalibration | None = None  # set by the step in which the leg calibrated


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


def warmup() -> None:
    """Compile (or load from numba's cache) every kernel of the live path, before the first sample."""
    from sensorhub import analysis, kinematics, orientation
    from sensorhub.protocol import decode

    decode.warm_up()
    orientation.warmup()
    kinematics.warmup()
    analysis.warmup()


class Pipeline:
    """decode -> timing -> orientation + kinematics (per leg) -> analysis, for a fixed set of sensors."""

    def __init__(self, sensors: Sequence[SensorRef], rate_hz: float | None = None) -> None:
        self.sensors = tuple(sensors)
        self.front = Front(self.sensors, rate_hz=rate_hz)
        self._sides = {s.leg_id: str(s.side) for s in self.sensors}
        self._knees: dict[str, KneeEstimator] = {}
        self._detectors: dict[str, EventDetector] = {}
        self._rate_hz = rate_hz
        # Processing time of one ingest call (decode .. angles), excluding queueing.
        self.processing = LatencyRecorder()
        self.calibration_errors: dict[str, str] = {}

    def _knee(self, chunk: LegSamples) -> KneeEstimator:
        knee = self._knees.get(chunk.leg_id)
        if knee is None:
            # The grid rate is fixed by the first chunk (the Front derives it from the sensor period).
            rate_hz = self._rate_hz or self.front.grid_rate_hz(chunk.leg_id)
            knee = KneeEstimator(self._sides[chunk.leg_id], rate_hz, leg_id=chunk.leg_id)
            self._knees[chunk.leg_id] = knee
        return knee

    def _analyse(self, chunk: LegSamples, angles: KneeAngles, rate_hz: float) -> LegOutput | None:
        """Events and the live phase from the samples and the angles computed so far for this leg (the
        detector holds samples until their angles arrive, so the two may be offset in time)."""
        det = self._detectors.get(chunk.leg_id)
        if det is None:
            det = EventDetector(self._sides[chunk.leg_id], rate_hz, chunk.leg_id)
            self._detectors[chunk.leg_id] = det
        step = det.step(chunk, angles)
        if angles.t_s.shape[0] or step.events or step.phase is not None:
            return LegOutput(chunk.leg_id, angles, list(step.events), step.phase)
        return None

    def _process(self, chunks: Iterable[LegSamples], final: bool = False) -> list[LegOutput]:
        out: list[LegOutput] = []
        for chunk in chunks:
            if len(chunk) == 0:
                continue
            try:
                knee = self._knee(chunk)
                was_calibrated = knee.calibration is not None
                angles = knee.push(chunk)
            except CalibrationError as exc:
                # Calibration refused (e.g. no bends within the allowed time): say why and start over
                # from the next samples; the stream and the other legs go on.
                self.calibration_errors[chunk.leg_id] = str(exc)
                del self._knees[chunk.leg_id]
                self._detectors.pop(chunk.leg_id, None)
                continue
            result = self._analyse(chunk, angles, knee.rate_hz)
            if not was_calibrated and knee.calibration is not None:
                result = result or LegOutput(chunk.leg_id, angles)
                result.calibration = LegCalibration(
                    chunk.leg_id, float(chunk.t_s[-1]), knee.calibration.report.as_dict()
                )
            if result is not None:
                out.append(result)
        if final:
            for leg_id, knee in self._knees.items():
                try:
                    angles = knee.finish()
                except CalibrationError as exc:
                    # The stream ended before this leg could be calibrated: nothing to compute, but
                    # the reason is kept for the report and every raw packet stays recorded.
                    self.calibration_errors[leg_id] = str(exc)
                    continue
                result = self._analyse(_no_samples(leg_id), angles, knee.rate_hz)
                tail = self._detectors[leg_id].finish() if leg_id in self._detectors else []
                if result is None and tail:
                    result = LegOutput(leg_id, angles)
                if result is not None:
                    result.events.extend(tail)
                    result.phase = None
                    out.append(result)
        return out

    def ingest(self, packet: RawPacket) -> list[LegOutput]:
        t0 = time.perf_counter()
        out = self._process(self.front.ingest(packet))
        self.processing.add(time.perf_counter() - t0)
        return out

    def finish(self) -> list[LegOutput]:
        """End of stream: flush the aligners and the calibration buffers."""
        return self._process(self.front.flush(), final=True)

    def stats(self) -> dict[str, SensorStats]:
        return self.front.stats()


def _no_samples(leg_id: str) -> LegSamples:
    empty = np.empty((0, 3))
    return LegSamples(leg_id, np.empty(0), empty, empty, empty, empty)


def sensor_refs_from_meta(sensors: Iterable[dict[str, str]]) -> list[SensorRef]:
    """SensorRefs from recording metadata / simulator descriptions."""
    return [SensorRef.from_meta(s) for s in sensors]
