"""Simulated athletes -> devices -> BLE links -> ``RawPacket``s, in the order the host receives them.

``SimSession`` is the synchronous core (also used by the recording transport); ``InProcessTransport``
turns it into an async iterator, paced in real time against the event loop clock or as fast as possible.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Self

import numpy as np

from sensorhub.model import RawPacket

from ..athletes import SimSensor, SimulatedAthlete
from ..device import SimulatedDevice, StreamSettings
from ..encoder import encode_command
from ..link import BleLink, Delivery, LinkParams, LinkStats, link_preset

DEFAULT_STEP_S = 0.02  # simulation step: small against the connection interval, cheap per call


class SimSession:
    """All sensors of some athletes streaming from true time 0 until the longest motion ends."""

    def __init__(
        self,
        athletes: Sequence[SimulatedAthlete],
        *,
        settings: StreamSettings | None = None,
        link: str | LinkParams = "typical",
        seed: int = 0,
        host_epoch_s: float = 0.0,
        step_s: float = DEFAULT_STEP_S,
        prefetch_s: float = 0.5,
    ) -> None:
        self.athletes = tuple(athletes)
        self.settings = settings or StreamSettings()
        self.link_params = link_preset(link)
        self.seed = seed
        self.host_epoch_s = host_epoch_s
        self.step_s = step_s
        self.sensors: tuple[SimSensor, ...] = tuple(s for a in self.athletes for s in a.sensors)
        self.devices: dict[str, SimulatedDevice] = {}
        self.links: dict[str, BleLink] = {}
        for athlete in self.athletes:
            for sensor in athlete.sensors:
                self.devices[sensor.sensor_id] = athlete.device(sensor)
                self.devices[sensor.sensor_id].prefetch_s = prefetch_s
                rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(sensor.sensor_id.encode()), 4])
                self.links[sensor.sensor_id] = BleLink(self.link_params, rng, host_epoch_s=host_epoch_s)
        self.duration_s = max((float(a.motion.duration_s) for a in self.athletes), default=0.0)
        self._now_s = 0.0
        self._started = False
        self._finished = False
        self._pending: list[tuple[float, int, Delivery]] = []
        self._counter = 0

    def sensor_refs(self) -> list[dict[str, str]]:
        return [s.ref() for s in self.sensors]

    def link_stats(self) -> dict[str, LinkStats]:
        return {sensor_id: link.stats for sensor_id, link in self.links.items()}

    @property
    def finished(self) -> bool:
        return self._finished and not self._pending

    def start(self) -> None:
        """Host writes START with the session's settings to every sensor at true time 0."""
        command = encode_command(self.settings.start_command())
        for device in self.devices.values():
            device.write_control(command, t_true_s=0.0)
        self._started = True

    def step_until(self, t_true_s: float) -> list[Delivery]:
        """Deliveries that reach the host at or before ``t_true_s``, in arrival order."""
        if not self._started:
            self.start()
        t_true_s = max(t_true_s, self._now_s)
        self._now_s = t_true_s
        for sensor_id, device in self.devices.items():
            link = self.links[sensor_id]
            for packet in device.advance(t_true_s):
                for delivery in link.transmit(packet):
                    self._push(delivery)
        if t_true_s > self.duration_s and not self._finished:
            for link in self.links.values():
                for delivery in link.flush():
                    self._push(delivery)
            self._finished = True
        out = []
        # Anything sent later arrives later than t_true_s, so what is due now is final.
        while self._pending and self._pending[0][0] <= t_true_s:
            out.append(heapq.heappop(self._pending)[2])
        return out

    def next_arrival_s(self) -> float:
        return self._pending[0][0] if self._pending else math.inf

    def deliveries(self) -> Iterator[Delivery]:
        """The whole session, as fast as possible."""
        t_s = 0.0
        while not self.finished:
            t_s += self.step_s
            if self._finished:
                t_s = max(t_s, self.next_arrival_s())
            yield from self.step_until(t_s)

    def _push(self, delivery: Delivery) -> None:
        heapq.heappush(self._pending, (delivery.t_arrive_true_s, self._counter, delivery))
        self._counter += 1


def raw_packet(delivery: Delivery, t_host_s: float | None = None) -> RawPacket:
    host_s = delivery.t_host_s if t_host_s is None else t_host_s
    return RawPacket(sensor_id=delivery.packet.sensor_id, t_host_s=host_s, payload=delivery.packet.payload)


class InProcessTransport:
    """Async iterator of ``RawPacket`` from simulated athletes.

    ``realtime=True``: packets are released when the event loop clock reaches their arrival time and are
    stamped with ``time.time()`` at release, as a BLE source would. ``realtime=False``: as fast as
    possible, stamped on a virtual host clock that starts at ``host_epoch_s`` (default: now).
    """

    def __init__(
        self,
        athletes: Sequence[SimulatedAthlete],
        *,
        realtime: bool = True,
        settings: StreamSettings | None = None,
        link: str | LinkParams = "typical",
        seed: int = 0,
        host_epoch_s: float | None = None,
        step_s: float = DEFAULT_STEP_S,
    ) -> None:
        self.realtime = realtime
        self.session = SimSession(
            athletes,
            settings=settings,
            link=link,
            seed=seed,
            host_epoch_s=time.time() if host_epoch_s is None else host_epoch_s,
            step_s=step_s,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def sensor_refs(self) -> list[dict[str, str]]:
        return self.session.sensor_refs()

    def __aiter__(self) -> AsyncIterator[RawPacket]:
        return self._realtime() if self.realtime else self._fast()

    async def _fast(self) -> AsyncIterator[RawPacket]:
        for count, delivery in enumerate(self.session.deliveries()):
            if count % 64 == 63:
                await asyncio.sleep(0)  # let consumers run; never hog the loop
            yield raw_packet(delivery)

    async def _realtime(self) -> AsyncIterator[RawPacket]:
        loop = asyncio.get_running_loop()
        session = self.session
        t_loop0 = loop.time()
        t_sim_s = 0.0
        while not session.finished:
            t_sim_s += session.step_s
            # The body model runs in a thread: a step that refills signal blocks (all sensors at the start)
            # would otherwise stall the loop the system under test shares, long enough under load for the
            # broker to drop its MQTT clients as silent (keepalive).
            for delivery in await asyncio.to_thread(session.step_until, t_sim_s):
                wait_s = t_loop0 + delivery.t_arrive_true_s - loop.time()
                if wait_s > 0.0:
                    await asyncio.sleep(wait_s)
                yield raw_packet(delivery, time.time())
            wait_s = t_loop0 + t_sim_s - loop.time()
            if wait_s > 0.0:
                await asyncio.sleep(wait_s)
