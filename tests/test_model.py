"""The one LegSamples slice and concat (model.py) that every stage outside the core uses."""

from __future__ import annotations

import itertools

import numpy as np

from sensorhub.model import LegSamples


def _leg(n: int, leg_id: str = "ann/right") -> LegSamples:
    rng = np.random.default_rng(3)
    return LegSamples(leg_id, np.arange(n) / 100.0, *(rng.normal(size=(n, 3)) for _ in range(4)))


def _arrays(s: LegSamples) -> list[np.ndarray]:
    return [s.t_s, s.thigh_acc_m_s2, s.thigh_gyr_rad_s, s.shank_acc_m_s2, s.shank_gyr_rad_s]


def test_slices_joined_in_order_give_the_samples_back() -> None:
    leg = _leg(50)
    cuts = [0, 7, 7, 31, 50]  # an empty part in the middle joins as nothing
    parts = [leg.slice(slice(a, b)) for a, b in itertools.pairwise(cuts)]
    assert [len(p) for p in parts] == [7, 0, 24, 19]
    joined = LegSamples.concat(parts)
    assert joined.leg_id == "ann/right"
    for a, b in zip(_arrays(joined), _arrays(leg), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_slice_is_a_view_and_concat_can_rename_the_leg() -> None:
    leg = _leg(10)
    tail = leg.slice(slice(6, None))
    assert np.shares_memory(tail.shank_gyr_rad_s, leg.shank_gyr_rad_s)
    np.testing.assert_array_equal(tail.t_s, leg.t_s[6:])
    assert LegSamples.concat([tail], leg_id="bob/left").leg_id == "bob/left"


def test_empty_has_no_rows_and_joins_as_nothing() -> None:
    empty = LegSamples.empty("ann/left")
    assert len(empty) == 0 and empty.thigh_acc_m_s2.shape == (0, 3)
    leg = _leg(5, "ann/left")
    np.testing.assert_array_equal(LegSamples.concat([empty, leg, empty]).shank_acc_m_s2, leg.shank_acc_m_s2)
