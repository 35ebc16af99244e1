"""Schema of alerts, their history and the notification outbox (component ``alerts``).

Kept to bring pre-Alembic databases up to the baseline; never edit.
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
    # 2: lifecycle (flapping, escalation, silences, reopening) and a 'sending' outbox state;
    # the outbox is rebuilt because SQLite cannot alter a CHECK or UNIQUE constraint.
    """
    ALTER TABLE alerts ADD COLUMN flapping INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN pending_clear_at INTEGER;
    ALTER TABLE alerts ADD COLUMN escalated_at INTEGER;
    ALTER TABLE alerts ADD COLUMN silenced_by INTEGER;
    ALTER TABLE alerts ADD COLUMN occurrence INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX alerts_by_source ON alerts (source, type, id);
    CREATE INDEX alerts_by_state ON alerts (state, flapping);
    CREATE INDEX alert_events_by_alert ON alert_events (alert_id, at);
    CREATE TABLE silences (
        id INTEGER PRIMARY KEY,
        site TEXT,
        zone TEXT,
        type TEXT,
        starts_at INTEGER NOT NULL,
        ends_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        deleted_at INTEGER,
        deleted_by TEXT,
        CHECK (ends_at > starts_at)
    );
    CREATE INDEX silences_by_end ON silences (ends_at);
    CREATE TABLE outbox_v2 (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        event TEXT NOT NULL,
        occurrence INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        sent_at INTEGER,
        UNIQUE (channel, alert_id, event, occurrence)
    );
    INSERT INTO outbox_v2 (id, channel, alert_id, event, status, attempts, next_attempt_at,
                           last_error, created_at, sent_at)
        SELECT id, channel, alert_id, event, status, attempts, next_attempt_at, last_error,
               created_at, sent_at FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v2 RENAME TO outbox;
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    CREATE INDEX outbox_by_alert ON outbox (alert_id);
    """,
    # 3: an active alert stays current (latest and peak value, last sighting), owners and
    # deadlines, reminders, resolution by people, and time to acknowledge/resolve. The outbox is
    # rebuilt for ``seq``: an event (a reminder) may be sent more than once per occurrence.
    """
    ALTER TABLE alerts ADD COLUMN peak_value REAL;
    ALTER TABLE alerts ADD COLUMN last_seen_at INTEGER;
    ALTER TABLE alerts ADD COLUMN owner TEXT;
    ALTER TABLE alerts ADD COLUMN ack_due_at INTEGER;
    ALTER TABLE alerts ADD COLUMN resolve_due_at INTEGER;
    ALTER TABLE alerts ADD COLUMN ack_overdue_at INTEGER;
    ALTER TABLE alerts ADD COLUMN resolve_overdue_at INTEGER;
    ALTER TABLE alerts ADD COLUMN reminded_at INTEGER;
    ALTER TABLE alerts ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN resolved_by TEXT;
    ALTER TABLE alerts ADD COLUMN resolution_note TEXT;
    ALTER TABLE alerts ADD COLUMN cause TEXT CHECK (cause IN
        ('equipment', 'process', 'supplier', 'data', 'false_alarm', 'other'));
    ALTER TABLE alerts ADD COLUMN time_to_ack_s REAL;
    ALTER TABLE alerts ADD COLUMN time_to_resolve_s REAL;
    UPDATE alerts SET peak_value = value, last_seen_at = raised_at,
        time_to_ack_s = CASE WHEN acked_at IS NULL THEN NULL
                             ELSE (acked_at - raised_at) / 1000.0 END,
        time_to_resolve_s = CASE WHEN cleared_at IS NULL THEN NULL
                                 ELSE (cleared_at - raised_at) / 1000.0 END;
    CREATE TABLE outbox_v3 (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        event TEXT NOT NULL,
        occurrence INTEGER NOT NULL DEFAULT 0,
        seq INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        sent_at INTEGER,
        UNIQUE (channel, alert_id, event, occurrence, seq)
    );
    INSERT INTO outbox_v3 (id, channel, alert_id, event, occurrence, status, attempts,
                           next_attempt_at, last_error, created_at, sent_at)
        SELECT id, channel, alert_id, event, occurrence, status, attempts, next_attempt_at,
               last_error, created_at, sent_at FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v3 RENAME TO outbox;
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    CREATE INDEX outbox_by_alert ON outbox (alert_id);
    CREATE INDEX alerts_by_owner ON alerts (owner, state);
    """,
    # 4: rows are claimed by one notifier at a time, for a lease, so that several notifier
    # processes can share one database without sending a row twice
    """
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
    """,
    # 5: a robot's budget is counted in the database, shared by every notifier posting to it
    """
    CREATE TABLE robot_sends (
        channel TEXT NOT NULL,
        sent_at REAL NOT NULL
    );
    CREATE INDEX robot_sends_by_channel ON robot_sends (channel, sent_at);
    CREATE TABLE robot_pauses (
        channel TEXT PRIMARY KEY,
        paused_until REAL NOT NULL
    );
    """,
]
