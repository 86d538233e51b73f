"""The athletes' history (embedded SQLite): the schema and its migrations, the records read and written
(sessions, sets, events with metrics and curves, cues, pain, plans, phase changes, recommendations,
calibrations, batteries), and the store that writes off the event loop and reads its own writes."""

from sensorhub.history.records import (
    INVOLVED_SIDES,
    PAIN_CONTEXTS,
    PHASE_ACTIONS,
    SESSION_KINDS,
    AthletePlan,
    CalibrationRecord,
    PainEntry,
    PhaseChange,
    StoredDecision,
    StoredEvent,
    StoredRecommendation,
    StoredSession,
    StoredSet,
    parse_since,
)
from sensorhub.history.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from sensorhub.history.store import HistoryStore

__all__ = [
    "INVOLVED_SIDES",
    "MIGRATIONS",
    "PAIN_CONTEXTS",
    "PHASE_ACTIONS",
    "SCHEMA_VERSION",
    "SESSION_KINDS",
    "AthletePlan",
    "CalibrationRecord",
    "HistoryStore",
    "PainEntry",
    "PhaseChange",
    "StoredDecision",
    "StoredEvent",
    "StoredRecommendation",
    "StoredSession",
    "StoredSet",
    "migrate",
    "parse_since",
]
