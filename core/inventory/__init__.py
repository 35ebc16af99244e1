"""Inventory records and their relational stores, split by concern over one connection.

- :mod:`~core.inventory.models`: the records and value types the API and rules exchange;
- :class:`~core.inventory.catalog.CatalogStore`: SKUs, shelf cells, RFID antenna zones;
- :class:`~core.inventory.ledger.LedgerStore`: lots, stock and the movement ledger;
- :class:`~core.inventory.planning.PlanningStore`: suggestions, demand, inbound lines;
- :class:`~core.inventory.picks.PickStore`: picks recorded through the API or a WMS pick list;

:class:`InventoryStores` builds them over one connection. Their errors are
:class:`core.errors.InventoryStoreError` and its subclasses.
"""

from core.identifiers import Ident
from core.inventory.base import now_ms
from core.inventory.catalog import CatalogStore
from core.inventory.ledger import LedgerStore
from core.inventory.models import (
    DAY_MS,
    DREW_EXPIRED,
    OUTFLOW_KINDS,
    RECEIVING_LOCATION,
    SUGGESTION_TRANSITIONS,
    Demand,
    DemandIn,
    DemandKind,
    DemandStatus,
    EpochMs,
    Gtin,
    Inbound,
    InboundIn,
    InboundStatus,
    LedgerEntry,
    Lot,
    LotIn,
    LotUpdate,
    MovementKind,
    MovementSource,
    NonNegative,
    Policy,
    Positive,
    Record,
    RfidZone,
    Shelf,
    Sku,
    StockLevel,
    Stored,
    Suggestion,
    SuggestionState,
    ZoneRole,
)
from core.inventory.picks import (
    Pick,
    PickIn,
    PickLine,
    PickList,
    PickListIn,
    PickStatus,
    PickStore,
)
from core.inventory.planning import PlanningStore
from core.inventory.stores import InventoryStores

__all__ = [
    "DAY_MS",
    "DREW_EXPIRED",
    "OUTFLOW_KINDS",
    "RECEIVING_LOCATION",
    "SUGGESTION_TRANSITIONS",
    "CatalogStore",
    "Demand",
    "DemandIn",
    "DemandKind",
    "DemandStatus",
    "EpochMs",
    "Gtin",
    "Ident",
    "Inbound",
    "InboundIn",
    "InboundStatus",
    "InventoryStores",
    "LedgerEntry",
    "LedgerStore",
    "Lot",
    "LotIn",
    "LotUpdate",
    "MovementKind",
    "MovementSource",
    "NonNegative",
    "Pick",
    "PickIn",
    "PickLine",
    "PickList",
    "PickListIn",
    "PickStatus",
    "PickStore",
    "PlanningStore",
    "Policy",
    "Positive",
    "Record",
    "RfidZone",
    "Shelf",
    "Sku",
    "StockLevel",
    "Stored",
    "Suggestion",
    "SuggestionState",
    "ZoneRole",
    "now_ms",
]
