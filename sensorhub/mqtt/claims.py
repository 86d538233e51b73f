"""The athlete hand-over between gateways and workers: offer and claim payloads (JSON, version 1).

Mosquitto's shared subscriptions deliver each *message* to one member of the group, not each topic,
so raw packets cannot be shared that way without one athlete's packets reaching several workers. The
gateway therefore offers each athlete once on ``announce/{athlete}`` (through the shared subscription
exactly one worker gets the offer); that worker subscribes to ``raw/{athlete}/+`` and then publishes
its claim on ``claims/{athlete}`` (retained). Only the claim's holder receives the athlete's packets.
An empty retained claim means "nobody": the gateway offers the athlete again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sensorhub.errors import ProtocolError
from sensorhub.model import SensorRef, athlete_id_problem, sensor_id_problem

WORKER_ONLINE = b"online"
WORKER_OFFLINE = b"offline"


# Anyone allowed to publish on the broker can send these (and a claim is retained, so it comes back on
# every reconnect): bounded before parsing. An offer of 4 sensors is about 400 B, 3 levels deep.
MAX_CONTROL_BYTES = 16 * 1024
MAX_CONTROL_DEPTH = 4


def _nesting(data: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text (brackets inside strings skipped), without parsing it:
    the json module recurses per level and raises RecursionError on deep input."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _object(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_CONTROL_BYTES:
        raise ProtocolError(f"{what}: {len(data)} B, more than {MAX_CONTROL_BYTES} B")
    if _nesting(data) > MAX_CONTROL_DEPTH:
        raise ProtocolError(f"{what}: JSON nested deeper than {MAX_CONTROL_DEPTH} levels")
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _text(doc: dict[str, Any], key: str, what: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{what}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _time_s(doc: dict[str, Any], what: str) -> float:
    value = doc.get("t_s")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{what}: 't_s' must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Offer:
    """A gateway offers an athlete: who, with which sensors (placement included), from where, when."""

    athlete: str
    sensors: tuple[SensorRef, ...]
    gateway: str
    t_s: float  # gateway wall clock, s since the epoch

    def encode(self) -> bytes:
        sensors = [
            {"sensor_id": s.sensor_id, "side": str(s.side), "segment": str(s.segment)} for s in self.sensors
        ]
        doc = {"athlete": self.athlete, "sensors": sensors, "gateway": self.gateway, "t_s": self.t_s}
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Offer:
        doc = _object(data, "offer")
        athlete = _text(doc, "athlete", "offer")
        if problem := athlete_id_problem(athlete):
            raise ProtocolError(f"offer: {problem}")
        entries = doc.get("sensors")
        if not isinstance(entries, list) or not entries:
            raise ProtocolError(f"offer of {athlete!r}: 'sensors' must be a non-empty list")
        sensors = []
        for entry in entries:
            try:
                ref = SensorRef.from_meta({**entry, "athlete": athlete})
            except (KeyError, TypeError, ValueError) as exc:
                raise ProtocolError(f"offer of {athlete!r}: bad sensor entry {entry!r} ({exc})") from None
            if problem := sensor_id_problem(ref.sensor_id):
                raise ProtocolError(f"offer of {athlete!r}: {problem}")
            sensors.append(ref)
        return cls(athlete, tuple(sensors), _text(doc, "gateway", "offer"), _time_s(doc, "offer"))

    def mismatch(self, configured: Sequence[SensorRef]) -> str:
        """Why this worker must not take the offer given its configured sensors ("" = it matches)."""
        if not configured:
            return f"athlete {self.athlete!r} is not configured on this worker"
        offered = {(s.sensor_id, s.side, s.segment) for s in self.sensors}
        mine = {(s.sensor_id, s.side, s.segment) for s in configured}
        if offered != mine:
            extra = sorted(f"{i} ({side} {seg})" for i, side, seg in offered - mine)
            missing = sorted(f"{i} ({side} {seg})" for i, side, seg in mine - offered)
            return (
                f"athlete {self.athlete!r}: the gateway's sensors differ from this worker's configuration "
                f"(only offered: {', '.join(extra) or '-'}; only configured: {', '.join(missing) or '-'})"
            )
        return ""


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker processes an athlete (retained on ``claims/{athlete}``; an empty payload = released)."""

    worker: str
    t_s: float

    def encode(self) -> bytes:
        return json.dumps({"worker": self.worker, "t_s": self.t_s}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Claim | None:
        """None for the empty (released) claim."""
        if not data:
            return None
        doc = _object(data, "claim")
        return cls(_text(doc, "worker", "claim"), _time_s(doc, "claim"))
