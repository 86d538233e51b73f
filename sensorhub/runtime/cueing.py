"""The cue stage: right after the pipeline, in the same loop turn, finished events and live phases go
through the cue engine; cues are published on the bus with their measured latency.

Latency of a cue = wall clock at publication minus the host receive time of the packet whose samples
made the condition observable (the event closed, or the live phase crossed its threshold).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from sensorhub.bus import Bus
from sensorhub.cues import DEFAULT_RULES, Clip, Cue, CueAudio, CueEngine, parse_rules, play
from sensorhub.errors import SinkError
from sensorhub.runtime.pipeline import LatencyRecorder, LegOutput

# When a leg's calibration completes, the buffered seconds come out in one burst (live: from a worker
# thread, in slices marked ``backlog``): events and phases in such a backlog are history, not something
# to say now. Live outputs span one packet (tens of ms).
BACKLOG_S = 1.0
LIVE_PHASE_KIND = "rep_descent"

log = logging.getLogger(__name__)


class CueStage:
    def __init__(
        self,
        bus: Bus,
        engine: CueEngine | None = None,
        clock: Callable[[], float] = time.time,
        play_on_host: Callable[[Cue], None] | None = None,
    ) -> None:
        self.bus = bus
        self._play = play_on_host
        self.engine = engine or CueEngine(parse_rules(DEFAULT_RULES, "<default cue rules>"))
        self.latency = LatencyRecorder()
        self.emitted = 0
        self._clock = clock
        self._in_phase: set[str] = set()
        # per leg, the data time its calibration completed: movements that began before it (the
        # calibration bends) are the calibration, not something to cue, even when they end after it
        self._calibrated_s: dict[str, float] = {}

    # ---- control (dashboard, sessions) --------------------------------------------------------------
    def set_drill(self, athlete: str, drill: str) -> None:
        self.engine.set_drill(athlete, drill)

    def mute(self, athlete: str, muted: bool = True) -> None:
        self.engine.mute(athlete, muted)

    def set_thresholds(self, athlete: str, values: Mapping[str, float]) -> None:
        self.engine.set_thresholds(athlete, values)

    # ---- processing ----------------------------------------------------------------------------------
    def process(self, outputs: list[LegOutput], packet_host_s: float) -> list[Cue]:
        cues: list[Cue] = []
        for out in outputs:
            t_s = out.angles.t_s
            if out.calibration is not None:
                self._calibrated_s[out.leg_id] = out.calibration.t_s
            if out.backlog or (t_s.shape[0] > 1 and float(t_s[-1] - t_s[0]) > BACKLOG_S):
                continue  # a phase still in progress is said from the leg's next live output
            since_s = self._calibrated_s.get(out.leg_id, -math.inf)
            for event in out.events:
                if event.t_s >= since_s:
                    self._add(cues, self.engine.on_event(event), packet_host_s)
            phase = out.phase
            if phase is not None and phase.t_start_s >= since_s:
                self._in_phase.add(out.leg_id)
                self._add(
                    cues,
                    self.engine.on_phase(out.leg_id, phase.kind, phase.t_s, phase.metrics),
                    packet_host_s,
                )
            elif out.leg_id in self._in_phase:
                self._in_phase.discard(out.leg_id)
                self.engine.end_phase(out.leg_id, LIVE_PHASE_KIND)
        return cues

    def _add(self, cues: list[Cue], cue: Cue | None, packet_host_s: float) -> None:
        if cue is None:
            return
        latency_s = self._clock() - packet_host_s
        cue = dataclasses.replace(cue, latency_s=latency_s)
        self.latency.add(latency_s)
        self.emitted += 1
        self.bus.publish("cues", cue.leg_id, cue)
        if self._play is not None:
            self._play(cue)
        cues.append(cue)


class HostPlayer:
    """Plays cues on the host's audio device (a speaker at the training ground). Clips are rendered once
    at start-up; each playback is handed to a short-lived thread so the loop never waits on a player."""

    def __init__(self, audio: CueAudio, phrases: Iterable[str]) -> None:
        self.audio = audio
        audio.render_all(phrases)
        self.failures = 0

    def __call__(self, cue: Cue) -> None:
        clip = self.audio.clip(cue.phrase)
        threading.Thread(target=self._play, args=(clip,), name="cue-audio", daemon=True).start()

    def _play(self, clip: Clip) -> None:
        try:
            play(clip)
        except SinkError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("%s", exc)
