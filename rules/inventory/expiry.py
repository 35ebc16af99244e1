"""Lot expiry with Odoo's four lot dates, FEFO picking and expiry alerts.

Odoo's meaning of the dates, which buyers and pickers already know:

- **expiration**: the goods may become dangerous and must not be consumed;
- **best before** (``use_date``): the goods start to deteriorate, without being dangerous yet;
- **removal**: the goods must be taken out of stock — FEFO sorts on this date, and stock past
  it is not available;
- **alert**: someone should be told about the lot.

Product settings give the dates relative to the lot's receipt (:class:`LotDatePolicy`, Odoo's
``expiration_time`` / ``use_time`` / ``removal_time`` / ``alert_time``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from rules.inventory import InvalidParameterError

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000

ExpiryAlertKind = Literal["alert", "removal", "expired"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Lot:
    """Quantity of one lot of a SKU at a site, with its dates (epoch ms; ``None`` = not set)."""

    site: str
    sku: str
    lot_id: str
    qty: float
    received_ms: int = 0
    expiration_ms: int | None = None
    best_before_ms: int | None = None
    removal_ms: int | None = None
    alert_ms: int | None = None

    @property
    def effective_removal_ms(self) -> int | None:
        """Removal date, or the expiration date when no removal date is set."""
        return self.removal_ms if self.removal_ms is not None else self.expiration_ms

    def is_available(self, now_ms: int) -> bool:
        """Stock counts as available until its (effective) removal date."""
        removal = self.effective_removal_ms
        return self.qty > 0 and (removal is None or now_ms < removal)

    def is_expired(self, now_ms: int) -> bool:
        """True from the expiration date on."""
        return self.expiration_ms is not None and now_ms >= self.expiration_ms

    def is_past_best_before(self, now_ms: int) -> bool:
        """True from the best-before date on."""
        return self.best_before_ms is not None and now_ms >= self.best_before_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class LotDatePolicy:
    """Per-product lot date settings in days, as in Odoo.

    ``expiration_days`` counts from receipt; the other three count back from expiration.
    """

    expiration_days: float
    best_before_days: float = 0.0
    removal_days: float = 0.0
    alert_days: float = 0.0

    def __post_init__(self) -> None:
        if min(self.expiration_days, self.best_before_days, self.removal_days, self.alert_days) < 0:
            raise InvalidParameterError("lot date offsets must not be negative")

    def lot(self, *, site: str, sku: str, lot_id: str, qty: float, received_ms: int) -> Lot:
        """A lot received at ``received_ms`` with its dates computed from this policy."""
        expiration = received_ms + round(self.expiration_days * DAY_MS)
        return Lot(
            site=site,
            sku=sku,
            lot_id=lot_id,
            qty=qty,
            received_ms=received_ms,
            expiration_ms=expiration,
            best_before_ms=expiration - round(self.best_before_days * DAY_MS),
            removal_ms=expiration - round(self.removal_days * DAY_MS),
            alert_ms=expiration - round(self.alert_days * DAY_MS),
        )


def _fefo_key(lot: Lot) -> tuple[bool, int, int, str]:
    removal = lot.effective_removal_ms
    # Lots without dates go last, as in Odoo's FEFO removal strategy; then oldest receipt first.
    return (removal is None, removal or 0, lot.received_ms, lot.lot_id)


def fefo_order(lots: Iterable[Lot], *, now_ms: int) -> list[Lot]:
    """Available lots in first-expired-first-out order (by removal date, then receipt)."""
    return sorted((lot for lot in lots if lot.is_available(now_ms)), key=_fefo_key)


def available_qty(lots: Iterable[Lot], *, now_ms: int) -> float:
    """Quantity not past its removal date."""
    return sum(lot.qty for lot in lots if lot.is_available(now_ms))


@dataclass(frozen=True, slots=True, kw_only=True)
class PickLine:
    """Take ``qty`` from ``lot_id``."""

    lot_id: str
    qty: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PickPlan:
    """Lots to pick from in FEFO order, and what could not be covered."""

    lines: tuple[PickLine, ...]
    shortfall: float


def plan_fefo_pick(lots: Iterable[Lot], qty: float, *, now_ms: int) -> PickPlan:
    """Allocate ``qty`` across available lots, earliest removal date first."""
    if qty < 0:
        raise InvalidParameterError(f"pick quantity {qty} must not be negative")
    remaining = qty
    lines: list[PickLine] = []
    for lot in fefo_order(lots, now_ms=now_ms):
        if remaining <= 0:
            break
        take = min(lot.qty, remaining)
        lines.append(PickLine(lot_id=lot.lot_id, qty=take))
        remaining -= take
    return PickPlan(lines=tuple(lines), shortfall=max(remaining, 0.0))


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpiryAlert:
    """A lot reached its alert date, its removal date, or expired while still in stock."""

    kind: ExpiryAlertKind
    site: str
    sku: str
    lot_id: str
    qty: float
    due_ms: int
    ts_ms: int


class ExpiryMonitor:
    """Raises each (lot, kind) alert once, however often it is evaluated."""

    def __init__(self) -> None:
        self._raised: set[tuple[str, str, str, ExpiryAlertKind]] = set()

    def evaluate(self, lots: Iterable[Lot], *, now_ms: int) -> list[ExpiryAlert]:
        """New alerts for lots with stock whose alert, removal or expiration date has come."""
        alerts: list[ExpiryAlert] = []
        for lot in lots:
            if lot.qty <= 0:
                continue
            dates: tuple[tuple[ExpiryAlertKind, int | None], ...] = (
                ("alert", lot.alert_ms),
                ("removal", lot.removal_ms),
                ("expired", lot.expiration_ms),
            )
            for kind, due in dates:
                if due is None or now_ms < due:
                    continue
                key = (lot.site, lot.sku, lot.lot_id, kind)
                if key in self._raised:
                    continue
                self._raised.add(key)
                alerts.append(
                    ExpiryAlert(
                        kind=kind,
                        site=lot.site,
                        sku=lot.sku,
                        lot_id=lot.lot_id,
                        qty=lot.qty,
                        due_ms=due,
                        ts_ms=now_ms,
                    )
                )
                logger.info("lot %s/%s %s: %s date reached", lot.site, lot.lot_id, lot.sku, kind)
        return alerts

    def forget(self, *, site: str, sku: str, lot_id: str) -> None:
        """Drop the memory of a lot (it was consumed or scrapped)."""
        self._raised = {k for k in self._raised if k[:3] != (site, sku, lot_id)}
