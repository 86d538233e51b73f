"""``sensorhub run``: the live service on the configured source (BLE, replay or simulator)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from sensorhub.config import Config, load_config
from sensorhub.runtime.service import ServiceHandle, serve
from sensorhub.runtime.sources import make_source
from sensorhub.sources import SourceFactory

log = logging.getLogger(__name__)


def _loopback_tcp_client(spec: str) -> tuple[str, int] | None:
    """``tcp-client:127.0.0.1:28700`` -> (host, port) when it points at this machine, else None."""
    kind, _, rest = spec.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "tcp-client" or host not in ("127.0.0.1", "localhost", "::1") or not port.isdigit():
        return None
    return host, int(port)


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


@contextlib.asynccontextmanager
async def simulated_ble_peripherals(
    config: Config, config_path: Path | None, spec: str
) -> AsyncIterator[None]:
    """With ``transport = "bumble"`` on a loopback TCP HCI address and nothing listening there, start
    ``firmware-sim serve-ble`` for the configured sensors (owned here, stopped on exit), so that the
    simulated BLE setup is one command. Real radios and an already running simulator are left alone."""
    target = _loopback_tcp_client(spec)
    if config.source.transport != "bumble" or target is None or config_path is None or _listening(*target):
        yield
        return
    from sensorhub.sources.bumble_backend import serve_ble_process

    log.info("starting simulated BLE peripherals (firmware-sim serve-ble) behind %s", spec)
    async with serve_ble_process(str(config_path), spec):
        yield


async def run_service(
    config_path: Path | None, port: int | None, simulator: SourceFactory | None = None
) -> ServiceHandle:
    config = load_config(config_path)
    setup = make_source(config, simulator)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(handle: ServiceHandle) -> None:
        handle.print_urls("sensorhub: dashboard ready")

    spec = str(getattr(setup.source, "bumble_spec", ""))
    async with simulated_ble_peripherals(config, config_path, spec):
        return await serve(config, setup.source, setup.sensors, port=port, stop=stop, on_ready=ready)


def run_main(
    config_path: Path | None, port: int | None = None, simulator: SourceFactory | None = None
) -> int:
    asyncio.run(run_service(config_path, port, simulator))
    return 0
