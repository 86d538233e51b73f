"""Offline analysis: the live pipeline's stages run on a whole file (``sensorhub analyze``)."""

from sensorhub.offline.analyze import AnalyzeInput, analyze_main, detect_events, read_analyze_csv
from sensorhub.offline.export import export_recording_csv, recording_legs, run_front
from sensorhub.offline.history_export import export_history, export_main
from sensorhub.offline.mot import MotTable, read_mot, write_mot

__all__ = [
    "AnalyzeInput",
    "MotTable",
    "analyze_main",
    "detect_events",
    "export_history",
    "export_main",
    "export_recording_csv",
    "read_analyze_csv",
    "read_mot",
    "recording_legs",
    "run_front",
    "write_mot",
]
