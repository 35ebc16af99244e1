"""What a poll of a device gives: weight/temperature readings and RFID tag reads."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reading:
    """One value read from a device: cell or sensor name, grams or °C, stable flag, time."""

    channel: str
    value: float
    stable: bool | None
    ts_ms: int


@dataclass(frozen=True, slots=True)
class TagRead:
    """One EPC on one antenna over a dedup window: peak RSSI, reads, first and last seen."""

    epc: str
    antenna: int
    rssi: float | None
    count: int
    first_ms: int
    ts_ms: int  # last seen


@dataclass(slots=True)
class Poll:
    """What one poll gave: the good readings, tag reads, and one error text per rejected value."""

    readings: list[Reading]
    rejected: list[str]
    tags: list[TagRead] = field(default_factory=list)


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000
