"""The tests' real services: one implementation, shared with the benchmarks (sensorhub.bench.services)."""

from sensorhub.bench.services import Mosquitto, VictoriaMetrics, free_port

__all__ = ["Mosquitto", "VictoriaMetrics", "free_port"]
