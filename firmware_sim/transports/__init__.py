"""Ways simulated sensors reach sensorhub: in-process async iterator, recording file."""

from __future__ import annotations

from .inprocess import InProcessTransport, SimSession, raw_packet
from .recording import recording_meta, write_recording

__all__ = ["InProcessTransport", "SimSession", "raw_packet", "recording_meta", "write_recording"]
