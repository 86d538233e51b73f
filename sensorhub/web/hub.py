"""Websocket fan-out: bus messages -> protocol frames -> one bounded drop-oldest queue per client.

Angles arrive at the full sensor rate; the hub keeps one sample per ``1 / DISPLAY_RATE_HZ`` per leg and
sends them in batches every ``FRAME_PERIOD_S`` (the page interpolates to 60 fps). Each frame is
encoded once and shared by every client that may see it; a client that cannot keep up loses its
oldest frames (counted, reported on /health), so it never slows ingestion or another client.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensorhub.bus import Bus, Message
from sensorhub.model import KneeAngles
from sensorhub.timing import Decimator
from sensorhub.web.protocol import PROTOCOL_VERSION

DISPLAY_RATE_HZ = 50.0
FRAME_PERIOD_S = 0.05
HEALTH_PERIOD_S = 1.0
BACKLOG_SAMPLES = 520  # a little over the pages' 10 s window at the display rate
CLIENT_QUEUE_FRAMES = 256  # ~10 s of angle frames at 20 frames/s plus the rest


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), allow_nan=False, default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def next_frame_deadline(deadline_s: float, now_s: float, period_s: float) -> float:
    """The next flush on a fixed cadence (``deadline + period``, so the work of a flush does not stretch
    the period: sleeping a period after each flush gave 375 frames in 400 periods); after a stall of more
    than a period, one period from now (no burst of catch-up frames)."""
    deadline_s += period_s
    return deadline_s if deadline_s >= now_s - period_s else now_s + period_s


class ClientChannel:
    """One websocket client's outbox. ``athlete=None`` is a coach (sees everyone)."""

    def __init__(self, athlete: str | None, maxsize: int = CLIENT_QUEUE_FRAMES) -> None:
        self.athlete = athlete
        self._frames: deque[str] = deque(maxlen=maxsize)
        self._event = asyncio.Event()
        self.dropped = 0
        self.sent = 0
        self.closed = False

    def __len__(self) -> int:
        """Frames waiting to be sent."""
        return len(self._frames)

    def offer(self, frame: str) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(frame)
        self._event.set()

    async def get(self) -> str:
        while not self._frames:
            if self.closed:
                raise ConnectionResetError("channel closed")
            self._event.clear()
            await self._event.wait()
        self.sent += 1
        return self._frames.popleft()

    def close(self) -> None:
        self.closed = True
        self._event.set()


@dataclass(slots=True)
class _LegBuffer:
    t_s: list[float] = field(default_factory=list)
    flexion_deg: list[float | None] = field(default_factory=list)
    valgus_deg: list[float | None] = field(default_factory=list)
    quality: int = 0


def _round_list(values: np.ndarray, decimals: int) -> list[float | None]:
    return [None if not math.isfinite(v) else round(v, decimals) for v in values.tolist()]


class Hub:
    """Owns the client channels and the bus subscription feeding them."""

    def __init__(
        self,
        bus: Bus,
        health: Callable[[], dict[str, Any]] | None = None,
        display_rate_hz: float = DISPLAY_RATE_HZ,
        frame_period_s: float = FRAME_PERIOD_S,
    ) -> None:
        self.bus = bus
        self._health = health
        self._decimator = Decimator(display_rate_hz)
        self._frame_period_s = frame_period_s
        self.clients: set[ClientChannel] = set()
        self._legs: dict[str, _LegBuffer] = {}
        self.frames_built = 0
        self.first_angles_sent_s: float | None = None
        self.dropped_closed = 0  # frames dropped by clients that have gone
        # The last display window per leg, sent to a client when it connects so its traces start full.
        self._recent: dict[str, deque[tuple[float, float | None, float | None]]] = {}
        # Encoded backlog per viewer (None = coach) until the next flush: a burst of connections
        # (a team's phones joining, a page reload on 50 screens) encodes it once, not once each.
        self._backlog_text: dict[str | None, str | None] = {}

    # ---- clients ---------------------------------------------------------------------------------

    def connect(self, athlete: str | None) -> ClientChannel:
        channel = ClientChannel(athlete)
        self.clients.add(channel)
        return channel

    def disconnect(self, channel: ClientChannel) -> None:
        channel.close()
        if channel in self.clients:
            self.clients.remove(channel)
            self.dropped_closed += channel.dropped

    def dropped_frames(self) -> int:
        return self.dropped_closed + sum(c.dropped for c in self.clients)

    def send(self, frame: dict[str, Any], athlete: str | None) -> None:
        """To every coach, and to the athlete's own clients (``athlete=None``: coaches only)."""
        if not self.clients:
            return
        text = encode(frame)
        self.frames_built += 1
        for channel in self.clients:
            if channel.athlete is None or (athlete is not None and channel.athlete == athlete):
                channel.offer(text)

    def on_session(self, kind: str, athlete: str, fields: dict[str, Any]) -> None:
        """SessionManager listener: state, event and cue frames (a state or an event is nested: both carry
        their own ``type`` key)."""
        nested = {"state": "state", "event": "event"}.get(kind)
        self.send({"type": kind, "athlete": athlete, **({nested: fields} if nested else fields)}, athlete)

    # ---- angles ----------------------------------------------------------------------------------

    def add_angles(self, angles: KneeAngles) -> None:
        buf = self._legs.get(angles.leg_id)
        if buf is None:
            buf = self._legs[angles.leg_id] = _LegBuffer()
        t_s = angles.t_s
        idx = self._decimator.keep(angles.leg_id, t_s)
        if not idx.size:
            return
        buf.t_s.extend(np.round(t_s[idx], 3).tolist())
        buf.flexion_deg.extend(_round_list(np.degrees(angles.flexion_rad[idx]), 2))
        buf.valgus_deg.extend(_round_list(np.degrees(angles.valgus_rad[idx]), 2))
        buf.quality |= int(np.bitwise_or.reduce(angles.quality)) if angles.quality.shape[0] else 0

    def flush_angles(self) -> None:
        per_athlete: dict[str, dict[str, Any]] = {}
        for leg_id, buf in self._legs.items():
            if not buf.t_s:
                continue
            athlete, _, side = leg_id.partition("/")
            self._recent.setdefault(leg_id, deque(maxlen=BACKLOG_SAMPLES)).extend(
                zip(buf.t_s, buf.flexion_deg, buf.valgus_deg, strict=True)
            )
            per_athlete.setdefault(athlete, {})[side] = {
                "t_s": buf.t_s,
                "flexion_deg": buf.flexion_deg,
                "valgus_deg": buf.valgus_deg,
                "quality": buf.quality,
            }
            buf.t_s, buf.flexion_deg, buf.valgus_deg, buf.quality = [], [], [], 0
        if per_athlete:
            self._backlog_text.clear()
        if not per_athlete or not self.clients:
            return
        now_s = time.time()
        coaches = [c for c in self.clients if c.athlete is None]
        if coaches:
            text = encode({"type": "angles", "t_sent_s": now_s, "athletes": per_athlete})
            self.frames_built += 1
            for c in coaches:
                c.offer(text)
        watched = {c.athlete for c in self.clients if c.athlete is not None}
        for athlete in watched & per_athlete.keys():
            text = encode({"type": "angles", "t_sent_s": now_s, "athletes": {athlete: per_athlete[athlete]}})
            self.frames_built += 1
            for c in self.clients:
                if c.athlete == athlete:
                    c.offer(text)
        if self.first_angles_sent_s is None:
            self.first_angles_sent_s = now_s

    # ---- tasks -----------------------------------------------------------------------------------

    def on_message(self, message: Message) -> None:
        if message.topic == "angles" and isinstance(message.payload, KneeAngles):
            self.add_angles(message.payload)

    async def run(self) -> None:
        """Until cancelled: drain the bus, flush angle frames and health frames on their periods."""
        sub = self.bus.subscribe(["angles"], maxsize=20_000)
        loop = asyncio.get_running_loop()
        next_health_s = loop.time()
        next_frame_s = loop.time()
        try:
            while True:
                for message in sub.drain():
                    self.on_message(message)
                self.flush_angles()
                if self._health is not None and loop.time() >= next_health_s and self.clients:
                    next_health_s = loop.time() + HEALTH_PERIOD_S
                    self.send({"type": "health", "health": self._health()}, None)
                next_frame_s = next_frame_deadline(next_frame_s, loop.time(), self._frame_period_s)
                await asyncio.sleep(next_frame_s - loop.time())
        finally:
            sub.close()
            for channel in list(self.clients):
                channel.close()

    def backlog_text(self, athlete: str | None) -> str | None:
        """``backlog`` encoded, shared by every client that connects before the next angles flush."""
        if athlete not in self._backlog_text:
            frame = self.backlog(athlete)
            self._backlog_text[athlete] = None if frame is None else encode(frame)
        return self._backlog_text[athlete]

    def backlog(self, athlete: str | None) -> dict[str, Any] | None:
        """An ``angles`` frame with the recent window of every leg this client may see (None if empty)."""
        per_athlete: dict[str, dict[str, Any]] = {}
        for leg_id, recent in self._recent.items():
            who, _, side = leg_id.partition("/")
            if not recent or (athlete is not None and who != athlete):
                continue
            t_s, flexion_deg, valgus_deg = (list(col) for col in zip(*recent, strict=True))
            per_athlete.setdefault(who, {})[side] = {
                "t_s": t_s,
                "flexion_deg": flexion_deg,
                "valgus_deg": valgus_deg,
                "quality": 0,
            }
        if not per_athlete:
            return None
        return {"type": "angles", "t_sent_s": time.time(), "athletes": per_athlete}

    def hello(self, athlete: str | None, athletes: list[dict[str, Any]], drills: list[str]) -> dict[str, Any]:
        return {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "role": "coach" if athlete is None else "athlete",
            "athlete": athlete,
            "athletes": athletes,
            "drills": drills,
            "display_rate_hz": 1.0 / self._decimator.min_dt_s,
            "frame_period_s": self._frame_period_s,
        }
