"""Sign-in for tests of the API: a user of a given role and an API token for it, made in the
database the app under test reads, the way ``stocksense users add`` and ``users token`` do;
and the settings of an app over a test's relational store (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core import db
from core.auth import AuthStore, Role
from core.settings import Settings


def store_settings(database: db.Target, data_dir: Path, **more: Any) -> Settings:
    """Settings with ``data_dir`` over ``database`` (the ``database`` fixture): its SQLite
    file as ``database_path``, or its PostgreSQL database as ``database_url``."""
    if database.engine is db.Engine.POSTGRESQL:
        return Settings(data_dir=data_dir, database_url=database.url, **more)
    return Settings(data_dir=data_dir, database_path=database.path, **more)


def api_token(
    settings: Settings, role: str = "admin", name: str = "li.wei", sites: Iterable[str] = ()
) -> str:
    """A new token of user ``name`` (created with ``role`` and ``sites`` if missing)."""
    conn = db.connect(settings.database)
    try:
        store = AuthStore(conn)
        if store.user(name) is None:
            store.add_user(name, Role(role), sites)
        return store.create_token(name)[1]
    finally:
        conn.close()


def bearer(
    settings: Settings, role: str = "admin", name: str = "li.wei", sites: Iterable[str] = ()
) -> dict[str, str]:
    """Request headers carrying a new token of ``name`` (see :func:`api_token`)."""
    return {"Authorization": f"Bearer {api_token(settings, role, name, sites)}"}
