"""Write a simulated session to a raw recording file (sensorhub's recorder format), as fast as possible."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .inprocess import SimSession, raw_packet

RECORDING_SOURCE = "firmware-sim"


def recording_meta(session: SimSession, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Metadata stored in the recording: the sensors (``SensorRef``-like) and how they stream."""
    s = session.settings
    meta: dict[str, Any] = {
        "source": RECORDING_SOURCE,
        "sensors": session.sensor_refs(),
        "rate_hz": s.rate_hz,
        "acc_range_g": s.acc_range_g,
        "gyr_range_dps": s.gyr_range_dps,
        "samples_per_packet": s.samples_per_packet,
        "host_epoch_s": session.host_epoch_s,
    }
    meta.update(extra or {})
    return meta


def write_recording(
    path: Path | str, session: SimSession, extra_meta: Mapping[str, Any] | None = None
) -> int:
    """Run ``session`` to its end and write every packet the host receives; returns the packet count."""
    from sensorhub.recording import RecordingWriter

    count = 0
    with RecordingWriter(Path(path), recording_meta(session, extra_meta)) as writer:
        for delivery in session.deliveries():
            writer.write(raw_packet(delivery))
            count += 1
    return count
