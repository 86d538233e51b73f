"""What a running service hands to its caller and to its stages: ``ServiceHandle``, and ``Stage``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sensorhub.bus import Bus
from sensorhub.history import HistoryStore
from sensorhub.rehab import SessionManager
from sensorhub.runtime.health import HealthReporter, MeasuredPipeline
from sensorhub.runtime.live import LiveRunner
from sensorhub.web import AccessPolicy, Hub


@dataclass(slots=True)
class ServiceHandle:
    """What a running service exposes to its caller (URLs, bus, state) and to extra stages."""

    bus: Bus
    runner: LiveRunner
    pipeline: MeasuredPipeline
    hub: Hub
    sessions: SessionManager
    health: HealthReporter
    policy: AccessPolicy
    store: HistoryStore | None
    host: str
    port: int = 0
    started_s: float = field(default_factory=time.time)
    loop: asyncio.AbstractEventLoop | None = None
    # Counters of sink stages (name -> stats()), shown in /health under "sinks".
    sink_stats: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def urls(self) -> dict[str, str]:
        token = self.policy.token
        q = f"?token={token}" if token else ""
        out = {
            "coach": f"{self.base_url}/{q}",
            "history": f"{self.base_url}/history{q}",
            "health": f"{self.base_url}/health{q}",
        }
        for athlete in self.sessions.athletes:
            t = f"&token={self.policy.athlete_token(athlete)}" if token else ""
            out[f"athlete {athlete}"] = f"{self.base_url}/athlete?athlete={athlete}{t}"
        return out


Stage = Callable[[ServiceHandle], Coroutine[Any, Any, None]]
