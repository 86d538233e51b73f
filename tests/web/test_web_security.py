"""The dashboard's defences over real HTTP and websockets (uvicorn on a free port): athlete-scoped tokens
and links, the Host allow-list (DNS rebinding), Origin checks and JSON-only state changes (cross-site
pages), bounded bodies and websocket messages, tokens that are not ASCII, and the links `sensorhub run`
prints once at start-up."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from sensorhub.config import Config, ServiceConfig
from sensorhub.errors import ConfigError
from sensorhub.model import SensorRef
from sensorhub.runtime.service import ServiceHandle, Stage, serve_in_thread
from sensorhub.sources.base import PacketSource
from sensorhub.web import AccessPolicy
from sensorhub.web.guard import MAX_BODY_BYTES
from sensorhub.web.protocol import WS_MAX_CLIENT_MESSAGE_BYTES
from tests.helpers import IdleSource, leg_refs

ATHLETES = ("ana", "ben")


@contextlib.contextmanager
def service(tmp_path: Path, host: str = "127.0.0.1", **service_fields: Any) -> Iterator[ServiceHandle]:
    config = replace(Config(), service=ServiceConfig(host=host, **service_fields))

    def make() -> tuple[PacketSource, list[SensorRef], list[Stage]]:
        return IdleSource(), leg_refs(ATHLETES), []

    with serve_in_thread(config, make, host=host, port=0, store_path=tmp_path / "h.sqlite3") as handle:
        yield handle


def request(
    handle: ServiceHandle,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str = "",
) -> tuple[int, Any]:
    """One HTTP request with exactly these headers (``Host`` too, when given); (status, JSON or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=all_headers)
        res = conn.getresponse()
        raw = res.read()
    finally:
        conn.close()
    if res.getheader("content-type", "").startswith("application/json"):
        return res.status, json.loads(raw)
    return res.status, raw.decode(errors="replace")


def post_json(handle: ServiceHandle, path: str, doc: Any, token: str = "", **headers: str) -> int:
    hdrs = {"Content-Type": "application/json", **headers}
    return request(handle, path, "POST", json.dumps(doc).encode(), hdrs, token)[0]


def ws_handshake(handle: ServiceHandle, query: str = "", **headers: str) -> int:
    """The status of a websocket opening handshake to /ws/v1 (101 = accepted) with these headers."""
    key = base64.b64encode(os.urandom(16)).decode()
    hdrs = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        **headers,
    }
    return request(handle, f"/ws/v1{query}", headers=hdrs)[0]


def state(handle: ServiceHandle, athlete: str) -> dict[str, Any]:
    status, doc = request(handle, "/api/athletes", token=handle.policy.token or "")
    assert status == 200
    return next(a for a in doc["athletes"] if a["athlete"] == athlete)


def test_an_athlete_token_cannot_stop_the_coachs_set(tmp_path: Path) -> None:
    with service(tmp_path, host="0.0.0.0") as handle:
        coach, ana = handle.policy.token or "", handle.policy.athlete_token("ana")
        assert post_json(handle, "/api/athletes/ana/set/start", {"drill": "squat"}, coach) == 200
        assert post_json(handle, "/api/athletes/ana/set/stop", {}, ana) == 403
        assert state(handle, "ana")["set_state"] == "running"
        assert post_json(handle, "/api/athletes/ana/set/stop", {}, coach) == 200
        # Its own home set: the athlete starts and stops it.
        assert post_json(handle, "/api/athletes/ana/set/start", {}, ana) == 200
        assert post_json(handle, "/api/athletes/ana/set/stop", {}, ana) == 200


def test_the_coach_stream_carries_each_athletes_own_link(tmp_path: Path) -> None:
    """The coach's hello names, per athlete, a link with that athlete's token (never the coach's); the
    link opens that athlete's page and stream and nothing else."""

    async def hello(handle: ServiceHandle, query: str) -> dict[str, Any]:
        async with websockets.connect(f"ws://127.0.0.1:{handle.port}/ws/v1{query}") as ws:
            frame: dict[str, Any] = json.loads(await ws.recv())
            return frame

    with service(tmp_path, host="0.0.0.0") as handle:
        coach = handle.policy.token or ""
        links = asyncio.run(hello(handle, f"?token={coach}"))["athlete_links"]
        assert set(links) == set(ATHLETES)
        for athlete, link in links.items():
            parts = urlsplit(link)
            q = parse_qs(parts.query)
            assert parts.path == "/athlete" and q["athlete"] == [athlete]
            assert q["token"] == [handle.policy.athlete_token(athlete)] and coach not in link
            assert request(handle, link)[0] == 200
        ana = handle.policy.athlete_token("ana")
        assert "athlete_links" not in asyncio.run(hello(handle, f"?athlete=ana&token={ana}"))
        assert request(handle, "/athlete?athlete=ben", token=ana)[0] == 401
        assert request(handle, "/api/athletes", token=ana)[0] == 401
        assert ws_handshake(handle, f"?athlete=ben&token={ana}") != 101


def test_unknown_host_names_are_refused(tmp_path: Path) -> None:
    """A page whose name was rebound to 127.0.0.1 reaches the loopback dashboard with its own name as Host."""
    with service(tmp_path, allowed_hosts=("dash.clinic.test",)) as handle:
        port = handle.port
        assert request(handle, "/", headers={"Host": f"rebound.example:{port}"})[0] == 400
        assert request(handle, "/api/athletes", headers={"Host": "rebound.example"})[0] == 400
        assert ws_handshake(handle, Host=f"rebound.example:{port}") == 400
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "dash.clinic.test"):
            assert request(handle, "/api/athletes", headers={"Host": host})[0] == 200, host
        assert ws_handshake(handle, Host=f"localhost:{port}") == 101


def test_cross_origin_pages_cannot_change_state_or_open_the_stream(tmp_path: Path) -> None:
    with service(tmp_path) as handle:
        port = handle.port
        evil = {"Origin": "http://evil.example"}
        assert post_json(handle, "/api/athletes/ana/pain", {"pain": 1}, **evil) == 403
        assert post_json(handle, "/api/athletes/ana/pain", {"pain": 1}, Origin="null") == 403
        assert ws_handshake(handle, **evil) == 403
        # The dashboard's own pages send their own origin; clients that are not browsers send none.
        same = {"Origin": f"http://127.0.0.1:{port}"}
        assert post_json(handle, "/api/athletes/ana/pain", {"pain": 1}, **same) == 200
        assert post_json(handle, "/api/athletes/ana/pain", {"pain": 1}) == 200
        assert ws_handshake(handle, **same) == 101
        assert request(handle, "/api/athletes", headers=evil)[0] == 200  # reads: the browser hides them


def test_state_changes_take_json_only(tmp_path: Path) -> None:
    """A cross-site form or no-cors fetch can send text/plain, form encodings or nothing, without a
    preflight; JSON needs one, which is never granted."""
    with service(tmp_path) as handle:
        body = json.dumps({"pain": 1}).encode()
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            status = request(handle, "/api/athletes/ana/pain", "POST", body, {"Content-Type": kind})[0]
            assert status == 415, kind
        assert request(handle, "/api/athletes/ana/set/start", "POST")[0] == 415
        assert state(handle, "ana")["set_state"] != "running"
        utf8 = {"Content-Type": "application/json; charset=utf-8"}
        assert request(handle, "/api/athletes/ana/pain", "POST", body, utf8)[0] == 200


def test_request_bodies_are_bounded(tmp_path: Path) -> None:
    with service(tmp_path) as handle:
        big = json.dumps({"pain": 1, "note": "x" * MAX_BODY_BYTES}).encode()
        hdrs = {"Content-Type": "application/json"}
        assert request(handle, "/api/athletes/ana/pain", "POST", big, hdrs)[0] == 413
        # Without a declared length (chunked): counted as it arrives.
        chunks = (big[i : i + 8192] for i in range(0, len(big), 8192))
        conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
        try:
            conn.request("POST", "/api/athletes/ana/pain", body=chunks, headers=hdrs, encode_chunked=True)
            assert conn.getresponse().status == 413
        finally:
            conn.close()
        assert post_json(handle, "/api/athletes/ana/pain", {"pain": 1, "note": "x" * 1000}) == 200


def test_websocket_messages_are_bounded(tmp_path: Path) -> None:
    """A client may send pings (anything else is ignored: binary frames, other JSON, garbage); a message
    over the limit closes its connection (1009, message too big)."""

    async def run(handle: ServiceHandle) -> int | None:
        async with websockets.connect(f"ws://127.0.0.1:{handle.port}/ws/v1") as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            # binary frames, JSON that is not an object, garbage: ignored, the connection stays
            for odd in (b"\x00\x01binary", "[1, 2]", '"ping"', "{not json", "[" * 4000):
                await ws.send(odd)
            await ws.send(json.dumps({"type": "ping"}))
            async with asyncio.timeout(5):
                while json.loads(await ws.recv())["type"] != "pong":
                    pass
            await ws.send(json.dumps({"type": "ping", "pad": "x" * WS_MAX_CLIENT_MESSAGE_BYTES}))
            await ws.send(json.dumps({"type": "ping"}))
            try:
                async with asyncio.timeout(5):
                    while json.loads(await ws.recv())["type"] != "pong":
                        pass
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd is not None else None
            return None  # answered: the big message was taken

    with service(tmp_path) as handle:
        assert asyncio.run(run(handle)) == 1009


def test_tokens_that_are_not_ascii_are_refused_not_errors(tmp_path: Path) -> None:
    with service(tmp_path, host="0.0.0.0") as handle:
        assert request(handle, "/?token=%C3%A9t%C3%A9")[0] == 401
        assert request(handle, "/athlete?athlete=ana&token=%E2%9C%93")[0] == 401
        assert request(handle, "/api/athletes", headers={"Authorization": "Bearer \u00e9t\u00e9"})[0] == 401
        assert ws_handshake(handle, "?token=%C3%A9t%C3%A9") == 403
    with pytest.raises(ConfigError) as info:
        AccessPolicy("caf\u00e9-token-with-an-accent")
    assert "caf" not in str(info.value)


def test_run_prints_the_coach_and_athlete_links_once(tmp_path: Path) -> None:
    """`sensorhub run` on a non-loopback bind: the generated token is printed once, in the coach's link
    (with the history and health links), and each athlete's link carries that athlete's token."""
    config = tmp_path / "run.toml"
    config.write_text(
        f"""
[service]
host = "0.0.0.0"
port = 0
data_dir = "{tmp_path}"
[source]
kind = "simulator"
[simulator]
athletes = 1
[sinks.recorder]
enabled = false
"""
    )
    exe = Path(sys.executable).with_name("sensorhub")
    proc = subprocess.Popen(
        [str(exe), "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    watchdog = threading.Timer(120.0, proc.kill)  # a service that never prints its links ends the read
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:  # blocks until the service has printed its links (or died)
            lines.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        # The printed links work as printed (this machine's LAN address is an allowed Host name).
        opened = [
            urllib.request.urlopen(line.split()[-1], timeout=10).status
            for line in lines
            if line.split()[:1] in (["coach"], ["athlete"])
        ]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    links = {
        name.strip(): url
        for name, _, url in (line.strip().rpartition(" ") for line in lines)
        if url.startswith("http://")
    }
    assert {"coach", "history", "health", "athlete athlete1"} <= set(links), lines
    assert opened == [200, 200]
    coach = parse_qs(urlsplit(links["coach"]).query)["token"][0]
    athlete = parse_qs(urlsplit(links["athlete athlete1"]).query)["token"][0]
    assert athlete == AccessPolicy(coach).athlete_token("athlete1")
    assert urlsplit(links["coach"]).hostname != "0.0.0.0"  # a phone cannot open the wildcard address
    printed = "".join(lines) + out + err
    assert printed.count(coach) == 3, printed  # coach, history, health; nowhere else


def test_bodies_that_are_not_json_objects_get_400_not_500(tmp_path: Path) -> None:
    """Found by `sensorhub bench faults`' fuzz: invalid UTF-8 and deeply nested JSON raised past the JSON
    check (UnicodeDecodeError, RecursionError) and were answered 500."""
    hdrs = {"Content-Type": "application/json"}
    with service(tmp_path) as handle:
        for body in (b"\xb7", b"[" * 20_000 + b"]" * 20_000, b"{", b"[1, 2]"):
            assert request(handle, "/api/athletes/ana/pain", "POST", body, hdrs)[0] == 400, body[:8]
        assert post_json(handle, "/api/athletes/ana/pain", {"pain": 1}) == 200
