"""Relational store: SQLite (WAL) by default, with ordered schema migrations per component.

Services share the database, never each other's modules; the schema lives in ``core.schema``.
Each component (alerts, inventory, auth) has its own ordered migration list and its own version
row in ``schema_versions``, so components evolve independently.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from core.schema import alerts, auth, inventory, kpi, requisitions

logger = logging.getLogger(__name__)

COMPONENTS: dict[str, list[str]] = {
    "alerts": alerts.MIGRATIONS,
    "inventory": inventory.MIGRATIONS,
    "auth": auth.MIGRATIONS,
    "kpi": kpi.MIGRATIONS,
    "requisitions": requisitions.MIGRATIONS,
}


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


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the database at ``path``, for a worker thread of its own.

    It sees what other connections have committed (WAL) and never takes the write lock, so a
    long read in a worker does not hold up the writers.
    """
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def database_file(conn: sqlite3.Connection) -> Path | None:
    """The file of ``conn``'s main database, None for an in-memory one."""
    for _, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return Path(file)
    return None


def schema_versions(conn: sqlite3.Connection) -> dict[str, int]:
    """The applied version of every component."""
    rows = conn.execute("SELECT component, version FROM schema_versions").fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def migrate(conn: sqlite3.Connection) -> dict[str, int]:
    """Apply every pending migration of every component; return the resulting versions."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions "
        "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    current = schema_versions(conn)
    for component, migrations in COMPONENTS.items():
        done = current.get(component, 0)
        for version, script in enumerate(migrations[done:], start=done + 1):
            logger.info("applying %s schema migration %d", component, version)
            conn.executescript(
                f"BEGIN;\n{script}\n"
                "INSERT INTO schema_versions (component, version)"
                f" VALUES ('{component}', {version})"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version;\nCOMMIT;"
            )
    return schema_versions(conn)


class SqlStore:
    """Base of the relational stores: one database connection and its write transaction.

    Stores built over the same connection share its transaction, so a change spanning them
    (a lot and its receipt, a received suggestion and its ledger row) commits as one.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The underlying connection."""
        return self._conn

    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction; nested use joins the outer one."""
        return write_transaction(self._conn)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on ``conn``; nested use joins the outer one."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def worker_prefix(worker: str) -> str:
    """How the claims of every process of ``worker`` begin, in the queues several processes
    share (``claimed_by`` is ``worker#`` and something unique to the process)."""
    return f"{worker}#"


def claimed_by_worker(worker: str) -> tuple[str, tuple[int, str]]:
    """SQL condition and parameters: the row's ``claimed_by`` is a process of ``worker``."""
    prefix = worker_prefix(worker)
    return "substr(claimed_by, 1, ?) = ?", (len(prefix), prefix)
