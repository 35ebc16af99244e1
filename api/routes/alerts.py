"""Alerts: list, read, acknowledge."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api.deps import Connection
from core.alerts import Alert, AlertStore

router = APIRouter(prefix="/alerts", tags=["alerts"])


class AckRequest(BaseModel):
    """Who acknowledges an alert."""

    by: Annotated[str, Field(min_length=1, max_length=128)]


def alert_store(conn: Connection) -> AlertStore:
    """Alert store over the request's connection; the API enqueues no notifications itself."""
    return AlertStore(conn, [])


Store = Annotated[AlertStore, Depends(alert_store)]


@router.get("")
def list_alerts(
    alerts: Store,
    state: Literal["active", "cleared"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Alert]:
    """Newest first."""
    return alerts.list(state=state, limit=limit)


@router.get("/{alert_id}")
def get_alert(alert_id: int, alerts: Store) -> Alert:
    """One alert."""
    found = alerts.get(alert_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    return found


@router.post("/{alert_id}/ack")
def ack_alert(alert_id: int, body: AckRequest, alerts: Store) -> Alert:
    """Acknowledge: records who and when; stops escalation."""
    acked = alerts.ack(alert_id, by=body.by)
    if acked is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    return acked
