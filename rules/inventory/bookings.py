"""Sensor movements into the ledger, and the stock and movement points that follow them.

Outflows are planned here with :func:`rules.inventory.expiry.plan_fefo_pick` over the lots the
ledger holds, and the ledger books the plan in the same transaction it was read in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from core.influx import line
from core.inventory import LedgerEntry, LedgerStore, MovementKind, MovementSource
from rules.inventory.expiry import PickPlan, plan_fefo_pick

logger = logging.getLogger(__name__)

Write = Callable[[Sequence[str]], None]  # hands InfluxDB lines to the writer, never blocks


class Bookings:
    """Books what the shelves and portals see, and writes ``movements`` and ``stock`` points."""

    def __init__(self, ledger: LedgerStore, write: Write) -> None:
        self._ledger = ledger
        self._write = write

    def book(
        self,
        site: str,
        location: str,
        sku: str,
        qty: float,
        kind: MovementKind,
        *,
        ts_ms: int,
        ref: str,
        source: MovementSource = "sensor",
    ) -> list[LedgerEntry]:
        """Book ``qty`` of ``sku`` at ``location`` (negative: leaving it) from a sensor (or a
        recorded pick: ``source`` ``api``)."""
        if qty < 0:
            # Planned over the lots read in the same transaction that books the plan.
            with self._ledger.transaction():
                plan = self._plan(site, location, sku, -qty, ts_ms)
                entries = self._ledger.record_outflow(
                    plan, ts_ms=ts_ms, site=site, sku=sku, kind=kind, source=source, ref=ref
                )
        else:
            entries = [
                self._ledger.record(
                    ts_ms=ts_ms,
                    site=site,
                    location=location,
                    sku=sku,
                    qty=qty,
                    kind=kind,
                    source=source,
                    ref=ref,
                )
            ]
        ts_ns = ts_ms * 1_000_000
        lines = [
            line(
                "movements",
                {"site": e.site, "sku": e.sku, "kind": e.kind, "source": e.source},
                {
                    "qty": float(e.qty),
                    "location": e.location,
                    "lot": e.lot,
                    "ref": e.ref,
                    "ledger_id": e.id,
                },
                ts_ns + i,  # rows of one movement share a time: keep them apart
            )
            for i, e in enumerate(entries)
        ]
        lines.append(
            line(
                "stock",
                {"site": site, "location": location, "sku": sku, "basis": "ledger"},
                {"qty": self._ledger.qty_at(site, location, sku)},
                ts_ns,
            )
        )
        self._write(lines)
        return entries

    def rfid_count(self, site: str, zone: str, sku: str, count: int, ts_ms: int) -> None:
        """Write the tags of ``sku`` present in ``zone`` as a ``stock`` point (basis ``rfid``)."""
        self._write(
            [
                line(
                    "stock",
                    {"site": site, "location": zone, "sku": sku, "basis": "rfid"},
                    {"qty": float(count)},
                    ts_ms * 1_000_000,
                )
            ]
        )

    def _plan(self, site: str, location: str, sku: str, qty: float, ts_ms: int) -> PickPlan:
        lots = self._ledger.lots(site=site, sku=sku, in_stock=True)
        in_lots = sum(lot.qty for lot in lots if lot.location == location)
        loose = max(self._ledger.qty_at(site, location, sku) - in_lots, 0.0)
        plan = plan_fefo_pick(lots, qty, location=location, loose=loose, now_ms=ts_ms)
        for drawn in plan.lines:
            if drawn.drew_expired:
                logger.warning(
                    "%g of %s at %s/%s drawn from lot %s past its removal date:"
                    " nothing else there covered it",
                    drawn.qty,
                    sku,
                    site,
                    location,
                    drawn.lot,
                )
        if plan.shortfall > 0:
            logger.info(
                "%g of %s left %s/%s beyond its booked stock: booked without a lot",
                plan.shortfall,
                sku,
                site,
                location,
            )
        return plan
