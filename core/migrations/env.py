"""Alembic environment: runs on the connection :func:`core.migrations.upgrade` hands over, or,
from the ``alembic`` command line, on ``STOCKSENSE_DATABASE_URL``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from core.db import Target
from core.schema import metadata
from core.settings import Settings


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters a table by copying it
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


handed_over = context.config.attributes.get("connection")
if handed_over is not None:
    _run(handed_over)
elif context.is_offline_mode():
    # `alembic upgrade head --sql`: the SQL an upgrade would run, printed, not run.
    context.configure(
        url=Target.parse(Settings().database).sqlalchemy_url,
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(Target.parse(Settings().database).sqlalchemy_url, poolclass=NullPool)
    with engine.begin() as connection:
        _run(connection)
