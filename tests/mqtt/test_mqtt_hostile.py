"""Hostile publishers against a real Mosquitto: whoever may publish on the broker reaches every gateway and
worker. Malformed claims, offers and statuses (deeply nested, oversized, mismatched, invented ids) are
rejected, counted per reason, and end no client, also when retained (they come back on every connect);
tables keyed by ids from the wire stay bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from sensorhub.errors import ProtocolError
from sensorhub.model import Segment, SensorRef, Side
from sensorhub.mqtt import gateway as gateway_module
from sensorhub.mqtt import source as source_module
from sensorhub.mqtt import topics
from sensorhub.mqtt.claims import Claim, Offer
from sensorhub.runtime.warmup import warmup
from tests.mqtt.test_mqtt_scale import SEGMENTS, gateway, team, until, worker
from tests.services import Mosquitto

PREFIX = "sensorhub/v1"
ATHLETES = {"ana": ["SH-A1", "SH-A2", "SH-A3", "SH-A4"]}
DEEP = b'{"worker": ' + b"[" * 5000 + b"]" * 5000 + b', "t_s": 1}'  # under the size bound, RecursionError
HUGE = b'{"worker": "' + b"w" * 100_000 + b'", "t_s": 1}'


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    warmup()
    with Mosquitto() as mosquitto:
        yield mosquitto


def offer(athlete: str, sensor_prefix: str = "SH-X") -> bytes:
    refs = tuple(
        SensorRef(f"{sensor_prefix}{i}", athlete, Side(side), Segment(seg))
        for i, (side, seg) in enumerate(SEGMENTS)
    )
    return Offer(athlete, refs, "evil-gateway", 1.0).encode()


async def test_malformed_control_messages_are_rejected_counted_and_end_no_client(
    broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_module, "MAX_WORKERS", 20, raising=False)
    monkeypatch.setattr(source_module, "MAX_REFUSED", 10, raising=False)
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as evil:
        # Retained before anyone connects: every gateway and worker reads these on each (re)connect.
        await evil.publish(topics.claim_topic(PREFIX, "ana"), DEEP, qos=1, retain=True)
        await evil.publish(topics.claim_topic(PREFIX, "ghost"), DEEP, qos=1, retain=True)
        w_config = team(tmp_path, broker.port, "w5", ATHLETES, "mqtt")
        gw_config = team(tmp_path, broker.port, "gw5", ATHLETES, "simulator")
        async with worker(w_config) as (w, runner), gateway(gw_config, realtime=True) as (gw, _stop):
            await until(lambda: gw.claims() == {"ana": w.worker_id}, 25.0, "ana claimed despite the claim")
            await evil.publish(topics.announce_topic(PREFIX, "ana"), DEEP, qos=1)
            await evil.publish(topics.announce_topic(PREFIX, "ana"), HUGE, qos=1)
            await evil.publish(topics.announce_topic(PREFIX, "ana"), offer("ben"), qos=1)  # not its topic
            await evil.publish(topics.announce_topic(PREFIX, "a b"), offer("a b"), qos=1)  # invalid id
            await evil.publish(topics.claim_topic(PREFIX, "ghost"), HUGE, qos=1)
            await evil.publish(topics.claim_topic(PREFIX, "a b"), Claim("x", 1.0).encode(), qos=1)
            await evil.publish(topics.worker_status_topic(PREFIX, "nobody"), b"\xff" * 10, qos=1)
            for i in range(30):  # invented athletes and workers: the tables stay bounded
                await evil.publish(topics.announce_topic(PREFIX, f"fake{i}"), offer(f"fake{i}"), qos=1)
                await evil.publish(topics.worker_status_topic(PREFIX, f"fake{i}"), b"online", qos=1)
            await until(lambda: w.malformed["bad_offer"] >= 4, 15.0, "the offers rejected")
            await until(lambda: w.refused.evicted >= 20, 15.0, "the refused offers of invented athletes")
            await until(lambda: gw._workers.evicted >= 10, 15.0, "invented workers forgotten")
            packets = runner.stats.packets
            await until(lambda: runner.stats.packets > packets + 40, 15.0, "packets still processed")
            assert gw.claims() == {"ana": w.worker_id}
    assert w.malformed["bad_claim"] >= 3  # the retained deep ones (ana, ghost), the huge one, "a b"
    assert w.malformed["error"] == 0 and gw.stats.rejected["error"] == 0
    assert gw.stats.rejected["bad_claim"] >= 1 and gw.stats.rejected["bad_status"] == 1
    assert len(w.refused) == 10 and len(gw._workers) <= 20
    assert w.diagnostics()["refused_evicted"] == w.refused.evicted


def test_claims_and_offers_are_bounded_before_parsing_and_name_the_reason() -> None:
    nested = b'{"worker": "w", "t_s": 1, "x": ' + b"[" * 4 + b"]" * 4 + b"}"
    for data, reason in ((DEEP, "nested deeper"), (HUGE, "more than"), (nested, "nested deeper")):
        with pytest.raises(ProtocolError, match=reason):
            Claim.decode(data)
    assert Claim.decode(b'{"worker": "w[{", "t_s": 1}') == Claim("w[{", 1.0)  # brackets in strings
    with pytest.raises(ProtocolError, match="not a valid athlete id"):
        Offer.decode(offer("a+b"))
    with pytest.raises(ProtocolError, match="not a valid sensor id"):
        Offer.decode(offer("ana", sensor_prefix="S/"))
