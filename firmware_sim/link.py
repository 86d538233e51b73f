"""The BLE link between one simulated sensor and the host.

Notifications leave the peripheral only at connection events (every ``conn_interval_s``, 7.5-30 ms), at
most ``max_packets_per_event`` per event; the host stack adds a small random delay before the packet is
timestamped on the host clock. Packets are lost independently (``loss_prob``) and in bursts
(Gilbert-Elliott: a burst starts with ``burst_start_prob`` per packet and lasts ``burst_mean_len``
packets on average, e.g. interference or a body-shadowed antenna). A few packets are delivered late,
after the next packet (``reorder_prob``), which the host must put back in order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .device import DevicePacket
from .exceptions import FirmwareSimError


class LinkError(FirmwareSimError):
    """Invalid link parameters or packets handed over out of order."""


@dataclass(frozen=True, slots=True)
class LinkParams:
    conn_interval_min_s: float = 0.0075  # BLE minimum connection interval
    conn_interval_max_s: float = 0.030  # each link draws its interval uniformly in [min, max]
    stack_delay_max_s: float = 0.002  # host controller + OS + bleak callback, uniform in [0.2 ms, max]
    max_packets_per_event: int = 6
    loss_prob: float = 0.002  # independent loss per packet
    burst_start_prob: float = 0.0005  # per packet, chance that a loss burst begins
    burst_mean_len: float = 8.0  # packets lost per burst on average (geometric)
    reorder_prob: float = 0.002  # chance that a packet arrives after its successor

    def __post_init__(self) -> None:
        if not 0.0 < self.conn_interval_min_s <= self.conn_interval_max_s:
            raise LinkError("need 0 < conn_interval_min_s <= conn_interval_max_s")
        if self.max_packets_per_event < 1:
            raise LinkError("max_packets_per_event must be >= 1")
        for name in ("loss_prob", "burst_start_prob", "reorder_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise LinkError(f"{name} must be in [0, 1)")
        if self.burst_mean_len < 1.0:
            raise LinkError("burst_mean_len must be >= 1")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


LINK_PRESETS: dict[str, LinkParams] = {
    "typical": LinkParams(),
    "lossless": LinkParams(loss_prob=0.0, burst_start_prob=0.0, reorder_prob=0.0),
    "poor": LinkParams(loss_prob=0.02, burst_start_prob=0.003, burst_mean_len=15.0, reorder_prob=0.01),
}


def link_preset(name: str | LinkParams) -> LinkParams:
    if isinstance(name, LinkParams):
        return name
    try:
        return LINK_PRESETS[name]
    except KeyError:
        raise LinkError(f"unknown link preset {name!r}; choose one of {sorted(LINK_PRESETS)}") from None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A packet that reached the host: when (true time and host clock) and what."""

    t_arrive_true_s: float
    t_host_s: float
    packet: DevicePacket


@dataclass(slots=True)
class LinkStats:
    sent: int = 0
    lost: int = 0
    delivered: int = 0
    reordered: int = 0
    lost_indices: list[int] = field(default_factory=list)  # DevicePacket.index of every lost packet

    def to_json(self) -> dict[str, Any]:
        return {
            "packets_sent": self.sent,
            "packets_lost": self.lost,
            "packets_delivered": self.delivered,
            "packets_reordered": self.reordered,
            "lost_packet_indices": list(self.lost_indices),
        }


@dataclass(slots=True)
class BleLink:
    """One sensor's link. Feed packets in emission order with ``transmit``; ``flush`` at the end."""

    params: LinkParams
    rng: np.random.Generator
    host_epoch_s: float = 0.0  # host clock (time.time()) at true time 0
    conn_interval_s: float = field(init=False)
    stats: LinkStats = field(default_factory=LinkStats)
    _anchor_s: float = field(init=False)
    _event_k: int = -1  # the last connection event used and how many packets it carried
    _event_count: int = 0
    _in_burst: bool = False
    _held: DevicePacket | None = None
    _last_emit_s: float = -math.inf
    _last_arrive_s: float = -math.inf

    def __post_init__(self) -> None:
        p = self.params
        self.conn_interval_s = float(self.rng.uniform(p.conn_interval_min_s, p.conn_interval_max_s))
        self._anchor_s = float(self.rng.uniform(0.0, self.conn_interval_s))

    def transmit(self, packet: DevicePacket) -> list[Delivery]:
        """Send one packet; returns the deliveries it causes (none if lost, two if it frees a held one)."""
        if packet.t_emit_true_s < self._last_emit_s:
            raise LinkError("packets must be transmitted in emission order")
        self._last_emit_s = packet.t_emit_true_s
        self.stats.sent += 1
        if self._lost():
            self.stats.lost += 1
            self.stats.lost_indices.append(packet.index)
            return []
        if self._held is None and self.rng.random() < self.params.reorder_prob:
            self._held = packet
            self.stats.reordered += 1
            return []
        out = [self._deliver(packet, packet.t_emit_true_s)]
        if self._held is not None:
            # The late packet goes out in a connection event after its successor.
            held, self._held = self._held, None
            out.append(self._deliver(held, out[0].t_arrive_true_s))
        return out

    def flush(self) -> list[Delivery]:
        if self._held is None:
            return []
        held, self._held = self._held, None
        return [self._deliver(held, self._last_emit_s)]

    def _lost(self) -> bool:
        p = self.params
        if self._in_burst:
            if self.rng.random() < 1.0 / p.burst_mean_len:
                self._in_burst = False
            return True
        if self.rng.random() < p.burst_start_prob:
            self._in_burst = p.burst_mean_len > 1.0
            return True
        return bool(self.rng.random() < p.loss_prob)

    def _deliver(self, packet: DevicePacket, ready_s: float) -> Delivery:
        ci = self.conn_interval_s
        k = max(math.ceil((ready_s - self._anchor_s) / ci), 0)
        if k < self._event_k or (
            k == self._event_k and self._event_count >= self.params.max_packets_per_event
        ):
            k = self._event_k + (1 if self._event_count >= self.params.max_packets_per_event else 0)
        if k == self._event_k:
            self._event_count += 1
        else:
            self._event_k, self._event_count = k, 1
        t_event_s = self._anchor_s + k * ci
        delay_s = float(self.rng.uniform(0.0002, max(self.params.stack_delay_max_s, 0.0002)))
        # The host receives one link's notifications in the order the radio sent them.
        t_arrive_s = max(t_event_s + delay_s, self._last_arrive_s + 1e-6)
        self._last_arrive_s = t_arrive_s
        self.stats.delivered += 1
        return Delivery(t_arrive_true_s=t_arrive_s, t_host_s=self.host_epoch_s + t_arrive_s, packet=packet)
