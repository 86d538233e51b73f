"""Start ``firmware-sim serve-ble`` as a child process for ``transport = "bumble"`` over TCP HCI.

sensorhub never imports firmware_sim; the composition root may run it as a separate process (as a user
would), owned by an async context manager: started, awaited until it advertises, terminated on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence

from sensorhub.errors import SourceError
from sensorhub.sources.bumble_backend.specs import DEFAULT_TCP_SPEC

READY_PREFIX = b"serve-ble: ready"
"""First stdout line of ``firmware-sim serve-ble`` once every peripheral advertises."""
STARTUP_TIMEOUT_S = 60.0  # the body model of a long session takes a few seconds to build
STOP_TIMEOUT_S = 5.0


def server_spec(client_spec: str = DEFAULT_TCP_SPEC) -> str:
    """``tcp-client:HOST:PORT`` (sensorhub's side) -> ``tcp-server:HOST:PORT`` (the simulator's side)."""
    if not client_spec.startswith("tcp-client:"):
        raise SourceError(f"the simulator process is reached over tcp-client:HOST:PORT, not {client_spec!r}")
    return "tcp-server:" + client_spec.removeprefix("tcp-client:")


@contextlib.asynccontextmanager
async def serve_ble_process(
    config_path: str,
    client_spec: str = DEFAULT_TCP_SPEC,
    extra_args: Sequence[str] = (),
    *,
    stderr: int | None = None,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m firmware_sim.serve_ble --config CONFIG --hci tcp-server:...`` until the block exits
    (``stderr=asyncio.subprocess.PIPE`` keeps its log for the caller; default: inherited)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.serve_ble", "--config", config_path,
        "--hci", server_spec(client_spec), *extra_args,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
    )
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), STARTUP_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line.startswith(READY_PREFIX):
            command = f"firmware-sim serve-ble --config {config_path} --hci {server_spec(client_spec)}"
            raise SourceError(f"the BLE simulator did not start; run it by hand to see why: {command}")
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
