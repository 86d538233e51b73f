"""The ASGI app: pages, static assets, the v1 websocket, the coach's HTTP commands and /health.

Routes (see docs/dashboard.md):
  GET  /                      coach page            GET /athlete?athlete=ID   athlete page
  GET  /history               history page          GET /static/...           assets (no data in them)
  GET  /health                health JSON           WS  /ws/v1[?athlete=ID]   live stream
  GET  /api/athletes          athletes + state      GET /api/athletes/ID/history
  POST /api/athletes/ID/set/start {"drill"}   POST /api/athletes/ID/set/stop
  POST /api/athletes/ID/drill {"drill"}       PUT  /api/athletes/ID/thresholds {name: value}
  POST /api/athletes/ID/pain {"pain": 0-10, "context": "during"|"after"|"next_morning"}
  GET  /api/programs          the programs a plan may use
  GET  /api/athletes/ID/plan  PUT /api/athletes/ID/plan {"program", "phase", "pain_threshold", "side"}
  POST /api/athletes/ID/session/finish   -> the recommendation (advance | hold | step_back + reasons)
  POST /api/athletes/ID/decision {"recommendation_id", "decision", "note"}
  GET  /report/ID[?since=YYYY-MM-DD]     the HTML report    GET /export/ID.csv   events and metrics
With a token required (non-loopback bind), everything but the static assets checks it. An athlete's
token opens that athlete's page and stream and lets it record pain and run its own (home) sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from sensorhub.cues import CueAudio
from sensorhub.errors import ConfigError, InputError, SinkError
from sensorhub.history import HistoryStore
from sensorhub.rehab.plans import plan_edit, program_names, rehab_history, write_plan
from sensorhub.rehab.session import SessionError, SessionManager
from sensorhub.web.auth import AccessPolicy
from sensorhub.web.hub import Hub, encode
from sensorhub.web.protocol import WS_PATH

# Commands an athlete's own token may send (the athlete view): pain entries and home sets.
ATHLETE_ACTIONS = frozenset({"pain", "start", "stop"})

# Close codes: 4401 = token missing or wrong (mirrors HTTP 401), 4404 = unknown athlete.
WS_UNAUTHORIZED = 4401
WS_UNKNOWN_ATHLETE = 4404


def static_dir() -> Path:
    """The packaged assets: works from a source checkout and from an installed wheel."""
    return Path(str(resources.files("sensorhub.web") / "static"))


@dataclass(slots=True)
class WebContext:
    hub: Hub
    sessions: SessionManager
    health: Callable[[], dict[str, Any]]  # the /health document (the runtime's HealthReporter.report)
    policy: AccessPolicy
    store: HistoryStore | None = None
    audio: CueAudio | None = None  # cue clips rendered at start-up, served to the athlete pages


def create_app(ctx: WebContext) -> Starlette:
    root = static_dir()

    async def cue_audio(request: Request) -> Response:
        """A cue's rendered clip (speech or tones, WAV), by the ``audio_id`` carried in cue frames."""
        athlete = request.query_params.get("athlete") or ""
        if not (ctx.policy.is_coach(request) or (athlete and ctx.policy.may_watch(request, athlete))):
            return unauthorized()
        clip = ctx.audio.by_id(request.path_params["clip_id"]) if ctx.audio is not None else None
        if clip is None:
            return JSONResponse({"error": "no such cue clip"}, status_code=404)
        return Response(clip.wav, media_type="audio/wav", headers={"Cache-Control": "max-age=3600"})

    def unauthorized() -> Response:
        return JSONResponse(
            {"error": "access token required: open the URL printed at start-up"}, status_code=401
        )

    def page(name: str) -> Any:
        async def handler(request: Request) -> Response:
            athlete = request.query_params.get("athlete")
            allowed = (
                ctx.policy.may_watch(request, athlete)
                if name == "athlete.html" and athlete
                else (ctx.policy.is_coach(request))
            )
            if not allowed:
                return unauthorized()
            return FileResponse(root / name, headers={"Cache-Control": "no-store"})

        return handler

    async def health(request: Request) -> Response:
        if not ctx.policy.is_coach(request):
            return unauthorized()
        return JSONResponse(ctx.health())

    async def athletes(request: Request) -> Response:
        if not ctx.policy.is_coach(request):
            return unauthorized()
        return JSONResponse(
            {
                "athletes": [s.snapshot() for s in ctx.sessions.athletes.values()],
                "drills": list(ctx.sessions.drills),
            }
        )

    async def history(request: Request) -> Response:
        if not ctx.policy.is_coach(request):
            return unauthorized()
        athlete = request.path_params["athlete"]
        if athlete not in ctx.sessions.athletes:
            return JSONResponse({"error": f"unknown athlete {athlete!r}"}, status_code=404)
        if ctx.store is None:
            return JSONResponse(
                {"athlete": athlete, "sessions": [], "sets": [], "pain": [], "trends": {}, "recent_cues": []}
            )
        store = ctx.store

        def read() -> dict[str, Any]:
            doc = store.history(athlete)
            try:
                doc["rehab"] = rehab_history(store, athlete)
            except ConfigError as exc:  # a plan whose program no longer loads: the rest still shows
                doc["rehab"] = {"plan_problem": str(exc)}
            return doc

        return JSONResponse(await asyncio.to_thread(read))

    async def programs(request: Request) -> Response:
        if not ctx.policy.is_coach(request):
            return unauthorized()
        return JSONResponse({"programs": await asyncio.to_thread(program_names)})

    async def plan(request: Request) -> Response:
        if not ctx.policy.is_coach(request):
            return unauthorized()
        athlete = request.path_params["athlete"]
        try:
            s = ctx.sessions.get(athlete)
        except SessionError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        if request.method == "GET":
            return JSONResponse({"plan": s.plan_view})
        if ctx.store is None:
            return JSONResponse({"error": "no history store: plans are kept there"}, status_code=409)
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        unknown = sorted(set(body) - {"program", "phase", "pain_threshold", "side"})
        if unknown:
            return JSONResponse(
                {"error": f"unknown plan field {unknown[0]!r}; fields: program, phase, pain_threshold, side"},
                status_code=400,
            )
        store = ctx.store
        try:
            new, program, change = await asyncio.to_thread(
                plan_edit,
                store,
                athlete,
                program=body.get("program"),
                phase=body.get("phase"),
                pain_threshold=body.get("pain_threshold"),
                side=body.get("side"),
                by="coach",
            )
        except (InputError, ConfigError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        write_plan(store, new, change)

        ctx.sessions.apply_plan(new, program, await asyncio.to_thread(store.phase_history, athlete))
        return JSONResponse({"plan": s.plan_view})

    async def json_body(request: Request) -> dict[str, Any] | Response:
        try:
            body = await request.json() if await request.body() else {}
        except json.JSONDecodeError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        return body

    async def finish_session(request: Request) -> Response:
        if not ctx.policy.is_coach(request):
            return unauthorized()
        try:
            return JSONResponse(await ctx.sessions.finish_session(request.path_params["athlete"]))
        except SessionError as exc:
            return session_error(exc)
        except (ConfigError, SinkError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)

    async def decision(request: Request) -> Response:
        if not ctx.policy.is_coach(request):
            return unauthorized()
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        try:
            result = await ctx.sessions.decide(
                request.path_params["athlete"],
                str(body.get("recommendation_id", "")),
                str(body.get("decision", "")),
                body.get("note", ""),
            )
        except SessionError as exc:
            return session_error(exc)
        return JSONResponse(result)

    def session_error(exc: SessionError) -> Response:
        status = 404 if "unknown athlete" in str(exc) else 409
        return JSONResponse({"error": str(exc)}, status_code=status)

    async def report(request: Request) -> Response:
        if not ctx.policy.is_coach(request):
            return unauthorized()
        if ctx.store is None:
            return JSONResponse({"error": "no history store"}, status_code=404)
        from sensorhub.rehab.report import render_report  # lazy: the report's plotting code

        store = ctx.store

        def render() -> str:
            return render_report(store, request.path_params["athlete"], request.query_params.get("since"))

        try:
            return HTMLResponse(await asyncio.to_thread(render), headers={"Cache-Control": "no-store"})
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def export(request: Request) -> Response:
        if not ctx.policy.is_coach(request):
            return unauthorized()
        athlete = request.path_params["athlete"]
        if ctx.store is None or athlete not in ctx.sessions.athletes:
            return JSONResponse({"error": f"unknown athlete {athlete!r}"}, status_code=404)
        from sensorhub.rehab.export import events_csv

        store = ctx.store

        def read() -> str:
            return events_csv(store, athlete)

        return Response(
            await asyncio.to_thread(read),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{athlete}-events.csv"'},
        )

    async def command(request: Request) -> Response:
        athlete = request.path_params["athlete"]
        action = request.path_params["action"]
        coach = ctx.policy.is_coach(request)
        if not coach and not (action in ATHLETE_ACTIONS and ctx.policy.may_watch(request, athlete)):
            return unauthorized()
        body = await json_body(request)
        if isinstance(body, Response):
            return body
        try:
            result: Any
            if action == "start":
                # The athlete view runs home sets; an athlete's token can start nothing else.
                kind = str(body.get("kind", "clinic")) if coach else "home"
                result = {"set_id": ctx.sessions.start_set(athlete, body.get("drill"), kind)}
            elif action == "stop":
                result = {"set_id": ctx.sessions.stop_set(athlete)}
            elif action == "drill":
                ctx.sessions.choose_drill(athlete, str(body.get("drill", "")))
                result = {"drill": body.get("drill")}
            elif action == "thresholds":
                result = {"thresholds": ctx.sessions.set_thresholds(athlete, body)}
            elif action == "mute":
                muted = body.get("muted", True)
                if not isinstance(muted, bool):
                    return JSONResponse({"error": "muted must be true or false"}, status_code=400)
                result = {"muted": ctx.sessions.set_muted(athlete, muted)}
            elif action == "pain":
                context = str(body.get("context", "after"))
                session_id = None
                if context == "next_morning":
                    session_id = await latest_session(athlete)
                result = ctx.sessions.record_pain(
                    athlete,
                    body.get("pain"),  # type: ignore[arg-type]
                    context,
                    session_id,
                )
            else:
                return JSONResponse({"error": f"unknown command {action!r}"}, status_code=404)
        except SessionError as exc:
            return session_error(exc)
        return JSONResponse(result)

    async def latest_session(athlete: str) -> str | None:
        """The athlete's latest session (next-morning pain belongs to it): the store knows it after a
        restart; without a store, the one this service saw."""
        s = ctx.sessions.get(athlete)
        if ctx.store is None:
            return s.session_id or s.last_session_id
        store = ctx.store

        def read() -> str | None:
            sessions = store.sessions(athlete)
            return sessions[-1].id if sessions else None

        return await asyncio.to_thread(read)

    async def ws_endpoint(websocket: WebSocket) -> None:
        athlete = websocket.query_params.get("athlete") or None
        allowed = (
            ctx.policy.is_coach(websocket) if athlete is None else ctx.policy.may_watch(websocket, athlete)
        )
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
            await websocket.send_text(
                encode(ctx.hub.hello(athlete, [s.snapshot() for s in visible], list(ctx.sessions.drills)))
            )

            backlog = ctx.hub.backlog_text(athlete)
            if backlog is not None:
                await websocket.send_text(backlog)

            async def pump() -> None:
                while True:
                    await websocket.send_text(await channel.get())

            async def listen() -> None:
                while True:
                    text = await websocket.receive_text()
                    with contextlib.suppress(json.JSONDecodeError):
                        if json.loads(text).get("type") == "ping":
                            channel.offer(encode({"type": "pong"}))

            async with asyncio.TaskGroup() as tg:
                tg.create_task(pump())
                tg.create_task(listen())
        except* (WebSocketDisconnect, ConnectionResetError, RuntimeError):
            pass  # the client went away (or the server is closing it): nothing to clean beyond the channel
        finally:
            ctx.hub.disconnect(channel)

    routes = [
        Route("/", page("coach.html")),
        Route("/athlete", page("athlete.html")),
        Route("/history", page("history.html")),
        Route("/health", health),
        Route("/api/athletes", athletes),
        Route("/api/athletes/{athlete}/history", history),
        Route("/api/programs", programs),
        Route("/api/athletes/{athlete}/plan", plan, methods=["GET", "PUT"]),
        Route("/api/athletes/{athlete}/session/finish", finish_session, methods=["POST"]),
        Route("/api/athletes/{athlete}/decision", decision, methods=["POST"]),
        Route("/report/{athlete}", report),
        Route("/export/{athlete}.csv", export),
        Route("/api/athletes/{athlete}/set/{action}", command, methods=["POST"]),
        Route("/api/athletes/{athlete}/{action}", command, methods=["POST", "PUT"]),
        Route("/audio/{clip_id}.wav", cue_audio),
        WebSocketRoute(WS_PATH, ws_endpoint),
        Mount("/static", StaticFiles(directory=root), name="static"),
    ]
    return Starlette(routes=routes)
