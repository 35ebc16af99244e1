"""Schema of users, API tokens, console sessions, login failures and the audit log
(component ``auth``).

Kept to bring pre-Alembic databases up to the baseline; never edit. Secrets are stored only
as hashes: passwords and tokens as argon2id, session ids as SHA-256 (they are 256 random bits).
"""

MIGRATIONS: list[str] = [
    # 1: users, tokens, sessions, login failures, audit log
    """
    CREATE TABLE auth_users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL
            CHECK (role IN ('viewer', 'operator', 'buyer', 'approver', 'admin')),
        sites TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE auth_tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
        prefix TEXT NOT NULL,
        token_hash TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
    );
    CREATE INDEX auth_tokens_by_prefix ON auth_tokens (prefix);
    CREATE TABLE auth_sessions (
        id TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX auth_sessions_by_expiry ON auth_sessions (expires_at);
    CREATE TABLE auth_login_failures (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX auth_login_failures_by_key ON auth_login_failures (key, at);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        role TEXT,
        via TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        site TEXT,
        before TEXT,
        after TEXT
    );
    CREATE INDEX audit_log_by_time ON audit_log (at);
    CREATE INDEX audit_log_by_actor ON audit_log (actor, at);
    """,
]
