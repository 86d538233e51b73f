"""Transport spec strings of the Bumble backend (no Bumble import: the BLE source reads these always)."""

from __future__ import annotations

import os

LOCAL_SCHEME = "local"
DEFAULT_LOCAL_LINK = "default"
DEFAULT_TCP_SPEC = "tcp-client:127.0.0.1:28700"
"""Where ``firmware-sim serve-ble`` listens by default (its ``tcp-server`` side)."""
ENV_TRANSPORT = "SENSORHUB_BUMBLE_TRANSPORT"


def resolve_spec(spec: str | None) -> str:
    """An explicit spec, else ``$SENSORHUB_BUMBLE_TRANSPORT``, else the default in-memory link."""
    return spec or os.environ.get(ENV_TRANSPORT, "") or LOCAL_SCHEME


def is_local(spec: str) -> bool:
    return spec == LOCAL_SCHEME or spec.startswith(LOCAL_SCHEME + ":")


def local_link_name(spec: str) -> str:
    _, _, name = spec.partition(":")
    return name or DEFAULT_LOCAL_LINK
