"""Live inventory and replenishment: a pure domain layer and the processor that runs it.

The domain modules are free of I/O and wall-clock reads: time arrives as ``ts_ms`` /
``now_ms`` arguments, so replayed, simulated and live data give the same answers.

- :mod:`rules.inventory.replenishment` — safety stock, reorder point, min/max and
  reorder-level rules, the purchase-suggestion decision.
- :mod:`rules.inventory.weight` — unit counts from weight shelves.
- :mod:`rules.inventory.rfid` — RFID dedup, zone enter/exit, counts per SKU per zone.
- :mod:`rules.inventory.expiry` — lot availability, FEFO pick plans, lot dates reached.
- :mod:`rules.inventory.ageing` — days on hand, dead stock, turnover, days of supply.
- :mod:`rules.inventory.imbalance` — confirmed demand against available and inbound stock.

:class:`rules.inventory.service.InventoryProcessor` is the rules-engine processor; it reads
and books through the inventory stores (:mod:`core.inventory`) with collaborators that call
the domain layer: :mod:`~rules.inventory.shelves`, :mod:`~rules.inventory.portals`,
:mod:`~rules.inventory.reorder`, :mod:`~rules.inventory.sweeps`, :mod:`~rules.inventory.checks`,
over :mod:`~rules.inventory.bookings` (ledger and InfluxDB points) and
:mod:`~rules.inventory.alerting` (the alert lifecycle).
"""

from __future__ import annotations

from core.errors import StockSenseError


class InventoryError(StockSenseError):
    """Base class of the errors raised by the inventory domain layer."""


class InvalidParameterError(InventoryError, ValueError):
    """A rule or formula was given a value outside its domain (negative lead time, p ≥ 1, …)."""


__all__ = ["InvalidParameterError", "InventoryError"]
