"""Access control: open on loopback, a token everywhere else.

The coach token grants everything. Each athlete gets a derived token (HMAC of the athlete id under
the coach token) that opens only that athlete's page and stream, so a phone link cannot watch others.
Tokens travel as ``?token=`` (pages and websockets) or ``Authorization: Bearer`` (API). Comparisons
are constant-time on UTF-8 bytes: any presented text (non-ASCII too) is a wrong token, never an error.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from urllib.parse import urlencode

from starlette.requests import HTTPConnection

from sensorhub.errors import ConfigError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


class AccessPolicy:
    """``token=None``: no checks (loopback only). Otherwise coach and per-athlete tokens."""

    def __init__(self, token: str | None) -> None:
        if token is not None and len(token) < 16:
            raise ConfigError(
                "service.access_token: use at least 16 characters (or leave empty to generate one)"
            )
        if token is not None and not (token.isascii() and token.isprintable() and " " not in token):
            # Browsers send it in an Authorization header, which holds Latin-1 only; the message never
            # shows the value (it is a secret).
            raise ConfigError("service.access_token: use printable ASCII characters without spaces")
        self.token = token

    @classmethod
    def for_bind(cls, host: str, configured_token: str) -> AccessPolicy:
        if configured_token:
            return cls(configured_token)
        if is_loopback(host):
            return cls(None)
        return cls(secrets.token_urlsafe(24))

    @property
    def required(self) -> bool:
        return self.token is not None

    def athlete_token(self, athlete: str) -> str:
        if self.token is None:
            return ""
        key, msg = self.token.encode(), athlete.encode("utf-8", "replace")
        return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def presented(conn: HTTPConnection) -> str:
        auth = conn.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return conn.query_params.get("token", "")

    def is_coach(self, conn: HTTPConnection) -> bool:
        if self.token is None:
            return True
        return _same(self.presented(conn), self.token)

    def may_watch(self, conn: HTTPConnection, athlete: str) -> bool:
        if self.is_coach(conn):
            return True
        return _same(self.presented(conn), self.athlete_token(athlete))

    def athlete_links(self, athletes: Iterable[str]) -> dict[str, str]:
        """Each athlete's page, relative to the dashboard, with that athlete's token (none on an open
        loopback dashboard): the link a coach sends to a phone."""
        return {
            a: "/athlete?" + urlencode({"athlete": a, **self.query(self.athlete_token(a))})
            for a in athletes
        }

    @staticmethod
    def query(token: str) -> dict[str, str]:
        return {"token": token} if token else {}


def _same(presented: str, expected: str) -> bool:
    # compare_digest refuses non-ASCII str (a TypeError, i.e. a 500): compare the UTF-8 bytes instead.
    return hmac.compare_digest(presented.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))
