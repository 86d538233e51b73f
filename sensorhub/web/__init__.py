"""The live dashboard: ASGI app (starlette), websocket protocol v1, access control, /health, and the
static pages in ``static/`` (coach, athlete, history). See docs/dashboard.md."""

from sensorhub.web.app import create_app
from sensorhub.web.context import WebContext
from sensorhub.web.pages import static_dir
from sensorhub.web.protocol import PROTOCOL_VERSION, WS_PATH

__all__ = ["PROTOCOL_VERSION", "WS_PATH", "WebContext", "create_app", "static_dir"]
