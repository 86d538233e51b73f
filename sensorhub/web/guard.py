"""What a page of another site, open in the coach's browser, must not be able to do here.

A browser sends any page's form posts and ``fetch`` calls of "simple" content types (text/plain, form
encodings) without asking the server first, and opens websockets to any address; it always names the
page's site in ``Origin``. So state changes need ``Content-Type: application/json`` (a cross-site page
can only send that after a CORS preflight, which this server never grants) and, like websockets, an
``Origin`` naming this dashboard when one is sent (clients that are not browsers send none; the token
decides for them). Bodies are bounded (every command is a small JSON object). The Host allow-list
against DNS rebinding is starlette's TrustedHostMiddleware, in front of this one (see ``app``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cross_origin(headers: Headers) -> bool:
    """An ``Origin`` that is not this dashboard as the browser reached it (``null`` included)."""
    origin = headers.get("origin")
    if origin is None:
        return False
    parts = urlsplit(origin)
    return parts.scheme not in ("http", "https") or parts.netloc.lower() != headers.get("host", "").lower()


def _json_content(headers: Headers) -> bool:
    return headers.get("content-type", "").partition(";")[0].strip().lower() == "application/json"


class RequestGuard:
    """Pure ASGI middleware: Origin check (HTTP state changes and websockets), JSON-only state changes
    (415), bounded request bodies (413, read here before the endpoint sees them)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        changes = scope["type"] == "websocket" or scope["method"] in STATE_CHANGING
        if changes and cross_origin(headers):
            await _refuse(403, "cross-origin request refused", scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if scope["method"] in STATE_CHANGING and not _json_content(headers):
            await _refuse(415, "commands take Content-Type: application/json", scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(413, f"request body over {self.max_body_bytes} bytes", scope, receive, send)
            return
        body = bytearray()
        while True:  # a chunked body declares no length: count what arrives
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _refuse(413, f"request body over {self.max_body_bytes} bytes", scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: disconnect notices
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(status: int, error: str, scope: Scope, receive: Receive, send: Send) -> None:
    # On a websocket handshake starlette sends this as the denial response (the handshake fails).
    await JSONResponse({"error": error}, status_code=status)(scope, receive, send)
