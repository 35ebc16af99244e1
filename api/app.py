"""The HTTP API. Reads and updates the shared database; never imports another service.

Modules under ``api`` avoid ``from __future__ import annotations``: FastAPI resolves
dependency annotations at definition time.
"""

from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel

from api import console, errors
from api.deps import Connection
from api.routes import alerts, inventory
from api.routes.health import router as health_router
from core import db
from core.settings import Settings


class Health(BaseModel):
    """Liveness and schema versions per component."""

    status: Literal["ok"]
    schema_versions: dict[str, int]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (read from the environment when omitted)."""
    app = FastAPI(title="StockSense API", version="1")
    app.state.settings = settings or Settings()
    errors.install(app)
    app.include_router(alerts.router)
    app.include_router(inventory.router)
    app.include_router(console.router)
    app.include_router(health_router)  # before the short /health below, which it extends

    @app.get("/health")
    def health(conn: Connection) -> Health:
        return Health(status="ok", schema_versions=db.schema_versions(conn))

    return app
