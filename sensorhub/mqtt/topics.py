"""The MQTT topic tree, version 1 (documented in the README, "MQTT"). Every topic is built here.

Results (published by a service, JSON, units in field names):
    {prefix}/{athlete}/{side}/angles        decimated knee angles, QoS 0
    {prefix}/{athlete}/{side}/events        one landing/cut/rep with its metrics, QoS 1
    {prefix}/{athlete}/{side}/cues          one spoken cue, QoS 1
    {prefix}/{athlete}/{side}/status        the leg's sensors (link, battery, rate, loss), QoS 1, retained
    {prefix}/services/{client_id}/status    "online"/"offline" (last will), QoS 1, retained

Scale-out (gateway -> broker -> workers):
    {prefix}/raw/{athlete}/{sensor_id}      one raw sensor packet: RAW_HEADER (host receive time) + bytes
    {prefix}/bundle/{athlete}               the athlete's raw packets of one bundle period (``[mqtt]
                                            raw_bundle_ms``): BUNDLE_VERSION, then per packet
                                            BUNDLE_ENTRY (id length, host time, payload length), id, bytes
    {prefix}/announce/{athlete}             a gateway offers an athlete; workers take it through the
                                            shared subscription $share/{group}/{prefix}/announce/+
    {prefix}/claims/{athlete}               which worker processes the athlete (retained; empty = none)
    {prefix}/workers/{worker_id}/status     "online"/"offline" (last will), retained
    {prefix}/sync/{client_id}               a client's own echo: its retained messages arrived before it

``prefix`` is ``sinks.mqtt.topic_prefix`` (default ``sensorhub/v1``); ids may not contain ``/ + #``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sensorhub.errors import ConfigError

RESULT_KINDS = ("angles", "events", "cues", "status")
# Raw packet payload: little-endian float64 host receive time (s since the epoch), then the packet bytes.
RAW_HEADER = struct.Struct("<d")
# Bundle payload: u8 version, then per packet u8 sensor-id length, f64 host receive time, u16 payload length,
# the sensor id (UTF-8), the packet bytes. A worker refuses a version it does not know (counted, dropped).
BUNDLE_VERSION = 1
BUNDLE_ENTRY = struct.Struct("<BdH")


def check_id(value: str, what: str) -> str:
    """Ids become topic levels: refuse the characters MQTT gives meaning to."""
    if not value or any(c in value for c in "/+#\x00"):
        raise ConfigError(f"{what} {value!r} cannot be an MQTT topic level (empty, or contains / + # NUL)")
    return value


def leg_topic(prefix: str, leg_id: str, kind: str) -> str:
    """``leg_id`` is ``athlete/side`` (SensorRef.leg_id)."""
    if kind not in RESULT_KINDS:
        raise ValueError(f"unknown result kind {kind!r}")
    return f"{prefix}/{leg_id}/{kind}"


def service_status_topic(prefix: str, client_id: str) -> str:
    return f"{prefix}/services/{check_id(client_id, 'client id')}/status"


def raw_topic(prefix: str, athlete: str, sensor_id: str) -> str:
    return f"{prefix}/raw/{athlete}/{sensor_id}"


def raw_filter(prefix: str, athlete: str = "+") -> str:
    return f"{prefix}/raw/{athlete}/+"


def bundle_topic(prefix: str, athlete: str) -> str:
    return f"{prefix}/bundle/{athlete}"


def announce_topic(prefix: str, athlete: str) -> str:
    return f"{prefix}/announce/{athlete}"


def shared_announce_filter(prefix: str, group: str) -> str:
    return f"$share/{check_id(group, 'worker group')}/{prefix}/announce/+"


def claim_topic(prefix: str, athlete: str) -> str:
    return f"{prefix}/claims/{athlete}"


def worker_status_topic(prefix: str, worker_id: str) -> str:
    return f"{prefix}/workers/{check_id(worker_id, 'worker id')}/status"


def claims_filter(prefix: str) -> str:
    return f"{prefix}/claims/+"


def workers_status_filter(prefix: str) -> str:
    return f"{prefix}/workers/+/status"


def sync_topic(prefix: str, client_id: str) -> str:
    return f"{prefix}/sync/{check_id(client_id, 'client id')}"


def parse_level(prefix: str, kind: str, topic: str) -> str | None:
    """The id in ``{prefix}/{kind}/{id}`` (announce, claims) or ``{prefix}/workers/{id}/status``;
    None when ``topic`` is not of that kind."""
    head = f"{prefix}/{kind}/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head) :].split("/")
    if kind == "workers":
        return rest[0] if len(rest) == 2 and rest[0] and rest[1] == "status" else None
    return rest[0] if len(rest) == 1 and rest[0] else None


def parse_raw_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """(athlete, sensor_id) of a raw topic, None when the topic is not one."""
    head = f"{prefix}/raw/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def encode_raw(t_host_s: float, payload: bytes) -> bytes:
    return RAW_HEADER.pack(t_host_s) + payload


def decode_raw(data: bytes) -> tuple[float, bytes]:
    """Raises ValueError on a payload shorter than the header."""
    if len(data) < RAW_HEADER.size:
        raise ValueError(f"raw MQTT payload of {len(data)} B is shorter than its {RAW_HEADER.size} B header")
    (t_host_s,) = RAW_HEADER.unpack_from(data)
    return float(t_host_s), bytes(data[RAW_HEADER.size :])


def encode_bundle(packets: Sequence[tuple[str, float, bytes]]) -> bytes:
    """(sensor_id, t_host_s, payload) in order -> one bundle payload."""
    parts = [bytes((BUNDLE_VERSION,))]
    for sensor_id, t_host_s, payload in packets:
        sid = sensor_id.encode()
        parts += [BUNDLE_ENTRY.pack(len(sid), t_host_s, len(payload)), sid, payload]
    return b"".join(parts)


def decode_bundle(data: bytes) -> list[tuple[str, float, bytes]]:
    """A bundle payload -> (sensor_id, t_host_s, payload) in order. Raises ValueError on an unknown
    version or a payload that does not end where its last entry does (nothing of it is used then)."""
    if not data or data[0] != BUNDLE_VERSION:
        version = data[0] if data else None
        raise ValueError(f"bundle version {version} is not {BUNDLE_VERSION} (a newer gateway?)")
    out: list[tuple[str, float, bytes]] = []
    at, end = 1, len(data)
    while at < end:
        if at + BUNDLE_ENTRY.size > end:
            raise ValueError(f"bundle entry {len(out)} is cut off at byte {at} of {end}")
        n_id, t_host_s, n_payload = BUNDLE_ENTRY.unpack_from(data, at)
        at += BUNDLE_ENTRY.size
        if at + n_id + n_payload > end:
            raise ValueError(f"bundle entry {len(out)} is cut off at byte {at} of {end}")
        try:
            sensor_id = data[at : at + n_id].decode()
        except UnicodeDecodeError as exc:
            raise ValueError(f"bundle entry {len(out)}: sensor id is not UTF-8") from exc
        at += n_id
        out.append((sensor_id, float(t_host_s), bytes(data[at : at + n_payload])))
        at += n_payload
    return out
