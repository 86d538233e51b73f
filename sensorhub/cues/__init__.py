"""Real-time cues: rules from the ``[cues]`` config table (safe grammar), an engine with hysteresis,
cooldowns, one cue at a time per athlete and mute, and pre-rendered audio. See docs/events.md.

Public API: ``parse_rules(table, where) -> CueRuleSet``, ``DEFAULT_RULES``, ``CueEngine(rules)`` with
``on_event(Event)``, ``on_phase(leg_id, kind, t_s, metrics)``, ``end_phase``, ``set_drill``, ``mute``;
``Cue``; ``CueAudio().clip(phrase) -> Clip`` (WAV bytes), ``play(clip)``.
"""

from sensorhub.cues.audio import Clip, CueAudio, audio_id, play, tone_clip
from sensorhub.cues.engine import Cue, CueEngine, athlete_of
from sensorhub.cues.rules import (
    DEFAULT_COOLDOWN_S,
    DEFAULT_RULES,
    EVENT_METRICS,
    Condition,
    CueRule,
    CueRuleSet,
    parse_condition,
    parse_rule,
    parse_rules,
)

__all__ = [
    "DEFAULT_COOLDOWN_S",
    "DEFAULT_RULES",
    "EVENT_METRICS",
    "Clip",
    "Condition",
    "Cue",
    "CueAudio",
    "CueEngine",
    "CueRule",
    "CueRuleSet",
    "athlete_of",
    "audio_id",
    "parse_condition",
    "parse_rule",
    "parse_rules",
    "play",
    "tone_clip",
]
