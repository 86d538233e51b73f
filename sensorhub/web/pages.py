"""The pages (coach, athlete, history), the cue clips, the HTML report and the CSV export."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response

from sensorhub.errors import InputError
from sensorhub.web.context import context, unauthorized


def static_dir() -> Path:
    """The packaged assets: works from a source checkout and from an installed wheel."""
    return Path(str(resources.files("sensorhub.web") / "static"))


def _page(request: Request, name: str, allowed: bool) -> Response:
    if not allowed:
        return unauthorized()
    return FileResponse(static_dir() / name, headers={"Cache-Control": "no-store"})


async def coach_page(request: Request) -> Response:
    return _page(request, "coach.html", context(request).policy.is_coach(request))


async def athlete_page(request: Request) -> Response:
    """An athlete's own page: that athlete's token opens it (the coach's opens every page)."""
    policy = context(request).policy
    athlete = request.query_params.get("athlete")
    allowed = policy.may_watch(request, athlete) if athlete else policy.is_coach(request)
    return _page(request, "athlete.html", allowed)


async def history_page(request: Request) -> Response:
    return _page(request, "history.html", context(request).policy.is_coach(request))


async def favicon(request: Request) -> Response:
    """Browsers ask for /favicon.ico on every page without an icon link (the HTML report, JSON): the
    dashboard's icon instead of a 404."""
    return FileResponse(static_dir() / "favicon.svg", media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})


async def cue_audio(request: Request) -> Response:
    """A cue's rendered clip (speech or tones, WAV), by the ``audio_id`` carried in cue frames."""
    ctx = context(request)
    athlete = request.query_params.get("athlete") or ""
    if not (ctx.policy.is_coach(request) or (athlete and ctx.policy.may_watch(request, athlete))):
        return unauthorized()
    clip = ctx.audio.by_id(request.path_params["clip_id"]) if ctx.audio is not None else None
    if clip is None:
        return JSONResponse({"error": "no such cue clip"}, status_code=404)
    return Response(clip.wav, media_type="audio/wav", headers={"Cache-Control": "max-age=3600"})


async def report(request: Request) -> Response:
    ctx = context(request)
    if not ctx.policy.is_coach(request):
        return unauthorized()
    if ctx.store is None:
        return JSONResponse({"error": "no history store"}, status_code=404)
    from sensorhub.rehab import render_report

    store = ctx.store

    def render() -> str:
        return render_report(store, request.path_params["athlete"], request.query_params.get("since"))

    try:
        return HTMLResponse(await asyncio.to_thread(render), headers={"Cache-Control": "no-store"})
    except InputError as exc:
        return JSONResponse({"error": str(exc)}, status_code=404)


async def export(request: Request) -> Response:
    ctx = context(request)
    if not ctx.policy.is_coach(request):
        return unauthorized()
    athlete = request.path_params["athlete"]
    if ctx.store is None or athlete not in ctx.sessions.athletes:
        return JSONResponse({"error": f"unknown athlete {athlete!r}"}, status_code=404)
    from sensorhub.rehab import events_csv

    store = ctx.store

    def read() -> str:
        return events_csv(store, athlete)

    return Response(
        await asyncio.to_thread(read),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{athlete}-events.csv"'},
    )
