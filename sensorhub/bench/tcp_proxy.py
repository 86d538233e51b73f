"""A TCP relay the fault bench and the tests put between a client and a service (the broker), to break
the network between them the way networks break:
- ``blackhole()``: every connection open at that moment stops carrying bytes in both directions while
  both sockets stay open -- no FIN, no RST, as when a NAT or a firewall loses its state or a link goes
  dark. Only the protocol's own keepalive can tell. Connections made afterwards are relayed as before.
- ``cut()``: every open connection is aborted at both ends (no MQTT DISCONNECT: the broker publishes the
  client's last will), as when a link fails hard.
- ``shut()`` / ``open()``: new connections are refused (as by a stopped service) until reopened, on the
  same port."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

READ_BYTES = 65536


@dataclass(slots=True, eq=False)
class _Flow:
    writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter]
    dead: bool = False  # blackholed: bytes read on either side are discarded
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    """``async with TcpProxy(target_port) as proxy``: clients connect to ``proxy.port`` on 127.0.0.1."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.blackholed = 0  # flows blackholed so far
        self._server: asyncio.Server | None = None
        self._flows: set[_Flow] = set()

    async def __aenter__(self) -> TcpProxy:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shut()
        self.cut()

    async def open(self) -> None:
        """Accept connections (again), on the same port after a ``shut``."""
        if self._server is None:
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
            self.port = int(self._server.sockets[0].getsockname()[1])

    async def shut(self) -> None:
        """Refuse new connections; the open ones go on."""
        if self._server is not None:
            self._server.close()  # the listening socket only (wait_closed would wait for the flows too)
            self._server = None

    def cut(self) -> int:
        """Abort every open connection at both ends; returns how many."""
        flows, self._flows = self._flows, set()
        for flow in flows:
            for task in flow.pumps:
                task.cancel()
            for writer in flow.writers:
                writer.transport.abort()
        return len(flows)

    def blackhole(self) -> int:
        """Every open flow goes silent (the sockets stay open); returns how many."""
        n = 0
        for flow in self._flows:
            if not flow.dead:
                flow.dead = True
                n += 1
        self.blackholed += n
        return n

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        flow = _Flow((writer, up_writer))
        self._flows.add(flow)
        flow.pumps = [
            asyncio.create_task(self._pump(flow, reader, writer, up_writer)),
            asyncio.create_task(self._pump(flow, up_reader, up_writer, writer)),
        ]

    async def _pump(
        self, flow: _Flow, src: asyncio.StreamReader, own: asyncio.StreamWriter, dst: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(READ_BYTES):
                if not flow.dead:
                    dst.write(data)
                    await dst.drain()
        # This side closed. A live flow passes the close on; a dead one tells the other side nothing (its
        # end notices by its own keepalive and closes in turn): only this side's socket is released.
        (own if flow.dead else dst).close()
        if all(task.done() or task is asyncio.current_task() for task in flow.pumps):
            self._flows.discard(flow)
