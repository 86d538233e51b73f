"""Training load per session and per ISO week, and the week-over-week rise a program allows.

Definitions (one leg's events; a two-legged landing with both legs instrumented counts once per leg,
the load each knee took; ``side`` keeps one leg):

- counts of ``reps``, ``landings`` and ``cuts``;
- ``impact_load_g`` = sum over landings of ``peak_shank_accel_g`` (max shank |a| in the 0.1 s after
  contact) + sum over cuts of ``peak_decel_g`` (the thigh's braking peak: the analysis gives cuts no
  shank peak). A unitless-ish sum in g: it grows with both the number and the hardness of impacts;
- a week is flagged when its ``impact_load_g`` or its event count (reps + landings + cuts) exceeds
  the previous ISO week's by more than ``max_increase_pct`` (the tendon-load management rule of
  gradual increases). A previous week with none of that load gives no baseline: never flagged, noted.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sensorhub.model import leg_side


class EventLike(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def leg_id(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...


class SessionLike(Protocol):
    @property
    def session_id(self) -> str: ...

    @property
    def started_s(self) -> float: ...

    @property
    def events(self) -> Sequence[EventLike]: ...


@dataclass(frozen=True, slots=True)
class Load:
    reps: int = 0
    landings: int = 0
    cuts: int = 0
    impact_load_g: float = 0.0

    @property
    def events(self) -> int:
        return self.reps + self.landings + self.cuts

    def __add__(self, other: Load) -> Load:
        return Load(
            self.reps + other.reps,
            self.landings + other.landings,
            self.cuts + other.cuts,
            self.impact_load_g + other.impact_load_g,
        )


def _finite(metrics: Mapping[str, float], name: str) -> float:
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def event_load(events: Iterable[EventLike], side: str | None = None) -> Load:
    """The load of some events (a set, a session); ``side`` ("left"/"right") keeps one leg."""
    reps = landings = cuts = 0
    impact_g = 0.0
    for ev in events:
        if side is not None and leg_side(ev.leg_id) != side:
            continue
        if ev.type == "rep":
            reps += 1
        elif ev.type == "landing":
            landings += 1
            impact_g += _finite(ev.metrics, "peak_shank_accel_g")
        elif ev.type == "cut":
            cuts += 1
            impact_g += _finite(ev.metrics, "peak_decel_g")
    return Load(reps, landings, cuts, impact_g)


@dataclass(frozen=True, slots=True)
class WeekLoad:
    iso_year: int
    iso_week: int
    monday: dt.date
    sessions: tuple[str, ...]
    load: Load
    impact_increase_pct: float | None  # None: no baseline (the previous week had no impact load)
    events_increase_pct: float | None
    flagged: bool
    reasons: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.iso_year}-W{self.iso_week:02d}"


def _increase_pct(now: float, before: float) -> float | None:
    return None if before <= 0.0 else 100.0 * (now - before) / before


def weekly_loads(
    sessions: Iterable[SessionLike],
    max_increase_pct: float,
    side: str | None = None,
    tz: dt.tzinfo | None = None,
) -> list[WeekLoad]:
    """One entry per ISO week from the first session's to the last one's (weeks without sessions
    included, with zero load), each compared with the week before. ``tz``: the calendar's time zone
    (default: this machine's local time)."""
    by_week: dict[tuple[int, int], tuple[list[str], Load]] = {}
    for s in sessions:
        day = dt.datetime.fromtimestamp(s.started_s, tz).date()
        iso = day.isocalendar()
        ids, load = by_week.get((iso.year, iso.week), ([], Load()))
        by_week[(iso.year, iso.week)] = ([*ids, s.session_id], load + event_load(s.events, side))
    if not by_week:
        return []
    first, last = min(by_week), max(by_week)
    monday = dt.date.fromisocalendar(first[0], first[1], 1)
    end = dt.date.fromisocalendar(last[0], last[1], 1)
    out: list[WeekLoad] = []
    previous = Load()
    while monday <= end:
        iso = monday.isocalendar()
        ids, load = by_week.get((iso.year, iso.week), ([], Load()))
        impact_pct = _increase_pct(load.impact_load_g, previous.impact_load_g)
        events_pct = _increase_pct(float(load.events), float(previous.events))
        reasons: list[str] = []
        if impact_pct is not None and impact_pct > max_increase_pct:
            reasons.append(
                f"impact load {load.impact_load_g:.0f} g is {impact_pct:.0f} % over the previous week's "
                f"{previous.impact_load_g:.0f} g (limit {max_increase_pct:g} %)"
            )
        if events_pct is not None and events_pct > max_increase_pct:
            reasons.append(
                f"{load.events} reps/landings/cuts is {events_pct:.0f} % over the previous week's "
                f"{previous.events} (limit {max_increase_pct:g} %)"
            )
        flagged = bool(reasons)
        if out and impact_pct is None and load.impact_load_g > 0.0:
            reasons.append("impact load starts this week: no previous week to compare with")
        out.append(
            WeekLoad(
                iso.year, iso.week, monday, tuple(ids), load, impact_pct, events_pct, flagged, tuple(reasons)
            )
        )
        previous = load
        monday += dt.timedelta(days=7)
    return out
