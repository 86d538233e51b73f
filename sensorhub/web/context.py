"""What the dashboard's endpoints need from the running service, and the answers they share.

The composition root builds one ``WebContext`` and ``create_app`` puts it on ``app.state``; each
module-level endpoint reads it with ``context(request)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from sensorhub.cues import CueAudio
from sensorhub.history import HistoryStore
from sensorhub.rehab import SessionError, SessionManager
from sensorhub.web.auth import AccessPolicy
from sensorhub.web.hub import Hub


@dataclass(slots=True)
class WebContext:
    hub: Hub
    sessions: SessionManager
    health: Callable[[], dict[str, Any]]  # the /health document (the runtime's HealthReporter.report)
    policy: AccessPolicy
    store: HistoryStore | None = None
    audio: CueAudio | None = None  # cue clips rendered at start-up, served to the athlete pages


def context(conn: HTTPConnection) -> WebContext:
    return cast(WebContext, conn.app.state.web)


def unauthorized() -> Response:
    return JSONResponse({"error": "access token required: open the URL printed at start-up"}, status_code=401)


async def json_body(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object (empty body: ``{}``), or the 400 answer to send instead."""
    try:
        body = await request.json() if await request.body() else {}
    except (ValueError, RecursionError):  # not JSON, not UTF-8 (both ValueErrors) or nested too deep
        return JSONResponse({"error": "body must be a JSON object in UTF-8"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
    return body


def session_error(exc: SessionError) -> Response:
    status = 404 if "unknown athlete" in str(exc) else 409
    return JSONResponse({"error": str(exc)}, status_code=status)
