"""Bounded types for path, query and body fields: every input the API takes has a documented
range that the stores can hold, so out-of-range input is a 422 naming the field, never a 500."""

from typing import Annotated

from fastapi import Path, Query
from pydantic import BeforeValidator, Field, WithJsonSchema

from core.identifiers import IDENT_PATTERN, NO_NUL, PATH_SEGMENT_PATTERN
from core.inventory import EpochMs

INT64_MAX = 2**63 - 1  # SQLite INTEGER is signed 64-bit; a larger id cannot even be looked up
# 10000-01-01T00:00:00Z: one past the last instant a datetime can show, so every ISO 8601 text
# that parses stays within the bound, rounding included.
MAX_EPOCH_MS = 253_402_300_800_000
MAX_QTY = 1e9  # units, grams: far beyond any warehouse, far from float precision trouble
MAX_TEXT = 1000

# The ISO 8601 texts a timestamp field accepts besides epoch ms: a UTC date, optionally with a
# time. Years from 1970 (no negative epoch), no 29 February (not every year has one); the parser
# accepts more (offsets, leap days), this is the part the spec promises.
_DAY = r"(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31"
_TIME = r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?Z?"
ISO_UTC = rf"^(19[7-9][0-9]|[2-9][0-9]{{3}})-({_DAY})({_TIME})?$"


def _integral(value: object) -> object:
    """JSON Schema counts 5.0 as an integer, which strict validation alone would refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# For integer body fields of strict models: whole numbers in either JSON spelling, no booleans.
Integral = BeforeValidator(_integral)

RowId = Annotated[int, Path(ge=1, le=INT64_MAX, description="Row id (signed 64-bit)")]
Segment = Annotated[
    str, Path(pattern=PATH_SEGMENT_PATTERN, description="Identifier (one path segment)")
]
Antenna = Annotated[int, Path(ge=1, le=64)]
IdentFilter = Annotated[str | None, Query(pattern=IDENT_PATTERN)]
TextFilter = Annotated[str | None, Query(min_length=1, max_length=128, pattern=NO_NUL)]
EpochFilter = Annotated[int | None, Query(ge=0, le=INT64_MAX, description="Epoch ms")]

Timestamp = Annotated[
    EpochMs,
    Field(le=MAX_EPOCH_MS),
    Integral,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MS},
                {"type": "string", "pattern": ISO_UTC},
            ],
            "description": "Epoch ms, or an ISO 8601 date or date-time (UTC)",
        },
        mode="validation",
    ),
]
EpochInt = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS), Integral]
Quantity = Annotated[float, Field(gt=0, le=MAX_QTY, allow_inf_nan=False)]
Amount = Annotated[float, Field(ge=0, le=MAX_QTY, allow_inf_nan=False)]
Days = Annotated[float, Field(ge=0, le=3650, allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=MAX_TEXT, pattern=NO_NUL)]
