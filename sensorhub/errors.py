"""sensorhub's exception tree: one root, a few classes, messages that say what to do."""

from __future__ import annotations


class SensorhubError(Exception):
    """Root of every error sensorhub raises on purpose."""


class ConfigError(SensorhubError):
    """A configuration file or environment override is wrong (the message names file, key, allowed)."""


class ProtocolError(SensorhubError):
    """A packet does not follow the wire protocol; counted and dropped, never fatal to the pipeline."""


class RecordingError(SensorhubError):
    """A recording file cannot be read (bad magic, unsupported version, unreadable metadata)."""


class InputError(SensorhubError):
    """Offline input (CSV, arrays) is malformed: wrong header, wrong units, too short."""


class CalibrationError(SensorhubError):
    """Sensor-to-segment calibration failed or is too poor to trust; the message says what to redo."""


class SourceError(SensorhubError):
    """A data source (BLE, MQTT, replay) failed in a way the caller must handle."""


class SinkError(SensorhubError):
    """A sink (MQTT, InfluxDB, store) failed in a way the caller must handle."""
