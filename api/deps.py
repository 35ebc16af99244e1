"""Request dependencies shared by the routers: settings and a database connection per request."""

import threading
import weakref
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from core import db
from core.settings import Settings


# Dependencies that do no I/O are coroutines: FastAPI runs a plain function in a worker
# thread, one hand-over per dependency per request.
async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


_pool_made = threading.Lock()


def _made_pool(request: Request, settings: Settings) -> db.ConnectionPool | None:
    pool: db.ConnectionPool | None = getattr(request.app.state, "db_pool", None)
    return pool if pool is not None and pool.target == settings.database else None


def _pool(request: Request, settings: Settings) -> db.ConnectionPool:
    """The app's connection pool to the database its settings name, made (and the database
    migrated) on the first request; settings naming another database get a pool of their own."""
    with _pool_made:
        pool = _made_pool(request, settings)
        if pool is None:
            replaced = getattr(request.app.state, "db_pool", None)
            pool = request.app.state.db_pool = db.ConnectionPool(settings.database)
            weakref.finalize(request.app, pool.close)
            if replaced is not None:
                replaced.close()
    return pool


async def connection(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> AsyncIterator[db.Connection]:
    """The request's connection: taken from the app's pool by its first statement, in the
    worker thread that runs it, and given back when the request is done."""
    pool = _made_pool(request, settings)
    if pool is None:
        pool = await run_in_threadpool(_pool, request, settings)  # migrates: once per app
    conn = pool.lend_on_use()
    try:
        yield conn
    finally:
        if conn.engine is db.Engine.POSTGRESQL and not conn.in_transaction:
            conn.release()  # no I/O: the connection goes back to the pool as it is
        else:
            # A rollback, or closing a SQLite file (which may checkpoint its WAL): disk or
            # network I/O, kept off the event loop.
            await run_in_threadpool(conn.release)


Connection = Annotated[db.Connection, Depends(connection)]
