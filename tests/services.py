"""The tests' real services: one implementation, shared with the benchmarks (sensorhub.bench.services)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from sensorhub.bench.services import Mosquitto, VictoriaMetrics, free_port

__all__ = ["Mosquitto", "VictoriaMetrics", "free_port", "write_endpoint"]


@contextlib.asynccontextmanager
async def write_endpoint(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[int]:
    """A minimal InfluxDB-like server on a free loopback port: ``handler`` answers ``POST /api/v2/write``
    (to script what VictoriaMetrics never does: 503s, a 400 for one batch). Yields the port."""
    app = web.Application()
    app.router.add_post("/api/v2/write", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()
