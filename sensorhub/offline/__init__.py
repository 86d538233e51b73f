"""Offline analysis: the live pipeline's stages run on a whole file (``sensorhub analyze``)."""

from sensorhub.offline.analyze import AnalyzeInput, analyze_main, detect_events, read_analyze_csv

__all__ = ["AnalyzeInput", "analyze_main", "detect_events", "read_analyze_csv"]
