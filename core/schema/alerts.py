"""Schema of alerts, their history and the notification outbox (component ``alerts``).

Append new migrations; never edit one that has shipped.
"""

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
