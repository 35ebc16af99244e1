"""Recorded picks (``POST /inventory/picks``, WMS pick lists) against what the shelves sense.

Every tick the picks recorded since the last one are sorted out: a pick of a SKU a weight shelf
tracks at that site (at the pick's location, when it names one) is ``expected``: the shelf books
the movement when it senses the drop, so the pick is never booked itself. A pick of any other
SKU (or location) is ``booked`` as the outflow, drawn FEFO like a sensed pick.

A sensed drop is matched to expected picks of the same site and SKU (and location, when the pick
names one) timed from the loss window before the drop began (the last reading at the old level)
to the loss window after it settled, nearest first; each pick explains at most its quantity, so
one pick never explains two drops. Matching is tried on the first tick after the drop (picks
recorded before it) and again when its loss window has passed (picks recorded after it).
"""

from __future__ import annotations

import logging

from core.inventory import RECEIVING_LOCATION, InventoryStores, Pick
from rules.inventory.bookings import Bookings
from rules.inventory.shelves import LossCheck, Touched, WeightShelves

logger = logging.getLogger(__name__)

_QTY_EPS = 1e-9


class RecordedPicks:
    """Sorts recorded picks into expected and booked ones, and matches them to sensed drops."""

    def __init__(
        self,
        *,
        stores: InventoryStores,
        shelves: WeightShelves,
        bookings: Bookings,
        window_ms: int,
    ) -> None:
        self._stores = stores
        self._shelves = shelves
        self._bookings = bookings
        self._window_ms = window_ms

    def sort_pending(self, now_ms: int, touched: Touched) -> None:
        """Expect the newly recorded picks of shelf-tracked SKUs; book the others."""
        store = self._stores.picks
        for pick in store.pending():
            if self._shelves.tracks(pick.site, pick.sku, pick.location):
                store.mark(pick.id, "expected", ts_ms=now_ms)
                continue
            location = pick.location or self._location_of(pick)
            with store.transaction():
                entries = self._bookings.book(
                    pick.site,
                    location,
                    pick.sku,
                    -pick.qty,
                    "pick",
                    ts_ms=pick.ts,
                    ref=f"pick {pick.ref}",
                    source="api",
                )
                store.mark(
                    pick.id,
                    "booked",
                    ts_ms=now_ms,
                    matched_qty=pick.qty,
                    ledger_id=entries[0].id if entries else None,
                )
            logger.info(
                "pick %s: %g of %s booked at %s/%s (no shelf tracks it)",
                pick.ref,
                pick.qty,
                pick.sku,
                pick.site,
                location,
            )
            touched[(pick.site, pick.sku)] = max(touched.get((pick.site, pick.sku), 0), pick.ts)

    def explain(self, check: LossCheck, now_ms: int) -> None:
        """Match the drop's unexplained units to expected picks near it (see the module)."""
        need = check.unexplained
        if need <= _QTY_EPS:
            return
        store = self._stores.picks
        with store.transaction():
            for pick in store.open_near(
                check.site,
                check.sku,
                lo_ms=check.since_ms - self._window_ms,
                hi_ms=check.ts_ms + self._window_ms,
                around_ms=check.ts_ms,
            ):
                if pick.location is not None and pick.location != check.location:
                    continue
                take = min(pick.open_qty, need)
                matched = pick.matched_qty + take
                store.mark(
                    pick.id,
                    "matched" if matched >= pick.qty - _QTY_EPS else "expected",
                    ts_ms=now_ms,
                    matched_qty=matched,
                    ledger_id=check.ledger_id,
                )
                check.explained += take
                need -= take
                if need <= _QTY_EPS:
                    break

    def _location_of(self, pick: Pick) -> str:
        """Where a pick naming no location leaves from: the site's largest stock of the SKU."""
        levels = [s for s in self._stores.ledger.stock(site=pick.site, sku=pick.sku) if s.qty > 0]
        if not levels:
            return RECEIVING_LOCATION
        return max(levels, key=lambda s: (s.qty, s.location)).location
