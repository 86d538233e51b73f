"""The dashboard service over real HTTP and websockets (uvicorn on a free loopback port): protocol v1,
decimation, bounded per-client queues, coach commands, /health and access control."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from sensorhub.config import Config
from sensorhub.model import Event, KneeAngles, Segment, SensorRef, Side
from sensorhub.runtime.service import ServiceHandle, Stage, serve_in_thread
from sensorhub.sources.base import PacketQueue, PacketSource, SensorLink
from sensorhub.web.hub import ClientChannel

ATHLETES = ("ana", "ben")
TOKEN = "a-configured-token-of-32-chars!!"


class IdleSource:
    """Sensors that are configured but silent: the tests publish on the bus themselves."""

    async def run(self, out: PacketQueue) -> None:
        await asyncio.Event().wait()

    def links(self) -> dict[str, SensorLink]:
        return {}


def _refs() -> list[SensorRef]:
    return [
        SensorRef(f"{a}-{side}-{seg}", a, Side(side), Segment(seg))
        for a in ATHLETES
        for side in ("right", "left")
        for seg in ("thigh", "shank")
    ]


@contextlib_contextmanager := None  # placeholder removed below
