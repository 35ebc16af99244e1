"""Recorded picks: what a picker or a WMS says left the shelves, kept to explain weight drops.

A pick is recorded ``pending``; the inventory rules then decide what it is (docs/picks.md):

- ``expected``: the SKU is on a weight shelf at the site (at the pick's location, when it names
  one). The shelf books the movement when it senses the drop; the pick only explains it, so the
  ledger books it once. A pick no drop has matched stays expected (an outflow still to be seen).
- ``matched``: drops of the SKU, within the loss window of the pick, took its whole quantity.
- ``booked``: no shelf tracks the SKU there, so the pick itself is booked as the outflow.

A pick is identified by its site and ``ref`` (the WMS's pick id) and a pick list by its site and
``ref`` too: recording either again with the same content returns what was stored, so a
repeated delivery is never booked twice; the same ref with other content is a conflict.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from typing import Literal

from pydantic import Field

from core import db
from core.errors import ConflictError, NotFoundError
from core.identifiers import NO_NUL, Ident
from core.inventory.base import SqlStore, as_dict, time_range, where_clause
from core.inventory.catalog import CatalogStore
from core.inventory.models import EpochMs, Positive, Record, Stored

PickStatus = Literal["pending", "expected", "matched", "booked"]
OPEN_STATUSES: tuple[PickStatus, ...] = ("pending", "expected")
MAX_LINES = 1000  # lines of one pick list
_QTY_EPS = 1e-9


class PickIn(Record):
    """One recorded pick: ``qty`` of ``sku`` left ``location`` (any of the site's) at ``ts``."""

    site: Ident
    sku: Ident
    qty: Positive
    location: Ident | None = None
    ref: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    ts: EpochMs


class Pick(Stored):
    """A stored pick and what the rules made of it."""

    id: int
    site: str
    sku: str
    qty: float
    location: str | None
    ref: str
    ts: int
    list_ref: str | None
    status: PickStatus
    matched_qty: float
    ledger_id: int | None
    recorded_by: str
    created_at: int

    @property
    def open_qty(self) -> float:
        """Quantity no drop has explained yet."""
        return max(self.qty - self.matched_qty, 0.0)


class PickLine(Record):
    """A line of a pick list; ``ts`` defaults to the list's, ``ref`` to ``<list ref>#<n>``."""

    sku: Ident
    qty: Positive
    location: Ident | None = None
    ts: EpochMs | None = None
    ref: str | None = Field(default=None, min_length=1, max_length=128, pattern=NO_NUL)


class PickListIn(Record):
    """A pick list from a WMS: ``ref`` is its idempotency key at the site."""

    ref: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    site: Ident
    ts: EpochMs
    lines: builtins.list[PickLine] = Field(min_length=1, max_length=MAX_LINES)


class PickList(Stored):
    """A recorded pick list and the picks its lines became."""

    ref: str
    site: str
    ts: int
    recorded_by: str
    created_at: int
    picks: builtins.list[Pick]


class PickStore(SqlStore):
    """Recorded picks and pick lists; picks name SKUs of ``catalog``."""

    def __init__(self, conn: db.Connection, catalog: CatalogStore) -> None:
        super().__init__(conn)
        self._catalog = catalog

    # -- recording ------------------------------------------------------------------------------

    def record(self, pick: PickIn, *, recorded_by: str, ts_ms: int) -> tuple[Pick, bool]:
        """Store a pick; (the pick, True) if new, (the stored one, False) if it was recorded
        before with the same content. 404 for an unknown SKU, 409 for the ref with other content."""
        self._catalog.get_sku(pick.sku)
        with self.transaction():
            found = self._by_ref(pick.site, pick.ref)
            if found is not None:
                if _same_pick(found, pick):
                    return found, False
                raise ConflictError(
                    f"pick {pick.ref} at {pick.site} was recorded before with other content"
                )
            return self._insert(pick, None, recorded_by, ts_ms), True

    def record_list(
        self, pick_list: PickListIn, *, recorded_by: str, ts_ms: int
    ) -> tuple[PickList, bool]:
        """Store a pick list and a pick per line, in one transaction; (the list, True) if new,
        (the stored one, False) for a repeated delivery of the same list."""
        digest = _digest(pick_list)
        with self.transaction():
            row = self._conn.execute(
                "SELECT * FROM inv_pick_lists WHERE site = ? AND ref = ?",
                (pick_list.site, pick_list.ref),
            ).fetchone()
            if row is not None:
                if row["digest"] != digest:
                    raise ConflictError(
                        f"pick list {pick_list.ref} at {pick_list.site} was delivered before"
                        " with other lines"
                    )
                return self.get_list(pick_list.site, pick_list.ref), False
            for n, line in enumerate(pick_list.lines, start=1):
                try:
                    self._catalog.get_sku(line.sku)
                except NotFoundError:
                    raise NotFoundError(f"line {n}: SKU {line.sku} does not exist") from None
            self._conn.execute(
                """INSERT INTO inv_pick_lists (site, ref, ts, digest, lines, recorded_by,
                   created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (pick_list.site, pick_list.ref, pick_list.ts, digest, len(pick_list.lines),
                 recorded_by, ts_ms),
            )  # fmt: skip
            for n, line in enumerate(pick_list.lines, start=1):
                pick = PickIn(
                    site=pick_list.site,
                    sku=line.sku,
                    qty=line.qty,
                    location=line.location,
                    ref=line.ref or f"{pick_list.ref}#{n}",
                    ts=line.ts if line.ts is not None else pick_list.ts,
                )
                if self._by_ref(pick.site, pick.ref) is not None:
                    raise ConflictError(
                        f"line {n}: pick {pick.ref} at {pick.site} was recorded before"
                    )
                self._insert(pick, pick_list.ref, recorded_by, ts_ms)
        return self.get_list(pick_list.site, pick_list.ref), True

    def _insert(self, pick: PickIn, list_ref: str | None, recorded_by: str, ts_ms: int) -> Pick:
        row_id = self._conn.insert(
            """INSERT INTO inv_picks (site, sku, qty, location, ref, ts, list_ref, recorded_by,
               created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (pick.site, pick.sku, pick.qty, pick.location, pick.ref, pick.ts, list_ref,
             recorded_by, ts_ms, ts_ms),
        )  # fmt: skip
        return self.get(row_id)

    # -- reading --------------------------------------------------------------------------------

    def get(self, pick_id: int) -> Pick:
        """One pick by id."""
        row = self._conn.execute("SELECT * FROM inv_picks WHERE id = ?", (pick_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"pick {pick_id} does not exist")
        return Pick.model_validate(as_dict(row))

    def get_list(self, site: str, ref: str) -> PickList:
        """A recorded pick list with its picks, in line order."""
        row = self._conn.execute(
            "SELECT * FROM inv_pick_lists WHERE site = ? AND ref = ?", (site, ref)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"pick list {ref} at {site} does not exist")
        picks = self._conn.execute(
            "SELECT * FROM inv_picks WHERE site = ? AND list_ref = ? ORDER BY id", (site, ref)
        )
        return PickList.model_validate(
            {**as_dict(row), "picks": [Pick.model_validate(as_dict(p)) for p in picks]}
        )

    def picks(
        self,
        *,
        site: str | None = None,
        sku: str | None = None,
        status: PickStatus | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 1000,
    ) -> builtins.list[Pick]:
        """Picks by time, filtered."""
        sql, params = where_clause("SELECT * FROM inv_picks", site=site, sku=sku, status=status)
        clauses = time_range(params, since_ms, until_ms)
        if clauses:
            sql += (" AND " if "WHERE" in sql else " WHERE ") + " AND ".join(clauses)
        rows = self._conn.execute(sql + " ORDER BY ts, id LIMIT ?", (*params, limit))
        return [Pick.model_validate(as_dict(r)) for r in rows]

    def pending(self, limit: int = 1000) -> builtins.list[Pick]:
        """Picks the rules have not looked at yet, oldest recorded first."""
        rows = self._conn.execute(
            "SELECT * FROM inv_picks WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,)
        )
        return [Pick.model_validate(as_dict(r)) for r in rows]

    def open_near(
        self, site: str, sku: str, *, lo_ms: int, hi_ms: int, around_ms: int
    ) -> builtins.list[Pick]:
        """Expected or pending picks of a SKU with quantity left, timed within [lo, hi],
        nearest to ``around_ms`` first."""
        rows = self._conn.execute(
            """SELECT * FROM inv_picks WHERE status IN ('pending', 'expected')
               AND site = ? AND sku = ? AND ts >= ? AND ts <= ? AND qty - matched_qty > ?
               ORDER BY ABS(ts - ?), id""",
            (site, sku, lo_ms, hi_ms, _QTY_EPS, around_ms),
        )
        return [Pick.model_validate(as_dict(r)) for r in rows]

    # -- what the rules made of them --------------------------------------------------------------

    def mark(
        self,
        pick_id: int,
        status: PickStatus,
        *,
        ts_ms: int,
        matched_qty: float | None = None,
        ledger_id: int | None = None,
    ) -> Pick:
        """Set a pick's status (and how much is explained, and the ledger row it went to)."""
        self._conn.execute(
            """UPDATE inv_picks SET status = ?, matched_qty = COALESCE(?, matched_qty),
               ledger_id = COALESCE(?, ledger_id), updated_at = ? WHERE id = ?""",
            (status, matched_qty, ledger_id, ts_ms, pick_id),
        )
        return self.get(pick_id)

    def _by_ref(self, site: str, ref: str) -> Pick | None:
        row = self._conn.execute(
            "SELECT * FROM inv_picks WHERE site = ? AND ref = ?", (site, ref)
        ).fetchone()
        return None if row is None else Pick.model_validate(as_dict(row))


def _same_pick(stored: Pick, pick: PickIn) -> bool:
    return (stored.sku, stored.qty, stored.location, stored.ts) == (
        pick.sku,
        pick.qty,
        pick.location,
        pick.ts,
    )


def _digest(pick_list: PickListIn) -> str:
    body = json.dumps(pick_list.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


__all__ = [
    "MAX_LINES",
    "OPEN_STATUSES",
    "Pick",
    "PickIn",
    "PickLine",
    "PickList",
    "PickListIn",
    "PickStatus",
    "PickStore",
]
