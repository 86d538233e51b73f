"""The history's SQLite schema: ordered migrations, the version in ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

from sensorhub.errors import SinkError

# Each entry upgrades the schema from version i to i + 1; never edit a shipped entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE athletes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        created_s REAL NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        athlete_id TEXT NOT NULL REFERENCES athletes(id),
        started_s REAL NOT NULL,
        ended_s REAL
    );
    CREATE TABLE sets (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id),
        athlete_id TEXT NOT NULL REFERENCES athletes(id),
        drill TEXT NOT NULL,
        set_no INTEGER NOT NULL,
        started_s REAL NOT NULL,
        ended_s REAL,
        reps INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        set_id TEXT,
        leg_id TEXT NOT NULL,
        type TEXT NOT NULL,
        t_s REAL NOT NULL,
        control_score REAL,
        metrics_json TEXT NOT NULL
    );
    CREATE INDEX events_by_athlete ON events(athlete_id, t_s);
    CREATE TABLE cues (
        id INTEGER PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        set_id TEXT,
        leg_id TEXT NOT NULL,
        phrase TEXT NOT NULL,
        rule TEXT NOT NULL,
        priority INTEGER NOT NULL,
        t_s REAL NOT NULL,
        latency_s REAL
    );
    CREATE TABLE pain (
        id INTEGER PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        set_id TEXT,
        t_s REAL NOT NULL,
        pain INTEGER NOT NULL CHECK (pain BETWEEN 0 AND 10),
        threshold INTEGER NOT NULL,
        flagged INTEGER NOT NULL
    );
    CREATE TABLE thresholds (
        athlete_id TEXT NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        updated_s REAL NOT NULL,
        PRIMARY KEY (athlete_id, name)
    );
    """,
    # 2: the rehab workflow (programs, phases, pain-guided progression, curves, calibrations, home sessions).
    """
    CREATE TABLE athlete_plans (
        athlete_id TEXT PRIMARY KEY REFERENCES athletes(id),
        program TEXT NOT NULL,
        phase_index INTEGER NOT NULL CHECK (phase_index >= 0),
        involved_side TEXT NOT NULL CHECK (involved_side IN ('left', 'right', 'both')),
        pain_threshold INTEGER NOT NULL CHECK (pain_threshold BETWEEN 0 AND 10),
        updated_s REAL NOT NULL
    );
    CREATE TABLE phase_history (
        id INTEGER PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        program TEXT NOT NULL,
        from_phase INTEGER,
        to_phase INTEGER NOT NULL CHECK (to_phase >= 0),
        t_s REAL NOT NULL,
        by TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX phase_history_by_athlete ON phase_history(athlete_id, t_s);
    CREATE TABLE recommendations (
        id TEXT PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        session_id TEXT,
        program TEXT NOT NULL,
        phase_index INTEGER NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('advance', 'hold', 'step_back')),
        reasons_json TEXT NOT NULL,
        t_s REAL NOT NULL
    );
    CREATE INDEX recommendations_by_athlete ON recommendations(athlete_id, t_s);
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        recommendation_id TEXT NOT NULL REFERENCES recommendations(id),
        athlete_id TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('advance', 'hold', 'step_back')),
        note TEXT NOT NULL DEFAULT '',
        by TEXT NOT NULL DEFAULT '',
        t_s REAL NOT NULL
    );
    CREATE TABLE calibrations (
        id INTEGER PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        leg_id TEXT NOT NULL,
        session_id TEXT,
        t_s REAL NOT NULL,
        quality_json TEXT NOT NULL
    );
    ALTER TABLE pain ADD COLUMN context TEXT NOT NULL DEFAULT 'after'
        CHECK (context IN ('during', 'after', 'next_morning'));
    ALTER TABLE pain ADD COLUMN session_id TEXT;
    ALTER TABLE events ADD COLUMN curve_json TEXT;
    ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'clinic' CHECK (kind IN ('clinic', 'home'));
    """,
    """
    CREATE TABLE batteries (
        id INTEGER PRIMARY KEY,
        athlete_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        t_s REAL NOT NULL,
        results_json TEXT NOT NULL
    );
    CREATE INDEX batteries_by_athlete ON batteries(athlete_id, t_s);
    """,
    # 4: the fatigue finding of a set (within-set drift of control metrics, sensorhub.rehab.fatigue).
    """
    ALTER TABLE sets ADD COLUMN fatigue_json TEXT;
    """,
    # 5: one battery per session (computing it again replaces it; earlier duplicates: the latest kept).
    """
    DELETE FROM batteries WHERE id NOT IN (SELECT MAX(id) FROM batteries GROUP BY athlete_id, session_id);
    CREATE UNIQUE INDEX batteries_by_session ON batteries(athlete_id, session_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; returns the version found before."""
    (found,) = conn.execute("PRAGMA user_version").fetchone()
    if found > SCHEMA_VERSION:
        raise SinkError(
            f"history database schema version {found} is newer than this sensorhub ({SCHEMA_VERSION}); "
            "upgrade sensorhub or point service.data_dir elsewhere"
        )
    for version in range(found, SCHEMA_VERSION):
        # One transaction per step: a failed migration leaves the previous version intact.
        conn.executescript(f"BEGIN; {MIGRATIONS[version]} PRAGMA user_version = {version + 1}; COMMIT;")
    return int(found)
