"""Which cue to speak, and when: rules against finished events and live phases, with hysteresis,
cooldowns, one cue at a time per athlete and a per-athlete mute.

Deterministic: all times are the data's own (``t_s`` of the event or phase); ``Cue.latency_s`` is filled
by the caller from the wall clock (live) so replays give the same cues.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sensorhub.cues.audio import audio_id
from sensorhub.cues.rules import CueRule, CueRuleSet
from sensorhub.model import Event

CUE_SPEAK_S = 1.0  # a cue occupies the athlete's channel this long (audio clips are shorter)


@dataclass(frozen=True, slots=True)
class Cue:
    athlete: str
    leg_id: str
    rule: str
    phrase: str
    priority: int
    t_s: float  # data time of the observation that triggered it
    source: str  # event type or live phase kind
    value: float  # the first condition's metric value
    latency_s: float = float("nan")
    audio_id: str = ""  # the rendered clip (sensorhub.cues.audio.audio_id of the phrase)


@dataclass(slots=True)
class _AthleteState:
    busy_until_s: float = float("-inf")
    last_fired_s: dict[str, float] = field(default_factory=dict)
    armed: dict[tuple[str, str], bool] = field(default_factory=dict)  # (rule, leg) -> may fire (live rules)


def athlete_of(leg_id: str) -> str:
    return leg_id.rsplit("/", 1)[0] if "/" in leg_id else leg_id


class CueEngine:
    def __init__(self, rules: CueRuleSet, default_drill: str = "*") -> None:
        self.rules = rules
        self._drill: dict[str, str] = {}
        self._default_drill = default_drill
        self._muted: set[str] = set()
        self._state: dict[str, _AthleteState] = {}
        self._thresholds: dict[str, dict[str, float]] = {}
        self._rules: dict[str, CueRuleSet] = {}  # an athlete's own rules (their rehab phase's)

    # ---- control ---------------------------------------------------------------------------------------
    def set_drill(self, athlete: str, drill: str) -> None:
        self._drill[athlete] = drill

    def set_rules(self, athlete: str, rules: CueRuleSet | None) -> None:
        """An athlete's own rules (e.g. their rehab program phase's) instead of the shared ones; None:
        back to the shared rules."""
        if rules is None:
            self._rules.pop(athlete, None)
        else:
            self._rules[athlete] = rules

    def mute(self, athlete: str, muted: bool = True) -> None:
        (self._muted.add if muted else self._muted.discard)(athlete)

    def is_muted(self, athlete: str) -> bool:
        return athlete in self._muted

    def set_thresholds(self, athlete: str, values: Mapping[str, float]) -> None:
        """An athlete's own thresholds (metric -> value): they replace the threshold of every rule
        condition on that metric for this athlete (e.g. the coach lowers ``peak_valgus_deg`` to 4)."""
        self._thresholds[athlete] = {k: float(v) for k, v in values.items() if math.isfinite(float(v))}

    # ---- evaluation ------------------------------------------------------------------------------------
    def on_event(self, event: Event) -> Cue | None:
        metrics = {**event.metrics, "control_score": event.control_score}
        return self._check(event.leg_id, event.type, event.t_s, metrics, live=False)

    def on_phase(self, leg_id: str, kind: str, t_s: float, metrics: dict[str, float]) -> Cue | None:
        return self._check(leg_id, kind, t_s, metrics, live=True)

    def end_phase(self, leg_id: str, kind: str) -> None:
        """A live phase ended: its rules re-arm for the next one."""
        st = self._state.get(athlete_of(leg_id))
        if st is None:
            return
        for key in [k for k in st.armed if k[1] == leg_id]:
            st.armed[key] = True

    def _check(self, leg_id: str, kind: str, t_s: float, metrics: dict[str, float], live: bool) -> Cue | None:
        athlete = athlete_of(leg_id)
        st = self._state.setdefault(athlete, _AthleteState())
        drill = self._drill.get(athlete, self._default_drill)
        over = self._thresholds.get(athlete)
        candidates: list[CueRule] = []
        for rule in self._rules.get(athlete, self.rules).for_drill(drill, kind):
            key = (rule.name, leg_id)
            if live and rule.hysteresis > 0.0:
                armed = st.armed.get(key, True)
                if not armed and not rule.matches(metrics, -rule.hysteresis, over):
                    st.armed[key] = True  # back across threshold - hysteresis: may fire again
                    armed = True
                if not armed or not rule.matches(metrics, 0.0, over):
                    continue
            elif not rule.matches(metrics, 0.0, over):
                continue
            candidates.append(rule)
        if not candidates:
            return None
        # one cue at a time: the most important rule that is off cooldown, if the channel is free
        candidates.sort(key=lambda r: (r.priority, r.name))
        for rule in candidates:
            if live and rule.hysteresis > 0.0:
                st.armed[(rule.name, leg_id)] = False  # crossed: disarm even if not spoken now
        if athlete in self._muted or t_s < st.busy_until_s:
            return None
        for rule in candidates:
            last = st.last_fired_s.get(rule.name, float("-inf"))
            if t_s - last < rule.cooldown_s:
                continue
            st.last_fired_s[rule.name] = t_s
            st.busy_until_s = t_s + CUE_SPEAK_S
            value = float(metrics.get(rule.conditions[0].metric, float("nan")))
            return Cue(
                athlete,
                leg_id,
                rule.name,
                rule.phrase,
                rule.priority,
                t_s,
                kind,
                value,
                audio_id=audio_id(rule.phrase),
            )
        return None

    def evaluate(self, events: Iterable[Event]) -> list[Cue]:
        out = []
        for ev in events:
            cue = self.on_event(ev)
            if cue is not None:
                out.append(cue)
        return out
