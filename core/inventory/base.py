"""What the inventory stores share: the base store with its write transaction, and row
helpers."""

from __future__ import annotations

import builtins
import time
from typing import Any

from core import db
from core.db import SqlStore

__all__ = ["SqlStore", "as_dict", "now_ms", "time_range", "where_clause"]


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (only for audit columns, never for rules)."""
    return time.time_ns() // 1_000_000


def as_dict(row: db.Row) -> dict[str, Any]:
    """A row as a dict of its columns."""
    return dict(row)


def where_clause(sql: str, **filters: object) -> tuple[str, builtins.list[object]]:
    """``sql`` with an equality clause per filter that is not None, and its parameters."""
    clauses = [f"{k} = ?" for k, v in filters.items() if v is not None]
    params = [v for v in filters.values() if v is not None]
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return sql, params


def time_range(
    params: builtins.list[object], since_ms: int | None, until_ms: int | None
) -> builtins.list[str]:
    """Clauses for ``since_ms <= ts <= until_ms`` (either end optional); their values are
    appended to ``params``."""
    clauses: builtins.list[str] = []
    if since_ms is not None:
        clauses.append("ts >= ?")
        params.append(since_ms)
    if until_ms is not None:
        clauses.append("ts <= ?")
        params.append(until_ms)
    return clauses
