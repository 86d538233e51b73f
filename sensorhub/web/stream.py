"""``WS /ws/v1[?athlete=ID]``: the live stream (protocol v1, see ``sensorhub.web.protocol``)."""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.websockets import WebSocket, WebSocketDisconnect

from sensorhub.web.context import context
from sensorhub.web.hub import encode

# Close codes: 4401 = token missing or wrong (mirrors HTTP 401), 4404 = unknown athlete.
WS_UNAUTHORIZED = 4401
WS_UNKNOWN_ATHLETE = 4404


async def live_stream(websocket: WebSocket) -> None:
    ctx = context(websocket)
    athlete = websocket.query_params.get("athlete") or None
    allowed = ctx.policy.is_coach(websocket) if athlete is None else ctx.policy.may_watch(websocket, athlete)
    if not allowed:
        await websocket.close(code=WS_UNAUTHORIZED)
        return
    if athlete is not None and athlete not in ctx.sessions.athletes:
        await websocket.close(code=WS_UNKNOWN_ATHLETE)
        return
    await websocket.accept()
    visible = [s for s in ctx.sessions.athletes.values() if athlete is None or s.athlete_id == athlete]
    channel = ctx.hub.connect(athlete)
    try:
        hello = ctx.hub.hello(athlete, [s.snapshot() for s in visible], list(ctx.sessions.drills))
        if athlete is None:  # the coach's page shows each athlete's own link (never the coach's token)
            hello["athlete_links"] = ctx.policy.athlete_links(s.athlete_id for s in visible)
        await websocket.send_text(encode(hello))

        backlog = ctx.hub.backlog_text(athlete)
        if backlog is not None:
            await websocket.send_text(backlog)

        async def pump() -> None:
            while True:
                await websocket.send_text(await channel.get())

        async def listen() -> None:
            # Only a JSON {"type": "ping"} text frame means anything; binary frames, other JSON and
            # garbage are ignored (receive_text raised KeyError on a binary frame, .get failed on a list).
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    raise WebSocketDisconnect(message.get("code", 1000))
                text = message.get("text")
                if text is None:
                    continue
                with contextlib.suppress(json.JSONDecodeError, RecursionError):
                    frame = json.loads(text)
                    if isinstance(frame, dict) and frame.get("type") == "ping":
                        channel.offer(encode({"type": "pong"}))

        async with asyncio.TaskGroup() as tg:
            tg.create_task(pump())
            tg.create_task(listen())
    except* (WebSocketDisconnect, ConnectionResetError, RuntimeError):
        pass  # the client went away (or the server is closing it): nothing to clean beyond the channel
    finally:
        ctx.hub.disconnect(channel)
