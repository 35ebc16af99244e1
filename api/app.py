"""The HTTP API. Reads and updates the shared database; never imports another service.

Modules under ``api`` avoid ``from __future__ import annotations``: FastAPI resolves
dependency annotations at definition time.
"""

from fastapi import FastAPI

from api import console, errors
from api.routes import alerts, inventory
from api.routes.health import router as health_router
from core.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (read from the environment when omitted)."""
    app = FastAPI(title="StockSense API", version="1")
    app.state.settings = settings or Settings()
    errors.install(app)
    app.include_router(alerts.router)
    app.include_router(inventory.router)
    app.include_router(console.router)
    app.include_router(health_router)
    return app
