"""What every packet source (BLE, MQTT, replay, simulator) looks like to the runtime.

A source owns its connections and tasks; it only timestamps received bytes and hands them to a
:class:`PacketQueue` (never blocks, never processes). The runtime drains the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from sensorhub.model import RawPacket


class LinkState(StrEnum):
    """Connection state of one sensor, shown on /health and the dashboard."""

    IDLE = "idle"
    SCANNING = "scanning"
    CONNECTING = "connecting"
    STREAMING = "streaming"
    LOST = "lost"
    BACKING_OFF = "backing_off"
    MISSING = "missing"  # configured but never found


@dataclass(slots=True)
class SensorLink:
    """Live link facts of one sensor, owned and updated by its source."""

    sensor_id: str
    state: LinkState = LinkState.IDLE
    battery_pct: int | None = None
    connects: int = 0
    disconnects: int = 0
    last_packet_host_s: float | None = None
    last_error: str = ""
    state_since_s: float = field(default_factory=time.time)

    def set_state(self, state: LinkState, error: str = "") -> None:
        if state != self.state:
            self.state = state
            self.state_since_s = time.time()
        if error:
            self.last_error = error


class PacketQueue:
    """Bounded FIFO between callbacks and the pipeline. ``put_nowait`` never blocks or raises: when full
    the OLDEST packet is dropped and counted (fresh data matters more for live feedback)."""

    def __init__(self, maxsize: int = 100_000) -> None:
        self._items: deque[RawPacket] = deque()
        self._maxsize = maxsize
        self._event = asyncio.Event()
        self.dropped = 0
        self.total = 0

    def put_nowait(self, packet: RawPacket) -> None:
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(packet)
        self.total += 1
        self._event.set()

    def __len__(self) -> int:
        return len(self._items)

    def drain(self, max_items: int | None = None) -> list[RawPacket]:
        """Everything queued (or up to ``max_items``), oldest first."""
        n = len(self._items) if max_items is None else min(max_items, len(self._items))
        out = [self._items.popleft() for _ in range(n)]
        if not self._items:
            self._event.clear()
        return out

    async def wait(self) -> None:
        """Until at least one packet is queued."""
        while not self._items:
            self._event.clear()
            await self._event.wait()


class PacketSource(Protocol):
    """A running source of raw packets. ``run`` returns when the source is exhausted (replay) or is
    cancelled (live); it must never block the event loop."""

    async def run(self, out: PacketQueue) -> None: ...

    def links(self) -> dict[str, SensorLink]: ...


class IteratorSource:
    """Adapts an async iterator of RawPacket (simulator, replay) to the ``PacketSource`` protocol."""

    def __init__(self, packets: AsyncIterator[RawPacket], sensor_ids: list[str]) -> None:
        self._packets = packets
        self._links = {sid: SensorLink(sid) for sid in sensor_ids}

    async def run(self, out: PacketQueue) -> None:
        for link in self._links.values():
            link.set_state(LinkState.STREAMING)
        async for packet in self._packets:
            found = self._links.get(packet.sensor_id)
            if found is not None:
                found.last_packet_host_s = packet.t_host_s
            out.put_nowait(packet)
        for link in self._links.values():
            link.set_state(LinkState.IDLE)

    def links(self) -> dict[str, SensorLink]:
        return self._links
