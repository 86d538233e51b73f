"""Parquet files of knee angles and events (pyarrow, the optional ``[parquet]`` extra), for pandas,
MATLAB (``parquetread``), R and Spark: one typed column per field, units in the column names.

- angles: ``time_s, flexion_deg, valgus_deg, rotation_deg`` (float64; NaN where a sample is missing);
- events: ``type, t_s`` and one column per metric that any event has (float64, null where an event has
  no such metric), plus whatever identifying columns the caller adds (leg, session, drill...).

pyarrow is imported on first use, so a bare install runs everything else; without it the export stops
with an error that names the extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sensorhub.errors import InputError
from sensorhub.files import make_private
from sensorhub.model import FloatArray

EXTRA = "parquet"


def require_pyarrow() -> Any:
    """pyarrow and pyarrow.parquet, or an error that names the extra to install."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"Parquet export needs pyarrow: pip install 'sensorhub[{EXTRA}]' (or pip install pyarrow)"
        ) from None
    return pa, pq


def write_columns(path: Path, columns: Mapping[str, Sequence[Any] | FloatArray],
                  metadata: Mapping[str, str] | None = None) -> Path:
    """One Parquet file from named columns of equal length (numbers, text or None)."""
    pa, pq = require_pyarrow()
    arrays = {}
    for name, values in columns.items():
        if isinstance(values, np.ndarray):
            arrays[name] = pa.array(values)
        else:
            arrays[name] = pa.array(list(values))
    table = pa.table(arrays)
    if metadata:
        table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})
    try:
        pq.write_table(table, make_private(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc}") from exc
    return path


def angle_columns(time_s: FloatArray, flexion_deg: FloatArray, valgus_deg: FloatArray,
                  rotation_deg: FloatArray) -> dict[str, FloatArray]:
    return {"time_s": time_s, "flexion_deg": flexion_deg, "valgus_deg": valgus_deg,
            "rotation_deg": rotation_deg}


def event_columns(events: Sequence[Mapping[str, Any]], extra: Mapping[str, Sequence[Any]] | None = None
                  ) -> dict[str, list[Any]]:
    """``events.json``-style dicts (``type``, ``t_s``, metrics...) as columns: ``type``, ``t_s``, the
    ``extra`` columns, then every other key in order of appearance (None where an event lacks it):
    numbers as float64, anything else (``leg_id``) as text."""
    names: list[str] = []
    for ev in events:
        names += [k for k in ev if k not in ("type", "t_s") and k not in names]
    out: dict[str, list[Any]] = {"type": [str(ev["type"]) for ev in events],
                                 "t_s": [float(ev["t_s"]) for ev in events]}
    for key, values in (extra or {}).items():
        out[key] = list(values)
    for name in names:
        values = [ev.get(name) for ev in events]
        if all(v is None or isinstance(v, int | float) for v in values):
            out[name] = [None if v is None or v != v else float(v) for v in values]  # NaN -> null
        else:
            out[name] = [None if v is None else str(v) for v in values]  # e.g. leg_id
    return out
