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

from sensorhub.errors import CalibrationError
from sensorhub.kinematics import KneeEstimator
from sensorhub.model import Event, KneeAngles, LegSamples, RawPacket, SensorRef
from sensorhub.timing import Front, SensorStats


@dataclass(slots=True)
class LegOutput:
    """What one ingest step produced for one leg."""

    leg_id: str
    angles: KneeAngles
    events: list[Event] = field(default_factory=list)


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
    from sensorhub import kinematics, orientation
    from sensorhub.protocol import decode

    decode.warm_up()
    orientation.warmup()
    kinematics.warmup()


class Pipeline:
    """decode -> timing -> orientation + kinematics (per leg) -> analysis, for a fixed set of sensors."""

    def __init__(self, sensors: Sequence[SensorRef], rate_hz: float | None = None) -> None:
        self.sensors = tuple(sensors)
        self.front = Front(self.sensors, rate_hz=rate_hz)
        self._sides = {s.leg_id: str(s.side) for s in self.sensors}
        self._knees: dict[str, KneeEstimator] = {}
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

    def _process(self, chunks: Iterable[LegSamples], final: bool = False) -> list[LegOutput]:
        out: list[LegOutput] = []
        for chunk in chunks:
            if len(chunk) == 0:
                continue
            try:
                angles = self._knee(chunk).push(chunk)
            except CalibrationError as exc:
                # Calibration refused (e.g. no bends within the allowed time): say why and start over
                # from the next samples; the stream and the other legs go on.
                self.calibration_errors[chunk.leg_id] = str(exc)
                del self._knees[chunk.leg_id]
                continue
            if angles.t_s.shape[0]:
                out.append(LegOutput(chunk.leg_id, angles))
        if final:
            for leg_id, knee in self._knees.items():
                try:
                    angles = knee.finish()
                except CalibrationError as exc:
                    # The stream ended before this leg could be calibrated: nothing to compute, but
                    # the reason is kept for the report and every raw packet stays recorded.
                    self.calibration_errors[leg_id] = str(exc)
                    continue
                if angles.t_s.shape[0]:
                    out.append(LegOutput(leg_id, angles))
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

    def calibration_report(self) -> dict[str, object]:
        return {leg: knee.calibration for leg, knee in self._knees.items()}


def sensor_refs_from_meta(sensors: Iterable[dict[str, str]]) -> list[SensorRef]:
    """SensorRefs from recording metadata / simulator descriptions."""
    from sensorhub.model import Segment, Side

    return [SensorRef(s["sensor_id"], s["athlete"], Side(s["side"]), Segment(s["segment"])) for s in sensors]
