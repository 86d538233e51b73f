"""``GET /health``: service state and, per sensor, link, rate, packets, loss, clock drift and latency.

Per-sensor latency is packet host-receive -> knee angles published (the same measurement as the live
runner's ``packet_to_angle``), charged to the sensor whose packet completed the angles.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from sensorhub.model import RawPacket, SensorRef
from sensorhub.runtime.live import LiveStats
from sensorhub.runtime.pipeline import LatencyRecorder, LegOutput, Pipeline
from sensorhub.sources.base import LinkState, SensorLink

PER_SENSOR_LATENCY_SAMPLES = 4096
STALE_AFTER_S = 2.0  # a streaming link with no packet for this long shows as not connected


class ServiceState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class MeasuredPipeline(Pipeline):
    """The pipeline, also keeping packet -> angle latency per sensor for /health."""

    def __init__(self, sensors: Sequence[SensorRef], rate_hz: float | None = None) -> None:
        super().__init__(sensors, rate_hz=rate_hz)
        self.latency_by_sensor = {
            s.sensor_id: LatencyRecorder(PER_SENSOR_LATENCY_SAMPLES) for s in self.sensors
        }

    def ingest(self, packet: RawPacket) -> list[LegOutput]:
        out = super().ingest(packet)
        if out:
            recorder = self.latency_by_sensor.get(packet.sensor_id)
            if recorder is not None:
                recorder.add(time.time() - packet.t_host_s)
        return out


def _finite(value: float, digits: int = 3) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


class HealthReporter:
    """Builds the /health document; remembers the previous call to report sample rates."""

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
        self._prev: dict[str, tuple[float, int]] = {}

    def _rate_hz(self, sensor_id: str, samples: int, now_s: float) -> float | None:
        prev = self._prev.get(sensor_id)
        self._prev[sensor_id] = (now_s, samples)
        if prev is None or now_s - prev[0] < 0.2:
            return None
        return round((samples - prev[1]) / (now_s - prev[0]), 1)

    def report(self) -> dict[str, Any]:
        now_s = time.time()
        stats = self.pipeline.stats()
        links = self._links()
        live = self._live()
        sensors: dict[str, Any] = {}
        for ref in self.pipeline.sensors:
            st = stats.get(ref.sensor_id)
            link = links.get(ref.sensor_id)
            fresh = (
                link is not None
                and link.last_packet_host_s is not None
                and (now_s - link.last_packet_host_s < STALE_AFTER_S)
            )
            connected = link is not None and link.state is LinkState.STREAMING and fresh
            lat = self.pipeline.latency_by_sensor[ref.sensor_id].percentiles_ms((50.0, 95.0, 99.0))
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
                "clipped": st.clipped if st is not None else 0,
                "clock_drift_ppm": _finite(st.drift_ppm, 2) if st is not None else None,
                "latency_ms": {k: _finite(v) for k, v in lat.items()},
            }
        doc: dict[str, Any] = {
            "state": str(self.state),
            "uptime_s": round(now_s - self.started_s, 1),
            "packets": live.packets,
            "angle_samples": live.angle_samples,
            "latency_ms": {
                "packet_to_angle": {
                    k: _finite(v) for k, v in live.packet_to_angle.percentiles_ms((50.0, 99.0)).items()
                },
                "processing": {
                    k: _finite(v) for k, v in self.pipeline.processing.percentiles_ms((50.0, 99.0)).items()
                },
            },
            "sensors": sensors,
        }
        if self._extra is not None:
            doc.update(self._extra())
        return doc
