"""Stage adapters: how the cue stage and the sinks (InfluxDB, MQTT) join a running service.

A sink knows the bus and its own server; what it reads from the service (sessions for tags, /health for
status) and what it reports back (its counters under /health ``sinks``) is wired here, in the
composition root. Each factory returns a ``Stage``: ``await stage(handle)`` until cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sensorhub.config import Config
from sensorhub.rehab import SessionManager
from sensorhub.runtime.handle import ServiceHandle, Stage


def cue_control_stage() -> Stage:
    """Keeps the live cue stage in step with the coach: the drill chosen for a set, each athlete's
    edited thresholds (bus topic ``thresholds``) and mute (``mute``) decide which rules fire, at what
    limits, and whether anything is said."""

    async def follow(handle: ServiceHandle) -> None:
        cues = handle.runner.cues
        if cues is None:
            return

        def follow_drill(kind: str, athlete: str, fields: dict[str, Any]) -> None:
            if kind == "state" and fields.get("drill"):
                cues.set_drill(athlete, str(fields["drill"]))

        handle.sessions.add_listener(follow_drill)
        for athlete, values in handle.sessions.all_thresholds().items():
            cues.set_thresholds(athlete, values)
        for athlete, rules in handle.sessions.all_rules().items():
            cues.engine.set_rules(athlete, rules)  # a rehab plan's phase brings its own rules
        sub = handle.bus.subscribe(["thresholds", "mute", "plan"], maxsize=1000)
        try:
            async for message in sub:
                if message.topic == "mute":
                    cues.mute(message.key, bool(message.payload["muted"]))
                elif message.topic == "plan":
                    cues.engine.set_rules(message.key, message.payload["rules"])
                else:
                    cues.set_thresholds(message.key, dict(message.payload["values"]))
        finally:
            sub.close()

    return follow


def session_tags(sessions: SessionManager) -> Callable[[str], Mapping[str, str]]:
    """drill and session of the athlete's running set; none between sets."""

    def tags(athlete: str) -> Mapping[str, str]:
        s = sessions.athletes.get(athlete)
        if s is None or s.set_id is None:
            return {}
        return {"drill": s.drill, "session": s.session_id}

    return tags


async def influx_stage(config: Config) -> Stage:
    """Start the InfluxDB sink (spool opened, server checked) before the service starts anything else:
    an unreachable URL, a wrong scheme or refused credentials stop start-up with a SinkError. The stage
    writes bus -> InfluxDB with the sessions' tags and /health's sensor status, reports its counters
    under /health ``sinks.influxdb`` and closes the sink when it ends."""
    from sensorhub.sinks import InfluxSink, spool_path

    sink = InfluxSink(config.sinks.influxdb, spool_path(config))
    try:
        await sink.start()
    except BaseException:
        await sink.close()
        raise

    async def influx_sink(handle: ServiceHandle) -> None:
        handle.sink_stats["influxdb"] = sink.stats_dict
        try:
            await sink.run(handle.bus, tags=session_tags(handle.sessions), status=handle.health.report)
        finally:
            await sink.close()

    return influx_sink


def mqtt_stage(config: Config) -> Stage:
    """The MQTT result sink: bus -> broker with /health's leg status; counters under /health
    ``sinks.mqtt``."""
    from sensorhub.mqtt import MqttSink

    sink = MqttSink(config)

    async def mqtt_sink(handle: ServiceHandle) -> None:
        handle.sink_stats["mqtt"] = sink.counters
        await sink.run(handle.bus, handle.health.report)

    return mqtt_sink
