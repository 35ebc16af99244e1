"""Periodic sweeps over the stored stock: lot dates, dead stock and supply/demand imbalance.

Each sweep reports every condition it still sees (the alert lifecycle debounces and keeps one
alert per source and type) and clears the ones it no longer sees. Nothing is remembered between
sweeps, so a restart loses nothing: the next sweep sees the same stock. Dead stock and imbalance
wait until a SKU's stock is known (its shelves settled and counted, or the settle time passed):
until then they neither raise nor clear its alerts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Literal

from core.alerts import AlertCondition
from core.inventory import InventoryStores, Lot
from core.settings import InventorySettings
from rules.inventory.ageing import SkuActivity, ageing_figures
from rules.inventory.alerting import InventoryAlerts
from rules.inventory.expiry import LotDateReached, lot_dates_reached
from rules.inventory.imbalance import DemandLine, InboundLine, find_imbalances
from rules.sites import keeps

LOT_DATE_TYPES = ("expired_on_shelf", "expiry_alert")

Known = Callable[[str, str, int], bool]  # (site, SKU, at ms) -> its stock is known


class StockSweeps:
    """Lot-date, dead-stock and imbalance alerts from the ledger and planning stores."""

    def __init__(
        self,
        *,
        stores: InventoryStores,
        alerts: InventoryAlerts,
        config: InventorySettings,
        known: Known = lambda site, sku, at_ms: True,
        sites: Collection[str] = (),
    ) -> None:
        """``sites`` are the sites this worker keeps (empty: every site)."""
        self._stores = stores
        self._sites = sites
        self._alerts = alerts
        self._config = config
        self._known = known
        self._lots_checked_ms: int | None = None

    def run(self, now_ms: int, unit_cost: Mapping[str, float]) -> None:
        """All three sweeps at ``now_ms``; ``unit_cost`` by SKU values stock at risk."""
        self.check_lot_dates(now_ms)
        self.check_dead_stock(now_ms, unit_cost)
        self.check_imbalance(now_ms, unit_cost)

    def check_lot_dates(self, now_ms: int) -> None:
        """``expired_on_shelf`` past the removal date, ``expiry_alert`` past the alert date.

        A date reached since the previous check is raised at that date, so the alert's time
        does not depend on how often (or how late, behind a backlog) the sweep runs; a date
        already past then (a lot loaded late, a restart) is raised now.
        """
        since, self._lots_checked_ms = self._lots_checked_ms, now_ms
        live: set[tuple[str, str]] = set()
        for lot in self._stores.ledger.lots(in_stock=True):
            if not keeps(self._sites, lot.site):
                continue
            for reached in lot_dates_reached(lot, now_ms=now_ms):
                recent = since is not None and since < reached.due_ms
                condition = _lot_condition(lot, reached, reached.due_ms if recent else now_ms)
                live.add((condition.source, condition.type))
                self._alerts.report(condition)
        self._alerts.clear_gone(LOT_DATE_TYPES, live, now_ms, "lot is empty")

    def check_dead_stock(self, now_ms: int, unit_cost: Mapping[str, float]) -> None:
        """``dead_stock`` for stock with no outflow for ``dead_after_days``."""
        ledger = self._stores.ledger
        dead_after = self._config.dead_after_days
        live: set[tuple[str, str]] = set()
        for site, sku in ledger.stocked_pairs():
            if not keeps(self._sites, site):
                continue
            if not self._known(site, sku, now_ms):
                live.add((f"{site}/{sku}", "dead_stock"))  # held as it is until known
                continue
            stock = ledger.on_hand(site, sku)
            figures = ageing_figures(
                SkuActivity(
                    site=site,
                    sku=sku,
                    stock=stock,
                    daily_outflow=(),
                    last_outflow_ms=ledger.last_outflow(site, sku),
                    stocked_since_ms=ledger.first_inflow(site, sku),
                ),
                now_ms=now_ms,
                dead_after_days=dead_after,
            )
            if not figures.dead:
                continue
            source = f"{site}/{sku}"
            live.add((source, "dead_stock"))
            days = figures.days_since_outflow or 0.0
            self._alerts.report(
                AlertCondition(
                    source=source,
                    type="dead_stock",
                    severity="minor",
                    site=site,
                    title=f"Dead stock: {sku} at {site}",
                    message=f"{stock:g} units, no outflow for {days:.0f} days",
                    value=days,
                    threshold=dead_after,
                    details={"sku": sku, "stock": stock, "value": stock * unit_cost.get(sku, 0)},
                    at_ms=now_ms,
                ),
            )
        self._alerts.clear_gone(("dead_stock",), live, now_ms, "stock moved again")

    def check_imbalance(self, now_ms: int, unit_cost: Mapping[str, float]) -> None:
        """``supply_imbalance`` for confirmed demand that available + inbound cannot cover."""
        ledger, planning = self._stores.ledger, self._stores.planning
        horizon = self._config.imbalance_horizon_days
        demand = [
            DemandLine(site=d.site, sku=d.sku, qty=d.qty, due_ms=d.due_at)
            for d in planning.demand(status="confirmed")
            if keeps(self._sites, d.site)
        ]
        keys = {(d.site, d.sku) for d in demand}
        items = find_imbalances(
            demand=demand,
            available={k: ledger.available(*k, at_ms=now_ms) for k in keys},
            in_transit=[
                InboundLine(site=i.site, sku=i.sku, qty=i.qty, eta_ms=i.eta)
                for i in planning.inbound(status="open")
            ],
            unit_cost=unit_cost,
            now_ms=now_ms,
            horizon_days=horizon,
        )
        live: set[tuple[str, str]] = set()
        for key in keys:
            if not self._known(*key, now_ms):
                live.add((f"{key[0]}/{key[1]}", "supply_imbalance"))  # held until known
        items = [i for i in items if self._known(i.site, i.sku, now_ms)]
        for rank, item in enumerate(items, start=1):
            source = f"{item.site}/{item.sku}"
            live.add((source, "supply_imbalance"))
            self._alerts.report(
                AlertCondition(
                    source=source,
                    type="supply_imbalance",
                    severity="major",
                    site=item.site,
                    title=f"Short of {item.sku} at {item.site}: {item.shortfall:g} units",
                    message=(
                        f"confirmed demand {item.demand:g} due within {horizon:g} days; "
                        f"available {item.available:g}, inbound {item.in_transit:g}; "
                        f"value at risk {item.value_at_risk:.2f}"
                    ),
                    value=item.value_at_risk,
                    threshold=None,
                    details={
                        "rank": rank,
                        "shortfall": item.shortfall,
                        "first_due_at": item.first_due_ms,
                    },
                    at_ms=now_ms,
                ),
            )
        self._alerts.clear_gone(("supply_imbalance",), live, now_ms, "demand covered")


def _lot_condition(lot: Lot, reached: LotDateReached, now_ms: int) -> AlertCondition:
    severity: Literal["major", "warning"]
    if reached.kind == "removal":
        type_, severity, date_key = "expired_on_shelf", "major", "removal_at"
        title = f"Lot {lot.lot} of {lot.sku} past its removal date"
        message = (
            f"{lot.qty:g} units of lot {lot.lot} at {lot.location} must be taken "
            "out of stock; they no longer count as available"
        )
    else:
        type_, severity, date_key = "expiry_alert", "warning", "alert_at"
        title = f"Lot {lot.lot} of {lot.sku} reached its alert date"
        message = (
            f"{lot.qty:g} units at {lot.location}; expires "
            f"{_date(lot.expiration_at)}, removal {_date(lot.effective_removal_at)}"
        )
    return AlertCondition(
        source=f"{lot.site}/{lot.sku}/{lot.lot}",
        type=type_,
        severity=severity,
        site=lot.site,
        title=title,
        message=message,
        value=lot.qty,
        threshold=None,
        details={
            "lot": lot.lot,
            "location": lot.location,
            "expiration_at": lot.expiration_at,
            "removal_at": lot.effective_removal_at,
            date_key: reached.due_ms,
        },
        at_ms=now_ms,
    )


def _date(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))
