"""Dashboard websocket protocol, version 1 (documented in docs/dashboard.md).

Server -> client, JSON text frames, each with ``type``:
``hello`` (once, first; the coach's carries ``athlete_links``: id -> that athlete's page with its token),
``angles`` (decimated traces, every ~50 ms), ``state`` (an athlete's session),
``event``, ``cue``, ``health`` (coach only, every second). Client -> server: ``{"type": "ping"}`` is
answered by ``{"type": "pong"}``; anything else is ignored. Commands go over HTTP (``/api/...``).
A client that receives a ``hello`` with a ``protocol`` it does not know must not interpret frames.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
WS_PATH = "/ws/v1"
# The largest message a client may send (a ping is ~20 bytes); the server closes the connection with
# 1009 (message too big) on anything larger, before it is buffered.
WS_MAX_CLIENT_MESSAGE_BYTES = 4096
