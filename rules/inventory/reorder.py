"""Reorder evaluation: a SKU's rule, its projected quantity and the purchase suggestions.

The rule comes from the SKU's policy (Odoo min/max, ERPNext reorder level, the dynamic
reorder point from the ledger's daily outflows, or the forecast policy's reorder point from
:mod:`rules.inventory.forecast` over the same outflows); :func:`~rules.inventory.replenishment.
suggestion_change` decides what to do about suggestions, and the planning store keeps them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from core import db
from core.alerts import AlertCondition
from core.influx import line
from core.inventory import DAY_MS, InventoryStores, Sku, Suggestion
from core.inventory.forecasts import ForecastStore, StoredForecast
from rules.inventory.alerting import InventoryAlerts
from rules.inventory.bookings import Write
from rules.inventory.forecast import ForecastLevels, plan_levels, plan_levels_batch
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
from rules.kpi.formulas import local_midnight_ms

logger = logging.getLogger(__name__)


class SiteDays:
    """Where each site's days end: demand history is counted in local days, so a day's bucket
    holds one working day (UTC midnight is mid-morning in Asia/Shanghai).

    Days are counted back from the latest local midnight in whole 24 h steps: exact in zones
    without daylight saving time; in one with it, the days before its last change are shifted
    by that hour.
    """

    def __init__(self, timezones: Mapping[str, str]) -> None:
        self._zones = {site: ZoneInfo(name) for site, name in timezones.items()}

    def day_end(self, site: str, at_ms: int) -> int:
        """The latest local midnight of ``site`` at or before ``at_ms`` (epoch ms)."""
        tz = self._zones.get(site)
        if tz is None:
            return at_ms // DAY_MS * DAY_MS
        return local_midnight_ms(datetime.fromtimestamp(at_ms / 1000, tz).date(), tz)


class Replenisher:
    """Reorder rules per (site, SKU), purchase suggestions and ``reorder`` alerts."""

    def __init__(
        self,
        *,
        stores: InventoryStores,
        alerts: InventoryAlerts,
        write: Write,
        demand_history_days: int,
        timezones: Mapping[str, str] | None = None,
    ) -> None:
        """``timezones`` maps sites to IANA names: demand history is counted in the site's
        local days (UTC for a site without one)."""
        self._stores = stores
        self._alerts = alerts
        self._write = write
        self._history_days = demand_history_days
        self._days = SiteDays(timezones or {})
        self._levels: dict[tuple[str, str], tuple[int, float, str]] = {}
        self.forecasts = ForecastPlanner(
            stores=stores,
            forecasts=ForecastStore(stores.ledger.conn),
            history_days=demand_history_days,
            days=self._days,
        )

    def rule(self, site: str, sku: Sku, *, at_ms: int) -> tuple[ReorderRule, str] | None:
        """The SKU's reorder rule at a site and a short reason; None without a policy, or while
        a ``forecast`` SKU's first levels are being computed."""
        if sku.policy in ("dynamic", "forecast"):
            if sku.policy == "forecast":
                levels = self.forecasts.levels(site, sku, at_ms=at_ms)
                if levels is None:
                    return None  # its first forecast is still being computed
                rop, reason = _forecast_rop(levels)
            else:
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

        The min/max and ERPNext rules fire strictly below their level, the dynamic and forecast
        rules at or below their reorder point.

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
            # Below the trigger with an open suggestion covering the gap: the condition holds,
            # and is seen again so a debounce can end and an open alert stays current (its
            # latest and lowest projected quantity).
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
        day = self._days.day_end(site, at_ms)
        cached = self._levels.get((site, sku.sku))
        if cached is not None and cached[0] == day:
            return cached[1], cached[2]
        days = self._history_days
        history = self._stores.ledger.daily_outflows(site, sku.sku, end_ms=day, days=days)
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


class ForecastPlanner:
    """The forecast policy's levels per (site, SKU), refreshed once a day per site and stored.

    The first evaluation at a site after its local midnight (:class:`SiteDays`, the day boundary
    the dynamic policy's history uses too), or after a start, starts one
    :func:`plan_levels_batch` over the ``forecast`` SKUs stocked at the site whose stored levels
    are not of that day (after a restart the same day: none). The batch reads the ledger through
    a connection of its own and computes in a worker thread, so the rules loop never waits for
    it; :meth:`collect` stores its results at a later tick, and the processor then evaluates
    those SKUs again. Until then a SKU keeps the levels stored the day before, or has none yet
    (no rule) when nothing was stored. A SKU no batch covers, or whose lead time, its sigma,
    review period or service level changed since, is planned alone with :func:`plan_levels` at
    its evaluation.
    """

    def __init__(
        self,
        *,
        stores: InventoryStores,
        forecasts: ForecastStore,
        history_days: int,
        days: SiteDays | None = None,
    ) -> None:
        self._stores = stores
        self.store = forecasts
        self._history_days = history_days
        self._days = days or SiteDays({})
        self._database = forecasts.conn.target
        self._pool: ThreadPoolExecutor | None = None
        self._site_day: dict[str, int] = {}  # site → history end (local midnight) planned for
        self._by_site: dict[str, dict[str, StoredForecast]] = {}
        # site → (SKUs, history end, result) of the batch in flight
        self._pending: dict[str, tuple[frozenset[str], int, Future[list[StoredForecast]]]] = {}

    @property
    def refreshing(self) -> frozenset[str]:
        """Sites whose batch has not been collected yet."""
        return frozenset(self._pending)

    def wait(self, timeout_s: float) -> bool:
        """Wait until the batches in flight have finished (not collected); False on timeout."""
        _, running = wait([f for _, _, f in self._pending.values()], timeout=timeout_s)
        return not running

    def levels(self, site: str, sku: Sku, *, at_ms: int) -> StoredForecast | None:
        """The SKU's levels at a site for the day of ``at_ms``; None while its first batch runs."""
        day_end = self._days.day_end(site, at_ms)
        if self._site_day.get(site) != day_end:
            self._site_day[site] = day_end
            self._by_site[site] = self.store.for_site(site)
            self.refresh(site, at_ms=at_ms)
        found = self._by_site[site].get(sku.sku)
        if found is not None and _current(found, sku, day_end, self._history_days):
            return found
        pending = self._pending.get(site)
        if pending is not None and sku.sku in pending[0]:
            return found if found is not None and _same_inputs(found, sku) else None
        history = self.store.daily_outflows(
            site, [sku.sku], end_ms=day_end, days=self._history_days
        )[sku.sku]
        levels = plan_levels(
            history,
            lead_time_days=sku.lead_time_days,
            review_days=sku.review_days,
            service_level=sku.service_level,
            lead_time_sd_days=sku.lead_time_sigma_days,
        )
        planned = _stored(
            site, sku, levels, day_end=day_end, history_days=self._history_days, at_ms=at_ms
        )
        self.store.save([planned])
        self._by_site[site][sku.sku] = planned
        return planned

    def refresh(self, site: str, *, at_ms: int) -> int:
        """Start the batch of the ``forecast`` SKUs stocked at ``site`` whose stored levels are
        not of this day and their present parameters; how many it plans (0: none was due, or a
        batch of the site still runs).

        Stored levels that are current are kept, so a restart recomputes nothing it stored
        that day. Without a database file to open a second connection on (an in-memory
        database), the batch runs at once on the caller's connection.
        """
        if site in self._pending:
            return 0
        day_end = self._days.day_end(site, at_ms)
        held = self._by_site.get(site)
        if held is None:
            held = self._by_site[site] = self.store.for_site(site)
        by_id = {s.sku: s for s in self._stores.catalog.skus() if s.policy == "forecast"}
        due = [
            by_id[sku]
            for stocked_site, sku in self._stores.ledger.stocked_pairs()
            if stocked_site == site
            and sku in by_id
            and not (sku in held and _current(held[sku], by_id[sku], day_end, self._history_days))
        ]
        if not due:
            return 0
        job = _SiteBatch(
            site=site, skus=due, day_end=day_end, history_days=self._history_days, at_ms=at_ms
        )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast")
        future = self._pool.submit(job.run_on, self._database)
        self._pending[site] = (frozenset(s.sku for s in due), day_end, future)
        return len(due)

    def collect(self) -> list[tuple[str, str]]:
        """Store the results of finished batches; the (site, SKU) pairs they planned.

        A row whose SKU changed policy or parameters while the batch ran is dropped (the SKU is
        planned again at its next evaluation), and so is one older than what is held.
        """
        planned: list[tuple[str, str]] = []
        for site, (_, day_end, future) in list(self._pending.items()):
            if not future.done():
                continue
            del self._pending[site]
            if self._site_day.get(site) != day_end:
                # The day turned while the batch ran: the next evaluation starts the new day's.
                self._site_day.pop(site, None)
            try:
                rows = future.result()
            except Exception:
                # Its SKUs keep their previous levels until they are planned again.
                logger.exception("forecast batch of site %s failed", site)
                continue
            planned.extend((site, f.sku) for f in self._apply(site, rows))
        return planned

    def _apply(self, site: str, rows: Sequence[StoredForecast]) -> list[StoredForecast]:
        skus = {s.sku: s for s in self._stores.catalog.skus()}
        held = self._by_site.setdefault(site, {})
        fresh = [
            r
            for r in rows
            if r.sku in skus
            and _same_inputs(r, skus[r.sku])
            and (r.sku not in held or held[r.sku].history_end <= r.history_end)
        ]
        self.store.save(fresh)
        held.update({f.sku: f for f in fresh})
        return fresh


@dataclass(frozen=True, slots=True, kw_only=True)
class _SiteBatch:
    """One site's forecast batch: the SKUs and day it plans; numpy and its own reads only."""

    site: str
    skus: Sequence[Sku]
    day_end: int
    history_days: int
    at_ms: int

    def run_on(self, database: db.Target) -> list[StoredForecast]:
        """Read the histories through a read-only connection of this thread and plan them."""
        started = time.perf_counter()
        conn = db.connect_readonly(database)
        try:
            rows = self.run(ForecastStore(conn))
        finally:
            conn.close()
        logger.info(
            "forecasts of %d SKUs at %s computed in %.2f s (%d days of history)",
            len(rows),
            self.site,
            time.perf_counter() - started,
            self.history_days,
        )
        return rows

    def run(self, store: ForecastStore) -> list[StoredForecast]:
        """Read the histories through ``store`` and plan them in one batch."""
        days, skus = self.history_days, self.skus
        histories = store.daily_outflows(
            self.site, [s.sku for s in skus], end_ms=self.day_end, days=days
        )
        batch = plan_levels_batch(
            np.array([histories[s.sku] for s in skus], dtype=np.float64).reshape(len(skus), days),
            lead_time_days=np.array([s.lead_time_days for s in skus]),
            review_days=np.array([s.review_days for s in skus]),
            service_level=np.array([s.service_level for s in skus]),
            lead_time_sd_days=np.array([s.lead_time_sigma_days for s in skus]),
        )
        return [
            _stored(
                self.site,
                sku,
                batch.row(i),
                day_end=self.day_end,
                history_days=days,
                at_ms=self.at_ms,
            )
            for i, sku in enumerate(skus)
        ]


def _stored(
    site: str, sku: Sku, levels: ForecastLevels, *, day_end: int, history_days: int, at_ms: int
) -> StoredForecast:
    return StoredForecast(
        site=site,
        sku=sku.sku,
        model=levels.model,
        demand_class=levels.demand_class,
        horizon_days=levels.horizon_days,
        forecast_per_day=levels.forecast_per_day,
        forecast_horizon=levels.forecast_horizon,
        sigma_per_day=levels.sigma_per_day,
        safety_stock=levels.safety_stock,
        reorder_point=levels.reorder_point,
        adi=levels.adi,
        cv2=levels.cv2,
        mase=levels.mase,
        bias=levels.bias,
        pis=levels.pis,
        fell_back_to=levels.fell_back_to,
        reason=levels.reason,
        history_end=day_end,
        history_days=history_days,
        lead_time_days=sku.lead_time_days,
        lead_time_sigma_days=sku.lead_time_sigma_days,
        review_days=sku.review_days,
        service_level=sku.service_level,
        computed_at=at_ms,
    )


def _same_inputs(stored: StoredForecast, sku: Sku) -> bool:
    """True when ``stored`` was planned with the SKU's present policy parameters."""
    return (
        sku.policy == "forecast"
        and stored.lead_time_days == sku.lead_time_days
        and stored.lead_time_sigma_days == sku.lead_time_sigma_days
        and stored.review_days == sku.review_days
        and stored.service_level == sku.service_level
    )


def _current(stored: StoredForecast, sku: Sku, day_end: int, history_days: int) -> bool:
    """True when ``stored`` was planned for this day from the SKU's present parameters."""
    return (
        stored.history_end == day_end
        and stored.history_days == history_days
        and _same_inputs(stored, sku)
    )


def _forecast_rop(levels: StoredForecast) -> tuple[float, str]:
    mase = "" if levels.mase is None else f", MASE {levels.mase:.2f}"
    return levels.reorder_point, (
        f"forecast ROP {levels.reorder_point:.1f} ({levels.reason}; "
        f"{levels.forecast_per_day:.2f}/day over {levels.horizon_days} days, "
        f"SS {levels.safety_stock:.1f}{mase})"
    )


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
