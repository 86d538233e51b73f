"""The fuzz fault of ``sensorhub bench faults``: mutated and random packets into the pipeline's source
queue (one "victim" athlete's sensors and unknown sensor ids), malformed websocket messages and HTTP
bodies against the dashboard. Everything is seeded: a failing run can be repeated."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import aiohttp

from sensorhub.model import RawPacket
from sensorhub.sources import PacketQueue
from sensorhub.web import WS_PATH

PACKET_KINDS = ("bitflip", "truncate", "extend", "random", "empty", "host_time", "unknown_sensor")
ODD_TIMES_S = (float("nan"), float("inf"), float("-inf"), 0.0, -1.0, 1e12, 1e300)
CHUNK = 500
HIGH_WATER = 2000  # queued packets: the fuzz never pushes real packets out of the bounded queue
HTTP_ACTIONS = (
    ("POST", "set/start"),
    ("POST", "set/stop"),
    ("POST", "drill"),
    ("PUT", "thresholds"),
    ("POST", "mute"),
    ("POST", "pain"),
    ("PUT", "plan"),
    ("POST", "decision"),
)


@dataclass(slots=True)
class FuzzCounts:
    packets: Counter[str] = field(default_factory=Counter)  # kind -> injected
    known_id_packets: int = 0  # injected with a configured sensor id (the recorder keeps those)
    http_status: Counter[str] = field(default_factory=Counter)  # "2xx", "4xx", "5xx", "error"
    ws_sent: int = 0
    ws_closed_by_server: int = 0
    ws_errors: int = 0


def _mutate(rng: random.Random, kind: str, payload: bytes) -> bytes:
    if kind == "bitflip":
        out = bytearray(payload)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out) * 8)
            out[i // 8] ^= 1 << (i % 8)
        return bytes(out)
    if kind == "truncate":
        return payload[: rng.randrange(len(payload))]
    if kind == "extend":
        return payload + rng.randbytes(rng.randint(1, 64))
    if kind == "random":
        return rng.randbytes(rng.randint(1, 300))
    if kind == "empty":
        return b""
    return payload


def fuzz_packets(
    rng: random.Random,
    templates: Sequence[RawPacket],
    victim: Sequence[str],
    n: int,
    counts: FuzzCounts,
    kinds: Sequence[str] = PACKET_KINDS,
) -> Iterator[RawPacket]:
    """``n`` packets, each of a random kind; ``templates`` are real packets whose payloads are mutated."""
    for _ in range(n):
        kind = rng.choice(kinds)
        counts.packets[kind] += 1
        template = rng.choice(templates)
        t_s = rng.choice(ODD_TIMES_S) if kind == "host_time" else time.time()
        if kind == "unknown_sensor":
            yield RawPacket(f"fuzz-{rng.randrange(1000)}", t_s, template.payload)
            continue
        counts.known_id_packets += 1
        yield RawPacket(rng.choice(victim), t_s, _mutate(rng, kind, bytes(template.payload)))


async def inject_packets(queue: PacketQueue, packets: Iterator[RawPacket]) -> None:
    """Into the live queue in chunks, never past ``HIGH_WATER`` queued (the real stream keeps flowing)."""
    done = False
    while not done:
        while len(queue) > HIGH_WATER:
            await asyncio.sleep(0.005)
        for _ in range(CHUNK):
            packet = next(packets, None)
            if packet is None:
                done = True
                break
            queue.put_nowait(packet)
        await asyncio.sleep(0)


def _bodies(rng: random.Random) -> Iterator[tuple[bytes, str]]:
    """Malformed or hostile bodies with a content type (some lie about it)."""
    nested = "[" * 100_000 + "]" * 100_000
    while True:
        yield rng.choice(
            [
                (rng.randbytes(rng.randint(0, 512)), "application/json"),
                (b'{"drill": ', "application/json"),
                (nested.encode(), "application/json"),
                (json.dumps({"drill": rng.random(), "pain": "x" * 1000}).encode(), "application/json"),
                (json.dumps([1, 2, 3]).encode(), "application/json"),
                (json.dumps({"muted": "yes", "pain": -5, "context": None}).encode(), "application/json"),
                (b'{"drill": "squat"}', "text/plain"),
                (("\ud800" * 10).encode("utf-8", "surrogatepass"), "application/json"),
                (b"x" * (1 << 20), "application/octet-stream"),
                (b"", ""),
            ]
        )


async def fuzz_http(
    base_url: str, athletes: Sequence[str], n: int, rng: random.Random, counts: FuzzCounts
) -> None:
    bodies = _bodies(rng)
    timeout = aiohttp.ClientTimeout(total=10.0)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for _ in range(n):
            method, action = rng.choice(HTTP_ACTIONS)
            body, content_type = next(bodies)
            headers = {"Content-Type": content_type} if content_type else {}
            url = f"{base_url}/api/athletes/{rng.choice(athletes)}/{action}"
            try:
                async with http.request(method, url, data=body, headers=headers) as resp:
                    await resp.read()
                    counts.http_status[f"{resp.status // 100}xx"] += 1
            except (aiohttp.ClientError, TimeoutError):
                counts.http_status["error"] += 1


async def fuzz_ws(base_url: str, athlete: str, n: int, rng: random.Random, counts: FuzzCounts) -> None:
    url = base_url.replace("http", "ws", 1) + f"{WS_PATH}?athlete={athlete}"
    bodies = _bodies(rng)
    timeout = aiohttp.ClientTimeout(total=10.0)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        sent = 0
        while sent < n:
            try:
                async with http.ws_connect(url, max_msg_size=0) as ws:
                    while sent < n and not ws.closed:
                        body, _ = next(bodies)
                        if rng.random() < 0.5:
                            await ws.send_bytes(body)
                        else:
                            await ws.send_str(body.decode("utf-8", "replace"))
                        sent += 1
                        counts.ws_sent += 1
                        await asyncio.sleep(0)
                    if ws.closed:
                        counts.ws_closed_by_server += 1
            except (aiohttp.ClientError, TimeoutError, ConnectionError):
                counts.ws_errors += 1
                sent += 1  # a refused connection counts against the budget: no endless loop
