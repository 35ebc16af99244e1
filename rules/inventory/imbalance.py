"""Supply/demand imbalance: confirmed demand due soon that stock and inbound cannot cover.

For each SKU at a site, confirmed demand due within the horizon (7 days by default) is compared
with the available quantity plus what is in transit and arrives within the same horizon (an
arrival after the horizon cannot serve that demand). A shortfall becomes an
:class:`ImbalanceItem`, ranked by value at risk = shortfall x unit cost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rules.inventory import InvalidParameterError

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandLine:
    """A customer or production order line; only confirmed lines count."""

    site: str
    sku: str
    qty: float
    due_ms: int
    confirmed: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundLine:
    """Stock in transit to the site; ``eta_ms`` ``None`` means the arrival date is unknown."""

    site: str
    sku: str
    qty: float
    eta_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImbalanceItem:
    """A SKU whose confirmed near-term demand exceeds available plus inbound stock."""

    site: str
    sku: str
    demand: float
    available: float
    in_transit: float
    shortfall: float
    unit_cost: float
    value_at_risk: float
    first_due_ms: int


def find_imbalances(
    *,
    demand: Iterable[DemandLine],
    available: Mapping[tuple[str, str], float],
    in_transit: Iterable[InboundLine] = (),
    unit_cost: Mapping[str, float],
    now_ms: int,
    horizon_days: float = 7,
) -> list[ImbalanceItem]:
    """Imbalances for the horizon, highest value at risk first.

    ``available`` is keyed by (site, SKU) and should already exclude stock past its removal
    date; ``unit_cost`` is keyed by SKU (a SKU without a cost ranks with value 0).
    """
    if horizon_days <= 0:
        raise InvalidParameterError(f"horizon_days {horizon_days} must be positive")
    horizon_end = now_ms + round(horizon_days * DAY_MS)
    due: dict[tuple[str, str], float] = {}
    first_due: dict[tuple[str, str], int] = {}
    for line in demand:
        # Overdue confirmed lines are still owed, so only the far end of the horizon filters.
        if not line.confirmed or line.due_ms > horizon_end or line.qty <= 0:
            continue
        key = (line.site, line.sku)
        due[key] = due.get(key, 0.0) + line.qty
        first_due[key] = min(first_due.get(key, line.due_ms), line.due_ms)
    inbound: dict[tuple[str, str], float] = {}
    for arrival in in_transit:
        if arrival.eta_ms is not None and arrival.eta_ms > horizon_end:
            continue
        key = (arrival.site, arrival.sku)
        inbound[key] = inbound.get(key, 0.0) + arrival.qty
    items: list[ImbalanceItem] = []
    for key, qty in due.items():
        on_hand = max(available.get(key, 0.0), 0.0)
        coming = inbound.get(key, 0.0)
        shortfall = qty - on_hand - coming
        if shortfall <= 0:
            continue
        cost = unit_cost.get(key[1], 0.0)
        items.append(
            ImbalanceItem(
                site=key[0],
                sku=key[1],
                demand=qty,
                available=on_hand,
                in_transit=coming,
                shortfall=shortfall,
                unit_cost=cost,
                value_at_risk=shortfall * cost,
                first_due_ms=first_due[key],
            )
        )
    items.sort(key=lambda i: (-i.value_at_risk, i.first_due_ms, i.site, i.sku))
    return items


class ImbalanceMonitor:
    """Reports an imbalance once while it lasts; again only after it was resolved."""

    def __init__(self, *, horizon_days: float = 7) -> None:
        self.horizon_days = horizon_days
        self._open: dict[tuple[str, str], ImbalanceItem] = {}

    @property
    def open(self) -> dict[tuple[str, str], ImbalanceItem]:
        """Imbalances currently open, by (site, SKU), as last evaluated."""
        return dict(self._open)

    def evaluate(
        self,
        *,
        demand: Iterable[DemandLine],
        available: Mapping[tuple[str, str], float],
        in_transit: Iterable[InboundLine] = (),
        unit_cost: Mapping[str, float],
        now_ms: int,
    ) -> tuple[list[ImbalanceItem], list[tuple[str, str]]]:
        """Returns (newly opened items ranked by value at risk, keys resolved since last time)."""
        items = find_imbalances(
            demand=demand,
            available=available,
            in_transit=in_transit,
            unit_cost=unit_cost,
            now_ms=now_ms,
            horizon_days=self.horizon_days,
        )
        current = {(i.site, i.sku): i for i in items}
        opened = [i for i in items if (i.site, i.sku) not in self._open]
        resolved = sorted(k for k in self._open if k not in current)
        self._open = current
        for item in opened:
            logger.info(
                "imbalance: %s/%s short %g (value at risk %.2f)",
                item.site,
                item.sku,
                item.shortfall,
                item.value_at_risk,
            )
        return opened, resolved
