"""In-process publish/subscribe between the pipeline and its sinks (dashboard, MQTT, InfluxDB, store).

Publishing never blocks and never fails: each subscriber has its own bounded queue and, when it falls
behind, loses its OLDEST messages (counted), so a slow consumer cannot slow ingestion or the others.
Topics are plain strings: ``angles``, ``events``, ``cues``, ``status``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Bus", "Message", "Subscription"]


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: str  # athlete/leg or sensor id the message is about
    payload: Any


class Subscription:
    """A bounded, drop-oldest mailbox; iterate it with ``async for``."""

    def __init__(self, bus: Bus, topics: frozenset[str], maxsize: int) -> None:
        self._bus = bus
        self.topics = topics
        self._items: deque[Message] = deque(maxlen=maxsize)
        self._event = asyncio.Event()
        self.dropped = 0
        self.delivered = 0
        self.closed = False

    def offer(self, message: Message) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1  # deque(maxlen) evicts the oldest on append
        self._items.append(message)
        self._event.set()

    def __len__(self) -> int:
        """Messages waiting (a depth the soak bench watches)."""
        return len(self._items)

    def get_nowait(self) -> Message | None:
        if not self._items:
            return None
        self.delivered += 1
        return self._items.popleft()

    def drain(self) -> list[Message]:
        out = list(self._items)
        self._items.clear()
        self.delivered += len(out)
        return out

    async def get(self) -> Message:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._event.clear()
            await self._event.wait()
        self.delivered += 1
        return self._items.popleft()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.get()
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self.closed = True
        self._event.set()
        self._bus.unsubscribe(self)


class Bus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self.published = 0

    def subscribe(self, topics: Iterable[str], maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, frozenset(topics), maxsize)
        self._subs.append(sub)
        return sub

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subs)

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, topic: str, key: str, payload: Any) -> None:
        message = Message(topic, key, payload)
        self.published += 1
        for sub in self._subs:
            if topic in sub.topics:
                sub.offer(message)

    def close(self) -> None:
        for sub in list(self._subs):
            sub.close()
