"""GET /health: whether what this process depends on answers; HTTP 503 when something is down.

The database is always checked. The process that serves the API registers the checks of
what else it runs (:func:`install`): ``stocksense run`` adds the broker, InfluxDB and the depth
of the InfluxDB spools; the API alone needs only the database. Without registered checks the
report keeps its short form (status and schema versions).
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel

from api.deps import get_settings
from core import db
from core.settings import Settings

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 3.0


class Check(BaseModel):
    """One dependency: reachable or not, and what was seen."""

    ok: bool
    detail: str


HealthCheck = Callable[[], Awaitable[Check]]


class HealthReport(BaseModel):
    """``status`` is ``down`` (HTTP 503) when any check failed."""

    status: Literal["ok", "down"]
    schema_revision: str | None
    checks: dict[str, Check] | None = None
    spool_batches: int | None = None


def install(
    app: FastAPI,
    checks: Mapping[str, HealthCheck],
    spool_batches: Callable[[], int] | None = None,
) -> None:
    """Register the checks of the process serving ``app`` (run them on every request)."""
    app.state.health_checks = dict(checks)
    app.state.health_spool = spool_batches


async def _run(name: str, check: HealthCheck) -> tuple[str, Check]:
    try:
        return name, await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
    except TimeoutError:
        return name, Check(ok=False, detail=f"no answer within {CHECK_TIMEOUT_S:.0f} s")


def _database(settings: Settings) -> tuple[Check, str | None]:
    where = settings.database
    try:
        conn = db.connect(where)
        try:
            revision = db.schema_revision(conn)
        finally:
            conn.close()
    except (db.DatabaseError, OSError) as exc:
        return Check(ok=False, detail=f"{where}: {exc}"), None
    return Check(ok=True, detail=str(where)), revision


@router.get(
    "/health",
    response_model_exclude_none=True,
    responses={503: {"model": HealthReport, "description": "a dependency is down"}},
)
async def health_report(
    request: Request, response: Response, settings: Annotated[Settings, Depends(get_settings)]
) -> HealthReport:
    """Reachability of the database and of the process's other dependencies."""
    database, revision = _database(settings)
    registered: dict[str, HealthCheck] = getattr(request.app.state, "health_checks", {})
    spool: Callable[[], int] | None = getattr(request.app.state, "health_spool", None)
    report = HealthReport(status="ok", schema_revision=revision)
    ok = database.ok
    if registered:
        found = await asyncio.gather(*(_run(name, check) for name, check in registered.items()))
        report.checks = {"database": database, **dict(found)}
        ok = ok and all(check.ok for _, check in found)
    if spool is not None:
        report.spool_batches = spool()
    if not ok:
        report.status = "down"
        response.status_code = 503
    return report
