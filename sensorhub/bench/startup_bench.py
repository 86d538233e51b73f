"""``startup_bench``: seconds from launching ``sensorhub demo`` (a real process, as a user starts it) to the
first live ``angles`` frame on the coach websocket. Warm: numba's cache holds the kernels (every start
after the first). ``--cold``: each run starts with an empty cache (``NUMBA_CACHE_DIR`` a new empty
directory), as a new install, a numba upgrade or an edited kernel does."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import websockets

from sensorhub.bench.services import free_port
from sensorhub.errors import SensorhubError
from sensorhub.web import WS_PATH


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3, help="demo launches (the first may compile)")
    parser.add_argument("--athletes", type=int, default=2)
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument("--cold", action="store_true", help="every run from an empty numba cache")


async def _first_angles(url: str, deadline_s: float) -> float:
    """Time (time.monotonic) at which the first angles frame arrived; connects as soon as it can."""
    while time.monotonic() < deadline_s:
        try:
            async with websockets.connect(url, max_size=None, open_timeout=1.0) as ws:
                while time.monotonic() < deadline_s:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), deadline_s - time.monotonic()))
                    if frame.get("type") == "angles" and frame.get("athletes"):
                        return time.monotonic()
        except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed, TimeoutError):
            await asyncio.sleep(0.02)
    raise SensorhubError("no angles frame before the timeout")


def _one_run(athletes: int, timeout_s: float, data_dir: str, numba_cache_dir: str | None) -> float:
    port = free_port()
    env = dict(os.environ, SENSORHUB_SERVICE__DATA_DIR=data_dir)
    if numba_cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = numba_cache_dir
    cmd = [sys.executable, "-m", "sensorhub.cli", "demo", "--athletes", str(athletes), "--port", str(port)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t_first = asyncio.run(_first_angles(f"ws://127.0.0.1:{port}{WS_PATH}", t0 + timeout_s))
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the demo's ordered shutdown
        try:
            proc.wait(30.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.returncode not in (0, 130, -signal.SIGINT):
        err = proc.stderr.read().decode() if proc.stderr is not None else ""
        raise SensorhubError(f"demo exited with {proc.returncode}: {err[-500:]}")
    return t_first - t0


def run(args: argparse.Namespace) -> int:
    import tempfile

    times = []
    with tempfile.TemporaryDirectory(prefix="sensorhub-startup-") as data_dir:
        for i in range(args.runs):
            if args.cold:
                with tempfile.TemporaryDirectory(prefix="sensorhub-numba-cold-") as cache:
                    times.append(_one_run(args.athletes, args.timeout_s, data_dir, cache))
            else:
                times.append(_one_run(args.athletes, args.timeout_s, data_dir, None))
            print(f"  run {i + 1}: {times[-1]:5.2f} s", flush=True)
    kind = "cold (empty numba cache each run)" if args.cold else "warm (numba cache; run 1 may compile)"
    print(f"`sensorhub demo --athletes {args.athletes}` -> first live angles frame on the coach websocket,")
    print(f"  {kind}")
    shown = times if args.cold else (times[1:] or times)
    print(f"  {'cold' if args.cold else 'warm'}: min {min(shown):.2f} s, max {max(shown):.2f} s")
    return 0
