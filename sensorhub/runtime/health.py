"""``GET /health``: service state and, per sensor, link, rate, packets, loss, clock drift and latency.

Per-sensor latency is packet host-receive -> knee angles published (the same measurement as the live
runner's ``packet_to_angle``), charged to the sensor whose packet completed the angles.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any

import numpy as np

from sensorhub.model import RawPacket, SensorRef
from sensorhub.runtime.live import LiveStats
from sensorhub.runtime.pipeline import LegOutput, Pipeline
from sensorhub.sources import LinkState, SensorLink

PER_SENSOR_LATENCY_SAMPLES = 1024  # ~40 s of packets per sensor: enough for a p99, cheap for /health
STALE_AFTER_S = 2.0  # a streaming link with no packet for this long shows as not connected


class ServiceState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class SensorLatencies:
    """The last ``capacity`` latencies (seconds) of every sensor in one ring buffer per row, so the
    percentiles of all sensors come from one sort (a /health call stays ~1 ms for 100 sensors)."""

    def __init__(self, sensor_ids: Sequence[str], capacity: int = PER_SENSOR_LATENCY_SAMPLES) -> None:
        self.rows = {sid: i for i, sid in enumerate(sensor_ids)}
        self._values = np.full((len(self.rows), capacity), np.nan)
        self._n = np.zeros(len(self.rows), dtype=np.int64)

    def add(self, sensor_id: str, latency_s: float) -> None:
        row = self.rows.get(sensor_id)
        if row is not None:
            self._values[row, self._n[row] % self._values.shape[1]] = latency_s
            self._n[row] += 1

    def reset(self) -> None:
        self._values.fill(np.nan)
        self._n.fill(0)

    def percentiles_ms(self, qs: Sequence[float] = (50.0, 95.0, 99.0)) -> dict[str, dict[str, float]]:
        """Nearest-rank percentiles per sensor (NaN where a sensor has no sample yet)."""
        ordered = np.sort(self._values, axis=1)  # NaN (unfilled) sorts last
        count = np.minimum(self._n, self._values.shape[1])
        out: dict[str, dict[str, float]] = {}
        cols = {f"p{q:g}_ms": np.clip(np.ceil(q / 100.0 * count).astype(np.int64) - 1, 0, None) for q in qs}
        picked = {k: ordered[np.arange(len(count)), idx] * 1e3 for k, idx in cols.items()}
        for sid, row in self.rows.items():
            out[sid] = {k: float(v[row]) if count[row] else float("nan") for k, v in picked.items()}
        return out


class MeasuredPipeline(Pipeline):
    """The pipeline, also keeping packet -> angle latency per sensor for /health."""

    def __init__(self, sensors: Sequence[SensorRef], rate_hz: float | None = None,
                 protocols: Mapping[str, str] | None = None) -> None:
        super().__init__(sensors, rate_hz=rate_hz, protocols=protocols)
        self.latency_by_sensor = SensorLatencies([s.sensor_id for s in self.sensors])

    def ingest(self, packet: RawPacket) -> list[LegOutput]:
        out = super().ingest(packet)
        if out:
            self.latency_by_sensor.add(packet.sensor_id, time.time() - packet.t_host_s)
        return out

    def ingest_many(self, packets: Sequence[RawPacket]) -> Iterator[list[LegOutput]]:
        for packet, out in zip(packets, super().ingest_many(packets), strict=False):
            if out:
                self.latency_by_sensor.add(packet.sensor_id, time.time() - packet.t_host_s)
            yield out


def _finite(value: float, digits: int = 3) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


RATE_WINDOW_S = 5.0  # sample rates are measured over about the last 5 s
RATE_POINT_EVERY_S = 0.5


class HealthReporter:
    """Builds the /health document. Sample rates come from counts kept every ``RATE_POINT_EVERY_S``
    over the last ``RATE_WINDOW_S``, so they do not depend on who calls ``report`` how often (the
    dashboard, /health, the MQTT and InfluxDB status publishers)."""

    def __init__(
        self,
        pipeline: MeasuredPipeline,
        links: Callable[[], dict[str, SensorLink]],
        live: Callable[[], LiveStats],
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self._links = links
        self._live = live
        self._extra = extra
        self.state = ServiceState.STARTING
        self.started_s = time.time()
        self._counts: dict[str, deque[tuple[float, int]]] = {}

    def _rate_hz(self, sensor_id: str, samples: int, now_s: float) -> float | None:
        points = self._counts.setdefault(sensor_id, deque())
        if not points or now_s - points[-1][0] >= RATE_POINT_EVERY_S:
            points.append((now_s, samples))
        while len(points) > 1 and now_s - points[0][0] > RATE_WINDOW_S:
            points.popleft()
        t0_s, n0 = points[0]
        if now_s - t0_s < 0.2:
            return None
        return round((samples - n0) / (now_s - t0_s), 1)

    def report(self) -> dict[str, Any]:
        now_s = time.time()
        stats = self.pipeline.stats()
        links = self._links()
        live = self._live()
        sensors: dict[str, Any] = {}
        latencies = self.pipeline.latency_by_sensor.percentiles_ms((50.0, 95.0, 99.0))
        for ref in self.pipeline.sensors:
            st = stats.get(ref.sensor_id)
            link = links.get(ref.sensor_id)
            fresh = (
                link is not None
                and link.last_packet_host_s is not None
                and (now_s - link.last_packet_host_s < STALE_AFTER_S)
            )
            connected = link is not None and link.state is LinkState.STREAMING and fresh
            lat = latencies[ref.sensor_id]
            samples = st.samples if st is not None else 0
            lost = st.lost if st is not None else 0
            sensors[ref.sensor_id] = {
                "athlete": ref.athlete,
                "side": str(ref.side),
                "segment": str(ref.segment),
                "state": str(link.state) if link is not None else "unknown",
                "connected": connected,
                "battery_pct": link.battery_pct if link is not None else None,
                "rate_hz": self._rate_hz(ref.sensor_id, samples, now_s),
                "packets": st.packets if st is not None else 0,
                "samples": samples,
                "lost": lost,
                "loss_pct": round(100.0 * lost / (samples + lost), 3) if samples + lost else 0.0,
                "malformed": st.malformed if st is not None else 0,
                # why packets were dropped: wire-format reasons and rejected host receive times
                "malformed_by_reason": dict(st.malformed_by_reason) if st is not None else {},
                "clipped": st.clipped if st is not None else 0,
                "clock_drift_ppm": _finite(st.drift_ppm, 2) if st is not None else None,
                "latency_ms": {k: _finite(v) for k, v in lat.items()},
            }
        doc: dict[str, Any] = {
            "state": str(self.state),
            "uptime_s": round(now_s - self.started_s, 1),
            "packets": live.packets,
            "angle_samples": live.angle_samples,
            "ingest_errors": dict(live.ingest_errors),
            "latency_ms": {
                "packet_to_angle": {
                    k: _finite(v) for k, v in live.packet_to_angle.percentiles_ms((50.0, 99.0)).items()
                },
                "processing": {
                    k: _finite(v) for k, v in self.pipeline.processing.percentiles_ms((50.0, 99.0)).items()
                },
            },
            "sensors": sensors,
            # per leg: waiting / calibrating (and what is missing) / tracking / failed (and the error)
            "legs": self.pipeline.leg_states(),
        }
        if self._extra is not None:
            doc.update(self._extra())
        return doc
