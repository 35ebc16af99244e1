"""The ledger store: lots, stock per location and the ledger of every movement.

Every stock change goes through :meth:`LedgerStore.record`, which writes the ledger row and
updates the stock (and lot) quantity in one transaction, so the ledger always sums to the stock.
"""

from __future__ import annotations

import builtins
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Protocol

from core import db
from core.errors import ConflictError, NotFoundError
from core.inventory.base import SqlStore, as_dict, now_ms, time_range, where_clause
from core.inventory.catalog import CatalogStore
from core.inventory.models import (
    DAY_MS,
    DREW_EXPIRED,
    LedgerEntry,
    Lot,
    LotIn,
    LotUpdate,
    MovementKind,
    MovementSource,
    StockLevel,
)

logger = logging.getLogger(__name__)

_QTY_EPS = 1e-9  # float noise in unit quantities


class PlannedDraw(Protocol):
    """One line of an outflow plan: take ``qty`` from lot ``lot``."""

    @property
    def lot(self) -> str: ...

    @property
    def qty(self) -> float: ...

    @property
    def drew_expired(self) -> bool: ...


class OutflowPlan(Protocol):
    """Where a movement leaving ``location`` is drawn from: lots, then stock in no lot."""

    @property
    def location(self) -> str: ...

    @property
    def lines(self) -> Sequence[PlannedDraw]: ...

    @property
    def unlotted(self) -> float: ...


class LedgerStore(SqlStore):
    """Lots, stock and movements; lots and movements name SKUs of ``catalog``."""

    def __init__(self, conn: db.Connection, catalog: CatalogStore) -> None:
        super().__init__(conn)
        self._catalog = catalog

    # -- lots ---------------------------------------------------------------------------------

    def add_lot(self, lot: LotIn, *, ts_ms: int, source: MovementSource = "api") -> Lot:
        """Register a lot; its quantity is booked as a receipt at its location."""
        self._catalog.get_sku(lot.sku)
        data = lot.model_dump()
        qty = data.pop("qty")
        cols = list(data)
        with self.transaction():
            try:
                lot_id = self._conn.insert(
                    f"INSERT INTO inv_lots ({', '.join(cols)}, qty, updated_at) "  # noqa: S608 - columns come from the model
                    f"VALUES ({', '.join('?' for _ in cols)}, 0, ?)",
                    (*data.values(), now_ms()),
                )
            except db.IntegrityError:
                raise ConflictError(
                    f"lot {lot.lot} of {lot.sku} already exists at {lot.site}"
                ) from None
            if qty > 0:
                self.record(
                    ts_ms=ts_ms,
                    site=lot.site,
                    location=lot.location,
                    sku=lot.sku,
                    qty=qty,
                    kind="receipt",
                    source=source,
                    lot=lot.lot,
                    ref=f"lot {lot.lot}",
                )
        return self.get_lot(lot_id)

    def get_lot(self, lot_id: int) -> Lot:
        """One lot by id."""
        row = self._conn.execute("SELECT * FROM inv_lots WHERE id = ?", (lot_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"lot {lot_id} does not exist")
        return Lot.model_validate(as_dict(row))

    def lots(
        self, *, site: str | None = None, sku: str | None = None, in_stock: bool = False
    ) -> builtins.list[Lot]:
        """Lots, optionally filtered, in FEFO order (earliest removal first, undated last)."""
        sql, params = where_clause("SELECT * FROM inv_lots", site=site, sku=sku)
        if in_stock:
            sql += (" AND" if params else " WHERE") + " qty > 0"
        rows = self._conn.execute(
            # Undated receipts first among equal dates on both engines, as the FEFO key of
            # rules.inventory.expiry has it (PostgreSQL would sort NULLs last).
            sql + " ORDER BY COALESCE(removal_at, expiration_at) IS NULL,"
            " COALESCE(removal_at, expiration_at), received_at NULLS FIRST, lot",
            params,
        )
        return [Lot.model_validate(as_dict(r)) for r in rows]

    def update_lot(self, lot_id: int, change: LotUpdate, *, ts_ms: int) -> Lot:
        """Change a lot's dates or location; a new quantity is booked as an adjustment."""
        lot = self.get_lot(lot_id)
        fields = change.model_dump(exclude_unset=True, exclude={"qty"})
        with self.transaction():
            moved = fields.get("location") not in (None, lot.location)
            if moved and lot.qty > 0:
                # Moving a lot moves its stock: one row out of the old place, one into the new.
                for location, qty in ((lot.location, -lot.qty), (fields["location"], lot.qty)):
                    self.record(
                        ts_ms=ts_ms,
                        site=lot.site,
                        location=location,
                        sku=lot.sku,
                        qty=qty,
                        kind="adjust",
                        source="api",
                        lot=lot.lot,
                        ref="lot moved",
                    )
            if fields:
                sets = ", ".join(f"{k} = ?" for k in fields)
                self._conn.execute(
                    f"UPDATE inv_lots SET {sets}, updated_at = ? WHERE id = ?",  # noqa: S608 - keys come from the model
                    (*fields.values(), now_ms(), lot_id),
                )
            if change.qty is not None and not math.isclose(change.qty, lot.qty):
                current = self.get_lot(lot_id)
                self.record(
                    ts_ms=ts_ms,
                    site=current.site,
                    location=current.location,
                    sku=current.sku,
                    qty=change.qty - current.qty,
                    kind="adjust",
                    source="api",
                    lot=current.lot,
                    ref="lot count",
                )
        return self.get_lot(lot_id)

    def delete_lot(self, lot_id: int) -> None:
        """Delete an empty lot; a lot still holding stock must be counted down to 0 first."""
        lot = self.get_lot(lot_id)
        if lot.qty > 0:
            raise ConflictError(f"lot {lot_id} still holds {lot.qty:g}; adjust it to 0 first")
        self._conn.execute("DELETE FROM inv_lots WHERE id = ?", (lot_id,))

    def load_lots(self, lots: Iterable[LotIn], *, ts_ms: int) -> int:
        """Register the lots not yet present (seed data); returns how many were added."""
        added = 0
        with self.transaction():
            for lot in lots:
                exists = self._conn.execute(
                    "SELECT 1 FROM inv_lots WHERE site = ? AND sku = ? AND lot = ?",
                    (lot.site, lot.sku, lot.lot),
                ).fetchone()
                if exists is None:
                    self.add_lot(lot, ts_ms=lot.received_at or ts_ms, source="seed")
                    added += 1
        return added

    # -- stock and ledger -----------------------------------------------------------------------

    def record(
        self,
        *,
        ts_ms: int,
        site: str,
        location: str,
        sku: str,
        qty: float,
        kind: MovementKind,
        source: MovementSource,
        lot: str | None = None,
        ref: str | None = None,
    ) -> LedgerEntry:
        """Book one movement: ledger row, stock at the location and, if given, the lot."""
        stamp = now_ms()
        with self.transaction():
            row_id = self._conn.insert(
                """INSERT INTO inv_ledger (ts, site, location, sku, lot, qty, kind, source, ref,
                   created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (ts_ms, site, location, sku, lot, qty, kind, source, ref, stamp),
            )
            self._conn.execute(
                """INSERT INTO inv_stock (site, location, sku, qty, updated_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (site, location, sku) DO UPDATE SET
                   qty = inv_stock.qty + excluded.qty, updated_at = excluded.updated_at""",
                (site, location, sku, qty, ts_ms),
            )
            if lot is not None:
                # A lot never goes negative: a sensor can see more leave than the lot recorded.
                self._conn.execute(
                    """UPDATE inv_lots SET qty = GREATEST(qty + ?, 0), updated_at = ?
                       WHERE site = ? AND sku = ? AND lot = ?""",
                    (qty, stamp, site, sku, lot),
                )
        return LedgerEntry(
            id=row_id,
            ts=ts_ms,
            site=site,
            location=location,
            sku=sku,
            lot=lot,
            qty=qty,
            kind=kind,
            source=source,
            ref=ref,
        )

    def record_outflow(
        self,
        plan: OutflowPlan,
        *,
        ts_ms: int,
        site: str,
        sku: str,
        kind: MovementKind,
        source: MovementSource,
        ref: str | None = None,
    ) -> builtins.list[LedgerEntry]:
        """Book a planned movement leaving ``plan.location``, as planned, in one transaction.

        One ledger row per lot drawn, in the plan's order (a row that took stock past its
        removal date carries the ``drew_expired`` note in ``ref``), then at most one row of
        ``plan.unlotted``, stock held in no lot: what the location did not hold goes below zero
        there and shows the shortfall until a count corrects it. The rules make the plan
        (:func:`rules.inventory.expiry.plan_fefo_pick`); read the lots it is made from inside
        the same :meth:`transaction` so nothing changes in between.
        """
        expired_ref = f"{ref}; {DREW_EXPIRED}" if ref else DREW_EXPIRED
        rows: builtins.list[tuple[str | None, float, str | None]] = [
            (draw.lot, draw.qty, expired_ref if draw.drew_expired else ref) for draw in plan.lines
        ]
        if plan.unlotted > _QTY_EPS:
            rows.append((None, plan.unlotted, ref))
        with self.transaction():
            return [
                self.record(
                    ts_ms=ts_ms,
                    site=site,
                    location=plan.location,
                    sku=sku,
                    qty=-qty,
                    kind=kind,
                    source=source,
                    lot=lot,
                    ref=noted,
                )
                for lot, qty, noted in rows
            ]

    def stock(
        self, *, site: str | None = None, sku: str | None = None, location: str | None = None
    ) -> builtins.list[StockLevel]:
        """Stock per (site, location, SKU)."""
        sql, params = where_clause("SELECT * FROM inv_stock", site=site, sku=sku, location=location)
        rows = self._conn.execute(sql + " ORDER BY site, location, sku", params)
        return [StockLevel.model_validate(as_dict(r)) for r in rows]

    def qty_at(self, site: str, location: str, sku: str) -> float:
        """Stock of a SKU at one location."""
        row = self._conn.execute(
            "SELECT qty FROM inv_stock WHERE site = ? AND location = ? AND sku = ?",
            (site, location, sku),
        ).fetchone()
        return float(row[0]) if row is not None else 0.0

    def on_hand(self, site: str, sku: str) -> float:
        """Stock of a SKU over every location of a site."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(qty), 0) FROM inv_stock WHERE site = ? AND sku = ?", (site, sku)
        ).fetchone()
        return float(row[0])

    def unavailable(self, site: str, sku: str, *, at_ms: int) -> float:
        """Quantity in lots past their (effective) removal date: on hand but not available.

        Per location it is capped at that location's stock, so lots that disagree with the
        stock (older data) never take good stock elsewhere out of ``available``.
        """
        rows = self._conn.execute(
            """SELECT l.location, SUM(l.qty), COALESCE(MAX(s.qty), 0) FROM inv_lots l
               LEFT JOIN inv_stock s ON s.site = l.site AND s.sku = l.sku
               AND s.location = l.location
               WHERE l.site = ? AND l.sku = ? AND l.qty > 0
               AND COALESCE(l.removal_at, l.expiration_at) <= ?
               GROUP BY l.location""",
            (site, sku, at_ms),
        )
        return sum(min(float(expired), max(float(stock), 0.0)) for _, expired, stock in rows)

    def available(self, site: str, sku: str, *, at_ms: int) -> float:
        """On hand minus stock past its removal date (never negative)."""
        return max(self.on_hand(site, sku) - self.unavailable(site, sku, at_ms=at_ms), 0.0)

    def ledger(
        self,
        *,
        site: str | None = None,
        sku: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        kinds: Sequence[MovementKind] = (),
        source: MovementSource | None = None,
        limit: int = 1000,
    ) -> builtins.list[LedgerEntry]:
        """Movements oldest first, filtered."""
        sql, params = where_clause("SELECT * FROM inv_ledger", site=site, sku=sku, source=source)
        clauses = time_range(params, since_ms, until_ms)
        if kinds:
            clauses.append(f"kind IN ({', '.join('?' for _ in kinds)})")
            params.extend(kinds)
        if clauses:
            sql += (" AND " if "WHERE" in sql else " WHERE ") + " AND ".join(clauses)
        rows = self._conn.execute(sql + " ORDER BY ts, id LIMIT ?", (*params, limit))
        return [LedgerEntry.model_validate(as_dict(r)) for r in rows]

    def daily_outflows(
        self, site: str, sku: str, *, end_ms: int, days: int
    ) -> builtins.list[float]:
        """Units picked or issued per day for the ``days`` days before ``end_ms``, oldest first."""
        start = end_ms - days * DAY_MS
        out = [0.0] * days
        rows = self._conn.execute(
            """SELECT ts, qty FROM inv_ledger WHERE site = ? AND sku = ? AND ts >= ? AND ts < ?
               AND kind IN ('pick', 'issue')""",
            (site, sku, start, end_ms),
        )
        for ts, qty in rows:
            out[min((int(ts) - start) // DAY_MS, days - 1)] += -float(qty)
        return out

    def last_outflow(self, site: str, sku: str) -> int | None:
        """Time of the latest pick or issue of a SKU at a site."""
        row = self._conn.execute(
            """SELECT MAX(ts) FROM inv_ledger WHERE site = ? AND sku = ?
               AND kind IN ('pick', 'issue')""",
            (site, sku),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def first_inflow(self, site: str, sku: str) -> int | None:
        """Time of the earliest movement bringing a SKU into a site (stand-in for its age)."""
        row = self._conn.execute(
            "SELECT MIN(ts) FROM inv_ledger WHERE site = ? AND sku = ? AND qty > 0", (site, sku)
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def stocked_pairs(self) -> builtins.list[tuple[str, str]]:
        """Every (site, SKU) that has a stock row."""
        rows = self._conn.execute("SELECT DISTINCT site, sku FROM inv_stock ORDER BY site, sku")
        return [(str(r[0]), str(r[1])) for r in rows]
