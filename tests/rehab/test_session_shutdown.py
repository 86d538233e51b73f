"""Shutdown: the session consumer records what is still in its mailbox, then the open sets close."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

from sensorhub.bus import Bus
from sensorhub.config import Config, ServiceConfig
from sensorhub.history import HistoryStore
from sensorhub.model import Event, SensorRef
from sensorhub.rehab import SessionManager
from sensorhub.runtime.service import Stage, serve_in_thread
from sensorhub.sources.base import PacketSource
from tests.helpers import IdleSource, leg_refs


async def test_cancelled_consumer_drains_its_mailbox_and_close_all_ends_the_set(tmp_path: Path) -> None:
    bus = Bus()
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        sessions = SessionManager(bus, store, [("ana", "Ana")], ["squat"])
        task = asyncio.create_task(sessions.run())
        for _ in range(3):  # run() starts its consumer task, which subscribes
            await asyncio.sleep(0)
        set_id = sessions.start_set("ana", "squat")
        task.cancel()  # shutdown reaches the consumer before it wakes for the pipeline's last events:
        for k in range(3):
            bus.publish("events", "ana/right", Event("rep", "ana/right", 10.0 + k, {"depth_deg": 80.0}, 70.0))
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sessions.close_all()
        events = await asyncio.to_thread(store.events, "ana")
        sets = await asyncio.to_thread(store.sets, "ana")
        stored_sessions = await asyncio.to_thread(store.sessions, "ana")
    assert [(e.set_id, e.t_s) for e in events] == [(set_id, 10.0), (set_id, 11.0), (set_id, 12.0)]
    assert [(s.id, s.reps) for s in sets] == [(set_id, 3)] and sets[0].ended_s is not None
    assert all(s.ended_s is not None for s in stored_sessions)


def test_stopping_the_service_ends_the_running_set_with_its_events(tmp_path: Path) -> None:
    config = replace(Config(), service=ServiceConfig(data_dir=str(tmp_path)))
    db = tmp_path / "h.sqlite3"

    def make() -> tuple[PacketSource, list[SensorRef], list[Stage]]:
        return IdleSource(), leg_refs(["ana"], ("right",)), []

    with serve_in_thread(config, make, port=0, store_path=db) as handle:
        assert handle.loop is not None

        async def start_and_publish() -> str:
            set_id = handle.sessions.start_set("ana", "squat")
            for k in range(3):
                event = Event("rep", "ana/right", 10.0 + k, {"depth_deg": 80.0}, 70.0)
                handle.bus.publish("events", "ana/right", event)
            return set_id

        set_id = asyncio.run_coroutine_threadsafe(start_and_publish(), handle.loop).result(10)
    with HistoryStore(db) as store:  # the service has stopped: what it left on disk
        sets = store.sets("ana")
        events = store.events("ana")
        sessions = store.sessions("ana")
    assert [(s.id, s.reps) for s in sets] == [(set_id, 3)] and sets[0].ended_s is not None
    assert [e.set_id for e in events] == [set_id] * 3
    assert len(sessions) == 1 and sessions[0].ended_s is not None
