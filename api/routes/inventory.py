"""Inventory: catalog and sensor bindings (CRUD), stock, movements, suggestions, demand, reports.

Unknown ids answer 404, lifecycle conflicts and references still in use 409, malformed bodies
422 (pydantic's message names the field).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict

from api.deps import Connection
from core.inventory import (
    RECEIVING_LOCATION,
    ConflictError,
    Demand,
    DemandIn,
    DemandStatus,
    EpochMs,
    Ident,
    Inbound,
    InboundIn,
    InboundStatus,
    InventoryStore,
    LedgerEntry,
    Lot,
    LotIn,
    LotUpdate,
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


@contextmanager
def _answers() -> Iterator[None]:
    """Translate store errors into HTTP answers with the store's message."""
    try:
        yield
    except NotFoundError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except ConflictError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


def _mismatch(what: str, body: object, path: object) -> HTTPException:
    return HTTPException(
        status_code=422, detail=f"{what} in the body ({body}) differs from the path ({path})"
    )


# ------------------------------------------------------------------------------ SKUs


@router.get("/skus")
def list_skus(store: Store) -> list[Sku]:
    """Every SKU."""
    return store.skus()


@router.post("/skus", status_code=201)
def create_sku(body: Sku, store: Store) -> Sku:
    """Add a SKU (409 if the id exists)."""
    with _answers():
        try:
            store.get_sku(body.sku)
        except NotFoundError:
            return store.put_sku(body)
        raise ConflictError(f"SKU {body.sku} already exists")


@router.get("/skus/{sku}")
def get_sku(sku: str, store: Store) -> Sku:
    """One SKU."""
    with _answers():
        return store.get_sku(sku)


@router.put("/skus/{sku}")
def put_sku(sku: str, body: Sku, store: Store) -> Sku:
    """Create or replace a SKU."""
    if body.sku != sku:
        raise _mismatch("sku", body.sku, sku)
    with _answers():
        return store.put_sku(body)


@router.delete("/skus/{sku}", status_code=204)
def delete_sku(sku: str, store: Store) -> Response:
    """Delete a SKU no shelf or lot refers to."""
    with _answers():
        store.delete_sku(sku)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ shelves


@router.get("/shelves")
def list_shelves(store: Store, site: str | None = None) -> list[Shelf]:
    """Shelf cell bindings."""
    return store.shelves(site)


@router.put("/shelves/{site}/{device}/{cell}")
def put_shelf(site: str, device: str, cell: str, body: Shelf, store: Store) -> Shelf:
    """Bind a shelf cell to a SKU (create or replace)."""
    if (body.site, body.device, body.cell) != (site, device, cell):
        raise _mismatch("site/device/cell", f"{body.site}/{body.device}/{body.cell}", cell)
    with _answers():
        return store.put_shelf(body)


@router.get("/shelves/{site}/{device}/{cell}")
def get_shelf(site: str, device: str, cell: str, store: Store) -> Shelf:
    """One shelf cell binding."""
    with _answers():
        return store.get_shelf(site, device, cell)


@router.delete("/shelves/{site}/{device}/{cell}", status_code=204)
def delete_shelf(site: str, device: str, cell: str, store: Store) -> Response:
    """Unbind a shelf cell."""
    with _answers():
        store.delete_shelf(site, device, cell)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ RFID zones


@router.get("/rfid-zones")
def list_rfid_zones(store: Store, site: str | None = None) -> list[RfidZone]:
    """Reader antenna bindings."""
    return store.rfid_zones(site)


@router.put("/rfid-zones/{site}/{device}/{antenna}")
def put_rfid_zone(site: str, device: str, antenna: int, body: RfidZone, store: Store) -> RfidZone:
    """Bind a reader antenna to a zone (create or replace)."""
    if (body.site, body.device, body.antenna) != (site, device, antenna):
        raise _mismatch("site/device/antenna", f"{body.site}/{body.device}/{body.antenna}", antenna)
    return store.put_rfid_zone(body)


@router.get("/rfid-zones/{site}/{device}/{antenna}")
def get_rfid_zone(site: str, device: str, antenna: int, store: Store) -> RfidZone:
    """One antenna binding."""
    with _answers():
        return store.get_rfid_zone(site, device, antenna)


@router.delete("/rfid-zones/{site}/{device}/{antenna}", status_code=204)
def delete_rfid_zone(site: str, device: str, antenna: int, store: Store) -> Response:
    """Unbind a reader antenna."""
    with _answers():
        store.delete_rfid_zone(site, device, antenna)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ lots


@router.get("/lots")
def list_lots(
    store: Store, site: str | None = None, sku: str | None = None, in_stock: bool = False
) -> list[Lot]:
    """Lots in FEFO order (per-lot stock)."""
    return store.lots(site=site, sku=sku, in_stock=in_stock)


@router.post("/lots", status_code=201)
def create_lot(body: LotIn, store: Store) -> Lot:
    """Register a lot; its quantity is booked as a receipt."""
    with _answers():
        return store.add_lot(body, ts_ms=now_ms())


@router.get("/lots/{lot_id}")
def get_lot(lot_id: int, store: Store) -> Lot:
    """One lot."""
    with _answers():
        return store.get_lot(lot_id)


@router.patch("/lots/{lot_id}")
def update_lot(lot_id: int, body: LotUpdate, store: Store) -> Lot:
    """Change dates or location; a new quantity is booked as an adjustment."""
    with _answers():
        return store.update_lot(lot_id, body, ts_ms=now_ms())


@router.delete("/lots/{lot_id}", status_code=204)
def delete_lot(lot_id: int, store: Store) -> Response:
    """Delete an empty lot (409 while it holds stock)."""
    with _answers():
        store.delete_lot(lot_id)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ stock


@router.get("/stock")
def stock_levels(
    store: Store, site: str | None = None, sku: str | None = None, location: str | None = None
) -> list[StockLevel]:
    """Stock per (site, location, SKU)."""
    return store.stock(site=site, sku=sku, location=location)


@router.get("/movements")
def movements(
    store: Store,
    *,
    site: str | None = None,
    sku: str | None = None,
    kind: MovementKind | None = None,
    since: int | None = None,
    until: int | None = None,
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


class Transition(BaseModel):
    """Optional details of a suggestion step: the ETA when ordering, where receipts land."""

    model_config = ConfigDict(extra="forbid")

    eta: EpochMs | None = None
    location: Ident = RECEIVING_LOCATION


@router.get("/suggestions")
def list_suggestions(
    store: Store,
    site: str | None = None,
    sku: str | None = None,
    state: SuggestionState | None = None,
) -> list[Suggestion]:
    """Purchase suggestions, oldest first."""
    return store.suggestions(site=site, sku=sku, state=state)


@router.get("/suggestions/{suggestion_id}")
def get_suggestion(suggestion_id: int, store: Store) -> Suggestion:
    """One suggestion."""
    with _answers():
        return store.get_suggestion(suggestion_id)


@router.post("/suggestions/{suggestion_id}/{step}")
def move_suggestion(
    suggestion_id: int,
    step: Literal["ordered", "received", "cancelled"],
    store: Store,
    body: Transition | None = None,
) -> Suggestion:
    """suggested → ordered → received, or cancelled; other steps answer 409."""
    body = body or Transition()
    with _answers():
        return store.transition_suggestion(
            suggestion_id, step, ts_ms=now_ms(), eta_ms=body.eta, location=body.location
        )


# ------------------------------------------------------------------------------ demand, inbound


@router.get("/demand")
def list_demand(
    store: Store,
    site: str | None = None,
    sku: str | None = None,
    status: DemandStatus | None = None,
) -> list[Demand]:
    """Demand lines by due date."""
    return store.demand(site=site, sku=sku, status=status)


@router.post("/demand", status_code=201)
def add_demand(body: DemandIn, store: Store) -> Demand:
    """Add a confirmed sales or production order line."""
    with _answers():
        return store.add_demand(body, ts_ms=now_ms())


@router.post("/demand/{demand_id}/{step}")
def close_demand(demand_id: int, step: Literal["fulfilled", "cancelled"], store: Store) -> Demand:
    """Close a confirmed line."""
    with _answers():
        return store.set_demand_status(demand_id, step, ts_ms=now_ms())


@router.get("/inbound")
def list_inbound(
    store: Store,
    site: str | None = None,
    sku: str | None = None,
    status: InboundStatus | None = None,
) -> list[Inbound]:
    """Open purchase orders and shipments in transit, by ETA."""
    return store.inbound(site=site, sku=sku, status=status)


@router.post("/inbound", status_code=201)
def add_inbound(body: InboundIn, store: Store) -> Inbound:
    """Record an open purchase order or a shipment in transit."""
    with _answers():
        return store.add_inbound(body, ts_ms=now_ms())
