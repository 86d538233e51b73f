"""JSON payloads of the MQTT result topics, schema 1 (the one place they are built; README, "MQTT").

Units are in the field names (degrees, seconds, percent, hertz); times are host wall-clock seconds since
the epoch (``t_s`` of the pipeline); NaN becomes ``null``. Every object carries ``schema``, ``athlete``
and ``leg`` so a message stands on its own. QoS 1 messages can arrive twice after a reconnect: consumers
dedupe events by (athlete, leg, type, t_s) and cues by (athlete, leg, rule, t_s).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sensorhub.analysis import event_to_json
from sensorhub.cues import Cue
from sensorhub.model import Event, KneeAngles

SCHEMA = 1
SERVICE_ONLINE = b"online"
SERVICE_OFFLINE = b"offline"
# Fields of a sensor's /health entry that a leg's status message carries.
STATUS_SENSOR_FIELDS = (
    "segment",
    "state",
    "connected",
    "battery_pct",
    "rate_hz",
    "packets",
    "lost",
    "loss_pct",
    "malformed",
    "clock_drift_ppm",
)


def split_leg(leg_id: str) -> tuple[str, str]:
    """``athlete/side`` -> (athlete, side)."""
    athlete, _, side = leg_id.rpartition("/")
    return athlete, side


def _dumps(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _finite(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def _finite_list(values: np.ndarray, digits: int) -> list[float | None]:
    return [round(v, digits) if math.isfinite(v) else None for v in values.tolist()]


def _head(leg_id: str) -> dict[str, Any]:
    athlete, side = split_leg(leg_id)
    return {"schema": SCHEMA, "athlete": athlete, "leg": side}


def angles_payload(angles: KneeAngles) -> bytes:
    """Knee angles of one leg (already decimated by the sink): parallel arrays, degrees, 0.001 deg."""
    return _dumps(
        {
            **_head(angles.leg_id),
            "t_s": _finite_list(angles.t_s, 4),
            "flexion_deg": _finite_list(np.degrees(angles.flexion_rad), 3),
            "valgus_deg": _finite_list(np.degrees(angles.valgus_rad), 3),
            "rotation_deg": _finite_list(np.degrees(angles.rotation_rad), 3),
            "quality_flags": [int(q) for q in angles.quality.tolist()],
        }
    )


def event_payload(event: Event) -> bytes:
    """One landing/cut/rep: ``type``, ``t_s``, the metrics under their own names (units in the names,
    as in events.json), ``control_score``."""
    body = event_to_json(event)
    body.pop("leg_id", None)
    return _dumps({**_head(event.leg_id), **body})


def cue_payload(cue: Cue) -> bytes:
    """One cue: ``latency_s`` is packet receipt -> cue published; ``audio_id`` names /audio/<id>.wav."""
    return _dumps(
        {
            **_head(cue.leg_id),
            "phrase": cue.phrase,
            "rule": cue.rule,
            "priority": cue.priority,
            "source": cue.source,
            "t_s": _finite(cue.t_s, 4),
            "latency_s": _finite(cue.latency_s, 4),
            "audio_id": cue.audio_id,
        }
    )


def leg_status_payloads(health: Mapping[str, Any], t_s: float) -> dict[str, bytes]:
    """Per leg (``athlete/side`` -> payload), the sensors of that leg from a /health document
    (``HealthReporter.report()``): link state, battery, sample rate, packets and loss."""
    legs: dict[str, dict[str, Any]] = {}
    for sensor_id, entry in health.get("sensors", {}).items():
        leg_id = f"{entry['athlete']}/{entry['side']}"
        doc = legs.setdefault(leg_id, {**_head(leg_id), "t_s": round(t_s, 3), "sensors": {}})
        doc["sensors"][sensor_id] = {k: _json_value(entry.get(k)) for k in STATUS_SENSOR_FIELDS}
    for doc in legs.values():
        doc["connected"] = all(s["connected"] for s in doc["sensors"].values())
    return {leg_id: _dumps(doc) for leg_id, doc in legs.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _json_value(value.item())
    return value
