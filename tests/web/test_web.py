"""The dashboard service over real HTTP and websockets (uvicorn on a free port): protocol v1,
decimation, bounded per-client queues, coach commands, /health and access control."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import socket
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from sensorhub.config import Config, ServiceConfig
from sensorhub.cues import DEFAULT_RULES, Cue, audio_id, parse_rules
from sensorhub.model import Event, KneeAngles, SensorRef
from sensorhub.runtime.health import SensorLatencies
from sensorhub.runtime.service import ServiceHandle, Stage, serve_in_thread
from sensorhub.sources.base import PacketSource
from sensorhub.web.hub import ClientChannel
from tests.helpers import IdleSource, leg_refs

ATHLETES = ("ana", "ben")
TOKEN = "a-configured-token-of-32-chars!!"


@contextlib.contextmanager
def service(
    tmp_path: Path, host: str = "127.0.0.1", token: str = "", cues: bool = False
) -> Iterator[ServiceHandle]:
    config = replace(Config(), service=ServiceConfig(host=host, access_token=token))
    if cues:
        config = replace(config, cues=parse_rules(DEFAULT_RULES, "<test>"))

    def make() -> tuple[PacketSource, list[SensorRef], list[Stage]]:
        return IdleSource(), leg_refs(ATHLETES), []

    with serve_in_thread(config, make, host=host, port=0, store_path=tmp_path / "h.sqlite3") as handle:
        yield handle


def publish(handle: ServiceHandle, topic: str, key: str, payload: Any) -> None:
    assert handle.loop is not None
    handle.loop.call_soon_threadsafe(handle.bus.publish, topic, key, payload)


def http(handle: ServiceHandle, path: str, method: str = "GET", body: Any = None, token: str = "") -> Any:
    url = f"http://127.0.0.1:{handle.port}{path}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as res:
        text = res.read().decode()
        return (
            json.loads(text) if res.headers.get("content-type", "").startswith("application/json") else text
        )


def status_of(handle: ServiceHandle, path: str, method: str = "GET", body: Any = None) -> int:
    try:
        http(handle, path, method, body)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def ws_url(handle: ServiceHandle, query: str = "") -> str:
    return f"ws://127.0.0.1:{handle.port}/ws/v1{query}"


def angles(leg_id: str, t0_s: float, n: int, rate_hz: float = 200.0) -> KneeAngles:
    t_s = t0_s + np.arange(n) / rate_hz
    return KneeAngles(
        leg_id,
        t_s,
        np.radians(40.0 + 10.0 * np.sin(t_s)),
        np.radians(np.full(n, 3.0)),
        np.zeros(n),
        np.zeros(n, dtype=np.uint8),
    )


async def frames_until(ws: Any, predicate: Any, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while True:
            frame = json.loads(await ws.recv())
            seen.append(frame)
            if predicate(frame):
                return seen


def test_hello_then_decimated_angle_frames(tmp_path: Path) -> None:
    """One second of 200 Hz angles arrives as ~50 display samples per leg, in degrees, in order."""

    async def run(handle: ServiceHandle) -> list[dict[str, Any]]:
        async with websockets.connect(ws_url(handle)) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello" and hello["protocol"] == 1 and hello["role"] == "coach"
            assert [a["athlete"] for a in hello["athletes"]] == list(ATHLETES)
            t0 = time.time()
            for k in range(10):  # ten 20-sample chunks, as the pipeline publishes them
                publish(handle, "angles", "ana/right", angles("ana/right", t0 + k * 0.1, 20))
            got: list[dict[str, Any]] = []

            def enough(f: dict[str, Any]) -> bool:
                if f["type"] == "angles" and "ana" in f["athletes"]:
                    got.append(f["athletes"]["ana"]["right"])
                return sum(len(g["t_s"]) for g in got) >= 50

            await frames_until(ws, enough)
            return got

    with service(tmp_path) as handle:
        got = asyncio.run(run(handle))
    t_s = np.concatenate([g["t_s"] for g in got])
    flex = np.concatenate([g["flexion_deg"] for g in got])
    assert len(t_s) == 50  # 1 s at 50 Hz display rate, from 200 samples
    assert np.all(np.diff(t_s) > 0.0195)
    np.testing.assert_allclose(flex, 40.0 + 10.0 * np.sin(t_s), atol=0.02)  # degrees, rounded to 0.01
    assert all(v == pytest.approx(3.0) for g in got for v in g["valgus_deg"])


def stalled_client(port: int) -> socket.socket:
    """A websocket client that completes the handshake and then never reads (tiny receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/v1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_stalled_client_never_delays_another(tmp_path: Path) -> None:
    """A client that stops reading loses its oldest frames (bounded queue); a reading client keeps
    receiving every frame promptly while the stalled one is flooded."""

    async def run(handle: ServiceHandle) -> tuple[float, int]:
        sock = stalled_client(handle.port)
        async with websockets.connect(ws_url(handle), max_size=None) as reader:
            await reader.recv()  # hello
            t0 = time.time()
            worst_delay_s = 0.0
            for k in range(
                40
            ):  # 40 frames of 60 s of data per leg (~250 kB each): megabytes for the stalled one
                for a in ATHLETES:
                    for side in ("right", "left"):
                        publish(handle, "angles", f"{a}/{side}", angles(f"{a}/{side}", t0 + k * 60.0, 12000))
                while True:
                    frame = json.loads(await asyncio.wait_for(reader.recv(), 5.0))
                    if frame["type"] == "angles":
                        worst_delay_s = max(worst_delay_s, time.time() - frame["t_sent_s"])
                        break
            dropped = handle.hub.dropped_frames()
        sock.close()
        return worst_delay_s, dropped

    with service(tmp_path) as handle:
        # Shrink the stalled client's queue so the flood overflows it within the test.
        assert handle.loop is not None
        original = handle.hub.connect

        def small(athlete: str | None) -> ClientChannel:
            channel = original(athlete)
            channel._frames = type(channel._frames)(maxlen=8)
            return channel

        handle.hub.connect = small  # type: ignore[method-assign]
        worst, dropped = asyncio.run(run(handle))
    assert worst < 0.5, f"the reading client waited {worst:.2f} s for a frame"
    assert dropped > 0, "the stalled client's queue should have overflowed and dropped its oldest frames"


def test_client_channel_drops_oldest() -> None:
    channel = ClientChannel(None, maxsize=3)
    for i in range(5):
        channel.offer(str(i))
    assert channel.dropped == 2

    async def take() -> list[str]:
        return [await channel.get() for _ in range(3)]

    assert asyncio.run(take()) == ["2", "3", "4"]


def test_coach_commands_pain_history_and_thresholds(tmp_path: Path) -> None:
    with service(tmp_path) as handle:
        thresholds = handle.bus.subscribe(["thresholds"])
        set_id = http(handle, "/api/athletes/ana/set/start", "POST", {"drill": "squat"})["set_id"]
        assert status_of(handle, "/api/athletes/ana/set/start", "POST", {}) == 409  # already running
        event = Event("rep", "ana/right", 1.0, {"depth_deg": 40.0, "peak_valgus_deg": 4.0}, 75.0)
        publish(handle, "events", "ana/right", event)
        deadline = time.time() + 5
        while handle.sessions.athletes["ana"].reps < 1 and time.time() < deadline:
            time.sleep(0.02)
        assert http(handle, "/api/athletes/ana/set/stop", "POST")["set_id"] == set_id
        pain = http(handle, "/api/athletes/ana/pain", "POST", {"pain": 6})
        assert pain["flagged"] and "reduce load" in pain["guidance"] and pain["threshold"] == 3
        assert status_of(handle, "/api/athletes/ana/pain", "POST", {"pain": 11}) == 409
        assert status_of(handle, "/api/athletes/nobody/pain", "POST", {"pain": 1}) == 404
        new = http(handle, "/api/athletes/ana/thresholds", "PUT", {"pain_threshold": 7, "depth_deg": 45.0})
        assert new["thresholds"] == {"pain_threshold": 7.0, "depth_deg": 45.0}
        assert status_of(handle, "/api/athletes/ana/thresholds", "PUT", {"bogus": 1}) == 409
        assert not http(handle, "/api/athletes/ana/pain", "POST", {"pain": 6})["flagged"]  # 6 <= 7 now
        history = http(handle, "/api/athletes/ana/history")
        state = {a["athlete"]: a for a in http(handle, "/api/athletes")["athletes"]}["ana"]
        message = thresholds.get_nowait()
    assert [(p["pain"], p["flagged"], p["set_id"]) for p in history["pain"]] == [
        (6, True, set_id),
        (6, False, set_id),
    ]
    assert history["sets"][0]["reps"] == 1 and history["sets"][0]["drill"] == "squat"
    assert history["trends"]["rep"]["depth_deg"][0]["mean"] == 40.0
    # Graded at event time: depth 40 vs >= 60 (amber down to 48) -> red; valgus 4 <= 8 -> green.
    grades = {m["name"]: m["grade"] for m in state["last_event"]["metrics"]}
    assert grades["depth_deg"] == "bad" and grades["peak_valgus_deg"] == "good"
    assert state["targets"]["depth_deg"]["value"] == 45.0
    assert message is not None and message.payload == {
        "athlete": "ana",
        "values": {"pain_threshold": 7.0, "depth_deg": 45.0},
    }


def test_cue_reaches_only_its_athlete(tmp_path: Path) -> None:
    async def run(handle: ServiceHandle) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with (
            websockets.connect(ws_url(handle, "?athlete=ana")) as ana,
            websockets.connect(ws_url(handle, "?athlete=ben")) as ben,
        ):
            hello = json.loads(await ana.recv())
            assert hello["role"] == "athlete" and [a["athlete"] for a in hello["athletes"]] == ["ana"]
            await ben.recv()
            publish(
                handle,
                "cues",
                "ana/left",
                Cue(
                    "ana",
                    "ana/left",
                    "valgus",
                    "knees out",
                    2,
                    time.time(),
                    "rep",
                    9.0,
                    0.004,
                    audio_id("knees out"),
                ),
            )
            publish(handle, "angles", "ana/left", angles("ana/left", time.time(), 40))
            seen_ana = await frames_until(ana, lambda f: f["type"] == "cue")
            publish(handle, "events", "ana/left", Event("rep", "ana/left", 2.0, {"depth_deg": 70.0}, 80.0))
            seen_ana += await frames_until(ana, lambda f: f["type"] == "event")
            publish(handle, "angles", "ben/left", angles("ben/left", time.time(), 40))
            seen_ben = await frames_until(ben, lambda f: f["type"] == "angles")
            return seen_ana, seen_ben

    with service(tmp_path) as handle:
        seen_ana, seen_ben = asyncio.run(run(handle))
        history = http(handle, "/api/athletes/ana/history")
    event = seen_ana[-1]  # the event's own type is nested: the frame's type stays "event"
    assert (event["athlete"], event["event"]["type"], event["event"]["leg"]) == ("ana", "rep", "ana/left")
    cue = next(f for f in seen_ana if f["type"] == "cue")
    assert (cue["phrase"], cue["audio_id"], cue["leg"], cue["rule"]) == (
        "knees out",
        "knees-out",
        "ana/left",
        "valgus",
    )
    assert all(f.get("athlete", "ben") == "ben" for f in seen_ben if f["type"] in ("cue", "state", "event"))
    assert all(set(f["athletes"]) == {"ben"} for f in seen_ben if f["type"] == "angles")
    assert history["recent_cues"][0]["phrase"] == "knees out"


def test_health_reports_every_sensor(tmp_path: Path) -> None:
    with service(tmp_path) as handle:
        doc = http(handle, "/health")
    assert doc["state"] == "running"
    assert set(doc["sensors"]) == {r.sensor_id for r in leg_refs(ATHLETES)}
    sensor = doc["sensors"]["ana-right-thigh"]
    for key in ("connected", "rate_hz", "packets", "lost", "clock_drift_ppm", "latency_ms", "battery_pct"):
        assert key in sensor
    assert set(sensor["latency_ms"]) == {"p50_ms", "p95_ms", "p99_ms"}
    assert sensor["connected"] is False and sensor["packets"] == 0
    assert set(doc["latency_ms"]["packet_to_angle"]) == {"p50_ms", "p99_ms"}


def test_non_loopback_bind_requires_a_token(tmp_path: Path) -> None:
    """Bound to 0.0.0.0 without a configured token: a token is generated; pages, API, /health and the
    websocket refuse anyone without it; an athlete token opens only that athlete."""

    async def ws_close_code(handle: ServiceHandle, query: str) -> int | None:
        try:
            async with websockets.connect(ws_url(handle, query)) as ws:
                frame = json.loads(await ws.recv())
                return 1000 if frame["type"] == "hello" else None
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    with service(tmp_path, host="0.0.0.0") as handle:
        token = handle.policy.token
        assert token and len(token) >= 16
        ana = handle.policy.athlete_token("ana")
        for path in ("/", "/history", "/health", "/api/athletes", "/athlete?athlete=ana"):
            assert status_of(handle, path) == 401, path
        assert status_of(handle, "/api/athletes/ana/pain", "POST", {"pain": 1}) == 401
        assert status_of(handle, f"/?token={token}") == 200
        assert status_of(handle, f"/athlete?athlete=ana&token={ana}") == 200
        assert status_of(handle, f"/athlete?athlete=ben&token={ana}") == 401
        assert status_of(handle, f"/?token={ana}") == 401
        codes = {
            "none": asyncio.run(ws_close_code(handle, "")),
            "wrong": asyncio.run(ws_close_code(handle, "?token=wrong")),
            "athlete-as-coach": asyncio.run(ws_close_code(handle, f"?token={ana}")),
            "other-athlete": asyncio.run(ws_close_code(handle, f"?athlete=ben&token={ana}")),
            "coach": asyncio.run(ws_close_code(handle, f"?token={token}")),
            "own-athlete": asyncio.run(ws_close_code(handle, f"?athlete=ana&token={ana}")),
        }
        assert "token=" in handle.urls()["coach"]
    assert codes["coach"] == 1000 and codes["own-athlete"] == 1000
    for name in ("none", "wrong", "athlete-as-coach", "other-athlete"):
        assert codes[name] in (4401, 403), (name, codes[name])


def test_loopback_bind_is_open_and_configured_token_is_used(tmp_path: Path) -> None:
    with service(tmp_path) as handle:
        assert handle.policy.token is None
        assert status_of(handle, "/") == 200 and status_of(handle, "/static/coach.js") == 200
    with service(tmp_path, token=TOKEN) as handle:
        assert handle.policy.token == TOKEN
        assert status_of(handle, "/health") == 401


def test_sensor_latency_percentiles_match_nearest_rank() -> None:
    rng = np.random.default_rng(3)
    lat = SensorLatencies(["a", "b", "c"], capacity=500)
    samples = rng.exponential(0.002, 1200)  # more than the capacity: only the last 500 count
    for v in samples:
        lat.add("a", float(v))
    for v in samples[:7]:
        lat.add("b", float(v))
    got = lat.percentiles_ms((50.0, 99.0))
    for name, values in (("a", samples[-500:]), ("b", samples[:7])):
        ordered = np.sort(values) * 1e3
        for q in (50.0, 99.0):
            assert got[name][f"p{q:g}_ms"] == pytest.approx(ordered[int(np.ceil(q / 100 * len(values))) - 1])
    assert np.isnan(got["c"]["p99_ms"])


def test_a_late_client_gets_the_recent_window_first(tmp_path: Path) -> None:
    async def run(handle: ServiceHandle) -> list[dict[str, Any]]:
        async with websockets.connect(ws_url(handle)) as first:
            await first.recv()
            publish(handle, "angles", "ben/left", angles("ben/left", time.time() - 2.0, 400))  # 2 s at 200 Hz
            await frames_until(first, lambda f: f["type"] == "angles")
        async with websockets.connect(ws_url(handle, "?athlete=ben")) as late:
            return [json.loads(await late.recv()) for _ in range(2)]

    with service(tmp_path) as handle:
        hello, backlog = asyncio.run(run(handle))
    assert hello["type"] == "hello" and backlog["type"] == "angles"
    assert set(backlog["athletes"]) == {"ben"}
    assert len(backlog["athletes"]["ben"]["left"]["t_s"]) == 100  # 2 s at the 50 Hz display rate


def test_cue_clips_are_rendered_at_start_and_served(tmp_path: Path) -> None:
    """Every rule phrase is rendered before the first packet; the athlete page fetches it by audio id."""
    with service(tmp_path, cues=True) as handle:
        url = f"http://127.0.0.1:{handle.port}/audio/{audio_id('knees out')}.wav"
        with urllib.request.urlopen(url, timeout=10) as res:
            assert res.headers["content-type"] == "audio/wav"
            data = res.read()
        assert status_of(handle, "/audio/not-a-cue.wav") == 404
    with wave.open(io.BytesIO(data), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        duration_s = w.getnframes() / w.getframerate()
    assert 0.1 < duration_s < 1.0
    assert np.abs(pcm.astype(float)).max() > 1000  # audible, not silence


def test_a_finished_set_reports_limb_symmetry(tmp_path: Path) -> None:
    with service(tmp_path) as handle:
        http(handle, "/api/athletes/ana/set/start", "POST", {"drill": "drop_jump"})
        for k, (leg, flexion) in enumerate([("ana/left", 80.0), ("ana/right", 60.0), ("ana/left", 80.0)]):
            event = Event("landing", leg, float(k), {"peak_flexion_deg": flexion}, 70.0)
            publish(handle, "events", leg, event)
        deadline = time.time() + 5
        while sum(handle.sessions.athletes["ana"].reps_by_leg.values()) < 3 and time.time() < deadline:
            time.sleep(0.02)
        http(handle, "/api/athletes/ana/set/stop", "POST")
        state = {a["athlete"]: a for a in http(handle, "/api/athletes")["athletes"]}["ana"]
    lsi = {(e["type"], e["metric"]): e for e in state["set_symmetry"]}
    entry = lsi[("landing", "peak_flexion_deg")]
    assert entry["lsi_pct"] == 75.0 and entry["n_left"] == 2 and entry["n_right"] == 1


def test_coach_mutes_an_athlete_and_the_cue_stage_follows(tmp_path: Path) -> None:
    with service(tmp_path, cues=True) as handle:
        assert handle.runner.cues is not None
        assert http(handle, "/api/athletes/ana/mute", "POST", {"muted": True}) == {"muted": True}
        deadline = time.time() + 5
        while not handle.runner.cues.engine.is_muted("ana") and time.time() < deadline:
            time.sleep(0.02)
        assert handle.runner.cues.engine.is_muted("ana") and not handle.runner.cues.engine.is_muted("ben")
        assert status_of(handle, "/api/athletes/ana/mute", "POST", {"muted": "yes"}) == 400
        state = {a["athlete"]: a for a in http(handle, "/api/athletes")["athletes"]}["ana"]
        assert state["muted"] is True
        http(handle, "/api/athletes/ana/mute", "POST", {"muted": False})
        deadline = time.time() + 5
        while handle.runner.cues.engine.is_muted("ana") and time.time() < deadline:
            time.sleep(0.02)
        assert not handle.runner.cues.engine.is_muted("ana")
