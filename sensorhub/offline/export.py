"""A recording's legs -> ``sensorhub analyze`` CSV files, through the same :class:`Front` as live."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sensorhub.conventions import ANALYZE_CSV_HEADER
from sensorhub.errors import InputError
from sensorhub.files import make_private
from sensorhub.model import LegSamples, RawPacket
from sensorhub.recording import Recording, read_recording
from sensorhub.timing import Front, SensorStats


def concat_legs(chunks: Iterable[LegSamples]) -> dict[str, LegSamples]:
    """Join grid chunks per leg (in order)."""
    by_leg: dict[str, list[LegSamples]] = {}
    for chunk in chunks:
        by_leg.setdefault(chunk.leg_id, []).append(chunk)
    return {leg_id: LegSamples.concat(parts) for leg_id, parts in by_leg.items()}


def run_front(
    packets: Iterable[RawPacket], front: Front
) -> tuple[dict[str, LegSamples], dict[str, SensorStats]]:
    """Feed every packet through ``front``, flush it, and return each leg's whole grid and the stats."""
    chunks: list[LegSamples] = []
    for packet in packets:
        chunks.extend(front.ingest(packet))
    chunks.extend(front.flush())
    return concat_legs(chunks), front.stats()


def recording_legs(
    recording: Recording, *, rate_hz: float | None = None
) -> tuple[dict[str, LegSamples], dict[str, SensorStats]]:
    """All legs of a recording on their grids (the same computation as the live path)."""
    sensors = recording.sensors
    if not sensors:
        raise InputError(f"{recording.path}: no sensor in the recording has athlete, side and segment")
    front = Front(sensors, rate_hz=rate_hz, protocols=recording.protocols)
    return run_front(recording.packets(), front)


def write_analyze_csv(leg: LegSamples, path: str | Path, *, t_origin_s: float = 0.0) -> Path:
    """One leg in the ``sensorhub analyze`` format (m/s^2, rad/s, NaN rows for missing samples)."""
    path = Path(path)
    table = np.column_stack(
        (
            leg.t_s - t_origin_s,
            leg.thigh_acc_m_s2,
            leg.thigh_gyr_rad_s,
            leg.shank_acc_m_s2,
            leg.shank_gyr_rad_s,
        )
    )
    fmt = ["%.6f"] + ["%.9g"] * 12
    np.savetxt(make_private(path), table, fmt=fmt, delimiter=",", header=ANALYZE_CSV_HEADER, comments="")
    return path


def export_recording_csv(
    recording_path: str | Path,
    out_dir: str | Path,
    *,
    rate_hz: float | None = None,
    relative_time: bool = True,
) -> dict[str, Path]:
    """Write ``OUT_DIR/<athlete>_<side>.csv`` per leg; times start at the recording's first packet
    (``relative_time``) or are host epoch seconds. Returns leg_id -> file."""
    recording = read_recording(recording_path)
    legs, _ = recording_legs(recording, rate_hz=rate_hz)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_origin_s = 0.0
    if relative_time:
        first = next(iter(recording.packets()), None)
        t_origin_s = first.t_host_s if first is not None else 0.0
    out: dict[str, Path] = {}
    for leg_id, leg in legs.items():
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", leg_id.replace("/", "_"))
        out[leg_id] = write_analyze_csv(leg, out_dir / f"{name}.csv", t_origin_s=t_origin_s)
    return out
