"""Event analysis: landings, cuts and reps of one leg with their metrics and control score, streaming
(live) and batch (offline) with identical results; limb symmetry over a set. See docs/events.md.

Public API:
- ``EventDetector(side, rate_hz, leg_id="", params=None)`` with
  ``push(KneeAngles, LegMotion) -> list[Event]`` (the knee estimator's rows: ``KneeEstimator.step``),
  ``step(...) -> DetectorOutput(events, phase)``, ``phase`` (the ``LivePhase`` in progress), ``finish()``;
- ``detect_events(angles, motion, side, rate_hz) -> list[Event]`` (offline = one push);
- ``event_to_json(Event) -> dict`` (events.json objects); ``control_score``; ``limb_symmetry``.
"""

from sensorhub.analysis.detector import (
    AnalysisParams,
    DetectorOutput,
    EventDetector,
    LivePhase,
    detect_events,
    event_to_json,
    warmup,
)
from sensorhub.analysis.metrics import MetricWindows
from sensorhub.analysis.score import SCORE_TERMS, ScoreTerm, Target, control_score
from sensorhub.analysis.symmetry import SymmetryEntry, limb_symmetry

__all__ = [
    "SCORE_TERMS",
    "AnalysisParams",
    "DetectorOutput",
    "EventDetector",
    "LivePhase",
    "MetricWindows",
    "ScoreTerm",
    "SymmetryEntry",
    "Target",
    "control_score",
    "detect_events",
    "event_to_json",
    "limb_symmetry",
    "warmup",
]
