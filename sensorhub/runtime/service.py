"""Composition root of a live service: config -> source -> LiveRunner -> bus -> sinks and web app.

One TaskGroup owns every task. Shutdown runs in a fixed order when ``stop`` is set (Ctrl-C in
``sensorhub demo``): close the dashboard streams and stop accepting connections, stop the source and
let the runner process what was received, stop the bus consumers, then flush the history store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from sensorhub.bus import Bus
from sensorhub.config import Config, data_dir, history_path
from sensorhub.cues import CueAudio, CueEngine
from sensorhub.errors import SensorhubError
from sensorhub.history import HistoryStore
from sensorhub.model import SensorRef
from sensorhub.recording import RecordingWriter, recording_meta
from sensorhub.rehab import SessionManager, program_phrases, saved_plans
from sensorhub.runtime.cueing import CueStage, HostPlayer
from sensorhub.runtime.handle import ServiceHandle, Stage
from sensorhub.runtime.health import HealthReporter, MeasuredPipeline, ServiceState
from sensorhub.runtime.live import LiveRunner
from sensorhub.runtime.record import new_recording_path
from sensorhub.runtime.stages import cue_control_stage, influx_stage, mqtt_stage
from sensorhub.runtime.warmup import warmup
from sensorhub.sinks import BackgroundRecorder
from sensorhub.sources import PacketSource
from sensorhub.web import WS_MAX_CLIENT_MESSAGE_BYTES, AccessPolicy, Hub, WebContext, create_app
from sensorhub.web.hosts import allowed_hosts, link_host

log = logging.getLogger(__name__)

SERVER_STOP_TIMEOUT_S = 3.0
RUNNER_STOP_TIMEOUT_S = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service decides when to stop (ordered shutdown)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _athlete_names(config: Config, sensor_refs: Sequence[SensorRef]) -> list[tuple[str, str]]:
    names = {a.id: a.name for a in config.athletes}
    seen: list[str] = []
    for ref in sensor_refs:
        if ref.athlete not in seen:
            seen.append(ref.athlete)
    return [(a, names.get(a, "")) for a in seen]


async def serve(
    config: Config,
    source: PacketSource,
    sensor_refs: Sequence[SensorRef],
    *,
    host: str | None = None,
    port: int | None = None,
    store_path: Path | None = None,
    drills: Sequence[str] | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[ServiceHandle], None] | None = None,
    stages: Sequence[Stage] = (),
    cues: bool = True,
) -> ServiceHandle:
    """Run until ``stop`` is set (or the source ends and ``stop`` is None), then shut down in order.
    ``cues``: run the cue stage right after the pipeline (events and live phases -> cues)."""
    if cues:
        stages = [cue_control_stage(), *stages]
    if config.sinks.influxdb.enabled:
        # Checked before anything starts: an unreachable server or a bad token is a SinkError here.
        stages = [*stages, await influx_stage(config)]
    if config.sinks.mqtt.enabled:
        stages = [*stages, mqtt_stage(config)]
    # Compile (or load from numba's cache) every kernel before anything listens or the first packet
    # arrives: a broken install fails here, before the URLs are printed, and the loop never waits on JIT.
    await asyncio.to_thread(warmup)
    host = host if host is not None else config.service.host
    port = port if port is not None else config.service.port
    policy = AccessPolicy.for_bind(host, config.service.access_token)
    bus = Bus()
    # Each configured sensor is decoded with its protocol's decoder (others: the own profile's).
    protocols = {s.id: s.protocol for a in config.athletes for s in a.sensors}
    pipeline = MeasuredPipeline(sensor_refs, protocols=protocols)
    audio = CueAudio()
    cue_stage = await _cue_stage(config, bus, audio) if cues and config.cues is not None else None
    recorder = _recorder(config, sensor_refs) if config.sinks.recorder.enabled else None
    runner = LiveRunner(source, pipeline, bus, recorder=recorder, cues=cue_stage)
    store: HistoryStore | None = None
    path = store_path if store_path is not None else history_path(config)
    store = await asyncio.to_thread(HistoryStore(path).open)
    athletes = _athlete_names(config, sensor_refs)
    saved = {a: await asyncio.to_thread(store.thresholds, a) for a, _ in athletes}
    plans = await asyncio.to_thread(saved_plans, store, [a for a, _ in athletes])
    sessions = SessionManager(
        bus, store, athletes, drills if drills is not None else config.simulator.drills, saved, plans=plans
    )

    hub_ref: list[Hub] = []
    health = HealthReporter(
        pipeline,
        links=source.links,
        live=lambda: runner.stats,
        extra=lambda: {
            "clients": len(hub_ref[0].clients),
            "dropped_frames": hub_ref[0].dropped_frames(),
            "queue": {"packets": len(runner.queue), "dropped": runner.queue.dropped,
                      "offload_rows": runner.offload.pending_rows if runner.offload else 0,
                      "offload_waits": runner.stats.offload_waits},
            "bus_published": bus.published,
            "sinks": {name: stats() for name, stats in handle.sink_stats.items()},
            # A source's own counters when it keeps any (the MQTT worker: claims held, malformed, refused).
            "source": getattr(source, "diagnostics", dict)(),
        },
    )
    hub = Hub(bus, health=health.report)
    hub_ref.append(hub)
    sessions.add_listener(hub.on_session)
    handle = ServiceHandle(
        bus,
        runner,
        pipeline,
        hub,
        sessions,
        health,
        policy,
        store,
        host,
        loop=asyncio.get_running_loop(),
    )
    # Name lookups (this machine's name and addresses on a wildcard bind) block: off the loop.
    hosts = await asyncio.to_thread(allowed_hosts, host, config.service.allowed_hosts)
    handle.link_host = await asyncio.to_thread(link_host, host)
    app = create_app(WebContext(hub, sessions, health.report, policy, store, audio), hosts)
    server = _web_server(app, host, port)
    handle.sink_stats["history"] = store.status
    if recorder is not None:
        handle.sink_stats["recorder"] = recorder.status
    try:
        await _run_in_order(handle, server, stages, stop if stop is not None else asyncio.Event(), on_ready)
    finally:
        # 4: history - the session consumer has drained its mailbox (step 3); open sets and sessions end
        # with the service; everything queued is committed (or the loss is raised) before we return.
        health.state = ServiceState.STOPPED
        try:
            sessions.close_all()
            await asyncio.to_thread(store.close)
        finally:
            if recorder is not None:
                await asyncio.to_thread(recorder.close)
    return handle


async def _cue_stage(config: Config, bus: Bus, audio: CueAudio) -> CueStage:
    """The live cue stage, with every phrase rendered once before the first packet (espeak-ng can take
    ~100 ms a phrase): the configured ones and those of the rehab programs, whose phases bring their own
    rules."""
    assert config.cues is not None
    phrases = sorted({*config.cues.phrases, *await asyncio.to_thread(program_phrases)})
    await asyncio.to_thread(audio.render_all, phrases)
    player = HostPlayer(audio, phrases) if config.service.cue_audio_on_host else None
    return CueStage(bus, CueEngine(config.cues), play_on_host=player)


def _recorder(config: Config, sensor_refs: Sequence[SensorRef]) -> BackgroundRecorder:
    """Raw packets to disk, replayable bit-exactly; the metadata says which sensor sits where. Synced
    every ``sync_interval_s``, continued in a new part past ``max_file_mb`` or ``max_file_minutes``."""
    cfg = config.sinks.recorder
    rec_dir = data_dir(config) / cfg.dir
    meta = recording_meta(sensor_refs, {}, {"source": "sensorhub service"})
    return BackgroundRecorder(
        RecordingWriter(new_recording_path(rec_dir), meta, fsync_on_flush=True),
        cfg.sync_interval_s,
        max_bytes=round(cfg.max_file_mb * 1024 * 1024),
        max_s=60.0 * cfg.max_file_minutes,
    )


def _web_server(app: Starlette, host: str, port: int) -> _Server:
    return _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws_ping_interval=20.0,
            # Each frame is encoded once for every client; per-connection deflate would compress it
            # again per client (the dominant cost with 50 dashboards) for small JSON on a local network.
            ws_per_message_deflate=False,
            # Clients send only pings: anything bigger is refused by the protocol layer (close 1009).
            ws_max_size=WS_MAX_CLIENT_MESSAGE_BYTES,
            timeout_graceful_shutdown=int(SERVER_STOP_TIMEOUT_S),
        )
    )


async def _run_in_order(
    handle: ServiceHandle,
    server: _Server,
    stages: Sequence[Stage],
    stop: asyncio.Event,
    on_ready: Callable[[ServiceHandle], None] | None,
) -> None:
    """Every task of the service in one TaskGroup until ``stop`` (or the source's end), then the ordered
    shutdown's first three steps; the caller flushes the history (step 4) whatever happens."""
    hub, sessions, runner, health = handle.hub, handle.sessions, handle.runner, handle.health
    async with asyncio.TaskGroup() as tg:
        consumers = [
            tg.create_task(hub.run(), name="hub"),
            tg.create_task(sessions.run(), name="sessions"),
        ]
        server_task = tg.create_task(server.serve(), name="web")
        while not server.started:
            if server_task.done():
                break  # the bind failed: the TaskGroup raises its error
            await asyncio.sleep(0.01)
        else:
            sockets = server.servers[0].sockets if server.servers else []
            if sockets and sockets[0].family in (socket.AF_INET, socket.AF_INET6):
                handle.port = int(sockets[0].getsockname()[1])
        runner_task = tg.create_task(runner.run(), name="live")
        extra = [
            tg.create_task(stage(handle), name=getattr(stage, "__name__", "stage")) for stage in stages
        ]
        health.state = ServiceState.RUNNING
        if on_ready is not None:
            on_ready(handle)
        stop_task = tg.create_task(stop.wait(), name="stop")
        await asyncio.wait({stop_task, runner_task}, return_when=asyncio.FIRST_COMPLETED)

        # Ordered shutdown. 1: dashboards - close streams, stop accepting, drain connections.
        health.state = ServiceState.STOPPING
        for channel in list(hub.clients):
            channel.close()
        server.should_exit = True
        await asyncio.wait({server_task}, timeout=SERVER_STOP_TIMEOUT_S + 1.0)
        server.force_exit = True
        # 2: source and pipeline - the runner processes what was received, then flushes its tail.
        runner_task.cancel()
        await asyncio.wait({runner_task}, timeout=RUNNER_STOP_TIMEOUT_S)
        # 3: bus consumers and extra stages.
        for task in (*extra, *consumers, stop_task):
            task.cancel()


@contextlib.contextmanager
def serve_in_thread(
    config: Config,
    make: Callable[[], tuple[PacketSource, list[SensorRef], list[Stage]]],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    store_path: Path | None = None,
    timeout_s: float = 60.0,
) -> Iterator[ServiceHandle]:
    """``serve`` on its own event loop in a thread (tests, notebooks); stopped in order on exit.
    ``make`` builds the source inside that loop's thread and returns it, its sensors and extra stages."""
    ready: queue.Queue[ServiceHandle | BaseException] = queue.Queue()
    stops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        stop = asyncio.Event()
        stops.append((asyncio.get_running_loop(), stop))
        source, sensors, stages = make()
        await serve(
            config,
            source,
            sensors,
            host=host,
            port=port,
            store_path=store_path,
            stop=stop,
            on_ready=ready.put,
            stages=stages,
        )

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the waiting caller, which re-raises it
            ready.put(exc)

    thread = threading.Thread(target=target, name="sensorhub-service", daemon=True)
    thread.start()
    first = ready.get(timeout=timeout_s)
    if isinstance(first, BaseException):
        raise first
    try:
        yield first
    finally:
        loop, stop = stops[0]
        if not loop.is_closed():  # closed: the service already ended (its error was raised to the caller)
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout_s)
        if thread.is_alive():
            raise SensorhubError(f"the service did not stop within {timeout_s} s")
