"""Offline analysis: the live pipeline's stages run on a whole file (``sensorhub analyze``)."""

from sensorhub.offline.analyze import AnalyzeInput, analyze_main, detect_events, read_analyze_csv
from sensorhub.offline.export import export_recording_csv, recording_legs, run_front

__all__ = [
    "AnalyzeInput",
    "analyze_main",
    "detect_events",
    "export_recording_csv",
    "read_analyze_csv",
    "recording_legs",
    "run_front",
]
