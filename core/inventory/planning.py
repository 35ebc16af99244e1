"""The planning store: purchase suggestions, confirmed demand and inbound orders."""

from __future__ import annotations

import builtins

from core import db
from core.errors import ConflictError, NotFoundError
from core.inventory.base import SqlStore, as_dict, where_clause
from core.inventory.catalog import CatalogStore
from core.inventory.ledger import LedgerStore
from core.inventory.models import (
    DAY_MS,
    RECEIVING_LOCATION,
    SUGGESTION_TRANSITIONS,
    Demand,
    DemandIn,
    DemandStatus,
    Inbound,
    InboundIn,
    InboundStatus,
    Suggestion,
    SuggestionState,
)


class PlanningStore(SqlStore):
    """Suggestions, demand and inbound lines of SKUs of ``catalog``; a received suggestion is
    booked as a receipt in ``ledger``."""

    def __init__(
        self, conn: db.Connection, catalog: CatalogStore, ledger: LedgerStore
    ) -> None:
        super().__init__(conn)
        self._catalog = catalog
        self._ledger = ledger

    # -- suggestions --------------------------------------------------------------------------

    def suggestions(
        self,
        *,
        site: str | None = None,
        sku: str | None = None,
        state: SuggestionState | None = None,
    ) -> builtins.list[Suggestion]:
        """Suggestions, oldest first."""
        sql, params = where_clause("SELECT * FROM inv_suggestions", site=site, sku=sku, state=state)
        rows = self._conn.execute(sql + " ORDER BY id", params)
        return [Suggestion.model_validate(as_dict(r)) for r in rows]

    def open_suggestions(self, site: str, sku: str) -> builtins.list[Suggestion]:
        """Suggested or ordered purchases of a SKU at a site."""
        rows = self._conn.execute(
            """SELECT * FROM inv_suggestions WHERE site = ? AND sku = ?
               AND state IN ('suggested', 'ordered') ORDER BY id""",
            (site, sku),
        )
        return [Suggestion.model_validate(as_dict(r)) for r in rows]

    def get_suggestion(self, suggestion_id: int) -> Suggestion:
        """One suggestion."""
        row = self._conn.execute(
            "SELECT * FROM inv_suggestions WHERE id = ?", (suggestion_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"suggestion {suggestion_id} does not exist")
        return Suggestion.model_validate(as_dict(row))

    def add_suggestion(
        self,
        *,
        site: str,
        sku: str,
        qty: float,
        reason: str,
        projected: float,
        trigger_level: float,
        ts_ms: int,
    ) -> Suggestion:
        """Store a new suggestion in state ``suggested``."""
        row_id = self._conn.insert(
            """INSERT INTO inv_suggestions (site, sku, qty, reason, projected, trigger_level,
               created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (site, sku, qty, reason, projected, trigger_level, ts_ms, ts_ms),
        )
        return self.get_suggestion(row_id)

    def revise_suggestion(
        self, suggestion_id: int, *, qty: float, projected: float, reason: str, ts_ms: int
    ) -> Suggestion:
        """Change the quantity of a suggestion not yet ordered."""
        cur = self._conn.execute(
            """UPDATE inv_suggestions SET qty = ?, projected = ?, reason = ?, updated_at = ?
               WHERE id = ? AND state = 'suggested'""",
            (qty, projected, reason, ts_ms, suggestion_id),
        )
        if cur.rowcount == 0:
            raise ConflictError(f"suggestion {suggestion_id} is no longer pending")
        return self.get_suggestion(suggestion_id)

    def transition_suggestion(
        self,
        suggestion_id: int,
        to: SuggestionState,
        *,
        ts_ms: int,
        eta_ms: int | None = None,
        location: str = RECEIVING_LOCATION,
        qty: float | None = None,
        book_receipt: bool = True,
    ) -> Suggestion:
        """Move a suggestion along its lifecycle.

        Ordering opens an inbound line of ``qty`` (default the suggestion's; ETA = now + the
        SKU's lead time unless given), so the quantity counts as on order; cancelling closes
        it; receiving closes it and books the quantity as a receipt at ``location``, so the
        projected quantity never dips between the goods arriving and being counted (which
        would suggest the same gap twice). ``book_receipt=False`` closes it without booking,
        for a requisition that booked what it received itself.
        """
        with self.transaction():
            current = self.get_suggestion(suggestion_id)
            if to not in SUGGESTION_TRANSITIONS[current.state]:
                raise ConflictError(
                    f"suggestion {suggestion_id} cannot go from {current.state} to {to}"
                )
            self._conn.execute(
                "UPDATE inv_suggestions SET state = ?, updated_at = ? WHERE id = ?",
                (to, ts_ms, suggestion_id),
            )
            if to == "ordered":
                if eta_ms is None:
                    lead = self._catalog.get_sku(current.sku).lead_time_days
                    eta_ms = ts_ms + round(lead * DAY_MS)
                self._conn.execute(
                    """INSERT INTO inv_inbound (site, sku, qty, eta, status, ref, suggestion_id,
                       created_at, updated_at) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?)""",
                    (
                        current.site,
                        current.sku,
                        current.qty if qty is None else qty,
                        eta_ms,
                        f"suggestion {suggestion_id}",
                        suggestion_id,
                        ts_ms,
                        ts_ms,
                    ),
                )
            else:
                status = "received" if to == "received" else "cancelled"
                self._conn.execute(
                    """UPDATE inv_inbound SET status = ?, updated_at = ?
                       WHERE suggestion_id = ? AND status = 'open'""",
                    (status, ts_ms, suggestion_id),
                )
            if to == "received" and book_receipt:
                self._ledger.record(
                    ts_ms=ts_ms,
                    site=current.site,
                    location=location,
                    sku=current.sku,
                    qty=current.qty,
                    kind="receipt",
                    source="api",
                    ref=f"suggestion {suggestion_id}",
                )
        return self.get_suggestion(suggestion_id)

    def still_on_order(self, suggestion_id: int, qty: float, *, ts_ms: int) -> None:
        """What is left to come of an ordered suggestion received in part (``qty`` > 0)."""
        self._conn.execute(
            """UPDATE inv_inbound SET qty = ?, updated_at = ?
               WHERE suggestion_id = ? AND status = 'open'""",
            (qty, ts_ms, suggestion_id),
        )

    # -- demand and inbound -------------------------------------------------------------------

    def add_demand(self, line: DemandIn, *, ts_ms: int) -> Demand:
        """Store a confirmed demand line."""
        self._catalog.get_sku(line.sku)
        row_id = self._conn.insert(
            """INSERT INTO inv_demand (site, sku, qty, due_at, kind, status, ref, created_at,
               updated_at) VALUES (?, ?, ?, ?, ?, 'confirmed', ?, ?, ?)""",
            (line.site, line.sku, line.qty, line.due_at, line.kind, line.ref, ts_ms, ts_ms),
        )
        return self.get_demand(row_id)

    def get_demand(self, demand_id: int) -> Demand:
        """One demand line."""
        row = self._conn.execute("SELECT * FROM inv_demand WHERE id = ?", (demand_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"demand {demand_id} does not exist")
        data = as_dict(row)
        data.pop("updated_at")
        return Demand.model_validate(data)

    def demand(
        self,
        *,
        site: str | None = None,
        sku: str | None = None,
        status: DemandStatus | None = None,
    ) -> builtins.list[Demand]:
        """Demand lines by due date."""
        sql, params = where_clause("SELECT id FROM inv_demand", site=site, sku=sku, status=status)
        rows = self._conn.execute(sql + " ORDER BY due_at, id", params).fetchall()
        return [self.get_demand(int(r[0])) for r in rows]

    def set_demand_status(self, demand_id: int, status: DemandStatus, *, ts_ms: int) -> Demand:
        """Close (fulfil or cancel) a confirmed line."""
        current = self.get_demand(demand_id)
        if current.status != "confirmed":
            raise ConflictError(f"demand {demand_id} is already {current.status}")
        self._conn.execute(
            "UPDATE inv_demand SET status = ?, updated_at = ? WHERE id = ?",
            (status, ts_ms, demand_id),
        )
        return self.get_demand(demand_id)

    def reserved(self, site: str, sku: str) -> float:
        """Open confirmed demand of a SKU at a site (ERPNext's reserved quantity)."""
        row = self._conn.execute(
            """SELECT COALESCE(SUM(qty), 0) FROM inv_demand
               WHERE site = ? AND sku = ? AND status = 'confirmed'""",
            (site, sku),
        ).fetchone()
        return float(row[0])

    def add_inbound(self, line: InboundIn, *, ts_ms: int) -> Inbound:
        """Store an open purchase order or shipment in transit."""
        self._catalog.get_sku(line.sku)
        row_id = self._conn.insert(
            """INSERT INTO inv_inbound (site, sku, qty, eta, status, ref, created_at, updated_at)
               VALUES (?, ?, ?, ?, 'open', ?, ?, ?)""",
            (line.site, line.sku, line.qty, line.eta, line.ref, ts_ms, ts_ms),
        )
        return self.inbound(inbound_id=row_id)[0]

    def inbound(
        self,
        *,
        site: str | None = None,
        sku: str | None = None,
        status: InboundStatus | None = None,
        inbound_id: int | None = None,
    ) -> builtins.list[Inbound]:
        """Inbound lines by ETA (unknown ETAs last)."""
        sql, params = where_clause(
            "SELECT * FROM inv_inbound", site=site, sku=sku, status=status, id=inbound_id
        )
        rows = self._conn.execute(sql + " ORDER BY eta IS NULL, eta, id", params)
        out: builtins.list[Inbound] = []
        for r in rows:
            data = as_dict(r)
            data.pop("updated_at")
            out.append(Inbound.model_validate(data))
        if inbound_id is not None and not out:
            raise NotFoundError(f"inbound {inbound_id} does not exist")
        return out

    def on_order(self, site: str, sku: str) -> float:
        """Open inbound quantity of a SKU at a site."""
        row = self._conn.execute(
            """SELECT COALESCE(SUM(qty), 0) FROM inv_inbound
               WHERE site = ? AND sku = ? AND status = 'open'""",
            (site, sku),
        ).fetchone()
        return float(row[0])
