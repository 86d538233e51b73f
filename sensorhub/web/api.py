"""The coach's and the athlete's HTTP commands and reads (``/api/...``, ``/health``); JSON in and out.

Reads and writes of the history store and program files block: they run in ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sensorhub.errors import ConfigError, InputError, SinkError
from sensorhub.rehab import SessionError, plan_edit, program_names, rehab_history, write_plan
from sensorhub.web.context import WebContext, context, json_body, session_error, unauthorized

# Commands an athlete's own token may send (the athlete view): pain entries and home sets.
ATHLETE_ACTIONS = frozenset({"pain", "start", "stop"})


async def health(request: Request) -> Response:
    ctx = context(request)
    if not ctx.policy.is_coach(request):
        return unauthorized()
    return JSONResponse(ctx.health())


async def athletes(request: Request) -> Response:
    ctx = context(request)
    if not ctx.policy.is_coach(request):
        return unauthorized()
    return JSONResponse(
        {
            "athletes": [s.snapshot() for s in ctx.sessions.athletes.values()],
            "drills": list(ctx.sessions.drills),
        }
    )


async def history(request: Request) -> Response:
    ctx = context(request)
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
    ctx = context(request)
    if not ctx.policy.is_coach(request):
        return unauthorized()
    return JSONResponse({"programs": await asyncio.to_thread(program_names)})


async def plan(request: Request) -> Response:
    ctx = context(request)
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


async def finish_session(request: Request) -> Response:
    ctx = context(request)
    if not ctx.policy.is_coach(request):
        return unauthorized()
    try:
        return JSONResponse(await ctx.sessions.finish_session(request.path_params["athlete"]))
    except SessionError as exc:
        return session_error(exc)
    except (ConfigError, SinkError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)


async def decision(request: Request) -> Response:
    ctx = context(request)
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


async def command(request: Request) -> Response:
    ctx = context(request)
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
            if not coach and ctx.sessions.get(athlete).session_kind != "home":
                # The athlete view stops its own home sets; a clinic set is the coach's.
                return JSONResponse({"error": "only the coach stops a clinic set"}, status_code=403)
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
            pain_context = str(body.get("context", "after"))
            session_id = None
            if pain_context == "next_morning":
                session_id = await latest_session(ctx, athlete)
            result = ctx.sessions.record_pain(
                athlete,
                body.get("pain"),  # type: ignore[arg-type]
                pain_context,
                session_id,
            )
        else:
            return JSONResponse({"error": f"unknown command {action!r}"}, status_code=404)
    except SessionError as exc:
        return session_error(exc)
    return JSONResponse(result)


async def latest_session(ctx: WebContext, athlete: str) -> str | None:
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
