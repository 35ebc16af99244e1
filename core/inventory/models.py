"""Inventory records: catalog entries, sensor bindings, lots, stock, ledger rows, suggestions,
demand and inbound lines, and the ageing report, with the value types they validate."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

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
from core.identifiers import NO_NUL, Ident

DAY_MS = 86_400_000

Policy = Literal["min_max", "dynamic", "forecast"]
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


SUGGESTION_TRANSITIONS: dict[SuggestionState, frozenset[SuggestionState]] = {
    "suggested": frozenset({"ordered", "cancelled"}),
    "ordered": frozenset({"received", "cancelled"}),
    "received": frozenset(),
    "cancelled": frozenset(),
}


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
    orders at or below the reorder point; ``forecast`` does the same with the levels of a demand
    forecast over ``lead_time_days + review_days`` (:mod:`rules.inventory.forecast`), refreshed
    once a day per site. ``review_days`` is 0 where the rules review at every reading.
    """

    sku: Ident
    gtin: Gtin | None = None
    name: str = Field(default="", pattern=NO_NUL)
    unit_grams: Positive | None = None
    weight_tolerance: float = Field(default=0.2, gt=0, lt=0.5)
    unit_cost: NonNegative = 0.0
    lead_time_days: NonNegative = 7.0
    lead_time_sigma_days: NonNegative = 0.0
    review_days: float = Field(default=0.0, ge=0, le=3650, allow_inf_nan=False)
    service_level: float = Field(default=0.95, gt=0, lt=1)
    policy: Policy = "min_max"
    min_qty: NonNegative = 0.0
    max_qty: NonNegative = 0.0
    reorder_level: NonNegative | None = None
    reorder_qty: NonNegative | None = None
    pack_multiple: NonNegative = 1.0
    supplier: str | None = Field(default=None, pattern=NO_NUL)
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
    ref: str | None = Field(default=None, max_length=128, pattern=NO_NUL)


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
    ref: str | None = Field(default=None, max_length=128, pattern=NO_NUL)


class Inbound(InboundIn):
    """A stored inbound line."""

    id: int
    status: InboundStatus
    suggestion_id: int | None
    created_at: int
