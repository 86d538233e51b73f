"""``dashboard_bench``: does dashboard load reach ingestion? The demo service (simulated athletes, real-time
release) runs in its own thread; N websocket clients (90 % coach, 10 % athlete views) connect from this
thread's event loop. Reported: p50/p99/p99.9 of packet -> knee angle (LiveRunner's own measure) with 0
clients and with N clients, and per-client angle-frame counts plus the hub's dropped frames.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time

import websockets

from sensorhub.config import load_config
from sensorhub.demo import background_demo
from sensorhub.runtime import LatencyRecorder, ServiceHandle
from sensorhub.web import FRAME_PERIOD_S, WS_PATH

QS = (50.0, 99.0, 99.9)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--athletes", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--window-s", type=float, default=20.0, help="measurement window per phase")
    # Past every leg's calibration (about 10 s in), whose one-off burst would otherwise land in a window.
    parser.add_argument("--warmup-s", type=float, default=15.0)
    parser.add_argument(
        "--clients-nice",
        type=int,
        default=0,
        help="run the clients at this nice level: browsers are other devices in use, here they share "
        "the service's CPUs (e.g. 19 to see the service's own behaviour on a small machine)",
    )


async def angle_frame_client(url: str, frames: list[int], i: int, stop: asyncio.Event) -> None:
    async with websockets.connect(url, max_size=None) as ws:
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            # Angle frames only: every client is owed one per hub period, coach or athlete view alike.
            if isinstance(text, str) and text.startswith('{"type":"angles"'):
                frames[i] += 1


async def _clients(urls: list[str], settle_s: float, window_s: float, out: mp.Queue[list[int]]) -> list[int]:
    frames = [0] * len(urls)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(angle_frame_client(u, frames, i, stop)) for i, u in enumerate(urls)]
    await asyncio.sleep(settle_s)
    out.put([])  # connected and past the initial snapshots: the measured window starts
    frames[:] = [0] * len(urls)
    await asyncio.sleep(window_s)
    counted = list(frames)
    out.put([])  # the window ends before the clients disconnect
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return counted


def _client_process(
    urls: list[str], settle_s: float, window_s: float, out: mp.Queue[list[int]], nice: int
) -> None:
    if nice:
        os.nice(nice)
    out.put(asyncio.run(_clients(urls, settle_s, window_s, out)))


def is_athlete_view(i: int) -> bool:
    return i % 10 == 9


def client_urls(handle: ServiceHandle, n_clients: int) -> list[str]:
    """Websocket URLs of ``n_clients`` dashboards: coach views, every tenth an athlete's own view."""
    base = handle.base_url.replace("http", "ws", 1) + WS_PATH
    athletes = list(handle.sessions.athletes)
    return [
        f"{base}?athlete={athletes[i % len(athletes)]}" if is_athlete_view(i) else base
        for i in range(n_clients)
    ]


def _load(
    handle: ServiceHandle, n_clients: int, window_s: float, nice: int = 0
) -> tuple[list[int], dict[str, float]]:
    """Clients live in another process, as real browsers would: their decoding must not share our GIL."""
    urls = client_urls(handle, n_clients)
    settle_s = 2.0
    ctx = mp.get_context("spawn")
    out: mp.Queue[list[int]] = ctx.Queue()
    proc = ctx.Process(target=_client_process, args=(urls, settle_s, window_s, out, nice))
    proc.start()
    out.get(timeout=60.0)
    handle.runner.stats.packet_to_angle = LatencyRecorder()
    out.get(timeout=window_s + 60.0)
    loaded = handle.runner.stats.packet_to_angle.percentiles_ms(QS)
    frames = out.get(timeout=60.0)
    proc.join(10.0)
    return frames, loaded


def _fmt(p: dict[str, float]) -> str:
    return "  ".join(f"p{q:g} {p[f'p{q:g}_ms']:6.2f} ms" for q in QS)


def run(args: argparse.Namespace) -> int:
    config = load_config(None)
    with background_demo(config, athletes=args.athletes) as handle:
        time.sleep(args.warmup_s)
        handle.runner.stats.packet_to_angle = LatencyRecorder()
        time.sleep(args.window_s)
        idle = handle.runner.stats.packet_to_angle.percentiles_ms(QS)
        frames, loaded = _load(handle, args.clients, args.window_s, args.clients_nice)
        drops = handle.hub.dropped_frames()
    print(f"{args.athletes} athletes, packet -> angle over {args.window_s:g} s windows")
    print(f"  0 clients:  {_fmt(idle)}")
    print(f"  {args.clients} clients: {_fmt(loaded)}")
    expected = round(args.window_s / FRAME_PERIOD_S)
    for role, athlete_view in (("coach", False), ("athlete", True)):
        got = sorted(n for i, n in enumerate(frames) if is_athlete_view(i) == athlete_view)
        if got:
            print(
                f"  {role} clients ({len(got)}): frames min {got[0]} median {got[len(got) // 2]} "
                f"max {got[-1]} angle frames ({expected} hub periods in the window)"
            )
    print(f"  hub dropped frames: {drops}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
