"""Reorder evaluation: a SKU's rule, its projected quantity and the purchase suggestions.

The rule comes from the SKU's policy (Odoo min/max, ERPNext reorder level, or the dynamic
reorder point from the ledger's daily outflows); :func:`~rules.inventory.replenishment.
suggestion_change` decides what to do about suggestions, and the planning store keeps them.
"""

from __future__ import annotations

import logging

import numpy as np

from core.alerts import AlertCondition
from core.influx import line
from core.inventory import DAY_MS, InventoryStores, Sku, Suggestion
from rules.inventory.alerting import InventoryAlerts
from rules.inventory.bookings import Write
from rules.inventory.replenishment import (
    MinMaxRule,
    ReorderLevelRule,
    ReorderPointRule,
    ReorderRule,
    RevisedSuggestion,
    dynamic_levels,
    projected_qty,
    suggestion_change,
)

logger = logging.getLogger(__name__)


class Replenisher:
    """Reorder rules per (site, SKU), purchase suggestions and ``reorder`` alerts."""

    def __init__(
        self,
        *,
        stores: InventoryStores,
        alerts: InventoryAlerts,
        write: Write,
        demand_history_days: int,
    ) -> None:
        self._stores = stores
        self._alerts = alerts
        self._write = write
        self._history_days = demand_history_days
        self._levels: dict[tuple[str, str], tuple[int, float, str]] = {}

    def rule(self, site: str, sku: Sku, *, at_ms: int) -> tuple[ReorderRule, str] | None:
        """The SKU's reorder rule at a site and a short reason, or None without a policy."""
        if sku.policy == "dynamic":
            rop, reason = self._dynamic_rop(site, sku, at_ms)
            order = sku.reorder_qty or max(sku.max_qty - sku.min_qty, 0.0)
            if order <= 0:
                order = max(sku.pack_multiple, 1.0)
            rule = ReorderPointRule.dynamic(
                site=site,
                sku=sku.sku,
                reorder_point=rop,
                order_qty=order,
                multiple=sku.pack_multiple,
            )
            return rule, reason
        if sku.reorder_level is not None:
            erp = ReorderLevelRule(
                site=site,
                sku=sku.sku,
                reorder_level=sku.reorder_level,
                reorder_qty=sku.reorder_qty or 0.0,
            )
            return erp, f"below reorder level {sku.reorder_level:g}"
        if sku.max_qty <= 0:
            return None
        minmax = MinMaxRule(
            site=site,
            sku=sku.sku,
            min_qty=sku.min_qty,
            max_qty=sku.max_qty,
            multiple=sku.pack_multiple,
        )
        return minmax, f"below min {sku.min_qty:g} (max {sku.max_qty:g})"

    def evaluate(self, site: str, sku: Sku, *, at_ms: int) -> Suggestion | None:
        """Suggest (or revise) a purchase when the rule fires and no open one covers the gap.

        The min/max and ERPNext rules fire strictly below their level, the dynamic rule at or
        below its reorder point.

        Projected = available on hand (stock past its removal date excluded) + open inbound
        (ordered suggestions included) - open confirmed demand. Pending (not yet ordered)
        suggestions cover the gap they were made for, so the same gap is never suggested twice.
        """
        found = self.rule(site, sku, at_ms=at_ms)
        if found is None:
            return None
        rule, reason = found
        ledger, planning = self._stores.ledger, self._stores.planning
        projected = projected_qty(
            on_hand=ledger.available(site, sku.sku, at_ms=at_ms),
            on_order=planning.on_order(site, sku.sku),
            reserved=planning.reserved(site, sku.sku),
        )
        source = f"{site}/{sku.sku}"
        if not rule.triggered(projected):
            self._alerts.clear(
                source, "reorder", at_ms, "projected quantity above the reorder trigger"
            )
            return None
        open_suggestions = planning.open_suggestions(site, sku.sku)
        suggestion = self._suggest(rule, projected, open_suggestions, reason=reason, at_ms=at_ms)
        if suggestion is None:
            if not self._alerts.lifecycle.is_open(source, "reorder"):
                # Below the trigger with an open suggestion covering the gap: the condition
                # holds, and must keep being seen for a debounce to end and raise it.
                pending = [s for s in open_suggestions if s.state == "suggested"]
                covering = pending or open_suggestions
                if covering:
                    self._alerts.report(_condition(rule, sku, projected, covering[0], at_ms))
            return None
        logger.info(
            "purchase suggestion %d: %s qty %g (%s)", suggestion.id, source, suggestion.qty, reason
        )
        self._write(
            [
                line(
                    "suggestions",
                    {"site": site, "sku": sku.sku, "state": suggestion.state},
                    {
                        "suggestion_id": suggestion.id,
                        "qty": float(suggestion.qty),
                        "projected": float(projected),
                        "trigger_level": float(rule.trigger_level),
                        "reason": reason,
                    },
                    at_ms * 1_000_000,
                )
            ]
        )
        self._alerts.report(_condition(rule, sku, projected, suggestion, at_ms))
        return suggestion

    def _suggest(
        self,
        rule: ReorderRule,
        projected: float,
        open_suggestions: list[Suggestion],
        *,
        reason: str,
        at_ms: int,
    ) -> Suggestion | None:
        change = suggestion_change(rule, projected=projected, open_suggestions=open_suggestions)
        if change is None:
            return None
        planning = self._stores.planning
        if isinstance(change, RevisedSuggestion):
            return planning.revise_suggestion(
                change.id, qty=change.qty, projected=projected, reason=reason, ts_ms=at_ms
            )
        return planning.add_suggestion(
            site=rule.site,
            sku=rule.sku,
            qty=change.qty,
            reason=reason,
            projected=projected,
            trigger_level=rule.trigger_level,
            ts_ms=at_ms,
        )

    def _dynamic_rop(self, site: str, sku: Sku, at_ms: int) -> tuple[float, str]:
        # Levels move with whole days of history, so they are computed once per day.
        day = at_ms // DAY_MS
        cached = self._levels.get((site, sku.sku))
        if cached is not None and cached[0] == day:
            return cached[1], cached[2]
        days = self._history_days
        history = self._stores.ledger.daily_outflows(site, sku.sku, end_ms=day * DAY_MS, days=days)
        d_mean, d_sigma, ss, rop = dynamic_levels(
            np.array([history], dtype=np.float64),
            np.array([sku.lead_time_days]),
            np.array([sku.lead_time_sigma_days]),
            np.array([sku.service_level]),
        )
        value = float(rop[0])
        reason = (
            f"dynamic ROP {value:.1f} (d {float(d_mean[0]):.2f}/day, σd {float(d_sigma[0]):.2f},"
            f" SS {float(ss[0]):.1f}, {days} days of history)"
        )
        self._levels[(site, sku.sku)] = (day, value, reason)
        return value, reason


def _condition(
    rule: ReorderRule, sku: Sku, projected: float, suggestion: Suggestion, at_ms: int
) -> AlertCondition:
    qty = suggestion.qty
    return AlertCondition(
        source=f"{rule.site}/{rule.sku}",
        type="reorder",
        severity="minor",
        site=rule.site,
        title=f"Reorder {rule.sku} at {rule.site}",
        message=(
            f"{sku.name or rule.sku}: projected {projected:g} {rule.trigger_op} "
            f"{rule.trigger_level:g}; "
            f"suggested purchase of {qty:g}" + (f" from {sku.supplier}" if sku.supplier else "")
        ),
        value=projected,
        threshold=rule.trigger_level,
        details={
            "suggestion_id": suggestion.id,
            "qty": qty,
            "reason": suggestion.reason,
            "name": sku.name or rule.sku,
            "supplier": sku.supplier,
        },
        at_ms=at_ms,
    )
