"""The athletes' history (embedded SQLite): the schema and its migrations, the records read and written
(sessions, sets, events with metrics and curves, cues, pain, plans, phase changes, recommendations,
calibrations, batteries), and the store that writes off the event loop and reads its own writes."""

from sensorhub.history.store import (
    INVOLVED_SIDES,
    MIGRATIONS,
    PAIN_CONTEXTS,
    PHASE_ACTIONS,
    SCHEMA_VERSION,
    SESSION_KINDS,
    AthletePlan,
    CalibrationRecord,
    HistoryStore,
    PainEntry,
    PhaseChange,
    StoredDecision,
    StoredEvent,
    StoredRecommendation,
    StoredSession,
    StoredSet,
    migrate,
)

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
]
