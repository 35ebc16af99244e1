"""Running the migrations.

:func:`upgrade` brings a database to :data:`HEAD` under a lock that every process takes, so
workers starting together migrate it once. A SQLite file from before Alembic (its versions in
``schema_versions``) first runs its remaining legacy scripts, then joins at the baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection as SaConnection
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.pool import NullPool

from core import db
from core.migrations import BASELINE, HEAD
from core.migrations.legacy import upgrade_legacy

logger = logging.getLogger(__name__)

SCRIPTS = Path(__file__).parent


def config(connection: SaConnection | None = None) -> Config:
    """Alembic's configuration for this project, optionally bound to ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(conn: db.Connection, revision: str = "head") -> None:
    """Bring the database of ``conn`` to ``revision`` (default: the newest)."""
    if revision == "head" and db.schema_revision(conn) == HEAD:
        return
    if isinstance(conn, db.SqliteConnection):
        upgrade_legacy(conn.raw)
    with _locked(conn.target) as sa_conn:
        current = MigrationContext.configure(sa_conn).get_current_revision()
        if current is not None and not _known(current):
            raise db.DatabaseError(
                f"{conn.target} is at schema revision {current}, which this version of"
                " StockSense does not know: it was migrated by a newer one"
            )
        if current is None and inspect(sa_conn).has_table("schema_versions"):
            logger.info("adopting the legacy schema at Alembic revision %s", BASELINE)
            command.stamp(config(sa_conn), BASELINE)
            sa_conn.exec_driver_sql("DROP TABLE schema_versions")
        if current != revision:
            logger.info("migrating %s from revision %s to %s", conn.target, current, revision)
            command.upgrade(config(sa_conn), revision)


def _known(revision: str) -> bool:
    scripts = ScriptDirectory.from_config(config())
    return any(r.revision == revision for r in scripts.walk_revisions())


@contextmanager
def _locked(target: db.Target) -> Iterator[SaConnection]:
    """A SQLAlchemy connection to ``target`` in a transaction that holds the migration lock."""
    engine = create_engine(target.sqlalchemy_url, poolclass=NullPool)
    if target.engine is db.Engine.SQLITE:
        # pysqlite would begin lazily and not before DDL: begin ourselves, taking the write
        # lock at once, so the check of the revision and the migration are one transaction.
        @event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_conn: object, _record: object) -> None:
            dbapi_conn.isolation_level = None  # type: ignore[attr-defined]

        @event.listens_for(engine, "begin")
        def _begin_immediate(sa_conn: SaConnection) -> None:
            sa_conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.begin() as sa_conn:
            if target.engine is db.Engine.POSTGRESQL:
                sa_conn.exec_driver_sql(
                    "SELECT pg_advisory_xact_lock(%s)", (db.MIGRATION_LOCK_KEY,)
                )
            yield sa_conn
    finally:
        engine.dispose()
