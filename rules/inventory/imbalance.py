"""Supply/demand imbalance: confirmed demand due soon that stock and inbound cannot cover.

For each SKU at a site, confirmed demand due within the horizon (7 days by default) is compared
with the available quantity plus what is in transit and arrives within the same horizon (an
arrival after the horizon cannot serve that demand). A shortfall becomes an
:class:`ImbalanceItem`, ranked by value at risk = shortfall x unit cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rules.inventory import InvalidParameterError

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandLine:
    """A confirmed customer or production order line."""

    site: str
    sku: str
    qty: float
    due_ms: int


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
        if line.due_ms > horizon_end or line.qty <= 0:
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
