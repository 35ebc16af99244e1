"""The HTTP API. Reads and updates the shared database; never imports another service.

Modules under ``api`` avoid ``from __future__ import annotations``: FastAPI resolves
dependency annotations at definition time.
"""

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import console, errors
from api.routes import alerts, audit, auth, inventory, kpi, requisitions
from api.routes.health import router as health_router
from api.security import CSRF_HEADER, GUARDED
from core.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (read from the environment when omitted)."""
    # /docs and /redoc come from console.install_docs: their assets are served locally.
    app = FastAPI(title="StockSense API", version="1", docs_url=None, redoc_url=None)
    app.state.settings = settings = settings or Settings()
    errors.install(app)
    console.install_docs(app)
    if settings.api.cors_origins:
        # Off unless origins are named: the console is served by the API itself. Cross-origin
        # callers use tokens, so no credentials (cookies) are allowed across origins.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.api.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", CSRF_HEADER],
        )
    app.include_router(auth.router)
    app.include_router(alerts.router, responses=GUARDED)
    app.include_router(inventory.router, responses=GUARDED)
    app.include_router(requisitions.router, responses=GUARDED)
    app.include_router(audit.router, responses=GUARDED)
    app.include_router(kpi.router, responses=GUARDED)
    app.include_router(console.router)
    app.include_router(health_router)
    return app
