"""Access control: open on loopback, a token everywhere else.

The coach token grants everything. Each athlete gets a derived token (HMAC of the athlete id under
the coach token) that opens only that athlete's page and stream, so a phone link cannot watch others.
Tokens travel as ``?token=`` (pages and websockets) or ``Authorization: Bearer`` (API).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

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
        return hmac.new(self.token.encode(), athlete.encode(), hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def presented(conn: HTTPConnection) -> str:
        auth = conn.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return conn.query_params.get("token", "")

    def is_coach(self, conn: HTTPConnection) -> bool:
        if self.token is None:
            return True
        return hmac.compare_digest(self.presented(conn), self.token)

    def may_watch(self, conn: HTTPConnection, athlete: str) -> bool:
        if self.is_coach(conn):
            return True
        assert self.token is not None
        return hmac.compare_digest(self.presented(conn), self.athlete_token(athlete))
