"""What the history stores and gives back: one record type per row kind, and the allowed values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sensorhub.errors import InputError

PAIN_CONTEXTS = ("during", "after", "next_morning")
"""When pain was felt: during a set, after it (the default, and what version-1 rows were), next morning."""
SESSION_KINDS = ("clinic", "home")
PHASE_ACTIONS = ("advance", "hold", "step_back")
"""A progression recommendation, and a coach's decision on it."""
INVOLVED_SIDES = ("left", "right", "both")


@dataclass(frozen=True, slots=True)
class PainEntry:
    """Pain 0-10. ``session_id`` places entries without a set (next-morning pain belongs to the session
    of the day before); read back, it is filled from the set when the entry has one."""

    athlete_id: str
    set_id: str | None
    t_s: float
    pain: int
    threshold: int
    flagged: bool
    context: str = "after"
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class AthletePlan:
    """An athlete's rehab plan: the program (its name, ``configs/programs/NAME.toml``), the current phase
    (0-based), the involved side and the pain threshold (0-10) above which load is reduced."""

    athlete_id: str
    program: str
    phase_index: int
    involved_side: str
    pain_threshold: int
    updated_s: float


@dataclass(frozen=True, slots=True)
class PhaseChange:
    """A move between phases; ``from_phase`` is None when a plan starts. ``by``: who (coach, CLI)."""

    athlete_id: str
    program: str
    from_phase: int | None
    to_phase: int
    t_s: float
    by: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StoredDecision:
    recommendation_id: str
    decision: str
    note: str
    by: str
    t_s: float


@dataclass(frozen=True, slots=True)
class StoredRecommendation:
    """A recommendation after a session; ``reasons``: one JSON object per criterion (see
    ``sensorhub.rehab.progression``); ``decision``: the coach's latest decision on it, if any."""

    id: str
    athlete_id: str
    session_id: str | None
    program: str
    phase_index: int
    action: str
    reasons: list[dict[str, Any]]
    t_s: float
    decision: StoredDecision | None


@dataclass(frozen=True, slots=True)
class StoredSession:
    id: str
    athlete_id: str
    started_s: float
    ended_s: float | None
    kind: str


@dataclass(frozen=True, slots=True)
class StoredSet:
    id: str
    session_id: str
    athlete_id: str
    drill: str
    set_no: int
    started_s: float
    ended_s: float | None
    reps: int


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored; ``session_id`` and ``drill`` come from its set (None outside a set).
    ``curve``: e.g. ``{"flexion_deg": [101 values], "valgus_deg": [...]}`` when one was stored."""

    id: int
    athlete_id: str
    session_id: str | None
    set_id: str | None
    drill: str | None
    leg_id: str
    type: str
    t_s: float
    control_score: float | None
    metrics: dict[str, float]
    curve: dict[str, list[float | None]] | None


@dataclass(frozen=True, slots=True)
class CalibrationRecord:
    """A leg's calibration result: ``quality`` holds the report's figures (residual, spread, bends...)."""

    athlete_id: str
    leg_id: str
    session_id: str | None
    t_s: float
    quality: dict[str, Any]


def parse_since(since: str | dt.date | float | None) -> float | None:
    """The start of a ``--since`` period: ``YYYY-MM-DD`` (local midnight), a date, or Unix seconds."""
    if since is None or isinstance(since, float | int):
        return None if since is None else float(since)
    if isinstance(since, dt.date):
        day = since
    else:
        try:
            day = dt.date.fromisoformat(since)
        except ValueError:
            raise InputError(f"--since must be a date YYYY-MM-DD, got {since!r}") from None
    return dt.datetime(day.year, day.month, day.day).astimezone().timestamp()
