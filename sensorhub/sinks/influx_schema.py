"""What the InfluxDB sink writes: the measurement/tag/field table ``SCHEMA`` and the conversions of bus
messages (knee angles, events, cues, /health sensor status) into line protocol.

Timestamps are the DATA time (``t_s``, epoch seconds) in nanoseconds, except ``sensor_status`` (the host
clock of the report). Field types are fixed by the schema (InfluxDB keeps one type per field forever);
a missing or non-finite value leaves its field out of the point, never a NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from influxdb_client import Point, WritePrecision

from sensorhub.conventions import CUT_KEYS, LANDING_KEYS, REP_KEYS, REP_TIME_KEYS
from sensorhub.model import Event, KneeAngles
from sensorhub.sinks import _kernels

# --------------------------------------------------------------------------------------------------
# Schema: the one table of what is written (README, Grafana test)


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    tags: tuple[str, ...]
    fields: Mapping[str, str]  # field -> line-protocol type: float | int | bool | str
    time: str  # what the point's timestamp is
    what: str


DATA_TAGS = ("athlete", "leg", "drill", "session")
# measured_metrics (how many of the event's metrics are finite) is always set: a point with no field
# cannot be written, and an event none of whose metrics could be measured still happened
_CONTROL = {"control_score": "float", "measured_metrics": "int"}


def _floats(*names: str) -> dict[str, str]:
    return {n: "float" for n in names}


SCHEMA: Mapping[str, Measurement] = {
    m.name: m
    for m in (
        Measurement(
            "knee_angles",
            DATA_TAGS,
            {**_floats("flexion_deg", "valgus_deg", "rotation_deg"), "quality": "int"},
            "sample time (data), decimated to angles_rate_hz per leg",
            "knee angles of one leg (Grood & Suntay, degrees); quality = sensorhub.kinematics flags",
        ),
        Measurement(
            "landing",
            DATA_TAGS,
            {**_floats(*LANDING_KEYS), **_CONTROL},
            "initial contact",
            "one point per landing: its metrics and control_score (0-100)",
        ),
        Measurement(
            "cut",
            DATA_TAGS,
            {**_floats(*CUT_KEYS), **_CONTROL},
            "foot plant",
            "one point per cut: its metrics and control_score",
        ),
        Measurement(
            "rep",
            DATA_TAGS,
            {**_floats(*REP_KEYS, *REP_TIME_KEYS), **_CONTROL},
            "start of descent",
            "one point per rep (squat, step-down, lunge): metrics, bottom and end times (epoch s)",
        ),
        Measurement(
            "cue",
            (*DATA_TAGS, "rule"),
            {"phrase": "str", "priority": "int", "value": "float", "latency_s": "float"},
            "data time of the observation that triggered it",
            "one point per cue spoken; value = the rule's first metric; latency_s = packet -> cue",
        ),
        Measurement(
            "sensor_status",
            ("athlete", "leg", "segment", "sensor"),
            {
                "state": "str",
                "connected": "bool",
                "battery_pct": "float",
                "rate_hz": "float",
                "packets": "int",
                "samples": "int",
                "lost": "int",
                "loss_pct": "float",
                "malformed": "int",
                "clipped": "int",
                "clock_drift_ppm": "float",
                "latency_p50_ms": "float",
                "latency_p99_ms": "float",
            },
            "host wall clock of the report (every status_interval_s)",
            "per-sensor link and data health, as on /health (counters are totals since start)",
        ),
    )
}


# --------------------------------------------------------------------------------------------------
# Messages -> line protocol


def _ns(t_s: float) -> int:
    return round(t_s * 1e9)


def _typed(kind: str, value: Any) -> Any:
    """A field value of the schema's type, or None when missing/NaN (then the field is left out: a field
    keeps one type forever in InfluxDB, so ints stay ints even when Python hands a float)."""
    if value is None:
        return None
    if kind == "str":
        return str(value).replace("\n", " ")  # one point per line: the spool splits on newlines
    if kind == "bool":
        return bool(value)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return round(number) if kind == "int" else number


def point_line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any], t_ns: int) -> str | None:
    """One line of line protocol with the schema's tags and typed fields; None when no field is set."""
    m = SCHEMA[measurement]
    p = Point(measurement)
    for tag in m.tags:
        value = tags.get(tag, "")
        if value:
            p.tag(tag, value)
    n = 0
    for name, kind in m.fields.items():
        value = _typed(kind, fields.get(name))
        if value is not None:
            p.field(name, value)
            n += 1
    if n == 0:
        return None
    p.time(t_ns, WritePrecision.NS)
    return str(p.to_line_protocol())


TagSource = Callable[[str], Mapping[str, str]]  # athlete -> {"drill": ..., "session": ...}


def leg_tags(leg_id: str, extra: TagSource | None) -> dict[str, str]:
    athlete, _, side = leg_id.rpartition("/")
    tags = {"athlete": athlete or leg_id, "leg": side if athlete else ""}
    if extra is not None:
        tags.update(extra(tags["athlete"]))
    return tags


def angle_point_line(angles: KneeAngles, i: int, tags: Mapping[str, str]) -> str | None:
    """Row ``i`` of a knee-angle block as one point (the reference ``knee_angle_lines`` matches)."""
    return point_line(
        "knee_angles",
        tags,
        {
            "flexion_deg": math.degrees(angles.flexion_rad[i]),
            "valgus_deg": math.degrees(angles.valgus_rad[i]),
            "rotation_deg": math.degrees(angles.rotation_rad[i]),
            "quality": int(angles.quality[i]),
        },
        _ns(float(angles.t_s[i])),
    )


@dataclass(frozen=True, slots=True)
class Lines:
    """Newline-terminated line protocol and the end offset of each line in it."""

    body: bytes | memoryview
    ends: np.ndarray  # int64, one per line

    def __len__(self) -> int:
        return int(self.ends.shape[0])


AngleBlock = tuple[KneeAngles, np.ndarray, Mapping[str, str]]  # angles, rows kept, tags


class KneeAngleLines:
    """Knee-angle blocks -> line protocol in one numba call over all their kept rows, byte for byte what
    ``angle_point_line`` writes row by row; the rows the kernel leaves undone (a value Python would write
    in exponent form, a non-finite timestamp) are written by ``angle_point_line`` itself."""

    _MAX_PREFIXES = 4096

    def __init__(self) -> None:
        self._prefixes: dict[tuple[tuple[str, str], ...], bytes] = {}

    def prefix(self, tags: Mapping[str, str]) -> bytes:
        """``knee_angles,<tags> `` exactly as ``point_line`` writes it (its escaping, its tag order)."""
        key = tuple(tags.items())
        found = self._prefixes.get(key)
        if found is None:
            line = point_line("knee_angles", tags, {"quality": 0}, 0)
            assert line is not None and line.endswith(_PROBE_FIELDS)
            found = line[: -len(_PROBE_FIELDS)].encode()
            if len(self._prefixes) >= self._MAX_PREFIXES:
                self._prefixes.clear()
            self._prefixes[key] = found
        return found

    def __call__(self, blocks: Sequence[AngleBlock]) -> Lines:
        prefixes = [self.prefix(tags) for _, _, tags in blocks]
        counts = np.array([keep.shape[0] for _, keep, _ in blocks], dtype=np.int64)
        n = int(counts.sum())
        if n == 0:
            return Lines(b"", np.zeros(0, dtype=np.int64))
        row_block = np.repeat(np.arange(len(blocks), dtype=np.int64), counts)
        prefix_ends = np.cumsum([len(p) for p in prefixes], dtype=np.int64)
        buf = np.empty(int(counts @ (prefix_ends - np.r_[0, prefix_ends[:-1]])) + n * _kernels.ROW_BYTES,
                       dtype=np.uint8)
        ends = np.empty(n, dtype=np.int64)
        undone = _kernels.knee_angle_rows(
            np.frombuffer(b"".join(prefixes), dtype=np.uint8),
            prefix_ends,
            row_block,
            *(np.concatenate([getattr(a, name)[keep] for a, keep, _ in blocks]).astype(np.float64, copy=False)
              for name in ("t_s", "flexion_rad", "valgus_rad", "rotation_rad")),
            np.concatenate([a.quality[keep] for a, keep, _ in blocks]).astype(np.int64),
            buf,
            ends,
        )
        if undone:
            return self._with_undone_rows(blocks, buf, ends)
        return Lines(buf.data[: ends[-1]], ends)  # a view: the batch's join is the one copy

    @staticmethod
    def _with_undone_rows(blocks: Sequence[AngleBlock], buf: np.ndarray, ends: np.ndarray) -> Lines:
        lines: list[bytes] = []
        start = 0
        rows = ((angles, int(i), tags) for angles, keep, tags in blocks for i in keep)
        for end, (angles, i, tags) in zip(ends.tolist(), rows, strict=True):
            if end > start:
                lines.append(buf[start:end].tobytes())
            else:
                line = angle_point_line(angles, i, tags)
                if line is not None:
                    lines.append(line.encode() + b"\n")
            start = end
        return Lines(b"".join(lines), np.cumsum([len(line) for line in lines], dtype=np.int64))


_PROBE_FIELDS = "quality=0i 0"


def event_line(event: Event, tags: Mapping[str, str]) -> str | None:
    if event.type not in SCHEMA:
        return None
    measured = sum(1 for v in event.metrics.values() if isinstance(v, int | float) and math.isfinite(v))
    fields: dict[str, Any] = {**event.metrics, "control_score": event.control_score,
                              "measured_metrics": measured}
    return point_line(event.type, tags, fields, _ns(event.t_s))


def cue_line(payload: Any, extra: TagSource | None) -> str | None:
    raw = asdict(payload) if hasattr(payload, "__dataclass_fields__") else dict(payload)
    leg_id = str(raw.get("leg_id", raw.get("leg", "")))
    tags = leg_tags(leg_id, extra)
    tags["rule"] = str(raw.get("rule", ""))
    t_s = raw.get("t_s")
    if not isinstance(t_s, int | float):
        return None
    return point_line("cue", tags, raw, _ns(float(t_s)))


def status_lines(report: Mapping[str, Any], now_s: float) -> list[str]:
    out = []
    for sensor_id, st in dict(report.get("sensors", {})).items():
        latency = st.get("latency_ms") or {}
        fields = {**st, "latency_p50_ms": latency.get("p50_ms"), "latency_p99_ms": latency.get("p99_ms")}
        tags = {
            "athlete": str(st.get("athlete", "")),
            "leg": str(st.get("side", "")),
            "segment": str(st.get("segment", "")),
            "sensor": str(sensor_id),
        }
        line = point_line("sensor_status", tags, fields, _ns(now_s))
        if line is not None:
            out.append(line)
    return out


def warm_up() -> None:
    """Compile (or load from numba's cache) the knee-angle kernel before the first live sample."""
    one = np.zeros(1)
    angles = KneeAngles("warm/up", one + 1.0, one, one, one, np.zeros(1, np.uint8))
    KneeAngleLines()([(angles, np.arange(1), {})])
