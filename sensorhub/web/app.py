"""The ASGI app: one route table of module-level endpoints (pages, api, stream) and the static assets.

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
  GET  /favicon.ico           the icon (no token: like the static assets, it holds no data)
With a token required (non-loopback bind), everything but the static assets checks it. An athlete's
token opens that athlete's page and stream and lets it record pain and run (and stop) its own home sets.
In front of every route: a Host allow-list (DNS rebinding), then ``guard.RequestGuard`` (Origin check,
JSON-only state changes, bounded bodies).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from sensorhub.web import api, pages
from sensorhub.web.context import WebContext
from sensorhub.web.guard import RequestGuard
from sensorhub.web.protocol import WS_PATH
from sensorhub.web.stream import live_stream

ROUTES = [
    Route("/", pages.coach_page),
    Route("/athlete", pages.athlete_page),
    Route("/history", pages.history_page),
    Route("/health", api.health),
    Route("/api/athletes", api.athletes),
    Route("/api/athletes/{athlete}/history", api.history),
    Route("/api/programs", api.programs),
    Route("/api/athletes/{athlete}/plan", api.plan, methods=["GET", "PUT"]),
    Route("/api/athletes/{athlete}/session/finish", api.finish_session, methods=["POST"]),
    Route("/api/athletes/{athlete}/decision", api.decision, methods=["POST"]),
    Route("/report/{athlete}", pages.report),
    Route("/export/{athlete}.csv", pages.export),
    Route("/api/athletes/{athlete}/set/{action}", api.command, methods=["POST"]),
    Route("/api/athletes/{athlete}/{action}", api.command, methods=["POST", "PUT"]),
    Route("/audio/{clip_id}.wav", pages.cue_audio),
    Route("/favicon.ico", pages.favicon),
    WebSocketRoute(WS_PATH, live_stream),
    Mount("/static", StaticFiles(directory=pages.static_dir()), name="static"),
]


def create_app(ctx: WebContext, allowed_hosts: Sequence[str]) -> Starlette:
    """The dashboard of one running service: every endpoint reads ``ctx`` from ``app.state.web``.
    ``allowed_hosts``: the Host names it answers to (``hosts.allowed_hosts``); others get 400."""
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False),
        Middleware(RequestGuard),
    ]
    app = Starlette(routes=ROUTES, middleware=middleware)
    app.state.web = ctx
    return app
