"""Ground truth written beside every recording: ``truth.json`` and ``truth_angles.csv``.

``truth.json``: drill, seed, sides, per-sensor mount (quaternion + position), clock (offset, drift),
link bookkeeping (packets sent / lost), error-model parameters and drawn constants, and the motion's
events with their metric values. ``truth_angles.csv``: ``time_s,side,flexion_deg,valgus_deg,rotation_deg``
on the nominal sample grid ``k / rate_hz`` of true time (host time = ``host_epoch_s`` + true time + link
latency).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .athletes import SimulatedAthlete
from .link import LinkStats

TRUTH_JSON = "truth.json"
TRUTH_ANGLES_CSV = "truth_angles.csv"
TRUTH_ANGLES_HEADER = "time_s,side,flexion_deg,valgus_deg,rotation_deg"


def to_jsonable(value: Any) -> Any:
    """Numpy arrays/scalars, dataclasses and tuples -> plain JSON types."""
    if hasattr(value, "to_json") and callable(value.to_json):
        return to_jsonable(value.to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def sample_grid_s(duration_s: float, rate_hz: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    t_s = np.arange(int(np.floor(duration_s * rate_hz)) + 1, dtype=np.float64) / rate_hz
    return t_s[t_s <= duration_s]


def truth_dict(
    athlete: SimulatedAthlete,
    *,
    link_stats: Mapping[str, LinkStats] | None = None,
    rate_hz: float = 200.0,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    motion = athlete.motion
    sensors = {}
    for sensor in athlete.sensors:
        entry: dict[str, Any] = {
            "side": sensor.side,
            "segment": sensor.segment,
            "mount": to_jsonable(sensor.mount),
            "clock_offset_us": sensor.clock.offset_us,
            "clock_drift_ppm": sensor.clock.drift_ppm,
            "error_constants": sensor.error_model().draw.to_json(),
        }
        if link_stats is not None and sensor.sensor_id in link_stats:
            entry.update(link_stats[sensor.sensor_id].to_json())
        sensors[sensor.sensor_id] = entry
    truth: dict[str, Any] = {
        "drill": motion.drill,
        "seed": athlete.seed,
        "athlete": athlete.name,
        "sides": list(athlete.sides),
        "duration_s": float(motion.duration_s),
        "rate_hz": rate_hz,
        "mount_max_deg": athlete.mount_max_deg,
        "error_model": athlete.errors.to_json(),
        "sensors": sensors,
        "events": to_jsonable(motion.events),
    }
    truth.update(to_jsonable(dict(extra or {})))
    return truth


def write_truth(
    out_dir: Path | str,
    athlete: SimulatedAthlete,
    *,
    link_stats: Mapping[str, LinkStats] | None = None,
    rate_hz: float = 200.0,
    extra: Mapping[str, Any] | None = None,
) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = truth_dict(athlete, link_stats=link_stats, rate_hz=rate_hz, extra=extra)
    (out / TRUTH_JSON).write_text(json.dumps(truth, indent=1, allow_nan=True))
    t_s = sample_grid_s(float(athlete.motion.duration_s), rate_hz)
    with (out / TRUTH_ANGLES_CSV).open("w") as f:
        f.write(TRUTH_ANGLES_HEADER + "\n")
        for side in athlete.sides:
            angles = np.asarray(athlete.motion.truth_angles_deg(side, t_s), dtype=np.float64)
            for t, (flex, valgus, rot) in zip(t_s, angles, strict=True):
                f.write(f"{t:.6f},{side},{flex:.6f},{valgus:.6f},{rot:.6f}\n")
