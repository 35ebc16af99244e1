"""Live inventory and replenishment: the pure domain layer.

Every module here is free of I/O and wall-clock reads: time arrives as ``ts_ms`` / ``now_ms``
arguments, so replayed, simulated and live data give the same answers.

- :mod:`rules.inventory.replenishment` — safety stock, reorder point, EOQ, min/max and
  reorder-level rules, purchase suggestions.
- :mod:`rules.inventory.weight` — unit counts from weight shelves.
- :mod:`rules.inventory.rfid` — RFID dedup, zone enter/exit, counts per SKU per zone.
- :mod:`rules.inventory.expiry` — lot dates, FEFO, expiry alerts.
- :mod:`rules.inventory.ageing` — days on hand, dead stock, turnover, days of supply.
- :mod:`rules.inventory.imbalance` — confirmed demand against available and inbound stock.
"""

from __future__ import annotations

from core.errors import StockSenseError


class InventoryError(StockSenseError):
    """Base class of the errors raised by the inventory domain layer."""


class InvalidParameterError(InventoryError, ValueError):
    """A rule or formula was given a value outside its domain (negative lead time, p ≥ 1, …)."""


__all__ = ["InvalidParameterError", "InventoryError"]
