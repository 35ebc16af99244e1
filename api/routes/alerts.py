"""Alerts: list, read, acknowledge; silences and maintenance windows."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import Connection
from api.errors import answers, invalid
from api.fields import MAX_TEXT, EpochInt, RowId, TextFilter
from api.security import (
    CanAck,
    CanRead,
    CanSilence,
    actor,
    audit,
    check_site,
    site_filters,
)
from core.alerts import Alert, AlertStateStore, AlertStores, Silence, SilenceStore, now_ms
from core.auth import Principal

router = APIRouter(prefix="/alerts", tags=["alerts"])


Who = Annotated[str, Field(min_length=1, max_length=128)]
Match = Annotated[str, Field(min_length=1, max_length=128)]


class AckRequest(BaseModel):
    """An acknowledgement; the signed-in user is recorded as who acked."""

    by: Who | None = Field(
        default=None, description="Ignored with sign-in on: the signed-in user is recorded"
    )


def alert_stores(conn: Connection) -> AlertStores:
    """Alert stores over the request's connection; the API enqueues no notifications itself."""
    return AlertStores.over(conn, [])


Stores = Annotated[AlertStores, Depends(alert_stores)]


def alert_state_store(stores: Stores) -> AlertStateStore:
    """Alerts and their history."""
    return stores.state


def silence_store(stores: Stores) -> SilenceStore:
    """Silences and maintenance windows."""
    return stores.silences


Alerts = Annotated[AlertStateStore, Depends(alert_state_store)]
Silences = Annotated[SilenceStore, Depends(silence_store)]


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
    created_by: Who | None = Field(
        default=None, description="Ignored with sign-in on: the signed-in user is recorded"
    )
    reason: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]

    @model_validator(mode="after")
    def _one_end(self) -> "SilenceRequest":
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at and duration_s")
        return self


@router.get("/silences")
def list_silences(
    silences: Silences, who: CanRead, include_expired: bool = False, include_deleted: bool = False
) -> list[Silence]:
    """Silences not yet over (or all of them), oldest first; those of every site included."""
    at = None if include_expired else now_ms()
    found = silences.silences(at_ms=at, include_deleted=include_deleted)
    return [s for s in found if s.site is None or who.covers(s.site)]


@router.post("/silences", status_code=201, responses=answers(400))
def create_silence(
    body: SilenceRequest, silences: Silences, who: CanSilence, conn: Connection
) -> Silence:
    """Silence alerts matching site/zone/type from ``starts_at`` to the end.

    A user limited to some sites must name one of them: a silence without a site silences all.
    """
    check_site(who, body.site, "a silence")
    starts = body.starts_at if body.starts_at is not None else now_ms()
    if body.ends_at is not None:
        ends = body.ends_at
    else:
        assert body.duration_s is not None
        ends = starts + int(body.duration_s * 1000)
    if ends <= starts:
        raise invalid(("body", "ends_at"), "the silence must end after it starts", ends)
    silence = silences.create_silence(
        site=body.site,
        zone=body.zone,
        type_=body.type,
        starts_at=starts,
        ends_at=ends,
        created_by=actor(who, body.created_by),
        reason=body.reason,
    )
    audit(conn, who, "silence.create", f"silence {silence.id}", site=body.site, after=silence)
    return silence


@router.delete("/silences/{silence_id}", status_code=204, responses=answers(404))
def delete_silence(
    silence_id: RowId,
    silences: Silences,
    who: CanSilence,
    conn: Connection,
    by: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            description="Ignored with sign-in on: the signed-in user is recorded",
        ),
    ] = None,
) -> Response:
    """End a silence now (it is kept, marked deleted, for the record)."""
    before = silences.silence(silence_id)
    if before is None or before.deleted_at is not None:
        raise HTTPException(status_code=404, detail=f"silence {silence_id} does not exist")
    check_site(who, before.site, f"silence {silence_id}")
    after = silences.delete_silence(silence_id, by=actor(who, by))
    if after is None:
        raise HTTPException(status_code=404, detail=f"silence {silence_id} does not exist")
    audit(conn, who, "silence.end", f"silence {silence_id}", site=before.site, before=before,
          after=after)  # fmt: skip
    return Response(status_code=204)


@router.get("")
def list_alerts(
    *,
    alerts: Alerts,
    who: CanRead,
    state: Literal["active", "cleared"] | None = None,
    type: TextFilter = None,  # noqa: A002 - the query parameter's public name
    site: TextFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Alert]:
    """Newest first; only the caller's sites."""
    found = [
        alert
        for where in site_filters(who, site)
        for alert in alerts.list(state=state, limit=limit, type_=type, site=where)
    ]
    found.sort(key=lambda a: (a.raised_at, a.id), reverse=True)
    return found[:limit]


@router.get("/{alert_id}", responses=answers(404))
def get_alert(alert_id: RowId, alerts: Alerts, who: CanRead) -> Alert:
    """One alert."""
    return _visible_alert(alerts, who, alert_id)


def _visible_alert(alerts: AlertStateStore, who: Principal, alert_id: int) -> Alert:
    found = alerts.get(alert_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    check_site(who, found.site, f"alert {alert_id}")
    return found


@router.post("/{alert_id}/ack", responses=answers(400, 404, 409))
def ack_alert(
    alert_id: RowId, body: AckRequest, alerts: Alerts, who: CanAck, conn: Connection
) -> Alert:
    """Acknowledge: records who and when; stops escalation (409 once acknowledged)."""
    before = _visible_alert(alerts, who, alert_id)
    if before.acked_by is not None:
        # Acknowledging again would overwrite who answered first.
        raise HTTPException(
            status_code=409, detail=f"alert {alert_id} is acknowledged already by {before.acked_by}"
        )
    acked = alerts.ack(alert_id, by=actor(who, body.by))
    if acked is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    audit(conn, who, "alert.ack", f"alert {alert_id}", site=acked.site, before=before,
          after=acked)  # fmt: skip
    return acked


@router.get("/{alert_id}/events", responses=answers(404))
def alert_events(alert_id: RowId, alerts: Alerts, who: CanRead) -> list[dict[str, object]]:
    """History of one alert (raised, acked, flapping, silenced, escalated, cleared ...)."""
    _visible_alert(alerts, who, alert_id)
    return alerts.events(alert_id)
