"""Alerts: list, read, acknowledge; silences and maintenance windows."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import Connection
from api.errors import answers, invalid
from api.fields import MAX_TEXT, EpochInt, RowId, TextFilter
from core.alerts import Alert, AlertStore, Silence, now_ms

router = APIRouter(prefix="/alerts", tags=["alerts"])


Who = Annotated[str, Field(min_length=1, max_length=128)]
Match = Annotated[str, Field(min_length=1, max_length=128)]


class AckRequest(BaseModel):
    """Who acknowledges an alert."""

    by: Who


def alert_store(conn: Connection) -> AlertStore:
    """Alert store over the request's connection; the API enqueues no notifications itself."""
    return AlertStore(conn, [])


Store = Annotated[AlertStore, Depends(alert_store)]


class SilenceRequest(BaseModel):
    """A silence or maintenance window; omitted site/zone/type match anything.

    Give ``ends_at`` (epoch ms) or ``duration_s``; ``starts_at`` defaults to now.
    """

    model_config = ConfigDict(strict=True)

    site: Match | None = None
    zone: Match | None = None
    type: Match | None = None
    starts_at: EpochInt | None = None
    ends_at: EpochInt | None = None
    duration_s: float | None = Field(default=None, gt=0, le=366 * 86_400, allow_inf_nan=False)
    created_by: Who
    reason: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]

    @model_validator(mode="after")
    def _one_end(self) -> "SilenceRequest":
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at and duration_s")
        return self


@router.get("/silences")
def list_silences(
    alerts: Store, include_expired: bool = False, include_deleted: bool = False
) -> list[Silence]:
    """Silences not yet over (or all of them), oldest first."""
    at = None if include_expired else now_ms()
    return alerts.silences(at_ms=at, include_deleted=include_deleted)


@router.post("/silences", status_code=201, responses=answers(400))
def create_silence(body: SilenceRequest, alerts: Store) -> Silence:
    """Silence alerts matching site/zone/type from ``starts_at`` to the end."""
    starts = body.starts_at if body.starts_at is not None else now_ms()
    if body.ends_at is not None:
        ends = body.ends_at
    else:
        assert body.duration_s is not None
        ends = starts + int(body.duration_s * 1000)
    if ends <= starts:
        raise invalid(("body", "ends_at"), "the silence must end after it starts", ends)
    return alerts.create_silence(
        site=body.site,
        zone=body.zone,
        type_=body.type,
        starts_at=starts,
        ends_at=ends,
        created_by=body.created_by,
        reason=body.reason,
    )


@router.delete("/silences/{silence_id}", status_code=204, responses=answers(404))
def delete_silence(
    silence_id: RowId, alerts: Store, by: Annotated[str, Query(min_length=1, max_length=128)]
) -> Response:
    """End a silence now (it is kept, marked deleted, for the record)."""
    if alerts.delete_silence(silence_id, by=by) is None:
        raise HTTPException(status_code=404, detail=f"silence {silence_id} does not exist")
    return Response(status_code=204)


@router.get("")
def list_alerts(
    alerts: Store,
    state: Literal["active", "cleared"] | None = None,
    type: TextFilter = None,  # noqa: A002 - the query parameter's public name
    site: TextFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Alert]:
    """Newest first."""
    return alerts.list(state=state, limit=limit, type_=type, site=site)


@router.get("/{alert_id}", responses=answers(404))
def get_alert(alert_id: RowId, alerts: Store) -> Alert:
    """One alert."""
    found = alerts.get(alert_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    return found


@router.post("/{alert_id}/ack", responses=answers(400, 404))
def ack_alert(alert_id: RowId, body: AckRequest, alerts: Store) -> Alert:
    """Acknowledge: records who and when; stops escalation."""
    acked = alerts.ack(alert_id, by=body.by)
    if acked is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    return acked


@router.get("/{alert_id}/events", responses=answers(404))
def alert_events(alert_id: RowId, alerts: Store) -> list[dict[str, object]]:
    """History of one alert (raised, acked, flapping, silenced, escalated, cleared ...)."""
    if alerts.get(alert_id) is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    return alerts.events(alert_id)
