"""Data that flows between the pipeline stages (one-way: each stage consumes the previous stage's type).

All arrays are float64 in SI units (see ``sensorhub.conventions``); rows of NaN mark missing samples.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class Segment(StrEnum):
    THIGH = "thigh"
    SHANK = "shank"


class Side(StrEnum):
    LEFT = "left"
    RIGHT = "right"


# An athlete id becomes an MQTT topic level, a URL path segment, part of file names and an InfluxDB tag:
# letters, digits and "_.-", starting with a letter or a digit, at most 64 characters.
ATHLETE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def athlete_id_problem(value: object) -> str:
    """Why ``value`` cannot be an athlete id; "" when it can. The one check of every entry point
    (configuration, MQTT offers and claims, the web API), each raising its own error with its key."""
    if not isinstance(value, str):
        return f"an athlete id must be a string, got {type(value).__name__}"
    if ATHLETE_ID_RE.fullmatch(value) is None:
        return (
            f"{value[:80]!r} is not a valid athlete id: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or a digit (ids become MQTT topic levels, URL paths and file names)"
        )
    return ""


def sensor_id_problem(value: object) -> str:
    """Why ``value`` cannot be a sensor id ("" when it can): it becomes an MQTT topic level, so no
    ``/ + #`` and no control characters; a BLE address (``AA:BB:...``) is fine."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        return f"{value!r} is not a valid sensor id: use 1 to 64 characters"
    if any(c in "/+#" or not c.isprintable() for c in value):
        return f"{value!r} is not a valid sensor id: '/', '+', '#' and control characters are not allowed"
    return ""


def leg_side(leg_id: str) -> str:
    """``athlete/right`` -> ``right`` (a leg id is ``SensorRef.leg_id``: the side is its last part)."""
    return leg_id.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class SensorRef:
    """Where a sensor sits: athlete, leg side and segment. ``sensor_id`` is the configured name."""

    sensor_id: str
    athlete: str
    side: Side
    segment: Segment

    @property
    def leg_id(self) -> str:
        return f"{self.athlete}/{self.side}"

    @classmethod
    def from_meta(cls, meta: Mapping[str, object]) -> SensorRef:
        """From a recording's or simulator's sensor entry; KeyError/ValueError when placement is missing."""
        return cls(
            str(meta["sensor_id"]),
            str(meta["athlete"]),
            Side(str(meta["side"])),
            Segment(str(meta["segment"])),
        )


@dataclass(frozen=True, slots=True)
class RawPacket:
    """Bytes as a source received them: the only thing a source callback builds (then enqueues)."""

    sensor_id: str
    t_host_s: float  # host wall clock (time.time()) at reception
    payload: bytes


@dataclass(frozen=True, slots=True)
class ImuPacket:
    """One decoded data notification, SI units, sensor frame, sensor clock."""

    sensor_id: str
    t_host_s: float
    seq: int  # u16 packet sequence number, wraps at 65536
    t0_sensor_us: int  # u32 sensor clock at the first sample, wraps at 2**32
    period_us: int  # sample period on the sensor clock
    acc_m_s2: FloatArray  # (n, 3)
    gyr_rad_s: FloatArray  # (n, 3)
    acc_range_m_s2: float
    gyr_range_rad_s: float
    flags: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.acc_m_s2.shape[0])


@dataclass(frozen=True, slots=True)
class TimedSamples:
    """Samples of one sensor mapped onto the host clock, in order, duplicates removed."""

    sensor_id: str
    t_s: FloatArray  # (n,) host-clock time of each sample
    acc_m_s2: FloatArray  # (n, 3)
    gyr_rad_s: FloatArray  # (n, 3)
    n_missing_before: int = 0  # samples lost between the previous chunk and this one


@dataclass(frozen=True, slots=True)
class LegSamples:
    """Thigh and shank samples of one leg on one common time grid (NaN rows where a sample is missing).

    This is exactly the content of the ``sensorhub analyze`` CSV format.
    """

    leg_id: str
    t_s: FloatArray  # (n,)
    thigh_acc_m_s2: FloatArray  # (n, 3)
    thigh_gyr_rad_s: FloatArray  # (n, 3)
    shank_acc_m_s2: FloatArray  # (n, 3)
    shank_gyr_rad_s: FloatArray  # (n, 3)

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    def slice(self, sl: builtins.slice) -> LegSamples:
        """The rows in ``sl`` (views of the arrays, no copy)."""
        return LegSamples(
            self.leg_id,
            self.t_s[sl],
            self.thigh_acc_m_s2[sl],
            self.thigh_gyr_rad_s[sl],
            self.shank_acc_m_s2[sl],
            self.shank_gyr_rad_s[sl],
        )

    @classmethod
    def concat(cls, parts: Sequence[LegSamples], leg_id: str | None = None) -> LegSamples:
        """``parts`` joined in order, as ``leg_id`` (default: the first part's leg)."""
        return cls(
            parts[0].leg_id if leg_id is None else leg_id,
            np.concatenate([p.t_s for p in parts]),
            np.concatenate([p.thigh_acc_m_s2 for p in parts]),
            np.concatenate([p.thigh_gyr_rad_s for p in parts]),
            np.concatenate([p.shank_acc_m_s2 for p in parts]),
            np.concatenate([p.shank_gyr_rad_s for p in parts]),
        )

    @classmethod
    def empty(cls, leg_id: str) -> LegSamples:
        """No samples (e.g. the final step of a stream)."""
        none = np.empty((0, 3))
        return cls(leg_id, np.empty(0), none, none, none, none)


@dataclass(frozen=True, slots=True)
class KneeAngles:
    """Knee angles of one leg (Grood & Suntay, relative to the standing pose), radians."""

    leg_id: str
    t_s: FloatArray
    flexion_rad: FloatArray
    valgus_rad: FloatArray
    rotation_rad: FloatArray
    quality: NDArray[np.uint8]  # bit flags, see sensorhub.kinematics


@dataclass(frozen=True, slots=True)
class LegMotion:
    """What the knee estimator knows of each segment, row for row with its ``KneeAngles``: the event
    detector reads it (one orientation filter per sensor for the whole pipeline).

    Quaternions are each 6-axis filter's own (sensor -> earth, z up; headings arbitrary). Rows the
    estimator filled across lost samples are marked ``missing`` (their values are the fill, not data)."""

    q_thigh: FloatArray  # (n, 4)
    q_shank: FloatArray  # (n, 4)
    thigh_acc_m_s2: FloatArray  # (n, 3)
    thigh_gyr_rad_s: FloatArray  # (n, 3) gyroscope bias removed
    shank_acc_m_s2: FloatArray  # (n, 3)
    shank_gyr_rad_s: FloatArray  # (n, 3) gyroscope bias removed
    missing: NDArray[np.bool_]  # (n,)
    thigh_frame: FloatArray  # (3, 3) thigh segment -> thigh sensor (columns: segment x, y, z)
    shank_frame: FloatArray  # (3, 3)

    def __len__(self) -> int:
        return int(self.missing.shape[0])


@dataclass(frozen=True, slots=True)
class Event:
    """A detected landing, cut or rep with its metrics (degrees/g at this edge, names carry units)."""

    type: str  # "landing" | "cut" | "rep"
    leg_id: str
    t_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    control_score: float = float("nan")


@dataclass(frozen=True, slots=True)
class LegCalibration:
    """A leg's completed calibration: when (data time: the last sample of the step in which it completed,
    or offline the last sample it used) and its quality figures (the calibration report: standing and
    motion seconds, bends, residuals, axis spread...)."""

    leg_id: str
    t_s: float
    quality: dict[str, float | int] = field(default_factory=dict)
