"""Strict pydantic v2 payload models of the canonical wire contract (v1).

See ``docs/wire-contract.md`` for examples. Every data message carries ``ts`` (RFC 3339 with
an offset, or epoch milliseconds) and a per-device ``seq``; one message may batch many readings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from core.bounds import (
    CELSIUS,
    GRAMS,
    HUMIDITY_PERCENT,
    MAX_READINGS_PER_MESSAGE,
    MAX_TS_MS,
    MIN_TS_MS,
    RSSI_DBM,
)
from core.identifiers import EpcHex, Name

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_to_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime, in integers.

    ``int(value.timestamp() * 1000)`` goes through a float and lands one millisecond early for
    some instants (``2038-07-19T07:35:20.233Z``).
    """
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def to_epoch_ms(value: Any) -> Any:
    """Accept RFC 3339 text with an offset or integer epoch milliseconds; return epoch ms."""
    if isinstance(value, bool):
        raise ValueError("ts must be RFC 3339 text or epoch milliseconds, not a boolean")  # noqa: TRY004 - pydantic reports ValueError as a validation error
    if isinstance(value, int):
        if not MIN_TS_MS <= value < MAX_TS_MS:
            raise ValueError(
                f"ts {value} is not epoch milliseconds between 2000 and 2100 (seconds or ns?)"
            )
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"ts {value!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise ValueError(f"ts {value!r} has no UTC offset")
        millis = datetime_to_ms(parsed)
        if not MIN_TS_MS <= millis < MAX_TS_MS:
            raise ValueError(f"ts {value!r} is outside 2000..2100")
        return millis
    return value  # let the int validator report the wrong type


EpochMillis = Annotated[int, BeforeValidator(to_epoch_ms)]
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]


class WireModel(BaseModel):
    """Base of all wire models: strict types, no unknown fields, no NaN/Infinity."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class WeightCell(WireModel):
    """One load cell of a shelf: net grams after the controller's tare."""

    cell: Name
    grams: Annotated[float, GRAMS.field()]
    stable: bool | None = None
    ts: EpochMillis | None = None


class WeightMessage(WireModel):
    """``stocksense/v1/{site}/weight/{device}/data``."""

    ts: EpochMillis
    seq: Seq
    readings: Annotated[list[WeightCell], Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)]


class TempReading(WireModel):
    """One temperature probe, in degrees Celsius; relative humidity in percent if measured."""

    sensor: Name
    celsius: Annotated[float, CELSIUS.field()]
    humidity: Annotated[float, HUMIDITY_PERCENT.field()] | None = None
    ts: EpochMillis | None = None


class TempMessage(WireModel):
    """``stocksense/v1/{site}/temp/{device}/data``."""

    ts: EpochMillis
    seq: Seq
    readings: Annotated[list[TempReading], Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)]


class TagRead(WireModel):
    """One RFID tag observation: EPC as hex, antenna port, RSSI in dBm, read count."""

    epc: EpcHex
    antenna: Annotated[int, Field(ge=1, le=64)] = 1
    rssi: Annotated[float, RSSI_DBM.field()] | None = None
    count: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    ts: EpochMillis | None = None


class RfidMessage(WireModel):
    """``stocksense/v1/{site}/rfid/{device}/data``."""

    ts: EpochMillis
    seq: Seq
    reads: Annotated[list[TagRead], Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)]


class StatusMessage(WireModel):
    """``stocksense/v1/{site}/{kind}/{device}/status``, retained: birth, heartbeat or Last Will."""

    online: bool
    ts: EpochMillis | None = None
    interval_s: Annotated[float, Field(gt=0, le=86_400)] | None = None
    firmware: Annotated[str, Field(max_length=128)] | None = None
    reason: Annotated[str, Field(max_length=256)] | None = None


DataMessage = WeightMessage | TempMessage | RfidMessage
