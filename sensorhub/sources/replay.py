"""Replaying a raw recording (format: :mod:`sensorhub.recording`) as a packet source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sensorhub.config import Config
from sensorhub.errors import ConfigError
from sensorhub.model import RawPacket
from sensorhub.recording import read_recording
from sensorhub.sources.base import IteratorSource, PacketQueue, SensorLink
from sensorhub.sources.setup import SourceSetup


class ReplaySource:
    """Replays a recording's packets with their recorded host times.

    ``speed`` paces delivery by the recorded host times (1.0 = real time, 2.0 = twice as fast);
    ``None`` delivers as fast as possible (yielding to the event loop every ``batch`` packets).
    Use as ``async for packet in ReplaySource(path, speed=1.0)``, or as a ``PacketSource`` (``run``).
    """

    def __init__(self, path: str | Path, speed: float | None = 1.0, *, batch: int = 256) -> None:
        if speed is not None and not speed > 0.0:
            raise ValueError(f"speed must be > 0 or None, got {speed}")
        self.recording = read_recording(path)
        self.speed = speed
        self.batch = batch
        self.delivered = 0
        self._source = IteratorSource(aiter(self), list(self.recording.sensor_ids))

    def __aiter__(self) -> AsyncIterator[RawPacket]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RawPacket]:
        start_wall_s = time.monotonic()
        first_host_s: float | None = None
        for packet in self.recording.packets():
            if self.speed is None:
                if self.delivered % self.batch == self.batch - 1:
                    await asyncio.sleep(0)
            else:
                if first_host_s is None:
                    first_host_s = packet.t_host_s
                due_s = start_wall_s + (packet.t_host_s - first_host_s) / self.speed
                wait_s = due_s - time.monotonic()
                if wait_s > 0.0:
                    await asyncio.sleep(wait_s)
            self.delivered += 1
            yield packet

    async def run(self, out: PacketQueue) -> None:
        """``PacketSource`` protocol: put every packet into ``out``, then return (end of recording)."""
        await self._source.run(out)

    def links(self) -> dict[str, SensorLink]:
        return self._source.links()


def make_replay_source(config: Config) -> SourceSetup:
    """``source.kind = "replay"``: ``source.replay_file`` in real time, with its recorded sensors."""
    if not config.source.replay_file:
        raise ConfigError(f"{config.source_file}: source.replay_file is required when source.kind = 'replay'")
    replay = ReplaySource(config.source.replay_file, speed=1.0)
    rec = replay.recording
    return SourceSetup(replay, rec.sensors, rec.protocols, dict(rec.meta))
