"""GET /audit: every change, who made it and when, with the record before and after."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Connection
from api.fields import EpochFilter, TextFilter
from api.security import CanReadAudit, visible
from core.audit import AuditEntry, AuditLog

router = APIRouter(tags=["audit"])


@router.get("/audit")
def audit_entries(
    *,
    conn: Connection,
    who: CanReadAudit,
    since: EpochFilter = None,
    until: EpochFilter = None,
    actor: TextFilter = None,
    action: TextFilter = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[AuditEntry]:
    """Oldest first, from ``since`` (inclusive) to ``until`` (exclusive), epoch ms."""
    found = AuditLog(conn).entries(
        since_ms=since, until_ms=until, actor=actor, action=action, limit=limit
    )
    return visible(who, found)
