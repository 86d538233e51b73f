"""The cue stage after the pipeline: live cues with latency, none from a calibration backlog, host audio."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sensorhub.analysis import LivePhase
from sensorhub.bus import Bus
from sensorhub.cues import Clip, CueAudio
from sensorhub.model import Event, KneeAngles, LegCalibration
from sensorhub.runtime import cueing
from sensorhub.runtime.cueing import CueStage, HostPlayer
from sensorhub.runtime.pipeline import LegOutput


def _output(t0_s: float, n: int, valgus_deg: float) -> LegOutput:
    t_s = t0_s + np.arange(n) / 200.0
    zeros = np.zeros(n)
    angles = KneeAngles("ana/right", t_s, zeros, zeros, zeros, np.zeros(n, dtype=np.uint8))
    event = Event("rep", "ana/right", t0_s, {"peak_valgus_deg": valgus_deg, "eccentric_s": 2.0}, 60.0)
    return LegOutput("ana/right", angles, [event])


def test_live_event_gives_a_cue_with_latency_but_a_backlog_does_not() -> None:
    bus = Bus()
    sub = bus.subscribe(["cues"])
    stage = CueStage(bus, clock=lambda: 100.010)
    assert stage.process([_output(10.0, 2000, valgus_deg=12.0)], packet_host_s=100.0) == []  # 10 s backlog
    cues = stage.process([_output(20.0, 8, valgus_deg=12.0)], packet_host_s=100.0)
    assert [c.phrase for c in cues] == ["knees out"]
    assert cues[0].latency_s == pytest.approx(0.010)
    assert cues[0].audio_id == "knees-out"
    assert sub.get_nowait() is not None and stage.latency.count == 1


def test_a_phase_in_a_backlog_slice_is_not_said_the_next_live_output_is() -> None:
    """The worker publishes a calibration backlog in short slices marked ``backlog``; the descent in
    progress at its end is history by then: the leg's next live output says it."""
    bus = Bus()
    stage = CueStage(bus, clock=lambda: 100.010)
    stage.set_drill("ana", "squat")
    metrics = {"flexion_deg": 60.0, "excursion_deg": 60.0, "elapsed_s": 0.3, "descent_rate_deg_s": 200.0,
               "peak_valgus_deg": 12.0, "valgus_excursion_deg": 12.0}
    backlog = _output(10.0, 50, valgus_deg=12.0)
    backlog.events, backlog.backlog = [], True
    backlog.phase = LivePhase("ana/right", "rep_descent", 10.25, 10.0, metrics)
    assert stage.process([backlog], packet_host_s=100.0) == []
    live = _output(10.25, 8, valgus_deg=12.0)
    live.events, live.phase = [], LivePhase("ana/right", "rep_descent", 10.29, 10.0, metrics)
    assert [c.phrase for c in stage.process([live], packet_host_s=100.0)] == ["knees out"]


def test_a_calibration_bend_ending_after_the_calibration_is_not_cued_a_later_rep_is() -> None:
    """The last calibration bend (started before the leg calibrated at 12.0 s) closes after the backlog;
    it is the calibration movement, not a rep to coach. A rep that starts later is cued."""
    stage = CueStage(Bus(), clock=lambda: 100.010)
    burst = _output(5.0, 1400, valgus_deg=12.0)
    burst.calibration = LegCalibration("ana/right", 12.0)
    assert stage.process([burst], packet_host_s=100.0) == []
    assert stage.process([_output(11.5, 8, valgus_deg=12.0)], packet_host_s=100.0) == []
    cues = stage.process([_output(14.0, 8, valgus_deg=12.0)], packet_host_s=100.0)
    assert [c.phrase for c in cues] == ["knees out"]


def test_host_player_plays_the_rendered_clip_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    played: list[Clip] = []
    done = threading.Event()

    def fake_play(clip: Clip) -> None:  # the audio device is the one thing that cannot exist here
        played.append(clip)
        done.set()

    monkeypatch.setattr(cueing, "play", fake_play)
    player = HostPlayer(CueAudio(prefer_speech=False), ["knees out", "slower"])
    stage = CueStage(Bus(), clock=lambda: 0.0, play_on_host=player)
    stage.process([_output(5.0, 8, valgus_deg=12.0)], packet_host_s=0.0)
    assert done.wait(5.0)
    assert played[0].phrase == "knees out" and 0.1 < played[0].duration_s < 1.0
