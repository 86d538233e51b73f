"""Training load: counts and impact load per session and ISO week; a rise beyond the limit is flagged."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest

from sensorhub.model import Event
from sensorhub.rehab.load import Load, event_load, weekly_loads

UTC = dt.UTC
MONDAY_S = dt.datetime(2024, 1, 1, 10, 0, tzinfo=UTC).timestamp()
DAY_S = 86400.0


@dataclass
class Session:
    session_id: str
    started_s: float
    events: list[Event] = field(default_factory=list)


def _landings(n: int, accel_g: float, leg: str = "ana/right") -> list[Event]:
    return [
        Event("landing", leg, 0.0, {"peak_shank_accel_g": accel_g, "peak_flexion_deg": 60.0})
        for _ in range(n)
    ]


def test_event_load_counts_and_sums_impacts_per_leg() -> None:
    events = [
        *_landings(3, 8.0),
        *_landings(2, 6.0, "ana/left"),
        Event("cut", "ana/right", 0.0, {"peak_decel_g": 2.5}),
        Event("rep", "ana/right", 0.0, {"depth_deg": 80.0}),
        Event(
            "landing", "ana/right", 0.0, {"peak_shank_accel_g": float("nan")}
        ),  # a peak it could not measure
    ]
    assert event_load(events) == Load(reps=1, landings=6, cuts=1, impact_load_g=3 * 8.0 + 2 * 6.0 + 2.5)
    right = event_load(events, side="right")
    assert (right.landings, right.impact_load_g, right.events) == (4, 26.5, 6)


def test_week_over_week_rise_beyond_the_limit_is_flagged() -> None:
    sessions = [
        Session("w1a", MONDAY_S, _landings(20, 8.0)),  # week 1: 160 g
        Session("w1b", MONDAY_S + 2 * DAY_S, _landings(10, 8.0)),  # week 1 total: 240 g, 30 landings
        Session("w2a", MONDAY_S + 7 * DAY_S, _landings(33, 8.0)),  # week 2: 264 g (+10 %)
        Session("w3a", MONDAY_S + 14 * DAY_S, _landings(40, 8.0)),  # week 3: 320 g (+21 %)
        Session("w5a", MONDAY_S + 28 * DAY_S, _landings(10, 8.0)),  # week 4 empty, week 5: no baseline
    ]
    weeks = weekly_loads(sessions, max_increase_pct=20.0, tz=UTC)
    assert [w.label for w in weeks] == ["2024-W01", "2024-W02", "2024-W03", "2024-W04", "2024-W05"]
    assert weeks[0].sessions == ("w1a", "w1b") and weeks[0].load.impact_load_g == 240.0
    assert weeks[0].impact_increase_pct is None and not weeks[0].flagged
    assert weeks[1].impact_increase_pct == pytest.approx(10.0) and not weeks[1].flagged
    assert weeks[2].impact_increase_pct == pytest.approx(320 / 264 * 100 - 100) and weeks[2].flagged
    assert "limit 20 %" in weeks[2].reasons[0]
    assert weeks[3].load == Load() and not weeks[3].flagged  # a rest week lowers load: fine
    assert not weeks[4].flagged and "no previous week" in weeks[4].reasons[0]
    # the same history under a looser program limit is not flagged
    assert not any(w.flagged for w in weekly_loads(sessions, max_increase_pct=25.0, tz=UTC))


def test_rep_volume_rise_is_flagged_without_impacts() -> None:
    reps = [Event("rep", "ana/right", 0.0, {"depth_deg": 80.0})]
    sessions = [Session("a", MONDAY_S, reps * 30), Session("b", MONDAY_S + 7 * DAY_S, reps * 40)]
    [_, w2] = weekly_loads(sessions, 20.0, tz=UTC)
    assert w2.impact_increase_pct is None and w2.events_increase_pct == pytest.approx(100 / 3)
    assert w2.flagged and "reps/landings/cuts" in w2.reasons[0]
    assert weekly_loads([], 20.0) == []
