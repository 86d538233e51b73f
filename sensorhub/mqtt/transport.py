"""The aiomqtt client every MQTT connection uses, with its intake made independent of the loop's pace.

aiomqtt (2.x) reads ONE MQTT packet per readable event of the socket and hands each message over through
a new task awaited with ``asyncio.wait`` (two loop turns more). A process whose loop turns slowly (a
worker's pipeline, a loaded CPU) therefore takes in fewer messages per second than it could process, the
backlog grows in the socket and in aiomqtt's queue, and every control message behind it (an offer, a
claim, a SUBACK) waits for the whole backlog: that is what made a worker's hand-over take more than 10 s.
Here each readable event reads what the socket holds (bounded, to stay fair to other tasks) and each
message goes straight to the connection's own queue, so intake costs no loop turn per message.
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Callable
from typing import Any

import aiomqtt

log = logging.getLogger(__name__)

# Packets read per readable event at most (then other callbacks and tasks get their turn).
READ_BURST_PACKETS = 512

Deliver = Callable[[aiomqtt.Message], None]


def inbox_type(deliver: Deliver) -> type[asyncio.Queue[aiomqtt.Message]]:
    """A queue class for aiomqtt's ``queue_type`` that holds nothing: each message goes to ``deliver``
    (aiomqtt's own iterator then only reports the disconnection)."""

    class Inbox(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            deliver(item)

    return Inbox


def _readable(sock: Any) -> bool:
    pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted, invisible to poll
    if pending is not None and pending() > 0:
        return True
    poller = select.poll()  # not select(): no limit on the descriptor's number
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class DrainingClient(aiomqtt.Client):
    """``aiomqtt.Client`` reading up to READ_BURST_PACKETS packets per readable event (see module doc)."""

    def _client_id(self) -> str:
        return str(self.identifier)

    def abandon(self, error: Exception) -> None:
        """Give up on a connection that stopped answering without a FIN or RST (a silent network drop): the
        socket is closed here, as paho closes it when its keepalive expires, and the message iteration
        ends with ``error``."""
        if not self._disconnected.done():
            self._disconnected.set_exception(error)
        self._client._sock_close()  # paho's own close: unregisters the socket from the loop, then closes it

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        def on_readable() -> None:
            try:
                for _ in range(READ_BURST_PACKETS):
                    client.loop_read()
                    current = client.socket()
                    if current is None or not _readable(current):
                        break
            except Exception as exc:  # as aiomqtt: a read error means the connection broke
                log.warning("MQTT %s: reading failed, the connection is dropped: %r", self._client_id(), exc)
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def start_misc() -> None:
            self._misc_task = self._loop.create_task(self._misc_loop())

        # paho calls this from the executor thread that connects (as in aiomqtt).
        self._loop.call_soon_threadsafe(self._loop.add_reader, sock.fileno(), on_readable)
        self._loop.call_soon_threadsafe(start_misc)
