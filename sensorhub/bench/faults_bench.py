"""``sensorhub bench faults``: faults injected while simulated athletes stream through the whole service
(recorder, history, InfluxDB and MQTT sinks on), and what each fault lost.

Each fault gets a fresh service (``serve``, as ``sensorhub demo`` runs it), a fresh Mosquitto and
VictoriaMetrics on free loopback ports and a fresh data_dir, so its accounting is its own. The bench runs
as one of the service's stages: it waits for the live stream, injects the fault, lets the service recover,
waits for the sinks to settle, then stops the service (ordered shutdown). Then it compares:

- packets: what the simulator sent (counted at the source's queue) with what the runner processed and the
  recording holds;
- events and cues: what the pipeline published on the bus with the history store's rows, the messages an
  MQTT subscriber received and the points on the InfluxDB server (matched one by one).

"serving" is a ``/health`` poll every 0.2 s throughout (failures and the longest gap between answers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import random
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sensorhub.bench.fault_fuzz import (
    PACKET_KINDS,
    FuzzCounts,
    fuzz_http,
    fuzz_packets,
    fuzz_ws,
    inject_packets,
)
from sensorhub.bench.fault_ledger import (
    Key,
    MqttCounter,
    Published,
    Row,
    TapQueue,
    history_rows,
    influx_points,
    poll_health,
    recorded_packets,
    unmatched,
)
from sensorhub.bench.services import Mosquitto, VictoriaMetrics
from sensorhub.bench.tcp_proxy import TcpProxy
from sensorhub.config import BrokerConfig, Config, InfluxConfig, MqttConfig, SinksConfig, load_config
from sensorhub.demo.command import auto_sets
from sensorhub.demo.simulator import SimulatorSource
from sensorhub.errors import SensorhubError
from sensorhub.runtime import ServiceHandle, Stage, serve
from sensorhub.sinks import SCHEMA
from sensorhub.sinks.recorder import RESUME_EVERY_S
from sensorhub.sources import LinkState, PacketQueue

FAULTS = (
    "link_drop",
    "influx_down",
    "broker_kill",
    "silent_drop",
    "fuzz",
    "process",
    "worker_kill",
    "disk_full",
)  # process: SIGTERM, SIGKILL of the service; worker_kill: SIGKILL of an MQTT worker (team deployment)
PROCESS_FAULTS = ("process", "worker_kill")
HEALTH_PERIOD_S = 0.2
SETTLE_TIMEOUT_S = 120.0
DISK_MB = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--athletes", type=int, default=8, help="simulated athletes (2 legs, 4 sensors each)")
    parser.add_argument("--quick", action="store_true", help="short drills around each fault (tests)")
    parser.add_argument("--only", choices=FAULTS, action="append", help="run only this fault (repeatable)")
    parser.add_argument("--link-down-s", type=float, default=2.0, help="sensor link drop duration")
    parser.add_argument("--influx-down-s", type=float, default=60.0, help="InfluxDB outage duration")
    parser.add_argument("--broker-down-s", type=float, default=5.0, help="Mosquitto outage duration")
    parser.add_argument(
        "--keepalive-s", type=int, default=15, help="the service's MQTT keepalive (silent_drop)"
    )
    parser.add_argument("--fuzz-packets", type=int, default=100_000, help="fuzzed packets into the queue")
    parser.add_argument(
        "--fuzz-web", type=int, default=300, help="malformed websocket messages and HTTP bodies"
    )
    parser.add_argument("--disk-full-s", type=float, default=10.0, help="how long data_dir stays full")
    parser.add_argument("--seed", type=int, default=1, help="fuzz seed")
    parser.add_argument(
        "--fuzz-skip", choices=PACKET_KINDS, action="append", default=[], help="leave out this packet kind"
    )


# ---- one fault ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Context:
    """What an injector may act on."""

    handle: ServiceHandle
    source: SimulatorSource
    tap: TapQueue
    broker: Mosquitto
    influx: VictoriaMetrics
    mqtt: MqttCounter
    row: Row
    args: argparse.Namespace
    # Bus events/cues published in this monotonic window may be lost on MQTT (the broker was away).
    mqtt_window: tuple[float, float] | None = None
    fuzz: FuzzCounts | None = None
    proxy: TcpProxy | None = None  # between the service's MQTT sink and the broker (silent_drop)
    data_dir: str = ""
    full_window: tuple[float, float] | None = None  # when data_dir was full (monotonic)


class _TappedSource(SimulatorSource):
    """The demo's simulator source, its packets passing through the bench's tap."""

    tap: TapQueue | None = None

    async def run(self, out: PacketQueue) -> None:
        self.tap = TapQueue(out)
        await super().run(self.tap)


async def _link_drop(ctx: Context) -> None:
    sensor = ctx.source.sensors[0].sensor_id
    assert ctx.tap is not None
    link = ctx.source.links()[sensor]
    ctx.tap.drop_sensors = frozenset({sensor})
    link.set_state(LinkState.LOST)
    await asyncio.sleep(ctx.args.link_down_s)
    ctx.tap.drop_sensors = frozenset()
    link.set_state(LinkState.STREAMING)
    ctx.row.injected = f"{sensor} silent {ctx.args.link_down_s:g} s"
    ctx.row.allowed["packets recorded"] = ctx.tap.dropped_by_fault
    ctx.row.counters["packets dropped by the link"] = ctx.tap.dropped_by_fault


async def _influx_down(ctx: Context) -> None:
    await asyncio.to_thread(ctx.influx.stop)
    await asyncio.sleep(ctx.args.influx_down_s)
    await asyncio.to_thread(ctx.influx.start)
    ctx.row.injected = f"VictoriaMetrics stopped {ctx.args.influx_down_s:g} s"


async def _broker_kill(ctx: Context) -> None:
    t0 = time.monotonic()
    await asyncio.to_thread(_kill, ctx.broker)
    await asyncio.sleep(ctx.args.broker_down_s)
    await asyncio.to_thread(ctx.broker.start)
    await asyncio.wait_for(ctx.mqtt.subscribed.wait(), 30.0)
    # Sent while the broker was away, or after it returned but before the counter resubscribed:
    # the broker keeps no state across a restart (persistence off), so these may be lost.
    ctx.mqtt_window = (t0, time.monotonic())
    ctx.row.injected = f"Mosquitto SIGKILLed, restarted after {ctx.args.broker_down_s:g} s"


async def _silent_drop(ctx: Context) -> None:
    """The sink's TCP connection to the broker goes silent (no FIN/RST). The client must notice within its
    keepalive -- by the first publish left without PUBACK for ``PUBLISH_TIMEOUT_S`` (the sink always has
    something to send), else by paho's keepalive (a ping after ``keepalive_s`` of silence, given up after
    another ``keepalive_s``) -- then reconnect and re-send what was not acknowledged."""
    assert ctx.proxy is not None
    stats = ctx.handle.sink_stats["mqtt"]
    keepalive_s = ctx.args.keepalive_s
    lost_before = stats()["connection_lost"]
    t0 = time.monotonic()
    flows = ctx.proxy.blackhole()
    bound_s = keepalive_s + 1.0  # + the 1 s period of aiomqtt's housekeeping (paho's checks)
    deadline = t0 + 4 * bound_s + 10.0
    detected_s = reconnected_s = math.nan
    while time.monotonic() < deadline:
        now_stats = stats()
        if math.isnan(detected_s) and now_stats["connection_lost"] > lost_before:
            detected_s = time.monotonic() - t0
        if not math.isnan(detected_s) and now_stats["connected"]:
            reconnected_s = time.monotonic() - t0
            break
        await asyncio.sleep(0.1)
    ctx.row.injected = (
        f"the sink's broker connection ({flows} TCP flow) silently dropped (no FIN/RST), "
        f"keepalive {keepalive_s} s"
    )
    ctx.row.lost[f"not detected within {bound_s:g} s"] = (int(not detected_s <= bound_s), 1)
    ctx.row.lost["not reconnected"] = (int(math.isnan(reconnected_s)), 1)
    ctx.row.notes.append(
        f"silent drop detected after {detected_s:.1f} s, reconnected after {reconnected_s:.1f} s"
    )


async def _fuzz(ctx: Context) -> None:
    rng = random.Random(ctx.args.seed)
    athlete = ctx.source.sensors[0].athlete
    victim = [s.sensor_id for s in ctx.source.sensors if s.athlete == athlete]
    counts = ctx.fuzz = FuzzCounts()
    kinds = [k for k in PACKET_KINDS if k not in ctx.args.fuzz_skip]
    packets = fuzz_packets(rng, list(ctx.tap.recent), victim, ctx.args.fuzz_packets, counts, kinds)
    base = ctx.handle.base_url
    await asyncio.gather(
        inject_packets(ctx.handle.runner.queue, packets),
        fuzz_http(base, [athlete, "nobody"], ctx.args.fuzz_web, rng, counts),
        fuzz_ws(base, athlete, ctx.args.fuzz_web, rng, counts),
    )
    ctx.row.injected = (
        f"{sum(counts.packets.values())} packets ({athlete}'s sensors, unknown ids), "
        f"{counts.ws_sent} ws messages, {sum(counts.http_status.values())} HTTP bodies"
    )


async def _disk_full(ctx: Context) -> None:
    """Fill data_dir (a small tmpfs) to the last byte, hold, then free it."""
    filler = Path(ctx.data_dir) / "filler"
    t0 = time.monotonic()
    ctx.row.counters["packets sent before the disk filled"] = ctx.tap.sent
    await asyncio.to_thread(_fill, filler)
    await asyncio.sleep(ctx.args.disk_full_s)
    filler.unlink()
    ctx.row.counters["packets sent when the disk was freed"] = ctx.tap.sent
    ctx.full_window = (t0, time.monotonic() + 1.0)  # + the history writer's next attempt
    ctx.row.injected = f"data_dir (tmpfs {DISK_MB} MiB) full for {ctx.args.disk_full_s:g} s, then freed"


def _fill(path: Path) -> None:
    chunk = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError:
                chunk = chunk[: len(chunk) // 2]  # the last bytes too
                if not chunk:
                    return


def _kill(broker: Mosquitto) -> None:
    proc = broker._proc  # the bench kills the child it started, hard
    if proc is not None:
        proc.kill()
        proc.wait(5)
    broker._proc = None


INJECT: dict[str, Callable[[Context], Awaitable[None]]] = {
    "link_drop": _link_drop,
    "influx_down": _influx_down,
    "broker_kill": _broker_kill,
    "silent_drop": _silent_drop,
    "fuzz": _fuzz,
    "disk_full": _disk_full,
}


async def _settled(handle: ServiceHandle) -> None:
    """Until the sinks hold nothing back: the InfluxDB spool is written back, the MQTT outbox is empty."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        influx = handle.sink_stats["influxdb"]()
        mqtt = handle.sink_stats["mqtt"]()
        if influx["spool_bytes"] == 0 and mqtt["connected"] and mqtt["outbox"] == 0:
            return
        await asyncio.sleep(0.25)
    raise SensorhubError(f"bench faults: the sinks did not settle within {SETTLE_TIMEOUT_S} s")


def _scenario(
    fault: str,
    holder: dict[str, Context],
    make: Callable[[ServiceHandle], Context],
    source_live: Callable[[ServiceHandle], Awaitable[object]],
    stop: asyncio.Event,
) -> Stage:
    async def bench_faults(handle: ServiceHandle) -> None:
        await source_live(handle)
        ctx = holder["ctx"] = make(handle)
        while len(handle.runner.queue):  # the warm-up backlog
            await asyncio.sleep(0.05)
        health_stop = asyncio.Event()
        poller = asyncio.create_task(poll_health(handle.base_url, ctx.row, health_stop))
        before_s, after_s = (6.0, 8.0) if ctx.args.quick else (20.0, 30.0)
        await asyncio.sleep(before_s)
        await INJECT[fault](ctx)
        await asyncio.sleep(after_s)
        await _settled(handle)
        health_stop.set()
        await poller
        stop.set()  # the ordered shutdown cancels this stage

    return bench_faults


async def _run_fault(fault: str, args: argparse.Namespace, base: Config) -> Row:
    row = Row(fault)
    async with contextlib.AsyncExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sensorhub-faults-"))) / "data"
        data.mkdir()
        if fault == "disk_full":
            why = _mount_small_disk(data)
            if why:
                row.skipped = row.injected = why
                return row
            stack.callback(subprocess.run, ["umount", "-l", str(data)], check=False)
        broker = stack.enter_context(Mosquitto())
        influx = stack.enter_context(VictoriaMetrics())
        proxy = await stack.enter_async_context(TcpProxy(broker.port)) if fault == "silent_drop" else None
        config = replace(
            base,
            service=replace(base.service, data_dir=str(data), port=0),
            mqtt=BrokerConfig(
                port=proxy.port if proxy is not None else broker.port,
                client_id="faults-bench",
                reconnect_max_s=1.0,
                keepalive_s=args.keepalive_s,
            ),
            sinks=SinksConfig(
                mqtt=MqttConfig(enabled=True),
                influxdb=InfluxConfig(enabled=True, url=influx.url, retry_max_s=5.0),
            ),
        )
        source = _TappedSource(config, args.athletes)
        published = Published()
        counter = MqttCounter(broker.port, config.mqtt.topic_prefix)
        stop = asyncio.Event()
        holder: dict[str, Context] = {}

        def make(handle: ServiceHandle) -> Context:
            assert source.tap is not None
            return Context(
                handle, source, source.tap, broker, influx, counter, row, args, proxy=proxy,
                data_dir=str(data),
            )

        async def collect(handle: ServiceHandle) -> None:
            await published.collect(handle.bus)

        started_s = time.time()
        counting = asyncio.create_task(counter.run())
        try:
            handle = await serve(
                config,
                source,
                source.sensors,
                port=0,
                stop=stop,
                stages=[
                    collect,
                    auto_sets(source),
                    _scenario(fault, holder, make, lambda _: source.live.wait(), stop),
                ],
            )
        except Exception as exc:  # the fault broke the service: that is the finding
            row.injected = row.injected or fault
            row.lost["service ended with an error"] = (1, 1)
            row.notes.append(f"the service ended with an error: {_where(exc)}")
            if "ctx" not in holder:
                return row
            handle = holder["ctx"].handle  # what it had published and saved is still accounted
        finally:
            await asyncio.sleep(1.0)  # the service's shutdown flush reaches the counter
            counting.cancel()
            await asyncio.gather(counting, return_exceptions=True)
        if "ctx" not in holder:
            raise SensorhubError(f"bench faults: the service ended before {fault} was injected")
        await asyncio.to_thread(_account, row, holder["ctx"], handle, published, data, influx.url, started_s)
    return row


def _mount_small_disk(path: Path) -> str:
    """A ``DISK_MB`` tmpfs on ``path``; the reason when that is not possible ("" when mounted)."""
    if os.geteuid() != 0:
        return "skipped: mounting a small tmpfs on data_dir needs root"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if done.returncode == 0 else f"skipped: mount tmpfs failed: {done.stderr.strip()}"


def _where(exc: BaseException) -> str:
    """The innermost error of a (nested) exception group and where it was raised."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    frames = traceback.extract_tb(exc.__traceback__)
    at = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames[-4:]))
    return f"{exc!r} at {at}"


def _account(
    row: Row, ctx: Context, handle: ServiceHandle, published: Published, data: Path, url: str, since_s: float
) -> None:
    tap = ctx.tap
    processed = handle.runner.stats.packets
    by_sensor = recorded_packets(data / "recordings")
    recorded = sum(by_sensor.values())
    fuzz, extra_known = ctx.fuzz, 0
    if fuzz is not None:
        _account_fuzz(row, ctx, handle, fuzz, by_sensor)
        processed -= sum(fuzz.packets.values())
        extra_known = fuzz.known_id_packets
    row.lost["packets processed"] = (tap.sent - processed, tap.sent)
    row.lost["packets recorded"] = (tap.sent - recorded + extra_known, tap.sent)
    row.allowed.setdefault("packets processed", row.allowed.get("packets recorded", 0))
    events: list[Key] = [k for _, k in published.events]
    cues: list[Key] = [k for _, k in published.cues]
    h_events, h_cues = history_rows(data / "history.sqlite3")
    row.lost["history events"] = (len(unmatched(events, h_events)), len(events))
    row.lost["history cues"] = (len(unmatched(cues, h_cues)), len(cues))
    m_events = unmatched(events, ctx.mqtt.events)
    m_cues = unmatched(cues, ctx.mqtt.cues)
    row.lost["MQTT events"] = (len(m_events), len(events))
    row.lost["MQTT cues"] = (len(m_cues), len(cues))
    if ctx.mqtt_window is not None:  # losses explained by the outage: published inside its window
        lo, hi = ctx.mqtt_window
        inside_events = [k for t, k in published.events if lo <= t <= hi]
        inside_cues = [k for t, k in published.cues if lo <= t <= hi]
        row.allowed["MQTT events"] = len(m_events) - len(unmatched(m_events, inside_events, 0.0))
        row.allowed["MQTT cues"] = len(m_cues) - len(unmatched(m_cues, inside_cues, 0.0))
    if ctx.full_window is not None:
        _allow_disk_full(row, ctx, published, events, cues, h_events, h_cues, recorded)
    i_events, i_cues, i_total = influx_points(url, since_s)
    # Event types outside the InfluxDB schema are not written, by design (sinks/influx_schema.py).
    in_schema = [k for k in events if k[1] in SCHEMA]
    if len(in_schema) < len(events):
        other = Counter(k[1] for k in events if k[1] not in SCHEMA)
        row.notes.append(f"events of types outside the InfluxDB schema (not written there): {dict(other)}")
    missing = unmatched(in_schema, i_events)
    row.lost["InfluxDB events"] = (len(missing), len(in_schema))
    if missing:
        row.notes.append(f"events not on the InfluxDB server (first 3): {missing[:3]}")
    row.lost["InfluxDB cues"] = (len(unmatched([(leg, "", t) for leg, _, t in cues], i_cues)), len(cues))
    stats = handle.sink_stats["influxdb"]()
    sink_lost = stats["points_lost"] + stats["points_dropped"] + stats["points_spool_dropped"]
    # Points the sink took in (written, or lost/dropped on the way) against the points on the server.
    offered = stats["points_written"] + sink_lost
    row.lost["InfluxDB points"] = (offered - i_total + stats["bus_dropped"], offered)
    row.notes.append(
        f"InfluxDB: {stats['points_written']} points written ({stats['points_spooled']} through the "
        f"spool), {i_total} on the server, sink counters lost {sink_lost}, bus dropped {stats['bus_dropped']}"
    )
    row.counters["points spooled"] = stats["points_spooled"]
    row.counters["MQTT sink reconnects"] = handle.sink_stats["mqtt"]()["reconnects"]
    if stats["points_spooled"] == 0 and ctx.row.fault == "influx_down":
        row.notes.append("nothing was spooled: the outage was not seen")
        row.allowed["InfluxDB points"] = -1  # a failed verdict: the fault did not happen
    mqtt = handle.sink_stats["mqtt"]()
    gave_up = sum(mqtt["failed_by_kind"].values())
    row.lost["MQTT messages the sink gave up on"] = (gave_up, mqtt["published"] + gave_up)
    row.notes.append(
        f"MQTT reconnects {mqtt['reconnects']}, counter connects {ctx.mqtt.connects}, sink gave up on "
        f"{mqtt['failed_by_kind']}, publish errors {mqtt['publish_errors']}"
    )


def _allow_disk_full(
    row: Row,
    ctx: Context,
    published: Published,
    events: list[Key],
    cues: list[Key],
    h_events: list[Key],
    h_cues: list[Key],
    recorded: int,
) -> None:
    """What a full disk may cost: history rows published while it was full; the recording from the first
    failed write (up to one sync interval before it) until the recorder's next part after the disk was
    freed (one resume interval)."""
    assert ctx.full_window is not None
    lo, hi = ctx.full_window
    for kind, all_keys, saved, stamped in (
        ("history events", events, h_events, published.events),
        ("history cues", cues, h_cues, published.cues),
    ):
        missing = unmatched(all_keys, saved)
        inside = [k for t, k in stamped if lo <= t <= hi]
        row.allowed[kind] = len(missing) - len(unmatched(missing, inside, 0.0))
    per_s = len(ctx.source.sensors) * 25  # packets a second: 25 a sensor
    full = ctx.row.counters["packets sent when the disk was freed"] - ctx.row.counters[
        "packets sent before the disk filled"]
    bound = full + round(per_s * (1.0 + RESUME_EVERY_S))  # + the sync and resume intervals
    lost = ctx.tap.sent - recorded
    row.allowed["packets recorded"] = min(lost, bound)
    row.notes.append(
        f"disk full: recorder {ctx.handle.sink_stats['recorder']()}; "
        f"history {ctx.handle.sink_stats['history']()}"
    )


def _account_fuzz(
    row: Row, ctx: Context, handle: ServiceHandle, fuzz: FuzzCounts, by_sensor: Counter[str]
) -> None:
    """Other athletes' packets all recorded; rejects counted where the service counts them."""
    victim = ctx.source.sensors[0].athlete
    others = [s.sensor_id for s in ctx.source.sensors if s.athlete != victim]
    sent = sum(ctx.tap.sent_by_sensor[s] for s in others)
    row.lost["other athletes' packets recorded"] = (sent - sum(by_sensor[s] for s in others), sent)
    stats = handle.pipeline.stats()
    malformed = Counter[str]()
    for sensor_id, st in stats.items():
        if sensor_id in others and st.malformed:
            row.notes.append(f"{sensor_id} (not fuzzed) counted {st.malformed} malformed packets")
        malformed.update(st.malformed_by_reason)
    row.lost["HTTP 5xx"] = (fuzz.http_status["5xx"], sum(fuzz.http_status.values()))
    recorder = handle.sink_stats["recorder"]()
    row.notes.append(
        f"packets by kind {dict(fuzz.packets)}; rejected as malformed {sum(malformed.values())} "
        f"{dict(malformed)}; recorder errors {recorder.get('errors')}"
    )
    row.notes.append(
        f"HTTP {dict(fuzz.http_status)}; websocket {fuzz.ws_sent} sent, "
        f"{fuzz.ws_closed_by_server} closed by the server, {fuzz.ws_errors} connection errors"
    )


# ---- the table ------------------------------------------------------------------------------------


def _lost_text(row: Row) -> str:
    parts = []
    for kind, (lost, of) in row.lost.items():
        allowed = row.allowed.get(kind, 0)
        mark = "" if lost == allowed else " !"
        parts.append(f"{kind} {lost}/{of}{mark}")
    return "; ".join(parts)


def print_table(rows: list[Row]) -> None:
    print("| fault | injected | serving throughout | lost (per kind: lost/of) | verdict |")
    print("|---|---|---|---|---|")
    for r in rows:
        serving = (
            f"{'yes' if r.serving else 'NO'} ({r.health_ok} /health ok, {r.health_failed} failed, "
            f"longest gap {r.longest_gap_s:.2f} s, loop lag max {r.max_loop_lag_s:.2f} s)"
        )
        expected = ", ".join(f"{k} {v}" for k, v in r.allowed.items() if v)
        verdict = ("PASS" if r.ok else "FAIL") + (f" (explained: {expected})" if expected else "")
        if r.skipped:
            print(f"| {r.fault} | {r.skipped} | - | - | SKIPPED |")
            continue
        print(f"| {r.fault} | {r.injected} | {serving} | {_lost_text(r)} | {verdict} |")
    for r in rows:
        for note in r.notes:
            print(f"  {r.fault}: {note}")


def run_faults(args: argparse.Namespace) -> list[Row]:
    base = load_config(None)
    base = dataclasses.replace(base, simulator=replace(base.simulator, athletes=args.athletes))
    rows = []
    for fault in args.only or FAULTS:
        if fault in PROCESS_FAULTS:
            from sensorhub.bench.fault_process import run_process_faults, run_worker_kill

            run_one = run_process_faults if fault == "process" else run_worker_kill
            rows.extend(asyncio.run(run_one(args)))
        else:
            rows.append(asyncio.run(_run_fault(fault, args, base)))
    return rows


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    rows = run_faults(args)
    print(f"{args.athletes} simulated athletes, sinks: recorder, history, InfluxDB, MQTT")
    print_table(rows)
    print(f"bench faults: {time.perf_counter() - t0:.0f} s")
    return 0 if all(r.ok or r.skipped for r in rows) else 1
