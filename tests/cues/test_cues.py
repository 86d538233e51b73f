"""Cue rules (grammar, config errors), the engine (hysteresis, cooldown, one at a time, mute), audio."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sensorhub.cues import DEFAULT_RULES, CueAudio, CueEngine, parse_condition, parse_rules, tone_clip
from sensorhub.cues.audio import MAX_CLIP_S, speech_clip
from sensorhub.errors import ConfigError
from sensorhub.model import Event


def _rules(*rules: dict[str, object], cooldown_s: float = 3.0) -> CueEngine:
    return CueEngine(parse_rules({"cooldown_s": cooldown_s, "rules": list(rules)}, "test.toml"))


def _rep(t_s: float, valgus: float = 1.0, ecc: float = 2.0, leg: str = "ana/right") -> Event:
    return Event("rep", leg, t_s, {"peak_valgus_deg": valgus, "eccentric_s": ecc, "depth_deg": 90.0}, 80.0)


# ---- grammar and config errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op,value,fires",
    [
        (">", 7.0, True),
        (">", 6.0, False),
        (">=", 6.0, True),
        ("<", 5.9, True),
        ("<", 6.0, False),
        ("<=", 6.0, True),
    ],
)
def test_each_comparison(op: str, value: float, fires: bool) -> None:
    engine = _rules(
        {"on": "rep", "metric": "peak_valgus_deg", "op": op, "threshold": 6, "phrase": "knees out"}
    )
    assert (engine.on_event(_rep(10.0, valgus=value)) is not None) is fires


def test_when_string_with_and() -> None:
    conds = parse_condition("peak_valgus_deg > 6 and depth_deg >= 60.5", "rep", "x")
    assert [(c.metric, c.op, c.threshold) for c in conds] == [
        ("peak_valgus_deg", ">", 6.0),
        ("depth_deg", ">=", 60.5),
    ]
    engine = _rules({"on": "rep", "when": "peak_valgus_deg > 6 and depth_deg >= 95", "phrase": "knees out"})
    assert engine.on_event(_rep(1.0, valgus=9.0)) is None  # depth 90 fails the second clause


@pytest.mark.parametrize(
    "when",
    [
        "__import__('os') > 1",
        "peak_valgus_deg == 6",
        "peak_valgus_deg > six",
        "peak_valgus_deg > 6 or depth_deg > 1",
        "peak_valgus_deg > 6; x",
    ],
)
def test_grammar_rejects_anything_else(when: str) -> None:
    with pytest.raises(ConfigError, match=r"METRIC OP NUMBER|unknown metric"):
        parse_rules({"rules": [{"name": "bad", "on": "rep", "when": when, "phrase": "x"}]}, "cfg.toml")


def test_unknown_metric_names_file_rule_and_metric() -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(
            {
                "rules": [
                    {
                        "name": "wobbly",
                        "on": "landing",
                        "metric": "knee_wobble_deg",
                        "op": ">",
                        "threshold": 3,
                        "phrase": "steady",
                    }
                ]
            },
            "configs/club.toml",
        )
    msg = str(info.value)
    assert "configs/club.toml" in msg and "'wobbly'" in msg and "knee_wobble_deg" in msg


@pytest.mark.parametrize(
    "rule,key",
    [
        ({"on": "jump", "when": "depth_deg > 1", "phrase": "x"}, "on ="),
        ({"on": "rep", "when": "depth_deg > 1", "phrase": "x", "colour": "red"}, "colour"),
        ({"on": "rep", "metric": "depth_deg", "op": "!=", "threshold": 1, "phrase": "x"}, "op ="),
        ({"on": "rep", "metric": "depth_deg", "op": ">", "phrase": "x"}, "threshold"),
        ({"on": "rep", "when": "depth_deg > 1", "phrase": ""}, "phrase"),
        ({"on": "rep", "when": "depth_deg > 1", "phrase": "x", "cooldown_s": -1}, "cooldown_s"),
    ],
)
def test_config_errors_name_the_key(rule: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_rules({"rules": [{"name": "r1", **rule}]}, "c.toml")


def test_default_rules_parse() -> None:
    rs = parse_rules(DEFAULT_RULES, "<defaults>")
    assert {"knees out", "softer landing", "slower"} <= set(rs.phrases)


# ---- engine ----------------------------------------------------------------------------------------------


def test_cooldown_blocks_repeats_then_allows() -> None:
    engine = _rules({"on": "rep", "when": "peak_valgus_deg > 6", "phrase": "knees out", "cooldown_s": 5})
    assert engine.on_event(_rep(10.0, valgus=9)) is not None
    assert engine.on_event(_rep(12.0, valgus=9)) is None  # 2 s later: cooling down
    assert engine.on_event(_rep(15.5, valgus=9)) is not None


def test_one_cue_at_a_time_highest_priority_wins() -> None:
    engine = _rules(
        {"name": "valgus", "on": "rep", "when": "peak_valgus_deg > 6", "phrase": "knees out", "priority": 1},
        {"name": "tempo", "on": "rep", "when": "eccentric_s < 0.9", "phrase": "slower", "priority": 2},
    )
    cue = engine.on_event(_rep(10.0, valgus=9, ecc=0.5))
    assert cue is not None and cue.phrase == "knees out"
    # the other leg of the same athlete, 0.2 s later: channel busy
    assert engine.on_event(_rep(10.2, valgus=1, ecc=0.5, leg="ana/left")) is None
    cue = engine.on_event(_rep(11.5, valgus=1, ecc=0.5, leg="ana/left"))
    assert cue is not None and cue.phrase == "slower"
    # another athlete is independent
    assert engine.on_event(_rep(10.1, valgus=9, leg="ben/right")) is not None


def test_mute_per_athlete() -> None:
    engine = _rules({"on": "rep", "when": "peak_valgus_deg > 6", "phrase": "knees out"})
    engine.mute("ana")
    assert engine.on_event(_rep(1.0, valgus=9)) is None
    assert engine.on_event(_rep(1.0, valgus=9, leg="ben/left")) is not None
    engine.mute("ana", False)
    assert engine.on_event(_rep(10.0, valgus=9)) is not None


def test_live_hysteresis() -> None:
    engine = _rules(
        {
            "on": "rep_descent",
            "when": "peak_valgus_deg > 6",
            "phrase": "knees out",
            "hysteresis": 2,
            "cooldown_s": 0,
        }
    )
    leg = "ana/right"
    fired = [
        engine.on_phase(leg, "rep_descent", t, {"peak_valgus_deg": v}) is not None
        for t, v in ((0.0, 5.0), (2.0, 6.5), (4.0, 5.5), (6.0, 6.8), (8.0, 3.9), (10.0, 6.1))
    ]
    # fires on the first crossing; wobbling around 6 does not re-fire until it fell below 6 - 2
    assert fired == [False, True, False, False, False, True]


def test_live_phase_end_rearms() -> None:
    engine = _rules(
        {
            "on": "rep_descent",
            "when": "descent_rate_deg_s > 100",
            "phrase": "slower",
            "hysteresis": 10,
            "cooldown_s": 0,
        }
    )
    assert engine.on_phase("a/right", "rep_descent", 0.0, {"descent_rate_deg_s": 150.0}) is not None
    assert engine.on_phase("a/right", "rep_descent", 2.0, {"descent_rate_deg_s": 150.0}) is None
    engine.end_phase("a/right", "rep_descent")
    assert engine.on_phase("a/right", "rep_descent", 4.0, {"descent_rate_deg_s": 150.0}) is not None


def test_drill_specific_rules() -> None:
    engine = _rules({"drill": "squat", "on": "rep", "when": "eccentric_s < 1.5", "phrase": "slower"})
    engine.set_drill("ana", "lunge")
    assert engine.on_event(_rep(1.0, ecc=1.0)) is None
    engine.set_drill("ana", "squat")
    cue = engine.on_event(_rep(2.0, ecc=1.0))
    assert cue is not None and cue.rule == "rule 1" and math.isclose(cue.value, 1.0)


# ---- audio -------------------------------------------------------------------------------------------------


def test_tone_clips_are_short_audible_and_distinct() -> None:
    a, b = tone_clip("knees out"), tone_clip("softer landing")
    for clip in (a, b):
        pcm = clip.samples().astype(float)
        assert 0.2 < clip.duration_s < 1.0
        assert np.sqrt(np.mean(pcm**2)) > 1000  # clearly non-silent
    assert a.wav != b.wav
    assert tone_clip("knees out").wav == a.wav  # deterministic


def test_cache_returns_same_clip() -> None:
    audio = CueAudio(prefer_speech=False)
    clips = audio.render_all(["slower", "knees out"])
    assert audio.clip("slower") is clips["slower"]


def test_speech_clip_when_espeak_installed() -> None:
    import shutil

    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed (tones are used instead)")
    clip = speech_clip("softer landing", exe)
    assert clip is not None and clip.kind == "speech"
    assert clip.duration_s <= MAX_CLIP_S
    assert np.abs(clip.samples()).max() > 3000


def test_athlete_threshold_replaces_the_rule_threshold_for_that_athlete_only() -> None:
    engine = _rules({"name": "valgus", "on": "rep", "when": "peak_valgus_deg > 6", "phrase": "knees out"})
    assert engine.on_event(_rep(10.0, valgus=5, ecc=2.0)) is None  # 5 deg is under the rule's 6
    engine.set_thresholds("ana", {"peak_valgus_deg": 4.0})
    cue = engine.on_event(_rep(20.0, valgus=5, ecc=2.0))
    assert cue is not None and cue.phrase == "knees out"
    other = Event("rep", "ben/right", 30.0, {"peak_valgus_deg": 5.0, "eccentric_s": 2.0})
    assert engine.on_event(other) is None  # ben keeps the rule's threshold
