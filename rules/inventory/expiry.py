"""Lot expiry with Odoo's four lot dates: availability, FEFO pick plans and dates reached.

Odoo's meaning of the dates, which buyers and pickers already know:

- **expiration**: the goods may become dangerous and must not be consumed;
- **best before**: the goods start to deteriorate, without being dangerous yet;
- **removal**: the goods must be taken out of stock — FEFO sorts on this date, and stock past
  it is not available (without a removal date the expiration date stands in for it);
- **alert**: someone should be told about the lot.

The functions take lots as the store reads them (:class:`DatedLot`) and never touch the store:
the processor plans a pick here and hands the plan to the store to book.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from rules.inventory import InvalidParameterError

QTY_EPS = 1e-9  # float noise in unit quantities

LotDateKind = Literal["removal", "alert"]


class DatedLot(Protocol):
    """What expiry rules read of a lot (epoch ms; ``None`` = date not set)."""

    @property
    def lot(self) -> str: ...

    @property
    def location(self) -> str: ...

    @property
    def qty(self) -> float: ...

    @property
    def received_at(self) -> int | None: ...

    @property
    def effective_removal_at(self) -> int | None:
        """Removal date, or the expiration date when no removal date is set."""
        ...

    @property
    def alert_at(self) -> int | None: ...


L = TypeVar("L", bound=DatedLot)


def is_available(lot: DatedLot, now_ms: int) -> bool:
    """Stock counts as available while it has quantity and its removal date has not come."""
    removal = lot.effective_removal_at
    return lot.qty > 0 and (removal is None or now_ms < removal)


def _fefo_key(lot: DatedLot) -> tuple[bool, int, int, str]:
    removal = lot.effective_removal_at
    # Lots without dates go last, as in Odoo's FEFO removal strategy; then oldest receipt first.
    return (removal is None, removal or 0, lot.received_at or 0, lot.lot)


def fefo_order(lots: Iterable[L], *, now_ms: int) -> list[L]:
    """Available lots in first-expired-first-out order (by removal date, then receipt)."""
    return sorted((lot for lot in lots if is_available(lot, now_ms)), key=_fefo_key)


@dataclass(frozen=True, slots=True, kw_only=True)
class PickLine:
    """Take ``qty`` from lot ``lot``; ``drew_expired`` when the lot is past its removal date."""

    lot: str
    qty: float
    drew_expired: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PickPlan:
    """Where a movement leaving one location is drawn from.

    ``lines`` in drawing order, then ``unlotted`` from stock held in no lot: the location's
    loose stock, plus ``shortfall``, what the location did not hold at all.
    """

    location: str
    lines: tuple[PickLine, ...]
    unlotted: float
    shortfall: float


def plan_fefo_pick(
    lots: Iterable[DatedLot], qty: float, *, location: str, loose: float, now_ms: int
) -> PickPlan:
    """Draw ``qty`` leaving ``location`` from that location's stock only.

    Order: available lots at ``location`` in FEFO order; then ``loose`` (stock there held in no
    lot); then, only if the pick is still not covered, lots past their removal date, earliest
    first, each line saying it drew expired stock. Lots at other locations are never drawn:
    stock changes place only through a movement of its own.
    """
    if qty < 0:
        raise InvalidParameterError(f"pick quantity {qty} must not be negative")
    here = [lot for lot in lots if lot.location == location and lot.qty > 0]
    fresh = fefo_order(here, now_ms=now_ms)
    expired = sorted((lot for lot in here if not is_available(lot, now_ms)), key=_fefo_key)
    remaining = qty
    lines: list[PickLine] = []
    for lot in fresh:
        if remaining <= QTY_EPS:
            break
        take = min(lot.qty, remaining)
        lines.append(PickLine(lot=lot.lot, qty=take))
        remaining -= take
    from_loose = min(max(loose, 0.0), max(remaining, 0.0))
    remaining -= from_loose
    for lot in expired:
        if remaining <= QTY_EPS:
            break
        take = min(lot.qty, remaining)
        lines.append(PickLine(lot=lot.lot, qty=take, drew_expired=True))
        remaining -= take
    shortfall = remaining if remaining > QTY_EPS else 0.0
    return PickPlan(
        location=location, lines=tuple(lines), unlotted=from_loose + shortfall, shortfall=shortfall
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LotDateReached:
    """A lot still holding stock reached its removal or alert date."""

    kind: LotDateKind
    due_ms: int


def lot_dates_reached(lot: DatedLot, *, now_ms: int) -> list[LotDateReached]:
    """The removal (or expiration) and alert dates of ``lot`` that have come, if it has stock.

    Stateless: the same lot gives the same answer each time, so the alert lifecycle (not this
    function) decides what is new, and an emptied lot simply stops being reported.
    """
    if lot.qty <= 0:
        return []
    reached: list[LotDateReached] = []
    removal = lot.effective_removal_at
    if removal is not None and now_ms >= removal:
        reached.append(LotDateReached(kind="removal", due_ms=removal))
    if lot.alert_at is not None and now_ms >= lot.alert_at:
        reached.append(LotDateReached(kind="alert", due_ms=lot.alert_at))
    return reached
