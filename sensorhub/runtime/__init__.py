"""The composition root: the one package that knows everyone. It wires a source, the processing core
(``Pipeline``), the live loop (``LiveRunner``), the cue stage, the sinks and the dashboard into one
service (``serve``: one TaskGroup, ordered shutdown), and runs the ``run``, ``record``, ``replay`` and
``gateway`` commands. Modules are imported on first use (the web server only when a service runs);
``sensorhub.runtime.warmup.warmup()`` is reached through its module (a lazy face cannot export a name
that is also a submodule's: once imported, the submodule shadows it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensorhub.lazy import lazy_exports

if TYPE_CHECKING:
    from sensorhub.runtime.cueing import CueStage
    from sensorhub.runtime.gateway import gateway_main
    from sensorhub.runtime.handle import ServiceHandle, Stage
    from sensorhub.runtime.health import HealthReporter, MeasuredPipeline
    from sensorhub.runtime.live import LiveRunner, LiveStats
    from sensorhub.runtime.pipeline import LatencyRecorder, LegOutput, Pipeline, sensor_refs_from_meta
    from sensorhub.runtime.record import record_main
    from sensorhub.runtime.replay import ReplayResult, replay_async, replay_main
    from sensorhub.runtime.run import run_main
    from sensorhub.runtime.service import serve, serve_in_thread
    from sensorhub.runtime.sources import make_source

__all__ = [
    "CueStage",
    "HealthReporter",
    "LatencyRecorder",
    "LegOutput",
    "LiveRunner",
    "LiveStats",
    "MeasuredPipeline",
    "Pipeline",
    "ReplayResult",
    "ServiceHandle",
    "Stage",
    "gateway_main",
    "make_source",
    "record_main",
    "replay_async",
    "replay_main",
    "run_main",
    "sensor_refs_from_meta",
    "serve",
    "serve_in_thread",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "CueStage": "cueing",
        "gateway_main": "gateway",
        "ServiceHandle": "handle",
        "Stage": "handle",
        "HealthReporter": "health",
        "MeasuredPipeline": "health",
        "LiveRunner": "live",
        "LiveStats": "live",
        "LatencyRecorder": "pipeline",
        "LegOutput": "pipeline",
        "Pipeline": "pipeline",
        "sensor_refs_from_meta": "pipeline",
        "record_main": "record",
        "ReplayResult": "replay",
        "replay_async": "replay",
        "replay_main": "replay",
        "run_main": "run",
        "serve": "service",
        "serve_in_thread": "service",
        "make_source": "sources",
    },
)
