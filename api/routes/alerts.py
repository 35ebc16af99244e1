"""Alerts: list, export, read, acknowledge, assign, resolve; silences and maintenance windows."""

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.deps import Connection, get_settings
from api.errors import answers, invalid
from api.fields import MAX_TEXT, EpochFilter, EpochInt, RowId, TextFilter
from api.security import (
    CanAck,
    CanRead,
    CanSilence,
    actor,
    allow,
    audit,
    check_site,
    site_filters,
)
from core.alerts import (
    INFLUX_CHANNEL,
    Alert,
    AlertStateStore,
    AlertStores,
    Cause,
    Silence,
    SilenceStore,
    now_ms,
)
from core.auth import Principal
from core.identifiers import NO_NUL
from core.settings import Settings

router = APIRouter(prefix="/alerts", tags=["alerts"])

CanAssign = Annotated[Principal, Depends(allow("alerts.assign"))]
CanResolve = Annotated[Principal, Depends(allow("alerts.resolve"))]


Who = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]
Match = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]


class AckRequest(BaseModel):
    """An acknowledgement; the signed-in user is recorded as who acked."""

    by: Who | None = Field(
        default=None, description="Ignored with sign-in on: the signed-in user is recorded"
    )


class AssignRequest(BaseModel):
    """Who answers for the alert from now on."""

    owner: Who


class ResolveRequest(BaseModel):
    """A person closing an alert: what was done and why it happened, both required."""

    note: Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=NO_NUL)] = Field(
        description="What was found and done"
    )
    cause: Cause = Field(description="The cause category")
    by: Who | None = Field(
        default=None, description="Ignored with sign-in on: the signed-in user is recorded"
    )


async def alert_stores(
    conn: Connection, settings: Annotated[Settings, Depends(get_settings)]
) -> AlertStores:
    """Alert stores over the request's connection, with the configured channels: a resolved
    notice queued here is delivered by the notifier at its next poll."""
    channels = [INFLUX_CHANNEL, *(c.name for c in settings.notifier.channels)]
    return AlertStores.over(conn, channels, alerting=settings.alerting)


Stores = Annotated[AlertStores, Depends(alert_stores)]


async def alert_state_store(stores: Stores) -> AlertStateStore:
    """Alerts and their history."""
    return stores.state


async def silence_store(stores: Stores) -> SilenceStore:
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
    reason: Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=NO_NUL)]

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
            pattern=NO_NUL,
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
    owner: TextFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Alert]:
    """Newest first; only the caller's sites."""
    found = [
        alert
        for where in site_filters(who, site)
        for alert in alerts.list(state=state, limit=limit, type_=type, site=where, owner=owner)
    ]
    found.sort(key=lambda a: (a.raised_at, a.id), reverse=True)
    return found[:limit]


EXPORT_COLUMNS = (
    "id", "site", "zone", "type", "severity", "state", "source", "title", "owner",
    "raised_at", "ack_due_at", "acked_at", "acked_by", "time_to_ack_s", "ack_overdue",
    "resolve_due_at", "cleared_at", "time_to_resolve_s", "resolve_overdue", "resolved_by",
    "cause", "resolution_note", "value", "peak_value", "threshold", "reminders", "occurrence",
)  # fmt: skip
_TIMES = frozenset({"raised_at", "ack_due_at", "acked_at", "resolve_due_at", "cleared_at"})
_TEXTS = frozenset(
    {"site", "zone", "source", "title", "owner", "acked_by", "resolved_by", "resolution_note"}
)
# A spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _late(done_at: int | None, due_at: int | None, found_at: int | None) -> bool | None:
    """Missed a deadline: found overdue, or done at or after it; None without a deadline."""
    if due_at is None:
        return None
    return found_at is not None or (done_at is not None and done_at >= due_at)


def export_row(alert: Alert) -> dict[str, object]:
    """One alert as a CSV row: times in ISO 8601 UTC, durations in seconds, text made inert."""
    data = alert.model_dump()
    data["ack_overdue"] = _late(alert.acked_at, alert.ack_due_at, alert.ack_overdue_at)
    data["resolve_overdue"] = _late(
        alert.cleared_at, alert.resolve_due_at, alert.resolve_overdue_at
    )
    row: dict[str, object] = {}
    for column in EXPORT_COLUMNS:
        value = data[column]
        if value is None:
            row[column] = ""
        elif column in _TIMES:
            row[column] = _iso(int(value))
        elif isinstance(value, bool):
            row[column] = "true" if value else "false"
        elif column in _TEXTS and str(value).startswith(_FORMULA_START):
            row[column] = "'" + str(value)
        else:
            row[column] = value
    return row


@router.get(
    "/export",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "One row per alert, newest first, with the columns of EXPORT_COLUMNS",
        }
    },
)
def export_alerts(
    *,
    alerts: Alerts,
    who: CanRead,
    format: Literal["csv"] = "csv",  # noqa: A002 - the query parameter's public name
    state: Literal["active", "cleared"] | None = None,
    type: TextFilter = None,  # noqa: A002 - the query parameter's public name
    site: TextFilter = None,
    owner: TextFilter = None,
    since: EpochFilter = None,
    until: EpochFilter = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """Alerts raised in ``[since, until)`` as CSV, with owners, deadlines, time to acknowledge
    and to resolve, and resolutions; only the caller's sites."""
    del format  # CSV is the one format
    found = [
        alert
        for where in site_filters(who, site)
        for alert in alerts.list(
            state=state,
            limit=limit,
            type_=type,
            site=where,
            owner=owner,
            raised_from=since,
            raised_to=until,
        )
    ]
    found.sort(key=lambda a: (a.raised_at, a.id), reverse=True)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(export_row(a) for a in found[:limit])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="alerts.csv"'},
    )


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


@router.post("/{alert_id}/assign", responses=answers(400, 404))
def assign_alert(
    alert_id: RowId, body: AssignRequest, alerts: Alerts, who: CanAssign, conn: Connection
) -> Alert:
    """Give the alert to another owner."""
    before = _visible_alert(alerts, who, alert_id)
    assigned = alerts.assign(alert_id, body.owner, by=who.name)
    if assigned is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    audit(conn, who, "alert.assign", f"alert {alert_id}", site=assigned.site, before=before,
          after=assigned)  # fmt: skip
    return assigned


@router.post("/{alert_id}/resolve", responses=answers(400, 404, 409))
def resolve_alert(
    alert_id: RowId, body: ResolveRequest, alerts: Alerts, who: CanResolve, conn: Connection
) -> Alert:
    """Close the alert with a resolution note and a cause (422 without them); people told it
    was active get the resolved notice. An alert its rule cleared keeps its clear time and
    gets the note and cause; one resolved by a person already is a 409."""
    before = _visible_alert(alerts, who, alert_id)
    if before.resolved_by is not None:
        raise HTTPException(
            status_code=409, detail=f"alert {alert_id} is resolved already by {before.resolved_by}"
        )
    resolved = alerts.resolve(alert_id, by=actor(who, body.by), note=body.note, cause=body.cause)
    if resolved is None:
        raise HTTPException(status_code=404, detail=f"alert {alert_id} does not exist")
    audit(conn, who, "alert.resolve", f"alert {alert_id}", site=resolved.site, before=before,
          after=resolved)  # fmt: skip
    return resolved


@router.get("/{alert_id}/events", responses=answers(404))
def alert_events(alert_id: RowId, alerts: Alerts, who: CanRead) -> list[dict[str, object]]:
    """History of one alert (raised, acked, flapping, silenced, escalated, cleared ...)."""
    _visible_alert(alerts, who, alert_id)
    return alerts.events(alert_id)
