"""The process faults of ``sensorhub bench faults``: ``sensorhub run --config ...`` as a child process,
stopped with SIGTERM mid-session, then started again on the same data_dir, SIGKILLed, and started again.

"Acknowledged" is what left the service: the events an MQTT subscriber received (the broker PUBACKed
them). After SIGTERM every one of them must be in the history store and on the InfluxDB server, and the
recording must read back. After SIGKILL the loss is bounded, not zero: events that reached MQTT in the
last moments before the kill may miss the history (its writer commits every ``BATCH_MAX_WAIT_S``) and
the recording ends at its last sync (``sync_interval_s``); both are measured, and the restarted service
must serve with the earlier history intact.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

from sensorhub.bench.fault_ledger import (
    MqttCounter,
    RawTap,
    Row,
    history_rows,
    influx_points,
    poll_health,
    recorded_keys,
    unmatched,
)
from sensorhub.bench.services import Mosquitto, VictoriaMetrics, free_port
from sensorhub.errors import SensorhubError
from sensorhub.history.writer import BATCH_MAX_WAIT_S
from sensorhub.recording import read_recording

READY_TIMEOUT_S = 180.0
SYNC_INTERVAL_S = 1.0
KILL_BOUND_S = 2.0  # loss allowed after SIGKILL: the writer's batch wait and the recorder's sync, with margin


def _config(data: Path, port: int, broker: int, influx_url: str, athletes: int) -> str:
    return f"""
[service]
host = "127.0.0.1"
port = {port}
data_dir = "{data}"
log_level = "warning"

[source]
kind = "simulator"

[simulator]
athletes = {athletes}

[sinks.recorder]
enabled = true
sync_interval_s = {SYNC_INTERVAL_S}

[sinks.mqtt]
enabled = true

[sinks.influxdb]
enabled = true
url = "{influx_url}"
retry_max_s = 5.0

[mqtt]
port = {broker}
client_id = "faults-run"
reconnect_max_s = 1.0
"""


class _Service:
    """``sensorhub run`` in a child process (its own interpreter, as in production)."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "sensorhub.cli", "run", "--config", str(self.config)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SensorhubError(f"sensorhub run exited with {self.proc.returncode}: see {self.log}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.base_url}/health", timeout=1.0) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.2)
        raise SensorhubError(f"sensorhub run not serving after {READY_TIMEOUT_S} s")

    def signal(self, sig: signal.Signals, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout_s)


async def _session(service: _Service, row: Row, run_s: float) -> None:
    """Start, serve ``run_s`` under a /health poll (the caller signals afterwards)."""
    await asyncio.to_thread(service.start)
    stop = asyncio.Event()
    poller = asyncio.create_task(poll_health(service.base_url, row, stop))
    await asyncio.sleep(run_s)
    stop.set()
    await poller


def _recording_packets(rec_dir: Path) -> list[tuple[Path, int, float]]:
    """Each recording: its packet count and its last packet's host time."""
    out = []
    for p in sorted(q for q in rec_dir.glob("*.shrec") if ".part" not in q.name):
        n, last_s = 0, float("nan")
        for packet in read_recording(p).packets():
            n += 1
            last_s = packet.t_host_s
        out.append((p, n, last_s))
    return out


async def run_process_faults(args: argparse.Namespace) -> list[Row]:
    term, kill = Row("sigterm"), Row("sigkill")
    run_s = 15.0 if args.quick else 40.0
    with (
        tempfile.TemporaryDirectory(prefix="sensorhub-faults-run-") as tmp,
        Mosquitto() as broker,
        VictoriaMetrics() as influx,
    ):
        data = Path(tmp) / "data"
        cfg = Path(tmp) / "sensorhub.toml"
        port = free_port()
        cfg.write_text(_config(data, port, broker.port, influx.url, args.athletes))
        service = _Service(cfg, port, Path(tmp) / "service.log")
        counter = MqttCounter(broker.port, "sensorhub/v1", "faults-run-counter")
        counting = asyncio.create_task(counter.run())
        try:
            since_s = time.time()
            # 1: SIGTERM mid-session: everything acknowledged is saved.
            await _session(service, term, run_s)
            rc = await asyncio.to_thread(service.signal, signal.SIGTERM)
            await asyncio.sleep(1.0)  # the shutdown flush reaches the counter
            term.injected = f"SIGTERM after {run_s:g} s, exit code {rc}"
            term.lost["exit code"] = (int(rc != 0), 1)
            acked = list(counter.events)
            h_events, _ = history_rows(data / "history.sqlite3")
            term.lost["acked events not in history"] = (len(unmatched(acked, h_events)), len(acked))
            i_events, _, _ = await asyncio.to_thread(influx_points, influx.url, since_s)
            term.lost["acked events not in InfluxDB"] = (len(unmatched(acked, i_events)), len(acked))
            recordings = _recording_packets(data / "recordings")
            term.notes.append(f"recording {recordings[-1][1]} packets, reads back whole")
            term.lost["no events acknowledged"] = (int(not acked), 1)  # nothing measured is a failure

            # 2: SIGKILL mid-session: loss bounded.
            n_before = len(counter.events)
            await _session(service, kill, run_s)
            kill_s = time.time()
            await asyncio.to_thread(service.signal, signal.SIGKILL)
            acked = counter.events[n_before:]
            h_events, _ = history_rows(data / "history.sqlite3")
            missing = unmatched(acked, h_events)
            ages = [kill_s - counter.events_at[n_before + acked.index(k)] for k in missing]
            late = [a for a in ages if a > KILL_BOUND_S]
            kill.lost["acked events lost (older than the bound)"] = (len(late), len(acked))
            kill.counters["acked events lost in the last moments"] = len(missing) - len(late)
            recordings = _recording_packets(data / "recordings")
            _, n_packets, last_s = recordings[-1]
            gap_s = kill_s - last_s
            kill.lost["recording tail beyond the bound"] = (int(not gap_s <= KILL_BOUND_S), 1)
            kill.notes.append(
                f"after SIGKILL: {len(missing)} of {len(acked)} acknowledged events not in the history "
                f"(ages {', '.join(f'{a:.2f}' for a in ages) or '-'} s before the kill; writer batch "
                f"{BATCH_MAX_WAIT_S} s); recording of {n_packets} packets reads back, ends {gap_s:.2f} s "
                f"before the kill (sync every {SYNC_INTERVAL_S} s); bound {KILL_BOUND_S} s"
            )

            # 3: restart on the same data_dir: it serves, with the earlier history.
            rows_before = len(h_events)
            restart = Row("restart")
            await _session(service, restart, 3.0)
            h_after, _ = history_rows(data / "history.sqlite3")
            kill.lost["history rows gone after restart"] = (max(0, rows_before - len(h_after)), rows_before)
            kill.lost["restart not serving"] = (int(not restart.serving), 1)
            rc = await asyncio.to_thread(service.signal, signal.SIGTERM)
            kill.injected = f"SIGKILL after {run_s:g} s, restarted (then SIGTERM: exit code {rc})"
        finally:
            if service.proc is not None and service.proc.poll() is None:
                service.proc.kill()
            counting.cancel()
            await asyncio.gather(counting, return_exceptions=True)
    return [term, kill]


# ---- worker_kill: the team deployment (gateway + workers over Mosquitto), one worker SIGKILLed ------------

SEGMENTS = (("right", "thigh"), ("right", "shank"), ("left", "thigh"), ("left", "shank"))
HANDOVER_TIMEOUT_S = 30.0
PREFIX = "sensorhub/v1"


def _team_config(data: Path, port: int, broker: int, client_id: str, kind: str, athletes: int) -> str:
    """A worker (``kind = "mqtt"``, serving /health on ``port``) or the gateway (``"simulator"``) of
    ``athletes`` simulated athletes, named as the simulator names them."""
    lines = [
        f'[service]\nhost = "127.0.0.1"\nport = {port}\ndata_dir = "{data}"\nlog_level = "warning"',
        f'[source]\nkind = "{kind}"',
        f"[sinks.recorder]\nenabled = true\nsync_interval_s = {SYNC_INTERVAL_S}",
        f'[mqtt]\nport = {broker}\nclient_id = "{client_id}"\nreconnect_min_s = 0.2\nreconnect_max_s = 1.0',
    ]
    for i in range(1, athletes + 1):
        lines.append(f'[[athletes]]\nid = "athlete{i}"')
        for side, segment in SEGMENTS:
            sensor = f'id = "athlete{i}-{side}-{segment}"\nside = "{side}"\nsegment = "{segment}"'
            lines.append(f"[[athletes.sensors]]\n{sensor}")
    return "\n\n".join(lines) + "\n"


def _held(service: _Service) -> list[str]:
    """The athletes a worker holds (its /health ``source.athletes``); [] when it does not answer."""
    try:
        with urllib.request.urlopen(f"{service.base_url}/health", timeout=1.0) as resp:
            return list(json.load(resp)["source"]["athletes"])
    except (OSError, ValueError, KeyError):
        return []


async def _until(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Seconds until ``condition`` holds (polled every 0.1 s); SensorhubError after ``timeout_s``."""
    t0 = time.monotonic()
    while not await condition():
        if time.monotonic() - t0 > timeout_s:
            raise SensorhubError(f"bench faults: {what} not within {timeout_s:g} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def run_worker_kill(args: argparse.Namespace) -> list[Row]:
    """Two workers share the athletes a gateway publishes; one is SIGKILLed mid-session. The survivor must
    take its athletes (the broker publishes the dead worker's will, the gateway offers them again and
    buffers their packets meanwhile). Lost: the raw packets the broker delivered (a tap subscriber saw
    them) that neither worker recorded; allowed: those of the dead worker's athletes from its last
    recording sync to the hand-over."""
    row = Row("worker_kill")
    before_s, after_s = (8.0, 8.0) if args.quick else (20.0, 30.0)
    n = args.athletes
    with tempfile.TemporaryDirectory(prefix="sensorhub-faults-team-") as tmp, Mosquitto() as broker:
        root = Path(tmp)
        workers = []
        for name in ("w1", "w2"):
            port = free_port()
            cfg = root / f"{name}.toml"
            cfg.write_text(_team_config(root / name, port, broker.port, name, "mqtt", n))
            workers.append(_Service(cfg, port, root / f"{name}.log"))
        gw_cfg = root / "gw.toml"
        gw_cfg.write_text(_team_config(root / "gw", free_port(), broker.port, "gw", "simulator", n))
        tap = RawTap(broker.port, PREFIX)
        tapping = asyncio.create_task(tap.run())
        gateway: subprocess.Popen[bytes] | None = None
        health_stop = asyncio.Event()
        try:
            await asyncio.wait_for(tap.subscribed.wait(), 10.0)
            await asyncio.gather(*(asyncio.to_thread(w.start) for w in workers))
            with (root / "gw.log").open("ab") as out:
                cmd = [sys.executable, "-m", "sensorhub.cli", "gateway", "--config", str(gw_cfg)]
                gateway = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            everyone = {f"athlete{i}" for i in range(1, n + 1)}

            async def split() -> bool:
                held = [set(await asyncio.to_thread(_held, w)) for w in workers]
                return held[0] | held[1] == everyone and bool(held[0]) and bool(held[1])

            await _until(split, READY_TIMEOUT_S, "both workers holding athletes")
            held = [await asyncio.to_thread(_held, w) for w in workers]
            victim, survivor = (workers[0], workers[1]) if len(held[0]) >= len(held[1]) else workers[::-1]
            moved = set(held[workers.index(victim)])
            poller = asyncio.create_task(poll_health(survivor.base_url, row, health_stop))
            await asyncio.sleep(before_s)
            kill_s = time.time()
            await asyncio.to_thread(victim.signal, signal.SIGKILL)

            async def taken_over() -> bool:
                return set(await asyncio.to_thread(_held, survivor)) == everyone

            handover_s = await _until(taken_over, HANDOVER_TIMEOUT_S, "the survivor holding every athlete")
            await asyncio.sleep(after_s)
            gateway.send_signal(signal.SIGTERM)  # publishes what it still buffers, then stops
            await asyncio.to_thread(gateway.wait, 30.0)
            await asyncio.sleep(1.0)  # the last packets reach the survivor and the tap
            health_stop.set()
            await poller
            rc = await asyncio.to_thread(survivor.signal, signal.SIGTERM)
        finally:
            health_stop.set()
            for proc in [gateway, *(w.proc for w in workers)]:
                if proc is not None and proc.poll() is None:
                    proc.kill()
            tapping.cancel()
            await asyncio.gather(tapping, return_exceptions=True)
        recorded = set().union(*(recorded_keys(root / w / "recordings") for w in ("w1", "w2")))
    _account_worker_kill(row, tap, recorded, moved, kill_s, handover_s)
    row.injected = (
        f"{victim.config.stem} (holding {len(moved)} of {n} athletes) SIGKILLed; {survivor.config.stem} held "
        f"them all {handover_s:.2f} s later (then SIGTERM: exit code {rc})"
    )
    return [row]


def _account_worker_kill(
    row: Row, tap: RawTap, recorded: set[tuple[str, float]], moved: set[str], kill_s: float, handover_s: float
) -> None:
    sent_moved = [k for k in tap.packets if k[0].split("-")[0] in moved]
    sent_other = [k for k in tap.packets if k[0].split("-")[0] not in moved]
    missing_moved = [k for k in sent_moved if k not in recorded]
    missing_other = [k for k in sent_other if k not in recorded]
    # Explained: delivered to the dead worker after its last recording sync, or while nobody held them.
    lo, hi = kill_s - SYNC_INTERVAL_S - 0.5, kill_s + handover_s + 0.5
    inside = [k for k in missing_moved if lo <= tap.packets[k] <= hi]
    row.lost["raw packets of the dead worker's athletes"] = (len(missing_moved), len(sent_moved))
    row.allowed["raw packets of the dead worker's athletes"] = len(inside)
    row.lost["raw packets of the other athletes"] = (len(missing_other), len(sent_other))
    row.lost["no packets seen"] = (int(not sent_moved or not sent_other), 1)
    row.counters["packets lost around the kill"] = len(inside)
    if missing_moved:
        at = sorted(tap.packets[k] - kill_s for k in missing_moved)
        row.notes.append(
            f"{len(missing_moved)} raw packets of {sorted(moved)} not recorded by either worker: delivered "
            f"{at[0]:+.2f} .. {at[-1]:+.2f} s around the kill (the dead worker's last sync <= "
            f"{SYNC_INTERVAL_S} s before it; hand-over {handover_s:.2f} s)"
        )
    else:
        row.notes.append(f"every raw packet recorded by a worker; hand-over {handover_s:.2f} s")
