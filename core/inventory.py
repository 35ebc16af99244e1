"""Inventory records and their relational store: catalog, sensor bindings, lots, stock ledger,
purchase suggestions, confirmed demand and inbound orders.

Shared by the rules (which book sensor movements and suggestions) and the API (which manages
the catalog and reads stock). Every stock change goes through :meth:`InventoryStore.record`,
which writes the ledger row and updates the stock (and lot) quantity in one transaction, so the
ledger always sums to the stock.
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.epc import gtin_check_digit
from core.errors import StockSenseError

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000

Policy = Literal["min_max", "dynamic"]
ZoneRole = Literal["storage", "receiving", "shipping"]
MovementKind = Literal["pick", "put", "receipt", "issue", "adjust"]
MovementSource = Literal["sensor", "api", "seed"]
SuggestionState = Literal["suggested", "ordered", "received", "cancelled"]
DemandKind = Literal["sales", "production"]
DemandStatus = Literal["confirmed", "fulfilled", "cancelled"]
InboundStatus = Literal["open", "received", "cancelled"]

RECEIVING_LOCATION = "receiving"  # where API receipts land unless a location is given
OUTFLOW_KINDS: tuple[MovementKind, ...] = ("pick", "issue")
DREW_EXPIRED = "drew_expired"  # ref note of a ledger row that took stock past its removal date
_QTY_EPS = 1e-9  # float noise in unit quantities

SUGGESTION_TRANSITIONS: dict[SuggestionState, frozenset[SuggestionState]] = {
    "suggested": frozenset({"ordered", "cancelled"}),
    "ordered": frozenset({"received", "cancelled"}),
    "received": frozenset(),
    "cancelled": frozenset(),
}


class InventoryStoreError(StockSenseError):
    """Base class of the inventory store's errors."""


class NotFoundError(InventoryStoreError, KeyError):
    """The record does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class ConflictError(InventoryStoreError):
    """The change conflicts with the stored state (a lifecycle step, a reference in use)."""


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (only for audit columns, never for rules)."""
    return time.time_ns() // 1_000_000


# --------------------------------------------------------------------------- value types


def _gtin(value: str) -> str:
    if not value.isdigit() or len(value) not in (8, 12, 13, 14):
        raise PydanticCustomError(
            "gtin_format", "must be 8, 12, 13 or 14 digits, got {value}", {"value": repr(value)}
        )
    value = value.zfill(14)
    expected = gtin_check_digit(value[:13])
    if int(value[13]) != expected:
        raise PydanticCustomError(
            "gtin_check_digit",
            "check digit is {got}, expected {expected}",
            {"got": int(value[13]), "expected": expected},
        )
    return value


def _epoch_ms(value: object) -> object:
    """Accept epoch ms, ISO 8601 text, dates (midnight UTC) and datetimes (naive = UTC)."""
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError(
                "timestamp",
                "not an ISO 8601 date/time or epoch ms: {value}",
                {"value": repr(value)},
            ) from None
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return int(aware.timestamp() * 1000)
    if isinstance(value, dt.date):
        return (
            int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()) * 1000
        )
    return value


Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/\-]{1,64}$")]
Gtin = Annotated[str, AfterValidator(_gtin)]
EpochMs = Annotated[int, BeforeValidator(_epoch_ms), Field(ge=0)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Record(BaseModel):
    """Strict base: unknown keys are mistakes, not extensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Stored(BaseModel):
    """Base of records read back from the store (audit columns are not part of them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# --------------------------------------------------------------------------- catalog


class Sku(Record):
    """A stock-keeping unit with its weight, cost, lead time and replenishment policy.

    ``policy`` ``min_max`` orders up to ``max_qty`` when projected < ``min_qty`` (Odoo), or, when
    ``reorder_level`` is set, follows ERPNext (below the level, order max(reorder_qty, gap)).
    ``dynamic`` computes safety stock and reorder point from the ledger's daily outflows and
    orders at or below the reorder point.
    """

    sku: Ident
    gtin: Gtin | None = None
    name: str = ""
    unit_grams: Positive | None = None
    weight_tolerance: float = Field(default=0.2, gt=0, lt=0.5)
    unit_cost: NonNegative = 0.0
    lead_time_days: NonNegative = 7.0
    lead_time_sigma_days: NonNegative = 0.0
    service_level: float = Field(default=0.95, gt=0, lt=1)
    policy: Policy = "min_max"
    min_qty: NonNegative = 0.0
    max_qty: NonNegative = 0.0
    reorder_level: NonNegative | None = None
    reorder_qty: NonNegative | None = None
    pack_multiple: NonNegative = 1.0
    supplier: str | None = None
    home_zone: Ident | None = None

    @model_validator(mode="after")
    def _levels(self) -> Sku:
        if self.max_qty < self.min_qty:
            raise PydanticCustomError(
                "levels",
                "max_qty ({max}) must not be below min_qty ({min})",
                {"max": self.max_qty, "min": self.min_qty},
            )
        return self


class Shelf(Record):
    """A weight-shelf cell bound to the SKU it holds; ``location`` defaults to ``device/cell``."""

    site: Ident
    device: Ident
    cell: Ident
    sku: Ident
    tare_grams: float = Field(default=0.0, allow_inf_nan=False)
    location: Ident | None = None

    @property
    def location_id(self) -> str:
        """Where the cell's stock is booked."""
        return self.location or f"{self.device}/{self.cell}"


class RfidZone(Record):
    """A reader antenna bound to a zone; receiving/shipping zones book receipts and issues."""

    site: Ident
    device: Ident
    antenna: int = Field(default=1, ge=1, le=64)
    zone: Ident
    role: ZoneRole = "storage"


class LotIn(Record):
    """A lot of a SKU at a location, with Odoo's four lot dates (epoch ms or ISO dates)."""

    lot: Ident
    sku: Ident
    site: Ident
    location: Ident
    qty: NonNegative = 0.0
    received_at: EpochMs | None = None
    expiration_at: EpochMs | None = None
    best_before_at: EpochMs | None = None
    removal_at: EpochMs | None = None
    alert_at: EpochMs | None = None


class Lot(LotIn):
    """A stored lot."""

    id: int
    updated_at: int

    @property
    def effective_removal_at(self) -> int | None:
        """Removal date, or the expiration date when no removal date is set."""
        return self.removal_at if self.removal_at is not None else self.expiration_at

    def is_available(self, at_ms: int) -> bool:
        """Stock counts as available until its (effective) removal date."""
        removal = self.effective_removal_at
        return self.qty > 0 and (removal is None or at_ms < removal)


class LotUpdate(Record):
    """Fields of a lot that may change; a new ``qty`` is booked as an adjustment."""

    location: Ident | None = None
    qty: NonNegative | None = None
    expiration_at: EpochMs | None = None
    best_before_at: EpochMs | None = None
    removal_at: EpochMs | None = None
    alert_at: EpochMs | None = None


# --------------------------------------------------------------------------- stock


class StockLevel(Stored):
    """Quantity of a SKU at one location of a site."""

    site: str
    location: str
    sku: str
    qty: float
    updated_at: int


class LedgerEntry(Stored):
    """One stock movement: positive quantities come in, negative go out."""

    id: int
    ts: int
    site: str
    location: str
    sku: str
    lot: str | None
    qty: float
    kind: MovementKind
    source: MovementSource
    ref: str | None

    @property
    def drew_expired(self) -> bool:
        """True when the row took stock past its removal date (nothing else covered it)."""
        return self.ref is not None and DREW_EXPIRED in self.ref.split("; ")


class Suggestion(Stored):
    """A purchase suggestion: suggested → ordered → received, or cancelled before receipt."""

    id: int
    site: str
    sku: str
    qty: float
    state: SuggestionState
    reason: str
    projected: float
    trigger_level: float
    created_at: int
    updated_at: int


class DemandIn(Record):
    """A confirmed sales or production order line."""

    site: Ident
    sku: Ident
    qty: Positive
    due_at: EpochMs
    kind: DemandKind = "sales"
    ref: str | None = Field(default=None, max_length=128)


class Demand(DemandIn):
    """A stored demand line."""

    id: int
    status: DemandStatus
    created_at: int


class InboundIn(Record):
    """An open purchase order or shipment in transit; ``eta`` None = arrival date unknown."""

    site: Ident
    sku: Ident
    qty: Positive
    eta: EpochMs | None = None
    ref: str | None = Field(default=None, max_length=128)


class Inbound(InboundIn):
    """A stored inbound line."""

    id: int
    status: InboundStatus
    suggestion_id: int | None
    created_at: int


class SkuReport(Stored):
    """Ageing figures of one SKU at one site over the report period."""

    site: str
    sku: str
    stock: float
    avg_daily_outflow: float
    days_on_hand: float | None
    days_of_supply: float | None
    turnover: float | None
    days_since_outflow: float | None
    dead: bool
    value: float


# --------------------------------------------------------------------------- store


def _row(row: sqlite3.Row) -> dict[str, Any]:
    return dict(row)


class InventoryStore:
    """Catalog, stock and planning records over one database connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The underlying connection."""
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; nested use joins the outer one."""
        if self._conn.in_transaction:
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- SKUs -------------------------------------------------------------------------------

    def put_sku(self, sku: Sku) -> Sku:
        """Create or replace a SKU."""
        data = sku.model_dump()
        stamp = now_ms()
        cols = list(data)
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "sku")
        try:
            self._conn.execute(
                f"INSERT INTO inv_skus ({', '.join(cols)}, created_at, updated_at) "  # noqa: S608 - columns come from the model
                f"VALUES ({', '.join('?' for _ in cols)}, ?, ?) "
                f"ON CONFLICT (sku) DO UPDATE SET {sets}, updated_at = excluded.updated_at",
                (*data.values(), stamp, stamp),
            )
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"SKU {sku.sku}: {_integrity(exc)}") from None
        return sku

    def get_sku(self, sku: str) -> Sku:
        """One SKU (``NotFoundError`` if unknown)."""
        row = self._conn.execute("SELECT * FROM inv_skus WHERE sku = ?", (sku,)).fetchone()
        if row is None:
            raise NotFoundError(f"SKU {sku} does not exist")
        return _sku(row)

    def skus(self) -> builtins.list[Sku]:
        """Every SKU, by id."""
        return [_sku(r) for r in self._conn.execute("SELECT * FROM inv_skus ORDER BY sku")]

    def delete_sku(self, sku: str) -> None:
        """Delete a SKU no shelf or lot refers to."""
        self.get_sku(sku)
        try:
            self._conn.execute("DELETE FROM inv_skus WHERE sku = ?", (sku,))
        except sqlite3.IntegrityError:
            raise ConflictError(f"SKU {sku} is still bound to shelves or lots") from None

    # -- shelves ------------------------------------------------------------------------------

    def put_shelf(self, shelf: Shelf) -> Shelf:
        """Create or replace the binding of a shelf cell."""
        self.get_sku(shelf.sku)
        self._conn.execute(
            """INSERT INTO inv_shelves (site, device, cell, sku, tare_grams, location, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (site, device, cell) DO UPDATE SET sku = excluded.sku,
               tare_grams = excluded.tare_grams, location = excluded.location,
               updated_at = excluded.updated_at""",
            (
                shelf.site,
                shelf.device,
                shelf.cell,
                shelf.sku,
                shelf.tare_grams,
                shelf.location_id,
                now_ms(),
            ),
        )
        return shelf.model_copy(update={"location": shelf.location_id})

    def get_shelf(self, site: str, device: str, cell: str) -> Shelf:
        """One shelf cell binding."""
        row = self._conn.execute(
            "SELECT * FROM inv_shelves WHERE site = ? AND device = ? AND cell = ?",
            (site, device, cell),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"shelf {site}/{device}/{cell} does not exist")
        return _shelf(row)

    def shelves(self, site: str | None = None) -> builtins.list[Shelf]:
        """Shelf cell bindings, optionally of one site."""
        sql, params = _where("SELECT * FROM inv_shelves", site=site)
        rows = self._conn.execute(sql + " ORDER BY site, device, cell", params)
        return [_shelf(r) for r in rows]

    def delete_shelf(self, site: str, device: str, cell: str) -> None:
        """Unbind a shelf cell."""
        self.get_shelf(site, device, cell)
        self._conn.execute(
            "DELETE FROM inv_shelves WHERE site = ? AND device = ? AND cell = ?",
            (site, device, cell),
        )

    # -- RFID zones ---------------------------------------------------------------------------

    def put_rfid_zone(self, zone: RfidZone) -> RfidZone:
        """Create or replace the zone of a reader antenna."""
        self._conn.execute(
            """INSERT INTO inv_rfid_zones (site, device, antenna, zone, role, updated_at)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (site, device, antenna) DO UPDATE SET zone = excluded.zone,
               role = excluded.role, updated_at = excluded.updated_at""",
            (zone.site, zone.device, zone.antenna, zone.zone, zone.role, now_ms()),
        )
        return zone

    def get_rfid_zone(self, site: str, device: str, antenna: int) -> RfidZone:
        """One antenna binding."""
        row = self._conn.execute(
            "SELECT * FROM inv_rfid_zones WHERE site = ? AND device = ? AND antenna = ?",
            (site, device, antenna),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"RFID antenna {site}/{device}/{antenna} does not exist")
        return _zone(row)

    def rfid_zones(self, site: str | None = None) -> builtins.list[RfidZone]:
        """Antenna bindings, optionally of one site."""
        sql, params = _where("SELECT * FROM inv_rfid_zones", site=site)
        rows = self._conn.execute(sql + " ORDER BY site, device, antenna", params)
        return [_zone(r) for r in rows]

    def delete_rfid_zone(self, site: str, device: str, antenna: int) -> None:
        """Unbind a reader antenna."""
        self.get_rfid_zone(site, device, antenna)
        self._conn.execute(
            "DELETE FROM inv_rfid_zones WHERE site = ? AND device = ? AND antenna = ?",
            (site, device, antenna),
        )

    # -- lots ---------------------------------------------------------------------------------

    def add_lot(self, lot: LotIn, *, ts_ms: int, source: MovementSource = "api") -> Lot:
        """Register a lot; its quantity is booked as a receipt at its location."""
        self.get_sku(lot.sku)
        data = lot.model_dump()
        qty = data.pop("qty")
        cols = list(data)
        with self.transaction():
            try:
                cur = self._conn.execute(
                    f"INSERT INTO inv_lots ({', '.join(cols)}, qty, updated_at) "  # noqa: S608 - columns come from the model
                    f"VALUES ({', '.join('?' for _ in cols)}, 0, ?)",
                    (*data.values(), now_ms()),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(
                    f"lot {lot.lot} of {lot.sku} already exists at {lot.site}"
                ) from None
            lot_id = int(cur.lastrowid or 0)
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
        return Lot.model_validate(_row(row))

    def lots(
        self, *, site: str | None = None, sku: str | None = None, in_stock: bool = False
    ) -> builtins.list[Lot]:
        """Lots, optionally filtered, in FEFO order (earliest removal first, undated last)."""
        sql, params = _where("SELECT * FROM inv_lots", site=site, sku=sku)
        if in_stock:
            sql += (" AND" if params else " WHERE") + " qty > 0"
        rows = self._conn.execute(
            sql + " ORDER BY COALESCE(removal_at, expiration_at) IS NULL,"
            " COALESCE(removal_at, expiration_at), received_at, lot",
            params,
        )
        return [Lot.model_validate(_row(r)) for r in rows]

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
            cur = self._conn.execute(
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
                    """UPDATE inv_lots SET qty = MAX(qty + ?, 0), updated_at = ?
                       WHERE site = ? AND sku = ? AND lot = ?""",
                    (qty, stamp, site, sku, lot),
                )
        return LedgerEntry(
            id=int(cur.lastrowid or 0),
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
        *,
        ts_ms: int,
        site: str,
        location: str,
        sku: str,
        qty: float,
        kind: MovementKind,
        source: MovementSource,
        ref: str | None = None,
    ) -> builtins.list[LedgerEntry]:
        """Book ``qty`` (> 0) leaving ``location``, drawn from that location's stock only.

        Drawing order: lots at ``location`` not past their (effective) removal date, FEFO
        (earliest removal first, undated last); then stock at ``location`` held in no lot;
        then, only if the movement is still not covered, lots past their removal date, whose
        rows carry the ``drew_expired`` note in ``ref``. Lots at other locations are never
        touched: stock changes place only through a movement of its own (a lot move).
        What the location did not hold is booked without a lot, so its stock goes below zero
        and shows the shortfall until a count corrects it; lot quantities always stay within
        their location's stock. One ledger row per lot touched, at most one without a lot.
        """
        remaining = qty
        entries: builtins.list[LedgerEntry] = []
        with self.transaction():
            here = [
                lot
                for lot in self.lots(site=site, sku=sku, in_stock=True)
                if lot.location == location
            ]
            fresh = [lot for lot in here if lot.is_available(ts_ms)]
            expired = [lot for lot in here if not lot.is_available(ts_ms)]
            in_lots = sum(lot.qty for lot in here)
            loose = max(self.qty_at(site, location, sku) - in_lots, 0.0)
            unlotted = 0.0
            for lot in fresh:
                if remaining <= _QTY_EPS:
                    break
                take = min(lot.qty, remaining)
                entries.append(
                    self._draw(
                        lot, take, ts_ms=ts_ms, location=location, kind=kind, source=source, ref=ref
                    )
                )
                remaining -= take
            take = min(loose, max(remaining, 0.0))
            unlotted += take
            remaining -= take
            for lot in expired:
                if remaining <= _QTY_EPS:
                    break
                take = min(lot.qty, remaining)
                logger.warning(
                    "%g of %s at %s/%s drawn from lot %s past its removal date:"
                    " nothing else there covered it",
                    take,
                    sku,
                    site,
                    location,
                    lot.lot,
                )
                noted = f"{ref}; {DREW_EXPIRED}" if ref else DREW_EXPIRED
                entries.append(
                    self._draw(
                        lot,
                        take,
                        ts_ms=ts_ms,
                        location=location,
                        kind=kind,
                        source=source,
                        ref=noted,
                    )
                )
                remaining -= take
            if remaining > _QTY_EPS:
                logger.info(
                    "%g of %s left %s/%s beyond its booked stock: booked without a lot",
                    remaining,
                    sku,
                    site,
                    location,
                )
                unlotted += remaining
            if unlotted > _QTY_EPS:
                entries.append(
                    self.record(
                        ts_ms=ts_ms,
                        site=site,
                        location=location,
                        sku=sku,
                        qty=-unlotted,
                        kind=kind,
                        source=source,
                        ref=ref,
                    )
                )
        return entries

    def _draw(
        self,
        lot: Lot,
        qty: float,
        *,
        ts_ms: int,
        location: str,
        kind: MovementKind,
        source: MovementSource,
        ref: str | None,
    ) -> LedgerEntry:
        return self.record(
            ts_ms=ts_ms,
            site=lot.site,
            location=location,
            sku=lot.sku,
            qty=-qty,
            kind=kind,
            source=source,
            lot=lot.lot,
            ref=ref,
        )

    def stock(
        self, *, site: str | None = None, sku: str | None = None, location: str | None = None
    ) -> builtins.list[StockLevel]:
        """Stock per (site, location, SKU)."""
        sql, params = _where("SELECT * FROM inv_stock", site=site, sku=sku, location=location)
        rows = self._conn.execute(sql + " ORDER BY site, location, sku", params)
        return [StockLevel.model_validate(_row(r)) for r in rows]

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
        sql, params = _where("SELECT * FROM inv_ledger", site=site, sku=sku, source=source)
        clauses: builtins.list[str] = []
        if since_ms is not None:
            clauses.append("ts >= ?")
            params.append(since_ms)
        if until_ms is not None:
            clauses.append("ts <= ?")
            params.append(until_ms)
        if kinds:
            clauses.append(f"kind IN ({', '.join('?' for _ in kinds)})")
            params.extend(kinds)
        if clauses:
            sql += (" AND " if "WHERE" in sql else " WHERE ") + " AND ".join(clauses)
        rows = self._conn.execute(sql + " ORDER BY ts, id LIMIT ?", (*params, limit))
        return [LedgerEntry.model_validate(_row(r)) for r in rows]

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

    # -- suggestions --------------------------------------------------------------------------

    def suggestions(
        self,
        *,
        site: str | None = None,
        sku: str | None = None,
        state: SuggestionState | None = None,
    ) -> builtins.list[Suggestion]:
        """Suggestions, oldest first."""
        sql, params = _where("SELECT * FROM inv_suggestions", site=site, sku=sku, state=state)
        rows = self._conn.execute(sql + " ORDER BY id", params)
        return [Suggestion.model_validate(_row(r)) for r in rows]

    def open_suggestions(self, site: str, sku: str) -> builtins.list[Suggestion]:
        """Suggested or ordered purchases of a SKU at a site."""
        rows = self._conn.execute(
            """SELECT * FROM inv_suggestions WHERE site = ? AND sku = ?
               AND state IN ('suggested', 'ordered') ORDER BY id""",
            (site, sku),
        )
        return [Suggestion.model_validate(_row(r)) for r in rows]

    def get_suggestion(self, suggestion_id: int) -> Suggestion:
        """One suggestion."""
        row = self._conn.execute(
            "SELECT * FROM inv_suggestions WHERE id = ?", (suggestion_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"suggestion {suggestion_id} does not exist")
        return Suggestion.model_validate(_row(row))

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
        cur = self._conn.execute(
            """INSERT INTO inv_suggestions (site, sku, qty, reason, projected, trigger_level,
               created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (site, sku, qty, reason, projected, trigger_level, ts_ms, ts_ms),
        )
        return self.get_suggestion(int(cur.lastrowid or 0))

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
    ) -> Suggestion:
        """Move a suggestion along its lifecycle.

        Ordering opens an inbound line (ETA = now + the SKU's lead time unless given), so the
        quantity counts as on order; cancelling closes it; receiving closes it and books the
        quantity as a receipt at ``location``, so the projected quantity never dips between
        the goods arriving and being counted (which would suggest the same gap twice).
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
                    lead = self.get_sku(current.sku).lead_time_days
                    eta_ms = ts_ms + round(lead * DAY_MS)
                self._conn.execute(
                    """INSERT INTO inv_inbound (site, sku, qty, eta, status, ref, suggestion_id,
                       created_at, updated_at) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?)""",
                    (
                        current.site,
                        current.sku,
                        current.qty,
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
            if to == "received":
                self.record(
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

    # -- demand and inbound -------------------------------------------------------------------

    def add_demand(self, line: DemandIn, *, ts_ms: int) -> Demand:
        """Store a confirmed demand line."""
        self.get_sku(line.sku)
        cur = self._conn.execute(
            """INSERT INTO inv_demand (site, sku, qty, due_at, kind, status, ref, created_at,
               updated_at) VALUES (?, ?, ?, ?, ?, 'confirmed', ?, ?, ?)""",
            (line.site, line.sku, line.qty, line.due_at, line.kind, line.ref, ts_ms, ts_ms),
        )
        return self.get_demand(int(cur.lastrowid or 0))

    def get_demand(self, demand_id: int) -> Demand:
        """One demand line."""
        row = self._conn.execute("SELECT * FROM inv_demand WHERE id = ?", (demand_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"demand {demand_id} does not exist")
        data = _row(row)
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
        sql, params = _where("SELECT id FROM inv_demand", site=site, sku=sku, status=status)
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
        self.get_sku(line.sku)
        cur = self._conn.execute(
            """INSERT INTO inv_inbound (site, sku, qty, eta, status, ref, created_at, updated_at)
               VALUES (?, ?, ?, ?, 'open', ?, ?, ?)""",
            (line.site, line.sku, line.qty, line.eta, line.ref, ts_ms, ts_ms),
        )
        return self.inbound(inbound_id=int(cur.lastrowid or 0))[0]

    def inbound(
        self,
        *,
        site: str | None = None,
        sku: str | None = None,
        status: InboundStatus | None = None,
        inbound_id: int | None = None,
    ) -> builtins.list[Inbound]:
        """Inbound lines by ETA (unknown ETAs last)."""
        sql, params = _where(
            "SELECT * FROM inv_inbound", site=site, sku=sku, status=status, id=inbound_id
        )
        rows = self._conn.execute(sql + " ORDER BY eta IS NULL, eta, id", params)
        out: builtins.list[Inbound] = []
        for r in rows:
            data = _row(r)
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

    # -- reports ------------------------------------------------------------------------------

    def report(
        self, *, at_ms: int, period_days: int = 30, dead_after_days: float = 90
    ) -> builtins.list[SkuReport]:
        """Days on hand / of supply, turnover and dead stock per (site, SKU) with stock rows.

        Days of supply uses confirmed demand over the period ahead when there is any, else the
        historical outflow; turnover divides the period's outflow by the current stock.
        """
        costs = {s.sku: s.unit_cost for s in self.skus()}
        out: builtins.list[SkuReport] = []
        for site, sku in self.stocked_pairs():
            stock = self.on_hand(site, sku)
            outflow = sum(self.daily_outflows(site, sku, end_ms=at_ms, days=period_days))
            avg_out = outflow / period_days
            horizon = at_ms + period_days * DAY_MS
            due = sum(
                d.qty
                for d in self.demand(site=site, sku=sku, status="confirmed")
                if d.due_at <= horizon
            )
            daily_demand = due / period_days if due > 0 else avg_out
            last = self.last_outflow(site, sku)
            reference = last if last is not None else self.first_inflow(site, sku)
            since = None if reference is None else (at_ms - reference) / DAY_MS
            out.append(
                SkuReport(
                    site=site,
                    sku=sku,
                    stock=stock,
                    avg_daily_outflow=avg_out,
                    days_on_hand=_ratio(stock, avg_out),
                    days_of_supply=_ratio(stock, daily_demand),
                    turnover=None if stock <= 0 else outflow / stock,
                    days_since_outflow=since,
                    dead=stock > 0 and since is not None and since >= dead_after_days,
                    value=stock * costs.get(sku, 0.0),
                )
            )
        return out

    # -- bulk load ----------------------------------------------------------------------------

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
        counts = {"skus": 0, "shelves": 0, "rfid_zones": 0, "lots": 0}
        with self.transaction():
            for sku in skus:
                self.put_sku(sku)
                counts["skus"] += 1
            for shelf in shelves:
                self.put_shelf(shelf)
                counts["shelves"] += 1
            for zone in rfid_zones:
                self.put_rfid_zone(zone)
                counts["rfid_zones"] += 1
            for lot in lots:
                exists = self._conn.execute(
                    "SELECT 1 FROM inv_lots WHERE site = ? AND sku = ? AND lot = ?",
                    (lot.site, lot.sku, lot.lot),
                ).fetchone()
                if exists is None:
                    self.add_lot(lot, ts_ms=lot.received_at or ts_ms, source="seed")
                    counts["lots"] += 1
        return counts

    def catalog_signature(self) -> tuple[object, ...]:
        """Changes whenever SKUs, shelves or antenna bindings change (cheap reload check)."""
        return tuple(
            self._conn.execute(
                f"SELECT COUNT(*), MAX(updated_at) FROM {table}"  # noqa: S608 - fixed table names
            ).fetchone()[:]
            for table in ("inv_skus", "inv_shelves", "inv_rfid_zones")
        )


def _ratio(stock: float, per_day: float) -> float | None:
    """Days the stock lasts; None (JSON has no infinity) when it never runs out."""
    if stock <= 0:
        return 0.0
    if per_day <= 0:
        return None
    return stock / per_day


def _where(sql: str, **filters: object) -> tuple[str, builtins.list[object]]:
    clauses = [f"{k} = ?" for k, v in filters.items() if v is not None]
    params = [v for v in filters.values() if v is not None]
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return sql, params


def _sku(row: sqlite3.Row) -> Sku:
    data = _row(row)
    data.pop("created_at")
    data.pop("updated_at")
    return Sku.model_validate(data)


def _shelf(row: sqlite3.Row) -> Shelf:
    data = _row(row)
    data.pop("updated_at")
    return Shelf.model_validate(data)


def _zone(row: sqlite3.Row) -> RfidZone:
    data = _row(row)
    data.pop("updated_at")
    return RfidZone.model_validate(data)


def _integrity(exc: sqlite3.IntegrityError) -> str:
    text = str(exc)
    if "inv_skus.gtin" in text:
        return "GTIN already belongs to another SKU"
    return text
