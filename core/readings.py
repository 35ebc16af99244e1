"""Canonical readings: what every adapter produces and what the rules engine consumes.

Plain slotted dataclasses rather than pydantic models: they are built once per reading on the
ingest hot path, after the payload has already been validated. They are not ``frozen`` because
a frozen dataclass costs three times as much to build; treat them as immutable all the same
(use ``dataclasses.replace`` for a changed copy).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TempSample:
    """A temperature (and optional humidity) sample from one probe."""

    site: str
    device: str
    sensor: str
    ts_ms: int
    celsius: float
    humidity: float | None = None


@dataclass(slots=True)
class WeightSample:
    """Net grams on one shelf load cell."""

    site: str
    device: str
    cell: str
    ts_ms: int
    grams: float
    stable: bool | None = None


@dataclass(slots=True)
class TagSample:
    """One RFID tag observation; ``epc`` is upper-case hex."""

    site: str
    device: str
    antenna: int
    ts_ms: int
    epc: str
    rssi: float | None = None
    count: int = 1


@dataclass(slots=True)
class DeviceStatus:
    """Birth, heartbeat or Last Will of a device."""

    site: str
    kind: str
    device: str
    ts_ms: int
    online: bool
    interval_s: float | None = None
    reason: str | None = None


Sample = TempSample | WeightSample | TagSample | DeviceStatus
