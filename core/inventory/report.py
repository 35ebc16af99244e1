"""The ageing report: days on hand and of supply, turnover and dead stock, read from the
catalog, ledger and planning stores."""

from __future__ import annotations

from core.inventory.models import DAY_MS, SkuReport
from core.inventory.stores import InventoryStores


def stock_report(
    stores: InventoryStores, *, at_ms: int, period_days: int = 30, dead_after_days: float = 90
) -> list[SkuReport]:
    """Days on hand / of supply, turnover and dead stock per (site, SKU) with stock rows.

    Days of supply uses confirmed demand over the period ahead when there is any, else the
    historical outflow; turnover divides the period's outflow by the current stock.
    """
    costs = {s.sku: s.unit_cost for s in stores.catalog.skus()}
    out: list[SkuReport] = []
    for site, sku in stores.ledger.stocked_pairs():
        stock = stores.ledger.on_hand(site, sku)
        outflow = sum(stores.ledger.daily_outflows(site, sku, end_ms=at_ms, days=period_days))
        avg_out = outflow / period_days
        horizon = at_ms + period_days * DAY_MS
        due = sum(
            d.qty
            for d in stores.planning.demand(site=site, sku=sku, status="confirmed")
            if d.due_at <= horizon
        )
        daily_demand = due / period_days if due > 0 else avg_out
        last = stores.ledger.last_outflow(site, sku)
        reference = last if last is not None else stores.ledger.first_inflow(site, sku)
        since = None if reference is None else (at_ms - reference) / DAY_MS
        out.append(
            SkuReport(
                site=site,
                sku=sku,
                stock=stock,
                avg_daily_outflow=avg_out,
                days_on_hand=_ratio(stock, avg_out),
                days_of_supply=_ratio(stock, daily_demand),
                turnover=None if stock <= 0 else outflow / stock,
                days_since_outflow=since,
                dead=stock > 0 and since is not None and since >= dead_after_days,
                value=stock * costs.get(sku, 0.0),
            )
        )
    return out


def _ratio(stock: float, per_day: float) -> float | None:
    """Days the stock lasts; None (JSON has no infinity) when it never runs out."""
    if stock <= 0:
        return 0.0
    if per_day <= 0:
        return None
    return stock / per_day
