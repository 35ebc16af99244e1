"""What the inventory stores share: the connection, its write transaction and row helpers."""

from __future__ import annotations

import builtins
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (only for audit columns, never for rules)."""
    return time.time_ns() // 1_000_000


class SqlStore:
    """Base of the inventory stores: one database connection and its write transaction.

    Stores built over the same connection share its transaction, so a change spanning them
    (a lot and its receipt, a received suggestion and its ledger row) commits as one.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The underlying connection."""
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; nested use joins the outer one."""
        if self._conn.in_transaction:
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


def as_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A row as a dict of its columns."""
    return dict(row)


def where_clause(sql: str, **filters: object) -> tuple[str, builtins.list[object]]:
    """``sql`` with an equality clause per filter that is not None, and its parameters."""
    clauses = [f"{k} = ?" for k, v in filters.items() if v is not None]
    params = [v for v in filters.values() if v is not None]
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return sql, params
