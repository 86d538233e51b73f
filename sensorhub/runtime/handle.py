"""What a running service hands to its caller and to its stages: ``ServiceHandle``, and ``Stage``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

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
    link_host: str = ""  # the host printed links use (a LAN address on a wildcard bind); "": ``host``
    started_s: float = field(default_factory=time.time)
    loop: asyncio.AbstractEventLoop | None = None
    # Counters of sink stages (name -> stats()), shown in /health under "sinks".
    sink_stats: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        host = self.link_host or self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def urls(self) -> dict[str, str]:
        """The links printed once at start-up: the coach's (its token grants everything) and one per
        athlete (that athlete's token only). Nothing else prints a token."""
        q = urlencode(self.policy.query(self.policy.token or ""))
        q = f"?{q}" if q else ""
        out = {
            "coach": f"{self.base_url}/{q}",
            "history": f"{self.base_url}/history{q}",
            "health": f"{self.base_url}/health{q}",
        }
        for athlete, link in self.policy.athlete_links(self.sessions.athletes).items():
            out[f"athlete {athlete}"] = f"{self.base_url}{link}"
        return out

    def print_urls(self, header: str) -> None:
        print(header)
        for name, url in self.urls().items():
            print(f"  {name:<18} {url}")
        if self.policy.required:
            print("  access token required: keep these links private (an athlete's opens only that athlete)")
        print("Ctrl-C stops (ordered shutdown).", flush=True)

Stage = Callable[[ServiceHandle], Coroutine[Any, Any, None]]
