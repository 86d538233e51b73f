"""The README's first command, proven: run with the interpreter of a venv that holds `pip install -e .`
and nothing else (``scripts/smoke_bare.sh`` makes it). Uses only the package's own dependencies.

1. no extra leaked in (scipy, pytest, the bench peers, playwright);
2. `--help` of every `sensorhub` and `firmware-sim` subcommand (and every `sensorhub bench` one);
3. `firmware-sim record --csv`, then `sensorhub analyze` on the CSV: angles and rep events written;
4. `sensorhub demo` for about 60 s with an empty numba cache (a new user's first start): knee-angle
   frames and at least one event reach a websocket client, /health shows `angle_samples` rising, Ctrl-C
   stops it cleanly (exit 0).
Prints what it measured; exits non-zero with the reason on the first failure.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib.util
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets

BIN = Path(sys.executable).parent
DEMO_S = 60.0
EXTRAS = ("scipy", "pytest", "vqf", "imufusion", "ahrs", "playwright", "hypothesis")


def fail(reason: str) -> None:
    print(f"smoke: FAILED: {reason}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(*argv: str, timeout_s: float = 300.0, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
    if done.returncode != 0:
        fail(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def subcommands(program: str, *prefix: str) -> list[str]:
    """Subcommand names, as argparse lists them when given an unknown one ("choose from 'a', 'b'")."""
    done = subprocess.run([str(BIN / program), *prefix, "no-such-command"], capture_output=True, text=True,
                          timeout=60)
    if "choose from" not in done.stderr:
        fail(f"{program} {' '.join(prefix)}: no subcommand list in {done.stderr!r}")
    listed = done.stderr.split("choose from", 1)[1].strip(" )\n")
    return [name.strip(" '") for name in listed.split(",")]


def check_extras() -> None:
    leaked = [m for m in EXTRAS if importlib.util.find_spec(m) is not None]
    if leaked:
        fail(f"extras leaked into the bare venv: {', '.join(leaked)}")
    print("bare venv: no extras (" + ", ".join(EXTRAS) + " absent)")


def check_help() -> None:
    count = 0
    for program, nested in (("sensorhub", ("bench",)), ("firmware-sim", ())):
        for name in subcommands(program):
            run(str(BIN / program), name, "--help")
            count += 1
            if name in nested:
                for sub in subcommands(program, name):
                    run(str(BIN / program), name, sub, "--help")
                    count += 1
    if count < 20:
        fail(f"only {count} subcommands found: the --help parsing is broken")
    print(f"--help: {count} subcommands answered")


def check_analyze(work: Path) -> None:
    rec = work / "squat"
    run(str(BIN / "firmware-sim"), "record", "--drill", "squat", "--reps", "5", "--seed", "11",
        "--out", str(rec), "--csv")
    out = work / "analyzed"
    t0 = time.monotonic()
    run(str(BIN / "sensorhub"), "analyze", str(rec / "imu_right.csv"), "--out", str(out), "--leg", "right")
    with (out / "angles.csv").open() as fh:
        rows = list(csv.reader(fh))
    events = json.loads((out / "events.json").read_text())
    reps = [e for e in events if e["type"] == "rep"]
    if rows[0] != ["time_s", "flexion_deg", "valgus_deg", "rotation_deg"] or len(rows) < 1000:
        fail(f"analyze wrote {len(rows)} angle rows with header {rows[0]}")
    if len(reps) < 3:
        fail(f"analyze found {len(reps)} reps in a 5-rep squat recording")
    print(f"analyze: {len(rows) - 1} angle rows, {len(reps)} reps in {time.monotonic() - t0:.1f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
        return dict(json.loads(resp.read()))


async def watch(port: int, t0: float, deadline: float) -> dict[str, object]:
    """Websocket frames and /health until ``deadline`` (time.monotonic)."""
    seen: dict[str, object] = {"angle_frames": 0, "events": 0, "first_frame_s": None, "angle_samples": []}
    while time.monotonic() < deadline:
        try:
            url = f"ws://127.0.0.1:{port}/ws/v1"
            async with websockets.connect(url, max_size=None, open_timeout=2) as ws:
                next_health = time.monotonic()
                while (left := deadline - time.monotonic()) > 0:
                    if time.monotonic() >= next_health:
                        samples = await asyncio.to_thread(lambda: health(port)["angle_samples"])
                        seen["angle_samples"].append(samples)  # type: ignore[attr-defined]
                        next_health = time.monotonic() + 10.0
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), min(left, 1.0)))
                    except TimeoutError:
                        continue
                    if frame.get("type") == "angles" and frame.get("athletes"):
                        seen["angle_frames"] = int(seen["angle_frames"]) + 1  # type: ignore[call-overload]
                        if seen["first_frame_s"] is None:
                            seen["first_frame_s"] = time.monotonic() - t0
                    elif frame.get("type") == "event" and frame["event"]["type"] in ("landing", "cut", "rep"):
                        seen["events"] = int(seen["events"]) + 1  # type: ignore[call-overload]
                return seen
        except (OSError, websockets.InvalidHandshake, websockets.ConnectionClosed, TimeoutError):
            await asyncio.sleep(0.2)
    return seen


def check_demo(work: Path) -> None:
    port = free_port()
    cache = work / "numba-cache"  # empty: numba compiles everything, as on a new user's first start
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), SENSORHUB_SERVICE__DATA_DIR=str(work / "data"))
    t0 = time.monotonic()
    proc = subprocess.Popen([str(BIN / "sensorhub"), "demo", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = asyncio.run(watch(port, t0, t0 + DEMO_S))
    finally:
        alive = proc.poll() is None
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    if not alive:
        fail(f"the demo died during the run (exit {proc.returncode}):\n{out[-2000:]}\n{err[-4000:]}")
    if proc.returncode != 0:
        fail(f"the demo did not stop cleanly on Ctrl-C (exit {proc.returncode}):\n{err[-4000:]}")
    samples = [int(s) for s in seen["angle_samples"]]  # type: ignore[attr-defined]
    if seen["first_frame_s"] is None or int(seen["angle_frames"]) < 100:  # type: ignore[call-overload]
        fail(f"no knee-angle frames reached the websocket client: {seen}\n{err[-4000:]}")
    if int(seen["events"]) < 1:  # type: ignore[call-overload]
        fail(f"no event reached the websocket client in {DEMO_S:.0f} s: {seen}")
    if len(samples) < 3 or any(b <= a for a, b in itertools.pairwise(samples)):
        fail(f"/health angle_samples did not rise: {samples}")
    if "dashboard ready" not in out or "stopped cleanly" not in err:
        fail(f"unexpected demo output:\n{out}\n{err[-2000:]}")
    print(f"demo (cold numba cache): first angles frame after {seen['first_frame_s']:.1f} s; "
          f"{seen['angle_frames']} angle frames, {seen['events']} events; /health angle_samples {samples}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    check_extras()
    check_help()
    with tempfile.TemporaryDirectory(prefix="sensorhub-smoke-") as tmp:
        work = Path(tmp)
        check_analyze(work)
        if not args.skip_demo:
            check_demo(work)
    print("smoke: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
