"""Rehab programs: the default program loads; invalid programs are refused with file, key path, reason."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from sensorhub.errors import ConfigError
from sensorhub.rehab.program import DRILLS, PROGRAMS_DIR, find_program, load_program

DEFAULT = PROGRAMS_DIR / "pfp_default.toml"


def test_default_program_loads_with_its_phases_drills_and_cues() -> None:
    program = find_program("pfp_default")
    assert program.source == str(DEFAULT)
    assert [p.name for p in program.phases] == [
        "foundation_strength",
        "neuromuscular_control",
        "sport_specific",
        "maintenance",
    ]
    every_drill = {d.drill for p in program.phases for d in p.drills}
    assert {
        "squat",
        "step_down",
        "stair_descent",
        "lunge",
        "single_leg_squat",
        "drop_jump",
        "cut_45",
    } <= every_drill
    assert {"side_lying_hip_abduction", "banded_hip_abduction"} <= every_drill
    for phase in program.phases:
        for d in phase.drills:
            assert d.event_type == DRILLS[d.drill]
            assert d.sensed or not (d.targets or d.cues)
    sport = program.phases[2]
    assert sport.criteria.symmetry_min_pct == 90.0 and "peak_flexion_deg" in sport.criteria.symmetry_metrics
    assert program.max_weekly_load_increase_pct == 20.0
    rules = program.cue_rules(0)
    assert {r.drill for r in rules.rules} == {"squat", "step_down"}
    assert rules.for_drill("squat", "rep_descent")[0].phrase == "knees out"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """
name = "p"
[[phases]]
name = "one"
[[phases.drills]]
drill = "squat"
sets = 3
reps = 10
targets.peak_valgus_deg = { max = 6.0 }
[phases.criteria]
pain_free_sessions = 2
[[phases]]
name = "two"
[[phases.drills]]
drill = "squat"
sets = 3
reps = 10
[[phases.drills]]
drill = "drop_jump"
sets = 3
reps = 5
[[phases.drills]]
drill = "cut_45"
sets = 2
reps = 5
targets.peak_valgus_deg = { max = 6.0 }
[phases.criteria]
pain_free_sessions = 2
"""


def _last(text: str, old: str, new: str) -> str:
    i = text.rindex(old)
    return text[:i] + new + text[i + len(old) :]


@pytest.mark.parametrize(
    ("edit", "key", "reason"),
    [
        # unknown metric on the cut drill (third drill of the second phase)
        (
            lambda t: _last(t, "targets.peak_valgus_deg", "targets.peak_valgus_degrees"),
            "phases[1].drills[2].targets.peak_valgus_degrees",
            "unknown metric for a cut drill",
        ),
        # a metric of another event type: depth is a rep metric, not a cut's
        (
            lambda t: _last(t, "targets.peak_valgus_deg", "targets.depth_deg"),
            "phases[1].drills[2].targets.depth_deg",
            "unknown metric for a cut drill",
        ),
        # a phase without criteria
        (
            lambda t: _last(t, "[phases.criteria]\npain_free_sessions = 2\n", ""),
            "phases[1].criteria",
            "a phase needs [phases.criteria]",
        ),
        # bad range: min above max
        (
            lambda t: t.replace("{ max = 6.0 }", "{ min = 8.0, max = 6.0 }", 1),
            "phases[0].drills[0].targets.peak_valgus_deg",
            "min 8 > max 6",
        ),
        # an empty target
        (
            lambda t: t.replace("{ max = 6.0 }", "{ }", 1),
            "phases[0].drills[0].targets.peak_valgus_deg",
            "give min",
        ),
        # a bad cue rule (cue grammar): unknown metric in `when`
        (
            lambda t: t.replace(
                "[phases.criteria]",
                '[[phases.drills.cues]]\non = "rep"\nwhen = "valgus > 6"\nphrase = "knees out"\n'
                "[phases.criteria]",
                1,
            ),
            "phases[0].drills[0].cues[0]",
            "[[cues.rules]] 'squat_1': unknown metric 'valgus'",
        ),
        # a cue kind that does not fit the drill's events
        (
            lambda t: t.replace(
                "[phases.criteria]",
                '[[phases.drills.cues]]\non = "landing"\nwhen = "peak_valgus_deg > 6"\nphrase = "x"\n'
                "[phases.criteria]",
                1,
            ),
            "phases[0].drills[0].cues[0].on",
            "'landing' does not fit a rep drill",
        ),
        # out of range numbers and unknown keys
        (lambda t: t.replace("sets = 3", "sets = 0", 1), "phases[0].drills[0].sets", "0 is out of range"),
        (
            lambda t: t.replace("pain_free_sessions = 2", "pain_free_sessions = 2\nshare = 0.8", 1),
            "phases[0].criteria.share",
            "unknown key",
        ),
        # symmetry needs a landing drill in the phase
        (
            lambda t: t.replace("pain_free_sessions = 2", "pain_free_sessions = 2\nsymmetry_min_pct = 90", 1),
            "phases[0].criteria.symmetry_min_pct",
            "limb symmetry is judged on landing drills",
        ),
        # targets on a drill logged without sensors
        (
            lambda t: t.replace('drill = "squat"', 'drill = "clamshell"', 1),
            "phases[0].drills[0].targets",
            "'clamshell' is logged without sensors",
        ),
    ],
)
def test_invalid_programs_name_file_key_and_reason(tmp_path: Path, edit: Any, key: str, reason: str) -> None:
    path = _write(tmp_path, edit(BASE))
    with pytest.raises(ConfigError) as exc:
        load_program(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: {key}"), message
    assert reason in message, message


def test_unknown_drill_names_the_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace('drill = "cut_45"', 'drill = "cut_180"'))
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}: phases[1].drills[2].drill: unknown drill 'cut_180'")
    ):
        load_program(path)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_program(_write(tmp_path, "name = "))
    with pytest.raises(ConfigError, match="program file not found"):
        load_program(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=re.escape("no nope.toml")):
        find_program("nope")


def test_default_program_copy_with_a_phase_emptied_is_refused(tmp_path: Path) -> None:
    import tomllib

    from sensorhub.rehab.program import parse_program

    table: dict[str, Any] = tomllib.loads(DEFAULT.read_text(encoding="utf-8"))
    broken = copy.deepcopy(table)
    del broken["phases"][3]["criteria"]
    with pytest.raises(ConfigError, match=re.escape("x.toml: phases[3].criteria: a phase needs")):
        parse_program(broken, "x.toml")
