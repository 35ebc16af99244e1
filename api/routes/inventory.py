"""Inventory: catalog and sensor bindings (CRUD), stock, movements, suggestions, demand, reports.

Unknown ids answer 404, lifecycle conflicts and references still in use 409 (the store's
errors, mapped in ``api.errors``), malformed bodies 422 (pydantic's message names the field).
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from api.bodies import (
    DemandRequest,
    InboundRequest,
    LotChange,
    LotRequest,
    RfidZoneRequest,
    ShelfRequest,
    SkuRequest,
    Transition,
)
from api.deps import Connection
from api.errors import answers, invalid
from api.fields import Antenna, EpochFilter, IdentFilter, RowId, Segment
from core.inventory import (
    ConflictError,
    Demand,
    DemandStatus,
    Inbound,
    InboundStatus,
    InventoryStore,
    LedgerEntry,
    Lot,
    MovementKind,
    NotFoundError,
    RfidZone,
    Shelf,
    Sku,
    SkuReport,
    StockLevel,
    Suggestion,
    SuggestionState,
    now_ms,
)

router = APIRouter(prefix="/inventory", tags=["inventory"])


def inventory_store(conn: Connection) -> InventoryStore:
    """Inventory store over the request's connection."""
    return InventoryStore(conn)


Store = Annotated[InventoryStore, Depends(inventory_store)]
Limit = Annotated[int, Query(ge=1, le=10_000)]


def _same(name: str, body: object, path: object) -> None:
    """The body must name the record the path names."""
    if body != path:
        message = f"{name} in the body ({body}) differs from the path ({path})"
        raise invalid(("body", name), message, body)


# ------------------------------------------------------------------------------ SKUs


@router.get("/skus")
def list_skus(store: Store) -> list[Sku]:
    """Every SKU."""
    return store.skus()


@router.post("/skus", status_code=201, responses=answers(400, 409))
def create_sku(body: SkuRequest, store: Store) -> Sku:
    """Add a SKU (409 if the id or the GTIN exists)."""
    try:
        store.get_sku(body.sku)
    except NotFoundError:
        return store.put_sku(body)
    raise ConflictError(f"SKU {body.sku} already exists")


@router.get("/skus/{sku}", responses=answers(404))
def get_sku(sku: Segment, store: Store) -> Sku:
    """One SKU."""
    return store.get_sku(sku)


@router.put("/skus/{sku}", responses=answers(400, 409))
def put_sku(sku: Segment, body: SkuRequest, store: Store) -> Sku:
    """Create or replace a SKU (409 if another SKU has the GTIN)."""
    _same("sku", body.sku, sku)
    return store.put_sku(body)


@router.delete("/skus/{sku}", status_code=204, responses=answers(404, 409))
def delete_sku(sku: Segment, store: Store) -> Response:
    """Delete a SKU no shelf or lot refers to."""
    store.delete_sku(sku)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ shelves


@router.get("/shelves")
def list_shelves(store: Store, site: IdentFilter = None) -> list[Shelf]:
    """Shelf cell bindings."""
    return store.shelves(site)


@router.put("/shelves/{site}/{device}/{cell}", responses=answers(400, 404))
def put_shelf(
    site: Segment, device: Segment, cell: Segment, body: ShelfRequest, store: Store
) -> Shelf:
    """Bind a shelf cell to a SKU (create or replace; 404 if the SKU does not exist)."""
    _same("site", body.site, site)
    _same("device", body.device, device)
    _same("cell", body.cell, cell)
    return store.put_shelf(body)


@router.get("/shelves/{site}/{device}/{cell}", responses=answers(404))
def get_shelf(site: Segment, device: Segment, cell: Segment, store: Store) -> Shelf:
    """One shelf cell binding."""
    return store.get_shelf(site, device, cell)


@router.delete("/shelves/{site}/{device}/{cell}", status_code=204, responses=answers(404))
def delete_shelf(site: Segment, device: Segment, cell: Segment, store: Store) -> Response:
    """Unbind a shelf cell."""
    store.delete_shelf(site, device, cell)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ RFID zones


@router.get("/rfid-zones")
def list_rfid_zones(store: Store, site: IdentFilter = None) -> list[RfidZone]:
    """Reader antenna bindings."""
    return store.rfid_zones(site)


@router.put("/rfid-zones/{site}/{device}/{antenna}", responses=answers(400))
def put_rfid_zone(
    site: Segment, device: Segment, antenna: Antenna, body: RfidZoneRequest, store: Store
) -> RfidZone:
    """Bind a reader antenna to a zone (create or replace)."""
    _same("site", body.site, site)
    _same("device", body.device, device)
    _same("antenna", body.antenna, antenna)
    return store.put_rfid_zone(body)


@router.get("/rfid-zones/{site}/{device}/{antenna}", responses=answers(404))
def get_rfid_zone(site: Segment, device: Segment, antenna: Antenna, store: Store) -> RfidZone:
    """One antenna binding."""
    return store.get_rfid_zone(site, device, antenna)


@router.delete("/rfid-zones/{site}/{device}/{antenna}", status_code=204, responses=answers(404))
def delete_rfid_zone(site: Segment, device: Segment, antenna: Antenna, store: Store) -> Response:
    """Unbind a reader antenna."""
    store.delete_rfid_zone(site, device, antenna)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ lots


@router.get("/lots")
def list_lots(
    store: Store, site: IdentFilter = None, sku: IdentFilter = None, in_stock: bool = False
) -> list[Lot]:
    """Lots in FEFO order (per-lot stock)."""
    return store.lots(site=site, sku=sku, in_stock=in_stock)


@router.post("/lots", status_code=201, responses=answers(400, 404, 409))
def create_lot(body: LotRequest, store: Store) -> Lot:
    """Register a lot of a known SKU; its quantity is booked as a receipt."""
    return store.add_lot(body, ts_ms=now_ms())


@router.get("/lots/{lot_id}", responses=answers(404))
def get_lot(lot_id: RowId, store: Store) -> Lot:
    """One lot."""
    return store.get_lot(lot_id)


@router.patch("/lots/{lot_id}", responses=answers(400, 404))
def update_lot(lot_id: RowId, body: LotChange, store: Store) -> Lot:
    """Change dates or location; a new quantity is booked as an adjustment."""
    return store.update_lot(lot_id, body, ts_ms=now_ms())


@router.delete("/lots/{lot_id}", status_code=204, responses=answers(404, 409))
def delete_lot(lot_id: RowId, store: Store) -> Response:
    """Delete an empty lot (409 while it holds stock)."""
    store.delete_lot(lot_id)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ stock


@router.get("/stock")
def stock_levels(
    store: Store, site: IdentFilter = None, sku: IdentFilter = None, location: IdentFilter = None
) -> list[StockLevel]:
    """Stock per (site, location, SKU)."""
    return store.stock(site=site, sku=sku, location=location)


@router.get("/movements")
def movements(
    store: Store,
    *,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    kind: MovementKind | None = None,
    since: EpochFilter = None,
    until: EpochFilter = None,
    limit: Limit = 1000,
) -> list[LedgerEntry]:
    """Ledger movements, oldest first."""
    return store.ledger(
        site=site,
        sku=sku,
        since_ms=since,
        until_ms=until,
        kinds=(kind,) if kind else (),
        limit=limit,
    )


@router.get("/report")
def report(
    store: Store,
    period_days: Annotated[int, Query(ge=1, le=3650)] = 30,
    dead_after_days: Annotated[float, Query(gt=0, le=3650)] = 90,
) -> list[SkuReport]:
    """Days on hand / of supply, turnover and dead stock per (site, SKU)."""
    return store.report(at_ms=now_ms(), period_days=period_days, dead_after_days=dead_after_days)


# ------------------------------------------------------------------------------ suggestions


@router.get("/suggestions")
def list_suggestions(
    store: Store,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    state: SuggestionState | None = None,
) -> list[Suggestion]:
    """Purchase suggestions, oldest first."""
    return store.suggestions(site=site, sku=sku, state=state)


@router.get("/suggestions/{suggestion_id}", responses=answers(404))
def get_suggestion(suggestion_id: RowId, store: Store) -> Suggestion:
    """One suggestion."""
    return store.get_suggestion(suggestion_id)


@router.post("/suggestions/{suggestion_id}/{step}", responses=answers(400, 404, 409))
def move_suggestion(
    suggestion_id: RowId,
    step: Literal["ordered", "received", "cancelled"],
    store: Store,
    body: Transition | None = None,
) -> Suggestion:
    """suggested → ordered → received, or cancelled; other steps answer 409."""
    body = body or Transition()
    return store.transition_suggestion(
        suggestion_id, step, ts_ms=now_ms(), eta_ms=body.eta, location=body.location
    )


# ------------------------------------------------------------------------------ demand, inbound


@router.get("/demand")
def list_demand(
    store: Store,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    status: DemandStatus | None = None,
) -> list[Demand]:
    """Demand lines by due date."""
    return store.demand(site=site, sku=sku, status=status)


@router.post("/demand", status_code=201, responses=answers(400, 404))
def add_demand(body: DemandRequest, store: Store) -> Demand:
    """Add a confirmed sales or production order line of a known SKU."""
    return store.add_demand(body, ts_ms=now_ms())


@router.post("/demand/{demand_id}/{step}", responses=answers(404, 409))
def close_demand(demand_id: RowId, step: Literal["fulfilled", "cancelled"], store: Store) -> Demand:
    """Close a confirmed line (409 if it is closed already)."""
    return store.set_demand_status(demand_id, step, ts_ms=now_ms())


@router.get("/inbound")
def list_inbound(
    store: Store,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    status: InboundStatus | None = None,
) -> list[Inbound]:
    """Open purchase orders and shipments in transit, by ETA."""
    return store.inbound(site=site, sku=sku, status=status)


@router.post("/inbound", status_code=201, responses=answers(400, 404))
def add_inbound(body: InboundRequest, store: Store) -> Inbound:
    """Record an open purchase order or a shipment in transit of a known SKU."""
    return store.add_inbound(body, ts_ms=now_ms())
