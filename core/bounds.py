"""The wire contract's limits and the physical bounds of readings, without the payload models.

Kept apart from :mod:`core.models` so the edge agent can check readings against the same
bounds without building the contract's pydantic models (about 10 MB on a small gateway).
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import Field
from pydantic.fields import FieldInfo

MAX_READINGS_PER_MESSAGE = 1000
# 2000-01-01 .. 2100-01-01 in epoch ms: anything outside is a unit mistake (s vs ms vs ns).
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000


class Bounds(NamedTuple):
    """The physical range of a reading, both ends included: outside it, a unit mistake."""

    low: float
    high: float

    def field(self) -> FieldInfo:
        """The pydantic constraint ``low <= value <= high``."""
        constraint: FieldInfo = Field(ge=self.low, le=self.high)
        return constraint


# One set of bounds for the canonical models, the vendor adapters and the edge agent, so a
# reading is accepted exactly when it is accepted on any other path.
CELSIUS = Bounds(-90.0, 150.0)
HUMIDITY_PERCENT = Bounds(0.0, 100.0)
GRAMS = Bounds(-1_000_000.0, 10_000_000.0)
RSSI_DBM = Bounds(-130.0, 0.0)
