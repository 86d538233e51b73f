"""Bumble UUID objects <-> the lower-case 128-bit strings bleak uses everywhere."""

from __future__ import annotations

import uuid

from bumble import core


def to_bleak_uuid(value: core.UUID) -> str:
    """``0000180f-0000-1000-8000-00805f9b34fb`` style, whatever the UUID's size on the air."""
    # Bumble stores UUID bytes little-endian, as on the air.
    return str(uuid.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


def to_bumble_uuid(value: str) -> core.UUID:
    return core.UUID(str(uuid.UUID(value)) if len(value) > 8 else value)
