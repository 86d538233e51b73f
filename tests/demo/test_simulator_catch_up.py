"""The demo simulator's warm-up: simulated in long steps while behind the wall clock, with the packets
(arrival times, sensors, payloads) bit for bit those of the live step."""

from __future__ import annotations

import time
from typing import Any

from firmware_sim.transports.inprocess import SimSession
from sensorhub.config import Config
from sensorhub.demo import simulator
from sensorhub.demo.simulator import SimSpec, simulate_laps, stream_settings


def test_the_warm_up_gives_the_packets_of_the_live_step(monkeypatch: Any) -> None:
    config = Config()
    spec = SimSpec(1, config.simulator, config.stream)
    athletes = spec.build()
    warmup_s = 6.0
    steps: list[float] = []
    step_until = SimSession.step_until

    def recorded(self: SimSession, t_true_s: float) -> Any:
        steps.append(t_true_s)
        return step_until(self, t_true_s)

    monkeypatch.setattr(SimSession, "step_until", recorded)
    got: list[tuple[float, str, float, bytes]] = []
    epoch_s = time.time() - warmup_s

    def emit(kind: str, data: Any) -> None:
        if kind == "packets":
            got.extend(data)

    simulate_laps(spec, athletes, epoch_s, lambda _: bool(steps) and steps[-1] >= warmup_s, emit)
    assert steps[0] == simulator.CATCH_UP_STEP_S  # long steps while behind
    caught_up_s = steps[-1]
    session = SimSession(athletes, settings=stream_settings(spec.stream), seed=spec.simulator.seed,
                         host_epoch_s=epoch_s, step_s=simulator.SIM_STEP_S,
                         prefetch_s=simulator.SIM_PREFETCH_S)
    want = []
    t_s = 0.0
    while t_s < caught_up_s - 1e-9:
        t_s += simulator.SIM_STEP_S
        want += [(epoch_s + d.t_arrive_true_s, d.packet.sensor_id, d.t_host_s, d.packet.payload)
                 for d in session.step_until(min(t_s, caught_up_s))]
    assert len(want) > 500 and got == want
