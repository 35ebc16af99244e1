"""Request dependencies shared by the routers: settings and a database connection per request."""

import threading
import weakref
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from core import db
from core.settings import Settings


# Dependencies that do no I/O are coroutines: FastAPI runs a plain function in a worker
# thread, one hand-over per dependency per request.
async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


_pool_made = threading.Lock()


def _pool(request: Request, settings: Settings) -> db.ConnectionPool:
    """The app's connection pool to the database its settings name, made (and the database
    migrated) on the first request; settings naming another database get a pool of their own."""
    target = settings.database
    pool: db.ConnectionPool | None = getattr(request.app.state, "db_pool", None)
    if pool is None or pool.target != target:
        with _pool_made:
            pool = getattr(request.app.state, "db_pool", None)
            if pool is None or pool.target != target:
                replaced, pool = pool, db.ConnectionPool(target)
                request.app.state.db_pool = pool
                weakref.finalize(request.app, pool.close)
                if replaced is not None:
                    replaced.close()
    return pool


def connection(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> Iterator[db.Connection]:
    """A connection for the duration of one request, lent by the app's pool."""
    with _pool(request, settings).connection() as conn:
        yield conn


Connection = Annotated[db.Connection, Depends(connection)]
