"""What an MQTT client does with a message it cannot use, and with state keyed by ids from the wire.

Anyone allowed to publish on the broker reaches every gateway and worker: a malformed message is
rejected, counted per reason and logged at most once per ``LOG_PERIOD_S`` per reason (no log flood), and
never ends the client. Ids read from topics key small tables; ``BoundedTable`` caps them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from typing import Generic, TypeVar

LOG_PERIOD_S = 10.0

K = TypeVar("K")
V = TypeVar("V")


class Rejections:
    """Malformed messages of one client, counted per reason."""

    def __init__(self, who: str, logger: logging.Logger, counts: Counter[str] | None = None) -> None:
        self.who = who
        self.counts: Counter[str] = counts if counts is not None else Counter()
        self._log = logger
        self._logged_s: dict[str, float] = {}

    def reject(self, reason: str, detail: str, *, error: BaseException | None = None) -> None:
        self.counts[reason] += 1
        now_s = time.monotonic()
        if now_s - self._logged_s.get(reason, -1e9) >= LOG_PERIOD_S:
            self._logged_s[reason] = now_s
            self._log.warning(
                "%s: rejected a message (%s, %d so far): %s",
                self.who,
                reason,
                self.counts[reason],
                detail,
                exc_info=error,
            )


class BoundedTable(Generic[K, V]):
    """A dict of at most ``capacity`` entries: setting a new key beyond it evicts the least recently set
    one (counted in ``evicted``). For state keyed by ids an unauthenticated peer can invent."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.evicted = 0
        self._items: OrderedDict[K, V] = OrderedDict()

    def __setitem__(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
            self.evicted += 1

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def as_dict(self) -> dict[K, V]:
        return dict(self._items)
