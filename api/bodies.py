"""Request bodies: the inventory records as the store takes them, validated strictly and bounded.

Strict, because the API speaks JSON: ``false`` is not a quantity of 0 and ``"5"`` is not 5.
Each body is a subclass of its record, so the store receives it unchanged.
"""

from typing import Annotated

from pydantic import ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from api.fields import MAX_QTY, Amount, Days, Integral, Quantity, Text, Timestamp
from core.inventory import (
    RECEIVING_LOCATION,
    DemandIn,
    Ident,
    InboundIn,
    LotIn,
    LotUpdate,
    Record,
    RfidZone,
    Shelf,
    Sku,
)
from core.inventory import (
    Gtin as CoreGtin,
)

STRICT = ConfigDict(strict=True)

# The store's GTIN, with its digit counts stated in the spec (the check digit is verified too).
Gtin = Annotated[
    CoreGtin,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([0-9]{8}|[0-9]{12,14})$",
            "description": "8, 12, 13 or 14 digits with a valid check digit",
        },
        mode="validation",
    ),
]


class SkuRequest(Sku):
    """A SKU to create or replace."""

    model_config = STRICT

    gtin: Gtin | None = None
    name: Text = ""
    unit_grams: Quantity | None = None
    unit_cost: Amount = 0.0
    lead_time_days: Days = 7.0
    lead_time_sigma_days: Days = 0.0
    min_qty: Amount = 0.0
    max_qty: Amount = 0.0
    reorder_level: Amount | None = None
    reorder_qty: Amount | None = None
    pack_multiple: Amount = 1.0
    supplier: Text | None = None


class ShelfRequest(Shelf):
    """A shelf cell binding; ``location`` null or left out books at ``device/cell``."""

    model_config = STRICT

    tare_grams: float = Field(default=0.0, ge=-MAX_QTY, le=MAX_QTY, allow_inf_nan=False)


class RfidZoneRequest(RfidZone):
    """A reader antenna binding."""

    model_config = STRICT

    antenna: Annotated[int, Field(ge=1, le=64), Integral] = 1


class LotRequest(LotIn):
    """A lot to register; dates left out or null are unknown."""

    model_config = STRICT

    qty: Amount = 0.0
    received_at: Timestamp | None = None
    expiration_at: Timestamp | None = None
    best_before_at: Timestamp | None = None
    removal_at: Timestamp | None = None
    alert_at: Timestamp | None = None


class LotChange(LotUpdate):
    """Changes to a lot: fields left out keep their value, a date set to null is cleared.

    ``location`` and ``qty`` cannot be cleared, so null is refused for them.
    """

    model_config = STRICT

    location: Ident | SkipJsonSchema[None] = None
    qty: Amount | SkipJsonSchema[None] = None
    expiration_at: Timestamp | None = None
    best_before_at: Timestamp | None = None
    removal_at: Timestamp | None = None
    alert_at: Timestamp | None = None

    @field_validator("location", "qty", mode="before")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            raise PydanticCustomError(
                "not_null",
                "{field} cannot be null; leave it out to keep the current value",
                {"field": info.field_name},
            )
        return value


class DemandRequest(DemandIn):
    """A confirmed sales or production order line."""

    model_config = STRICT

    qty: Quantity
    due_at: Timestamp


class InboundRequest(InboundIn):
    """An open purchase order or shipment in transit; ``eta`` null = arrival date unknown."""

    model_config = STRICT

    qty: Quantity
    eta: Timestamp | None = None


class Transition(Record):
    """Optional details of a suggestion step: the ETA when ordering, where receipts land."""

    model_config = STRICT

    eta: Timestamp | None = None
    location: Ident = RECEIVING_LOCATION
