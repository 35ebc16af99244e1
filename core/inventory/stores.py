"""The inventory stores over one connection, built together."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core import db
from core.inventory.catalog import CatalogStore
from core.inventory.ledger import LedgerStore
from core.inventory.models import LotIn, RfidZone, Shelf, Sku
from core.inventory.picks import PickStore
from core.inventory.planning import PlanningStore


@dataclass(frozen=True, slots=True)
class InventoryStores:
    """Catalog, ledger, planning and recorded-pick stores sharing one connection (and so its
    transactions)."""

    catalog: CatalogStore
    ledger: LedgerStore
    planning: PlanningStore
    picks: PickStore

    @classmethod
    def over(cls, conn: db.Connection) -> InventoryStores:
        """The stores over ``conn``."""
        catalog = CatalogStore(conn)
        ledger = LedgerStore(conn, catalog)
        return cls(catalog, ledger, PlanningStore(conn, catalog, ledger), PickStore(conn, catalog))

    def load_catalog(
        self,
        *,
        skus: Iterable[Sku] = (),
        shelves: Iterable[Shelf] = (),
        rfid_zones: Iterable[RfidZone] = (),
        lots: Iterable[LotIn] = (),
        ts_ms: int,
    ) -> dict[str, int]:
        """Upsert master data in one transaction; lots already present are left as they are."""
        with self.catalog.transaction():
            counts = self.catalog.load_catalog(skus=skus, shelves=shelves, rfid_zones=rfid_zones)
            counts["lots"] = self.ledger.load_lots(lots, ts_ms=ts_ms)
        return counts
