"""The HTTP API. Reads and updates the shared database; never imports another service.

No `from __future__ import annotations` here: FastAPI resolves the dependency annotations of
the nested route functions at definition time.
"""

import sqlite3
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from core import db
from core.alerts import Alert, AlertStore
from core.settings import Settings


class AckRequest(BaseModel):
    """Who acknowledges an alert."""

    by: Annotated[str, Field(min_length=1, max_length=128)]


class Health(BaseModel):
    """Liveness and schema version."""

    status: Literal["ok"]
    schema_version: int


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (read from the environment when omitted)."""
    cfg = settings or Settings()
    app = FastAPI(title="StockSense API", version="1")

    def connection() -> Iterator[sqlite3.Connection]:
        conn = db.connect(cfg.sqlite_path)
        try:
            yield conn
        finally:
            conn.close()

    def store(conn: Annotated[sqlite3.Connection, Depends(connection)]) -> AlertStore:
        # The API records acks only; outbox rows are enqueued by the rules service.
        return AlertStore(conn, [])

    @app.get("/health")
    def health(conn: Annotated[sqlite3.Connection, Depends(connection)]) -> Health:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return Health(status="ok", schema_version=version)

    @app.get("/alerts")
    def list_alerts(
        alerts: Annotated[AlertStore, Depends(store)],
        state: Literal["active", "cleared"] | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[Alert]:
        return alerts.list(state=state, limit=limit)

    @app.get("/alerts/{alert_id}")
    def get_alert(alert_id: int, alerts: Annotated[AlertStore, Depends(store)]) -> Alert:
        found = alerts.get(alert_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
        return found

    @app.post("/alerts/{alert_id}/ack")
    def ack_alert(
        alert_id: int, body: AckRequest, alerts: Annotated[AlertStore, Depends(store)]
    ) -> Alert:
        acked = alerts.ack(alert_id, by=body.by)
        if acked is None:
            raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
        return acked

    return app
