"""The live dashboard: the ASGI app (starlette: one route table of module-level endpoints), the
websocket hub and protocol v1, access control, and the static pages in ``static/`` (coach, athlete,
history). See docs/dashboard.md. Modules are imported on first use (starlette only when served)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sensorhub.lazy import lazy_exports

if TYPE_CHECKING:
    from sensorhub.web.app import create_app
    from sensorhub.web.auth import AccessPolicy
    from sensorhub.web.context import WebContext
    from sensorhub.web.hub import FRAME_PERIOD_S, Hub
    from sensorhub.web.pages import static_dir
    from sensorhub.web.protocol import PROTOCOL_VERSION, WS_MAX_CLIENT_MESSAGE_BYTES, WS_PATH

__all__ = [
    "FRAME_PERIOD_S",
    "PROTOCOL_VERSION",
    "WS_MAX_CLIENT_MESSAGE_BYTES",
    "WS_PATH",
    "AccessPolicy",
    "Hub",
    "WebContext",
    "create_app",
    "static_dir",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "create_app": "app",
        "AccessPolicy": "auth",
        "WebContext": "context",
        "FRAME_PERIOD_S": "hub",
        "Hub": "hub",
        "static_dir": "pages",
        "PROTOCOL_VERSION": "protocol",
        "WS_MAX_CLIENT_MESSAGE_BYTES": "protocol",
        "WS_PATH": "protocol",
    },
)
