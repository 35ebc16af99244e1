"""The audit log: every change made through the API or the ``users`` command, who made it,
when, and the record before and after, as JSON."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from core import db
from core.auth import now_ms


class AuditEntry(BaseModel):
    """One change; ``before`` is null for a creation, ``after`` for a deletion."""

    id: int
    at: int
    actor: str
    role: str | None
    via: str
    action: str
    target: str
    site: str | None
    before: Any
    after: Any


def _plain(value: object) -> object:
    """JSON-ready form of a record (pydantic models dumped as the API shows them)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _entry(row: db.Row) -> AuditEntry:
    data = dict(row)
    for side in ("before", "after"):
        data[side] = None if data[side] is None else json.loads(data[side])
    return AuditEntry.model_validate(data)


class AuditLog:
    """Append and read audit entries over one connection."""

    def __init__(self, conn: db.Connection) -> None:
        self._conn = conn

    def record(
        self,
        *,
        actor: str,
        role: str | None,
        via: str,
        action: str,
        target: str,
        site: str | None = None,
        before: object = None,
        after: object = None,
        at_ms: int | None = None,
    ) -> AuditEntry:
        """Append one entry."""
        sides = [
            None if side is None else json.dumps(_plain(side), sort_keys=True)
            for side in (before, after)
        ]
        row_id = self._conn.insert(
            "INSERT INTO audit_log (at, actor, role, via, action, target, site, before, after)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (at_ms or now_ms(), actor, role, via, action, target, site, *sides),
        )
        row = self._conn.execute(
            "SELECT * FROM audit_log WHERE id = ?", (row_id,)
        ).fetchone()
        return _entry(row)

    def entries(
        self,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries oldest first, from ``since_ms`` (inclusive) to ``until_ms`` (exclusive)."""
        where, params = ["1 = 1"], []
        for clause, value in (
            ("at >= ?", since_ms),
            ("at < ?", until_ms),
            ("actor = ?", actor),
            ("action = ?", action),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self._conn.execute(
            f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY at, id LIMIT ?",  # noqa: S608 - fixed clauses
            (*params, limit),
        ).fetchall()
        return [_entry(r) for r in rows]
