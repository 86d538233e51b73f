"""Typed, immutable configuration: TOML file + ``SENSORHUB_*`` environment overrides, validated once.

A wrong key or value fails fast with a :class:`ConfigError` naming the file, the key and what is allowed.
Environment overrides address a key by its path with ``__`` between levels, e.g.
``SENSORHUB_SERVICE__PORT=9000`` or ``SENSORHUB_SINKS__MQTT__ENABLED=true``; the value is read as a TOML
value when it parses as one (numbers, booleans, quoted strings, arrays), otherwise as a plain string.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sensorhub.cues import DEFAULT_RULES, CueRuleSet, parse_rules
from sensorhub.errors import ConfigError
from sensorhub.model import athlete_id_problem, sensor_id_problem

ENV_PREFIX = "SENSORHUB_"
RATES_HZ = (50, 100, 200, 400, 800)
ACC_RANGES_G = (2, 4, 8, 16, 32)
GYR_RANGES_DPS = (125, 250, 500, 1000, 2000, 4000)


def _allowed(*values: object) -> dict[str, object]:
    return {"allowed": values}


def _range(lo: float, hi: float) -> dict[str, object]:
    return {"range": (lo, hi)}


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8765, metadata=_range(0, 65535))
    # Required for any non-loopback bind; generated and printed (once, at start-up) when empty.
    access_token: str = ""
    # Host names the dashboard also answers to (a DNS name, a reverse proxy's name): the bind address,
    # localhost and, on a 0.0.0.0 bind, this machine's name and addresses always are; others get 400.
    allowed_hosts: tuple[str, ...] = ()
    data_dir: str = "~/.local/share/sensorhub"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Also play each cue on this machine's speaker (paplay/aplay); the athlete page plays them anyway.
    cue_audio_on_host: bool = False


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """What every sensor is asked to stream (the START command of the wire protocol)."""

    rate_hz: int = field(default=200, metadata=_allowed(*RATES_HZ))
    acc_range_g: int = field(default=16, metadata=_allowed(*ACC_RANGES_G))
    gyr_range_dps: int = field(default=2000, metadata=_allowed(*GYR_RANGES_DPS))
    samples_per_packet: int = field(default=8, metadata=_range(1, 19))


@dataclass(frozen=True, slots=True)
class SensorConfig:
    id: str
    side: Literal["left", "right"]
    segment: Literal["thigh", "shank"]
    # How to find it over BLE: by address, by advertised name, or both.
    address: str = ""
    name: str = ""
    protocol: Literal["sensorhub-v1", "witmotion", "movella-dot", "metamotion"] = "sensorhub-v1"
    adapter: str = ""


@dataclass(frozen=True, slots=True)
class AthleteConfig:
    id: str
    name: str = ""
    involved_side: Literal["left", "right", "both", "none"] = "none"
    sensors: tuple[SensorConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceConfig:
    kind: Literal["simulator", "ble", "mqtt", "replay"] = "simulator"
    # BLE stack under bleak: the OS stack in production, Bumble for tests and demos.
    transport: Literal["bleak", "bumble"] = "bleak"
    # With transport = "bumble": where the Bumble controller is, e.g. "tcp-client:127.0.0.1:28700"
    # (a `firmware-sim serve-ble` process), "usb:0" (a dongle) or "local:NAME" (in-process link).
    bumble_transport: str = ""
    replay_file: str = ""


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Simulated athletes for ``sensorhub demo`` (firmware_sim behind the real pipeline)."""

    athletes: int = field(default=2, metadata=_range(1, 2000))
    drills: tuple[str, ...] = ("squat", "drop_jump", "step_down", "cut_45")
    fault_rate: float = field(default=0.25, metadata=_range(0.0, 1.0))
    errors: Literal["clean", "realistic"] = "realistic"
    seed: int = 1


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    enabled: bool = True
    dir: str = "recordings"  # relative paths are inside service.data_dir
    # A recording continues in a new part file (replayed in order) past this size or this duration.
    max_file_mb: float = field(default=512.0, metadata=_range(0.01, 1_000_000.0))
    max_file_minutes: float = field(default=60.0, metadata=_range(0.01, 100_000.0))
    # Buffered records are handed to the OS and fsync'd this often (and at close): a crash of the
    # machine loses at most about this much.
    sync_interval_s: float = field(default=1.0, metadata=_range(0.05, 3600.0))


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """``[mqtt]``: the broker every MQTT part uses (result sink, gateway, worker source)."""

    host: str = "127.0.0.1"
    port: int = field(default=1883, metadata=_range(1, 65535))
    username: str = ""
    password: str = field(default="", repr=False)  # never printed (errors: see _SECRET_WORDS)
    # TLS (e.g. port 8883): on with tls = true or any file below. ca_file: the CA that signed the broker's
    # certificate (empty: the system's CAs); cert_file + key_file: this client's certificate, when the
    # broker requires one. tls_insecure = true skips the check of the broker's host name (testing only).
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    tls_insecure: bool = False
    topic_prefix: str = "sensorhub/v1"
    # Client id stem: "<client_id>-sink", "<client_id>-gateway", ...; empty = "sensorhub-<host>-<pid>".
    client_id: str = ""
    keepalive_s: int = field(default=15, metadata=_range(5, 3600))
    # Reconnect backoff: doubles from min to max (jittered) while the broker is away.
    reconnect_min_s: float = field(default=0.5, metadata=_range(0.05, 60.0))
    reconnect_max_s: float = field(default=10.0, metadata=_range(0.1, 600.0))
    # Workers taking athletes from gateways share this MQTT v5 shared-subscription group.
    worker_group: str = "sensorhub-workers"
    # A gateway sends an athlete's raw packets of this many ms as one message (bundle/{athlete}); 0 = one
    # message per packet (raw/{athlete}/{sensor}, for workers older than bundles). Adds at most this latency.
    raw_bundle_ms: float = field(default=20.0, metadata=_range(0.0, 1000.0))


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """``[sinks.mqtt]``: publishing results (angles, events, cues, status) to the ``[mqtt]`` broker."""

    enabled: bool = False
    angles_rate_hz: float = field(default=20.0, metadata=_range(0.0, 1000.0))
    outbox_size: int = field(default=10000, metadata=_range(1, 10_000_000))


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    """``[sinks.influxdb]``: batched writes to ``/api/v2/write`` (InfluxDB 1.8+/2.x/3.x, VictoriaMetrics)."""

    enabled: bool = False
    url: str = "http://127.0.0.1:8086"
    # InfluxDB 2.x/3.x API token; with auth_basic = true, "user:password" sent as HTTP Basic (InfluxDB 1.8,
    # a reverse proxy, VictoriaMetrics -httpAuth.*).
    token: str = ""
    auth_basic: bool = False
    org: str = "sensorhub"
    bucket: str = "sensorhub"
    # Batches that failed to write wait here, written back in order (relative: inside service.data_dir).
    spool_dir: str = "influx-spool"
    # The spool's size limit: past it the oldest spooled points are dropped (counted) for the new ones.
    spool_max_mb: float = field(default=256.0, metadata=_range(0.01, 1_000_000.0))
    # A batch is sent when it holds batch_size points or its oldest point is flush_interval_s old.
    batch_size: int = field(default=5000, metadata=_range(1, 1_000_000))
    flush_interval_s: float = field(default=1.0, metadata=_range(0.01, 600.0))
    # Knee angles are decimated to this rate per leg (0 = no angles); events and cues are all written.
    angles_rate_hz: float = field(default=20.0, metadata=_range(0.0, 1000.0))
    # Per-sensor status points (from the /health report) this often; 0 = none.
    status_interval_s: float = field(default=5.0, metadata=_range(0.0, 3600.0))
    timeout_s: float = field(default=10.0, metadata=_range(0.1, 600.0))
    # Spool write-back retries: backoff doubles from min to max while the server is away.
    retry_min_s: float = field(default=0.5, metadata=_range(0.01, 60.0))
    retry_max_s: float = field(default=30.0, metadata=_range(0.1, 3600.0))


@dataclass(frozen=True, slots=True)
class SinksConfig:
    recorder: RecorderConfig = RecorderConfig()
    mqtt: MqttConfig = MqttConfig()
    influxdb: InfluxConfig = InfluxConfig()


@dataclass(frozen=True, slots=True)
class Config:
    service: ServiceConfig = ServiceConfig()
    stream: StreamConfig = StreamConfig()
    source: SourceConfig = SourceConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    sinks: SinksConfig = SinksConfig()
    mqtt: BrokerConfig = BrokerConfig()
    athletes: tuple[AthleteConfig, ...] = ()
    source_file: str = field(default="<defaults>", metadata={"internal": True})
    # [cues]: validated by the cue rule grammar (sensorhub.cues.rules); the defaults when absent.
    cues: CueRuleSet | None = field(default=None, metadata={"internal": True})

    def validate_references(self) -> None:
        """Cross-field checks that one table alone cannot express."""
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(self.mqtt, key)
            if path and not Path(path).is_file():
                raise ConfigError(f"{self.source_file}: mqtt.{key}: {path!r} is not a file")
        if self.mqtt.key_file and not self.mqtt.cert_file:
            raise ConfigError(
                f"{self.source_file}: mqtt.key_file: needs mqtt.cert_file (this client's certificate)"
            )
        seen: dict[str, str] = {}
        athlete_ids: set[str] = set()
        for i, athlete in enumerate(self.athletes):
            if athlete.id in athlete_ids:
                raise ConfigError(
                    f"{self.source_file}: athletes[{i}].id: duplicate athlete id {athlete.id!r}"
                )
            athlete_ids.add(athlete.id)
            if problem := athlete_id_problem(athlete.id):
                raise ConfigError(f"{self.source_file}: athletes[{i}].id: {problem}")
            slots: set[tuple[str, str]] = set()
            for j, sensor in enumerate(athlete.sensors):
                key = f"athletes[{i}].sensors[{j}]"
                if problem := sensor_id_problem(sensor.id):
                    raise ConfigError(f"{self.source_file}: {key}.id: {problem}")
                if sensor.id in seen:
                    raise ConfigError(
                        f"{self.source_file}: {key}.id: sensor id {sensor.id!r} is already used by "
                        f"{seen[sensor.id]}"
                    )
                seen[sensor.id] = key
                slot = (sensor.side, sensor.segment)
                if slot in slots:
                    raise ConfigError(
                        f"{self.source_file}: {key}: athlete {athlete.id!r} already has a {sensor.side} "
                        f"{sensor.segment} sensor; each leg takes one thigh and one shank sensor"
                    )
                slots.add(slot)
                if self.source.kind == "ble" and not (sensor.address or sensor.name):
                    raise ConfigError(
                        f"{self.source_file}: {key}: a BLE sensor needs `address` or `name` to be found"
                    )


# --------------------------------------------------------------------------------------------------
# Generic table -> dataclass builder with precise error messages


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


# Keys whose values are secrets (access_token, sinks.influxdb.token, [mqtt] password, ...): an error
# about one names the key, never the value (error messages reach terminals, logs and bug reports).
_SECRET_WORDS = ("token", "password", "secret", "passphrase")


def _shown(value: Any, where: str) -> str:
    key = where.rpartition(".")[2].rpartition(" ")[2].lower()
    if any(word in key for word in _SECRET_WORDS):
        return "<redacted>"
    return repr(value)


def _convert(value: Any, tp: Any, where: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {_shown(value, where)}")
        return _build(tp, value, where)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{where}: {_shown(value, where)} is not allowed; allowed: {', '.join(map(repr, allowed))}"
            )
        return value
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_shown(value, where)}")
        return tuple(_convert(v, item_tp, f"{where}[{i}]", {}) for i, v in enumerate(value))
    if origin in (types.UnionType, typing.Union):
        raise ConfigError(f"{where}: unsupported union type in schema")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {_shown(value, where)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {_shown(value, where)}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {_shown(value, where)}")
        value = float(value)
    elif tp is str and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {_shown(value, where)}")
    if "allowed" in meta and value not in meta["allowed"]:
        raise ConfigError(
            f"{where}: {_shown(value, where)} is not allowed; allowed: {', '.join(map(str, meta['allowed']))}"
        )
    if "range" in meta:
        lo, hi = meta["range"]
        if not lo <= value <= hi:
            raise ConfigError(f"{where}: {_shown(value, where)} is out of range; allowed: {lo} to {hi}")
    return value


def _build(cls: type[Any], table: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(fields))}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where and not where.endswith(":") else f"{where} {name}"
        if name in table:
            kwargs[name] = _convert(table[name], hints[name], key, f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required key is missing ({_type_name(hints[name])})")
    return cls(**kwargs)


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(table: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    applied = []
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in ("SENSORHUB_CONFIG",):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if len(path) < 2:
            continue  # single-level names (e.g. SENSORHUB_BROAD_DIR) are not config overrides
        node = table
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment {name}: {part!r} is not a table")
            node = child
        node[path[-1]] = _parse_env_value(raw)
        applied.append(name)
    return applied


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, validate. ``path=None`` gives the embedded defaults."""
    env = os.environ if env is None else env
    if path is None and env.get("SENSORHUB_CONFIG"):
        path = env["SENSORHUB_CONFIG"]
    table: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{source}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    applied = _apply_env(table, env)
    where = f"{source}:" if not applied else f"{source} (with {', '.join(applied)}):"
    cues_table = table.pop("cues", None)
    config: Config = _build(Config, table, where)
    if cues_table is not None and not isinstance(cues_table, dict):
        raise ConfigError(f"{where} cues: expected a table, got {cues_table!r}")
    rules = parse_rules(cues_table, source) if cues_table is not None else parse_rules(DEFAULT_RULES, source)
    config = dataclasses.replace(config, source_file=source, cues=rules)
    config.validate_references()
    return config


def data_dir(config: Config) -> Path:
    return Path(os.path.expanduser(config.service.data_dir))


def history_path(config: Config) -> Path:
    """The embedded history database of a service (and of `analyze --history`, `report`, `battery`)."""
    return data_dir(config) / "history.sqlite3"


def existing_history(db: Path | None, config_path: Path | None) -> Path:
    """``db`` or the configured service's history database; a clear error when there is none."""
    path = Path(db) if db is not None else history_path(load_config(config_path))
    if not path.is_file():
        raise ConfigError(f"{path}: no history database (give --db PATH, or --config with service.data_dir)")
    return path
