"""Inventory: catalog and sensor bindings (CRUD), stock, movements, recorded picks and WMS pick
lists, suggestions, demand, reports.

Unknown ids answer 404, lifecycle conflicts and references still in use 409 (the store's
errors, mapped in ``api.errors``), malformed bodies 422 (pydantic's message names the field).
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import Field

from api.bodies import (
    STRICT,
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
from api.fields import (
    Antenna,
    EpochFilter,
    IdentFilter,
    Quantity,
    RowId,
    Segment,
    Timestamp,
)
from api.security import (
    CanEditCatalog,
    CanEditLots,
    CanPurchase,
    CanRead,
    allow,
    audit,
    check_site,
    site_filters,
    visible,
)
from core.auth import Principal
from core.errors import ConflictError, NotFoundError
from core.identifiers import IDENT_PATTERN, NO_NUL
from core.inventory import (
    CatalogStore,
    Demand,
    DemandStatus,
    Inbound,
    InboundStatus,
    InventoryStores,
    LedgerEntry,
    LedgerStore,
    Lot,
    MovementKind,
    Pick,
    PickIn,
    PickLine,
    PickList,
    PickListIn,
    PickStatus,
    PickStore,
    PlanningStore,
    RfidZone,
    Shelf,
    Sku,
    StockLevel,
    Suggestion,
    SuggestionState,
    now_ms,
)
from core.inventory.forecasts import ForecastStore, StoredForecast
from core.requisitions import RequisitionStore

router = APIRouter(prefix="/inventory", tags=["inventory"])


async def inventory_stores(conn: Connection) -> InventoryStores:
    """The inventory stores over the request's connection."""
    return InventoryStores.over(conn)


Stores = Annotated[InventoryStores, Depends(inventory_stores)]


async def catalog_store(stores: Stores) -> CatalogStore:
    """SKUs, shelves and antenna bindings."""
    return stores.catalog


async def ledger_store(stores: Stores) -> LedgerStore:
    """Lots, stock and movements."""
    return stores.ledger


async def planning_store(stores: Stores) -> PlanningStore:
    """Suggestions, demand and inbound lines."""
    return stores.planning


async def pick_store(stores: Stores) -> PickStore:
    """Recorded picks and pick lists."""
    return stores.picks


Catalog = Annotated[CatalogStore, Depends(catalog_store)]
Ledger = Annotated[LedgerStore, Depends(ledger_store)]
Planning = Annotated[PlanningStore, Depends(planning_store)]
Picks = Annotated[PickStore, Depends(pick_store)]
CanRecordPicks = Annotated[Principal, Depends(allow("picks.record"))]
Limit = Annotated[int, Query(ge=1, le=10_000)]
R = TypeVar("R")


def _same(name: str, body: object, path: object) -> None:
    """The body must name the record the path names."""
    if body != path:
        message = f"{name} in the body ({body}) differs from the path ({path})"
        raise invalid(("body", name), message, body)


def _maybe(get: Callable[..., R], *key: object) -> R | None:
    """The record as stored before a create-or-replace, None when it is new."""
    try:
        return get(*key)
    except NotFoundError:
        return None


# ------------------------------------------------------------------------------ SKUs


@router.get("/skus")
def list_skus(catalog: Catalog, who: CanRead) -> list[Sku]:
    """Every SKU."""
    return catalog.skus()


@router.post("/skus", status_code=201, responses=answers(400, 409))
def create_sku(body: SkuRequest, catalog: Catalog, who: CanEditCatalog, conn: Connection) -> Sku:
    """Add a SKU (409 if the id or the GTIN exists)."""
    check_site(who, None, "the catalog")
    try:
        catalog.get_sku(body.sku)
    except NotFoundError:
        created = catalog.put_sku(body)
        audit(conn, who, "sku.create", f"sku {created.sku}", after=created)
        return created
    raise ConflictError(f"SKU {body.sku} already exists")


@router.get("/skus/{sku}", responses=answers(404))
def get_sku(sku: Segment, catalog: Catalog, who: CanRead) -> Sku:
    """One SKU."""
    return catalog.get_sku(sku)


@router.get("/skus/{sku}/forecast", responses=answers(404))
def get_sku_forecast(
    sku: Segment,
    site: Annotated[str, Query(pattern=IDENT_PATTERN, description="The site planned for")],
    catalog: Catalog,
    who: CanRead,
    conn: Connection,
) -> StoredForecast:
    """The stored forecast levels of a ``forecast`` SKU at a site: model, demand class, daily
    forecast, safety stock, reorder point, backtest figures and fallback, refreshed daily
    (404 for an unknown SKU, or before the rules have planned it there)."""
    check_site(who, site, "the forecast")
    catalog.get_sku(sku)
    return ForecastStore(conn).get(site, sku)


@router.put("/skus/{sku}", responses=answers(400, 409))
def put_sku(
    sku: Segment, body: SkuRequest, catalog: Catalog, who: CanEditCatalog, conn: Connection
) -> Sku:
    """Create or replace a SKU (409 if another SKU has the GTIN)."""
    _same("sku", body.sku, sku)
    check_site(who, None, "the catalog")
    before = _maybe(catalog.get_sku, sku)
    after = catalog.put_sku(body)
    audit(conn, who, "sku.put", f"sku {sku}", before=before, after=after)
    return after


@router.delete("/skus/{sku}", status_code=204, responses=answers(404, 409))
def delete_sku(sku: Segment, catalog: Catalog, who: CanEditCatalog, conn: Connection) -> Response:
    """Delete a SKU no shelf or lot refers to."""
    check_site(who, None, "the catalog")
    before = catalog.get_sku(sku)
    catalog.delete_sku(sku)
    audit(conn, who, "sku.delete", f"sku {sku}", before=before)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ shelves


@router.get("/shelves")
def list_shelves(catalog: Catalog, who: CanRead, site: IdentFilter = None) -> list[Shelf]:
    """Shelf cell bindings."""
    site_filters(who, site)
    return visible(who, catalog.shelves(site))


@router.put("/shelves/{site}/{device}/{cell}", responses=answers(400, 404))
def put_shelf(
    *,
    site: Segment,
    device: Segment,
    cell: Segment,
    body: ShelfRequest,
    catalog: Catalog,
    who: CanEditCatalog,
    conn: Connection,
) -> Shelf:
    """Bind a shelf cell to a SKU (create or replace; 404 if the SKU does not exist)."""
    _same("site", body.site, site)
    _same("device", body.device, device)
    _same("cell", body.cell, cell)
    check_site(who, site, "the shelf")
    before = _maybe(catalog.get_shelf, site, device, cell)
    after = catalog.put_shelf(body)
    target = f"shelf {site}/{device}/{cell}"
    audit(conn, who, "shelf.put", target, site=site, before=before, after=after)
    return after


@router.get("/shelves/{site}/{device}/{cell}", responses=answers(404))
def get_shelf(
    site: Segment, device: Segment, cell: Segment, catalog: Catalog, who: CanRead
) -> Shelf:
    """One shelf cell binding."""
    check_site(who, site, "the shelf")
    return catalog.get_shelf(site, device, cell)


@router.delete("/shelves/{site}/{device}/{cell}", status_code=204, responses=answers(404))
def delete_shelf(
    *,
    site: Segment,
    device: Segment,
    cell: Segment,
    catalog: Catalog,
    who: CanEditCatalog,
    conn: Connection,
) -> Response:
    """Unbind a shelf cell."""
    check_site(who, site, "the shelf")
    before = catalog.get_shelf(site, device, cell)
    catalog.delete_shelf(site, device, cell)
    audit(conn, who, "shelf.delete", f"shelf {site}/{device}/{cell}", site=site, before=before)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ RFID zones


@router.get("/rfid-zones")
def list_rfid_zones(catalog: Catalog, who: CanRead, site: IdentFilter = None) -> list[RfidZone]:
    """Reader antenna bindings."""
    site_filters(who, site)
    return visible(who, catalog.rfid_zones(site))


@router.put("/rfid-zones/{site}/{device}/{antenna}", responses=answers(400))
def put_rfid_zone(
    *,
    site: Segment,
    device: Segment,
    antenna: Antenna,
    body: RfidZoneRequest,
    catalog: Catalog,
    who: CanEditCatalog,
    conn: Connection,
) -> RfidZone:
    """Bind a reader antenna to a zone (create or replace)."""
    _same("site", body.site, site)
    _same("device", body.device, device)
    _same("antenna", body.antenna, antenna)
    check_site(who, site, "the reader")
    before = _maybe(catalog.get_rfid_zone, site, device, antenna)
    after = catalog.put_rfid_zone(body)
    target = f"rfid-zone {site}/{device}/{antenna}"
    audit(conn, who, "rfid_zone.put", target, site=site, before=before, after=after)
    return after


@router.get("/rfid-zones/{site}/{device}/{antenna}", responses=answers(404))
def get_rfid_zone(
    site: Segment, device: Segment, antenna: Antenna, catalog: Catalog, who: CanRead
) -> RfidZone:
    """One antenna binding."""
    check_site(who, site, "the reader")
    return catalog.get_rfid_zone(site, device, antenna)


@router.delete("/rfid-zones/{site}/{device}/{antenna}", status_code=204, responses=answers(404))
def delete_rfid_zone(
    *,
    site: Segment,
    device: Segment,
    antenna: Antenna,
    catalog: Catalog,
    who: CanEditCatalog,
    conn: Connection,
) -> Response:
    """Unbind a reader antenna."""
    check_site(who, site, "the reader")
    before = catalog.get_rfid_zone(site, device, antenna)
    catalog.delete_rfid_zone(site, device, antenna)
    target = f"rfid-zone {site}/{device}/{antenna}"
    audit(conn, who, "rfid_zone.delete", target, site=site, before=before)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ lots


@router.get("/lots")
def list_lots(
    ledger: Ledger,
    who: CanRead,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    in_stock: bool = False,
) -> list[Lot]:
    """Lots in FEFO order (per-lot stock)."""
    site_filters(who, site)
    return visible(who, ledger.lots(site=site, sku=sku, in_stock=in_stock))


@router.post("/lots", status_code=201, responses=answers(400, 404, 409))
def create_lot(body: LotRequest, ledger: Ledger, who: CanEditLots, conn: Connection) -> Lot:
    """Register a lot of a known SKU; its quantity is booked as a receipt."""
    check_site(who, body.site, "the lot")
    created = ledger.add_lot(body, ts_ms=now_ms())
    audit(conn, who, "lot.create", f"lot {created.id}", site=created.site, after=created)
    return created


@router.get("/lots/{lot_id}", responses=answers(404))
def get_lot(lot_id: RowId, ledger: Ledger, who: CanRead) -> Lot:
    """One lot."""
    found = ledger.get_lot(lot_id)
    check_site(who, found.site, f"lot {lot_id}")
    return found


@router.patch("/lots/{lot_id}", responses=answers(400, 404))
def update_lot(
    lot_id: RowId, body: LotChange, ledger: Ledger, who: CanEditLots, conn: Connection
) -> Lot:
    """Change dates or location; a new quantity is booked as an adjustment."""
    before = ledger.get_lot(lot_id)
    check_site(who, before.site, f"lot {lot_id}")
    after = ledger.update_lot(lot_id, body, ts_ms=now_ms())
    audit(conn, who, "lot.update", f"lot {lot_id}", site=after.site, before=before, after=after)
    return after


@router.delete("/lots/{lot_id}", status_code=204, responses=answers(404, 409))
def delete_lot(lot_id: RowId, ledger: Ledger, who: CanEditLots, conn: Connection) -> Response:
    """Delete an empty lot (409 while it holds stock)."""
    before = ledger.get_lot(lot_id)
    check_site(who, before.site, f"lot {lot_id}")
    ledger.delete_lot(lot_id)
    audit(conn, who, "lot.delete", f"lot {lot_id}", site=before.site, before=before)
    return Response(status_code=204)


# ------------------------------------------------------------------------------ stock


@router.get("/stock")
def stock_levels(
    ledger: Ledger,
    who: CanRead,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    location: IdentFilter = None,
) -> list[StockLevel]:
    """Stock per (site, location, SKU)."""
    site_filters(who, site)
    return visible(who, ledger.stock(site=site, sku=sku, location=location))


@router.get("/movements")
def movements(
    ledger: Ledger,
    who: CanRead,
    *,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    kind: MovementKind | None = None,
    since: EpochFilter = None,
    until: EpochFilter = None,
    limit: Limit = 1000,
) -> list[LedgerEntry]:
    """Ledger movements, oldest first."""
    found = [
        entry
        for where in site_filters(who, site)
        for entry in ledger.ledger(
            site=where,
            sku=sku,
            since_ms=since,
            until_ms=until,
            kinds=(kind,) if kind else (),
            limit=limit,
        )
    ]
    found.sort(key=lambda e: (e.ts, e.id))
    return found[:limit]


# ------------------------------------------------------------------------------ suggestions


@router.get("/suggestions")
def list_suggestions(
    planning: Planning,
    who: CanRead,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    state: SuggestionState | None = None,
) -> list[Suggestion]:
    """Purchase suggestions, oldest first."""
    site_filters(who, site)
    return visible(who, planning.suggestions(site=site, sku=sku, state=state))


@router.get("/suggestions/{suggestion_id}", responses=answers(404))
def get_suggestion(suggestion_id: RowId, planning: Planning, who: CanRead) -> Suggestion:
    """One suggestion."""
    found = planning.get_suggestion(suggestion_id)
    check_site(who, found.site, f"suggestion {suggestion_id}")
    return found


@router.post("/suggestions/{suggestion_id}/{step}", responses=answers(400, 404, 409))
def move_suggestion(
    *,
    suggestion_id: RowId,
    step: Literal["ordered", "received", "cancelled"],
    planning: Planning,
    who: CanPurchase,
    conn: Connection,
    body: Transition | None = None,
) -> Suggestion:
    """suggested → ordered → received, or cancelled; other steps, and a suggestion an open
    requisition handles, answer 409."""
    body = body or Transition()
    before = planning.get_suggestion(suggestion_id)
    check_site(who, before.site, f"suggestion {suggestion_id}")
    requisition = RequisitionStore(conn).open_for_suggestion(suggestion_id)
    if requisition is not None:
        # The requisition orders and receives it; moving the suggestion too would book twice.
        raise HTTPException(
            status_code=409,
            detail=f"suggestion {suggestion_id} is handled by requisition {requisition}:"
            " move the requisition instead",
        )
    after = planning.transition_suggestion(
        suggestion_id, step, ts_ms=now_ms(), eta_ms=body.eta, location=body.location
    )
    target = f"suggestion {suggestion_id}"
    audit(conn, who, f"suggestion.{step}", target, site=after.site, before=before, after=after)
    return after


# ------------------------------------------------------------------------------ demand, inbound


@router.get("/demand")
def list_demand(
    planning: Planning,
    who: CanRead,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    status: DemandStatus | None = None,
) -> list[Demand]:
    """Demand lines by due date."""
    site_filters(who, site)
    return visible(who, planning.demand(site=site, sku=sku, status=status))


@router.post("/demand", status_code=201, responses=answers(400, 404))
def add_demand(
    body: DemandRequest, planning: Planning, who: CanPurchase, conn: Connection
) -> Demand:
    """Add a confirmed sales or production order line of a known SKU."""
    check_site(who, body.site, "the demand line")
    created = planning.add_demand(body, ts_ms=now_ms())
    audit(conn, who, "demand.create", f"demand {created.id}", site=created.site, after=created)
    return created


@router.post("/demand/{demand_id}/{step}", responses=answers(404, 409))
def close_demand(
    demand_id: RowId,
    step: Literal["fulfilled", "cancelled"],
    planning: Planning,
    who: CanPurchase,
    conn: Connection,
) -> Demand:
    """Close a confirmed line (409 if it is closed already)."""
    before = planning.get_demand(demand_id)
    check_site(who, before.site, f"demand {demand_id}")
    after = planning.set_demand_status(demand_id, step, ts_ms=now_ms())
    target = f"demand {demand_id}"
    audit(conn, who, f"demand.{step}", target, site=after.site, before=before, after=after)
    return after


@router.get("/inbound")
def list_inbound(
    planning: Planning,
    who: CanRead,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    status: InboundStatus | None = None,
) -> list[Inbound]:
    """Open purchase orders and shipments in transit, by ETA."""
    site_filters(who, site)
    return visible(who, planning.inbound(site=site, sku=sku, status=status))


@router.post("/inbound", status_code=201, responses=answers(400, 404))
def add_inbound(
    body: InboundRequest, planning: Planning, who: CanPurchase, conn: Connection
) -> Inbound:
    """Record an open purchase order or a shipment in transit of a known SKU."""
    check_site(who, body.site, "the inbound line")
    created = planning.add_inbound(body, ts_ms=now_ms())
    audit(conn, who, "inbound.create", f"inbound {created.id}", site=created.site, after=created)
    return created


# ------------------------------------------------------------------------------ picks

Ref = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_NUL)]


class PickRequest(PickIn):
    """One pick: ``qty`` of ``sku`` left the site's shelves (``location``, when known) at ``ts``;
    ``ref`` is the picker's or WMS's id of it (recording it again changes nothing)."""

    model_config = STRICT

    qty: Quantity
    ref: Ref
    ts: Timestamp


class PickLineRequest(PickLine):
    """A line of a pick list; ``ts`` defaults to the list's, ``ref`` to ``<list ref>#<n>``."""

    model_config = STRICT

    qty: Quantity
    ts: Timestamp | None = None
    ref: Ref | None = None


class PickListRequest(PickListIn):
    """A pick list from a WMS; ``ref`` is its idempotency key at the site."""

    model_config = STRICT

    ref: Ref
    ts: Timestamp
    lines: list[PickLineRequest] = Field(min_length=1, max_length=1000)  # type: ignore[assignment]


REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"model": Pick, "description": "Recorded before with the same content: nothing changed"}
}


@router.get("/picks")
def list_picks(
    picks: Picks,
    who: CanRead,
    *,
    site: IdentFilter = None,
    sku: IdentFilter = None,
    status: PickStatus | None = None,
    since: EpochFilter = None,
    until: EpochFilter = None,
    limit: Limit = 1000,
) -> list[Pick]:
    """Recorded picks by time: ``pending`` (not yet seen by the rules), ``expected`` (a shelf
    tracks the SKU; waiting for its drop), ``matched`` (drops explained it), ``booked``."""
    found = [
        pick
        for where in site_filters(who, site)
        for pick in picks.picks(
            site=where, sku=sku, status=status, since_ms=since, until_ms=until, limit=limit
        )
    ]
    found.sort(key=lambda p: (p.ts, p.id))
    return found[:limit]


@router.post("/picks", status_code=201, responses={**answers(400, 404, 409), **REPLAYED})
def record_pick(
    body: PickRequest, picks: Picks, who: CanRecordPicks, conn: Connection, response: Response
) -> Pick:
    """Record a pick (404 for an unknown SKU, 409 if its ref was recorded with other content).

    The rules match it to the shelf's weight drop, so the ledger books the movement once; a SKU
    no shelf tracks has the pick booked as its outflow (docs/picks.md).
    """
    check_site(who, body.site, "the pick")
    pick, created = picks.record(body, recorded_by=who.name, ts_ms=now_ms())
    if not created:
        response.status_code = 200
        return pick
    audit(conn, who, "pick.record", f"pick {pick.id}", site=pick.site, after=pick)
    return pick


LIST_REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"model": PickList, "description": "Delivered before with the same lines: nothing booked"}
}


@router.post("/pick-lists", status_code=201, responses={**answers(400, 404, 409), **LIST_REPLAYED})
def record_pick_list(
    body: PickListRequest,
    picks: Picks,
    who: CanRecordPicks,
    conn: Connection,
    response: Response,
) -> PickList:
    """A WMS's pick list by webhook, with an API token: a pick per line, in one transaction.

    ``ref`` is the idempotency key: the same list delivered again answers 200 with what was
    recorded and books nothing; the same ref with other lines is a 409.
    """
    if who.via == "session":
        raise HTTPException(
            status_code=403,
            detail="pick lists are delivered with an API token (Authorization: Bearer)",
        )
    check_site(who, body.site, "the pick list")
    recorded, created = picks.record_list(body, recorded_by=who.name, ts_ms=now_ms())
    if not created:
        response.status_code = 200
        return recorded
    summary = {
        "ref": recorded.ref,
        "site": recorded.site,
        "lines": len(recorded.picks),
        "picks": [p.id for p in recorded.picks],
    }
    target = f"pick list {recorded.site}/{recorded.ref}"
    audit(conn, who, "pick_list.record", target, site=recorded.site, after=summary)
    return recorded
