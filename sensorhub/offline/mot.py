"""OpenSim motion files (``.mot``) of knee angles, as OpenSense users load them.

The layout is OpenSim's Storage text format (the one ``opensim.Storage`` and ``opensim.TimeSeriesTable``
read, and IK writes): a header of ``key=value`` lines closed by ``endheader``, then one tab-separated
row of column labels starting with ``time``, then the rows. Angles are in degrees (``inDegrees=yes``).

Columns are the coordinate names of OpenSim's full-body models, so a ``.mot`` opens against them:
``knee_angle_<s>`` (flexion, + = bent, as Rajagopal et al. 2015, the model of the OpenSense examples),
and, for models with a 3-DOF knee, ``knee_adduction_<s>`` (+ = varus, i.e. minus sensorhub's valgus)
and ``knee_rotation_<s>`` (+ = internal rotation of the shank); ``<s>`` is ``r`` or ``l``.
Missing samples (NaN) are written as ``NaN``, which OpenSim reads as missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensorhub.errors import InputError
from sensorhub.files import make_private
from sensorhub.model import FloatArray

SIDE_SUFFIX = {"right": "r", "left": "l"}


def knee_columns(side: str) -> tuple[str, str, str]:
    """The OpenSim coordinate names of one knee: flexion, adduction (varus +), rotation (internal +)."""
    s = SIDE_SUFFIX[side]
    return f"knee_angle_{s}", f"knee_adduction_{s}", f"knee_rotation_{s}"


@dataclass(frozen=True, slots=True)
class MotTable:
    """What a ``.mot`` holds: a name, the time column and labelled data columns."""

    name: str
    time_s: FloatArray
    labels: tuple[str, ...]
    data: FloatArray  # (n, len(labels))
    in_degrees: bool = True


def knee_table(name: str, side: str, time_s: FloatArray, flexion_deg: FloatArray, valgus_deg: FloatArray,
               rotation_deg: FloatArray | None = None) -> MotTable:
    """Knee angles (sensorhub's conventions) as OpenSim coordinates of one side."""
    flex, add, rot = knee_columns(side)
    columns = [np.asarray(flexion_deg, dtype=np.float64), -np.asarray(valgus_deg, dtype=np.float64)]
    labels = [flex, add]
    if rotation_deg is not None:
        columns.append(np.asarray(rotation_deg, dtype=np.float64))
        labels.append(rot)
    return MotTable(name, np.asarray(time_s, dtype=np.float64), tuple(labels), np.column_stack(columns))


def write_mot(path: Path, table: MotTable) -> Path:
    """Write ``table`` as an OpenSim ``.mot`` (times must increase: OpenSim rejects anything else)."""
    if table.time_s.ndim != 1 or table.data.shape != (table.time_s.shape[0], len(table.labels)):
        raise InputError(f"{path}: {table.data.shape} data for {len(table.time_s)} times and "
                         f"{len(table.labels)} labels")
    if np.any(np.diff(table.time_s) <= 0):
        raise InputError(f"{path}: times must increase strictly for OpenSim")
    header = (f"{table.name}\nversion=1\nnRows={len(table.time_s)}\nnColumns={len(table.labels) + 1}\n"
              f"inDegrees={'yes' if table.in_degrees else 'no'}\nendheader\n"
              + "\t".join(("time", *table.labels)))
    rows = np.column_stack((table.time_s, table.data))
    try:
        np.savetxt(make_private(path), rows, delimiter="\t", header=header, comments="",
                   fmt=["%.6f"] + ["%.4f"] * len(table.labels))
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    return path


def read_mot(path: Path) -> MotTable:
    """Read a ``.mot``/``.sto`` written in OpenSim's Storage format (header up to ``endheader``)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    try:
        end = next(i for i, line in enumerate(lines) if line.strip() == "endheader")
    except StopIteration:
        raise InputError(f"{path}: no 'endheader' line: not an OpenSim storage file") from None
    meta = dict(line.split("=", 1) for line in lines[1:end] if "=" in line)
    labels = lines[end + 1].split("\t")
    if labels[0] != "time":
        raise InputError(f"{path}: the first column is {labels[0]!r}, not 'time'")
    rows = np.array([[float(v) for v in line.split("\t")] for line in lines[end + 2:] if line.strip()])
    rows = rows.reshape(-1, len(labels))
    return MotTable(lines[0], rows[:, 0], tuple(labels[1:]), rows[:, 1:],
                    meta.get("inDegrees", "no").strip() == "yes")

