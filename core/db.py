"""Relational store: SQLite (WAL) by default, with ordered schema migrations.

Services share the database, never each other's modules; the schema lives here.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

logger = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
    # 1: alerts, their history, and the notification outbox
    """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'cleared')),
        site TEXT NOT NULL,
        zone TEXT,
        title TEXT NOT NULL,
        message TEXT NOT NULL,
        value REAL,
        threshold REAL,
        details TEXT NOT NULL DEFAULT '{}',
        raised_at INTEGER NOT NULL,
        cleared_at INTEGER,
        acked_by TEXT,
        acked_at INTEGER,
        updated_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX alerts_one_active ON alerts (source, type) WHERE state = 'active';
    CREATE INDEX alerts_by_time ON alerts (raised_at);
    CREATE TABLE alert_events (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        event TEXT NOT NULL,
        at INTEGER NOT NULL,
        actor TEXT,
        note TEXT
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        event TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        sent_at INTEGER,
        UNIQUE (channel, alert_id, event)
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    """,
]


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and apply pending migrations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply migrations newer than ``PRAGMA user_version``; return the resulting version."""
    current: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        logger.info("applying database migration %d", version)
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    return len(MIGRATIONS)
