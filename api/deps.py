"""Request dependencies shared by the routers: settings and a database connection per request."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from core import db
from core.settings import Settings


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def connection(
    settings: Annotated[Settings, Depends(get_settings)],
) -> Iterator[db.Connection]:
    """A connection for the duration of one request."""
    conn = db.connect(settings.database)
    try:
        yield conn
    finally:
        conn.close()


Connection = Annotated[db.Connection, Depends(connection)]
