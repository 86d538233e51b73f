"""One target type (sensorhub.analysis.Target) for the score, the coach's page and the programs."""

from __future__ import annotations

import math

from sensorhub.analysis import SCORE_TERMS, Target
from sensorhub.rehab.targets import DEFAULT_TARGETS, grade, targets_with


def test_a_two_sided_target_shows_and_grades_its_max_and_an_edit_moves_that_side() -> None:
    band = Target("peak_valgus_deg", min=-2.0, max=6.0)
    assert (band.bound, band.value) == ("max", 6.0)
    assert band.met(0.0) and not band.met(7.0) and not band.met(-3.0) and not band.met(math.nan)
    assert band.bounds(4.0) == (-2.0, 6.0)  # a milestone keeps a two-sided range
    assert grade(5.0, band) == "good" and grade(7.0, band) == "warn" and grade(9.0, band) == "bad"
    edited = targets_with({"peak_valgus_deg": 4.0}, {"peak_valgus_deg": band})["peak_valgus_deg"]
    assert edited == Target("peak_valgus_deg", max=4.0)  # the coach's edit is one bound on the same side


def test_one_sided_targets_take_an_athletes_threshold() -> None:
    depth = DEFAULT_TARGETS["depth_deg"]
    assert (depth.bound, depth.value) == ("min", 60.0)
    assert depth.bounds(50.0) == (50.0, None) and depth.met(55.0, override=50.0)
    assert depth.describe() == "depth_deg >= 60" and depth.with_value(50.0) == Target("depth_deg", min=50.0)


def test_the_score_ramps_from_bad_to_the_targets_bound() -> None:
    for terms in SCORE_TERMS.values():
        for term in terms:
            good = term.target.value
            assert term.sub_score(term.bad) == 0.0 and term.sub_score(good) == 1.0
            assert math.isclose(term.sub_score((term.bad + good) / 2.0), 0.5)
            assert term.target.met(good) and not term.target.met(term.bad)
