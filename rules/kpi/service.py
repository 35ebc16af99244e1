"""KPIs on a schedule: a rolling snapshot per site every few minutes and a daily roll-up at
each site's local midnight, stored for the API and written to InfluxDB for Grafana.

The figures come from the ledger, lots, demand lines and alerts through the stores; the
formulas are :mod:`rules.kpi.formulas`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core import db
from core.alerts import Alert, AlertStores
from core.alerts.state import route_matches
from core.influx import line
from core.influx_writer import BatchWriter
from core.inventory import DAY_MS, OUTFLOW_KINDS, InventoryStores, Sku
from core.kpi import (
    AlertResponseFigures,
    KpiStore,
    Period,
    SiteKpis,
    SkuKpi,
)
from core.readings import Sample
from core.settings import KpiSettings, RouteSettings, Settings
from rules.inventory.ageing import days_of_supply, inventory_turnover
from rules.kpi import formulas as f
from rules.seed import Seed
from rules.sites import keeps

logger = logging.getLogger(__name__)

# Enough for any real period of one SKU at one site (a pick a minute for 30 days is 43,200).
LEDGER_LIMIT = 1_000_000

AlertsRaised = Callable[[str, int, int], Sequence[Alert]]


def _finite(value: float | None) -> float | None:
    """JSON and line protocol have no infinity: an unbounded figure is None (undefined)."""
    return None if value is None or math.isinf(value) else value


class KpiCalculator:
    """Computes the KPI snapshot of one site from the stores."""

    def __init__(
        self,
        stores: InventoryStores,
        alerts_raised: AlertsRaised,
        routes: Sequence[RouteSettings],
        config: KpiSettings,
        *,
        dead_after_days: float,
        timezones: dict[str, str] | None = None,
        sites: Collection[str] = (),
    ) -> None:
        """``alerts_raised(site, start_ms, end_ms)`` gives the alerts raised at a site in the
        period; ``routes`` tell each alert's escalation time; ``timezones`` maps sites to
        IANA names (UTC otherwise); only ``sites`` are computed (empty: every site)."""
        self._sites = sites
        self._stores = stores
        self._alerts_raised = alerts_raised
        self._routes = routes
        self._config = config
        self._dead_after_days = dead_after_days
        self._timezones = timezones or {}
        f.check_buckets(config.age_buckets)
        f.movement_class(
            None, slow_after_days=config.slow_after_days, dead_after_days=dead_after_days
        )

    def timezone(self, site: str) -> ZoneInfo:
        """The site's timezone."""
        return ZoneInfo(self._timezones.get(site, "UTC"))

    def sites(self) -> list[str]:
        """Sites with stock rows, and sites the seed names."""
        found = {site for site, _ in self._stores.ledger.stocked_pairs()}
        return sorted(s for s in found | set(self._timezones) if keeps(self._sites, s))

    def snapshot(self, site: str, period: Period, start_ms: int, end_ms: int) -> SiteKpis:
        """Every KPI of ``site`` over ``[start_ms, end_ms)``."""
        tz = self.timezone(site)
        days = f.local_days(start_ms, end_ms, tz)
        catalog = {s.sku: s for s in self._stores.catalog.skus()}
        skus = sorted(sku for s, sku in self._stores.ledger.stocked_pairs() if s == site)
        figures = [
            self._sku(
                site=site,
                sku=sku,
                item=catalog.get(sku),
                start_ms=start_ms,
                end_ms=end_ms,
                days=days,
            )
            for sku in skus
        ]
        demand = [
            f.OrderLine(qty=d.qty, status=d.status, due_at_ms=d.due_at)
            for d in self._stores.planning.demand(site=site)
            if start_ms <= d.due_at < end_ms
        ]
        holdings = [
            f.LotHolding(
                qty=lot.qty,
                unit_cost=catalog[lot.sku].unit_cost if lot.sku in catalog else 0.0,
                received_at_ms=lot.received_at,
                alert_at_ms=lot.alert_at,
                removal_at_ms=lot.effective_removal_at,
                expiration_at_ms=lot.expiration_at,
            )
            for lot in self._stores.ledger.lots(site=site, in_stock=True)
        ]
        sku_days = sum(s.days for s in figures)
        slow = [s for s in figures if s.movement == "slow" and s.on_hand > 0]
        dead = [s for s in figures if s.movement == "dead" and s.on_hand > 0]
        return SiteKpis(
            site=site,
            period=period,
            start_ms=start_ms,
            end_ms=end_ms,
            timezone=tz.key,
            stock_value=sum(s.value for s in figures),
            stockout_rate=sum(s.stockout_days for s in figures) / sku_days if sku_days else 0.0,
            fill_rate=f.fill_rate(demand, end_ms),
            slow_skus=len(slow),
            slow_value=sum(s.value for s in slow),
            dead_skus=len(dead),
            dead_value=sum(s.value for s in dead),
            skus=figures,
            ageing=f.ageing_buckets(holdings, end_ms, self._config.age_buckets),
            lots_due=f.lots_due(holdings, end_ms, self._config.lot_horizons_days),
            alerts=self._alert_response(site, start_ms, end_ms),
        )

    def _sku(
        self,
        *,
        site: str,
        sku: str,
        item: Sku | None,
        start_ms: int,
        end_ms: int,
        days: Sequence[tuple[int, int]],
    ) -> SkuKpi:
        ledger = self._stores.ledger
        entries = ledger.ledger(site=site, sku=sku, since_ms=start_ms, limit=LEDGER_LIMIT)
        moves = [f.Move(e.ts, e.qty, e.kind) for e in entries]
        inside = [m for m in moves if m.ts_ms < end_ms]
        # The ledger holds the present: walk back from it to the period's end and start.
        on_hand = ledger.on_hand(site, sku) - sum(m.qty for m in moves if m.ts_ms >= end_ms)
        opening = on_hand - sum(m.qty for m in inside)
        out = f.outflow(inside, start_ms, end_ms)
        avg = f.average_on_hand(opening, inside, start_ms, end_ms)
        period_days = (end_ms - start_ms) / DAY_MS
        daily_demand = out / period_days
        # Stock past its removal date is on hand but cannot be sold.
        available = max(on_hand - ledger.unavailable(site, sku, at_ms=end_ms), 0.0)
        lines = [
            f.OrderLine(qty=d.qty, status=d.status, due_at_ms=d.due_at)
            for d in self._stores.planning.demand(site=site, sku=sku)
            if start_ms <= d.due_at < end_ms
        ]
        due = [line.due_at_ms for line in lines if line.status != "cancelled"]
        picks = [m.ts_ms for m in inside if m.kind in OUTFLOW_KINDS and m.qty < 0]
        stockouts = f.stockout_days(opening, inside, [*picks, *due], days)
        idle = f.idle_days(ledger.last_outflow(site, sku), ledger.first_inflow(site, sku), end_ms)
        unit_cost = item.unit_cost if item is not None else 0.0
        return SkuKpi(
            sku=sku,
            on_hand=on_hand,
            available=available,
            unit_cost=unit_cost,
            value=max(on_hand, 0.0) * unit_cost,
            outflow=out,
            avg_on_hand=avg,
            turnover=_finite(inventory_turnover(out, avg)),
            avg_daily_demand=daily_demand,
            days_of_supply=_finite(days_of_supply(available, daily_demand)),
            days=stockouts.days,
            days_with_demand=stockouts.days_with_demand,
            stockout_days=stockouts.stockout_days,
            stockout_rate=stockouts.rate,
            fill_rate=f.fill_rate(lines, end_ms),
            idle_days=idle,
            movement=f.movement_class(
                idle,
                slow_after_days=self._config.slow_after_days,
                dead_after_days=self._dead_after_days,
            ),
        )

    def _escalation_s(self, alert: Alert) -> float | None:
        times = [
            r.escalate_after_s
            for r in self._routes
            if r.escalate_after_s is not None and route_matches(r, alert)
        ]
        return min(times) if times else None

    def _alert_response(self, site: str, start_ms: int, end_ms: int) -> list[AlertResponseFigures]:
        times = [
            f.AlertTimes(
                type=a.type,
                severity=a.severity,
                raised_at_ms=a.raised_at,
                acked_at_ms=a.acked_at,
                cleared_at_ms=a.cleared_at,
                escalate_after_s=self._escalation_s(a),
            )
            for a in self._alerts_raised(site, start_ms, end_ms)
        ]
        return f.alert_response(times)


def kpi_lines(snapshot: SiteKpis) -> list[str]:
    """The snapshot as line protocol: ``kpi_site``, ``kpi_sku``, ``kpi_ageing``,
    ``kpi_lots_due`` and ``kpi_alerts``, tagged with site and period, stamped at its end."""
    ts = snapshot.end_ms * 1_000_000
    base = {"site": snapshot.site, "period": snapshot.period}
    out = [
        line(
            "kpi_site",
            base,
            {
                "stock_value": float(snapshot.stock_value),
                "stockout_rate": float(snapshot.stockout_rate),
                "fill_rate": None if snapshot.fill_rate is None else float(snapshot.fill_rate),
                "slow_skus": snapshot.slow_skus,
                "slow_value": float(snapshot.slow_value),
                "dead_skus": snapshot.dead_skus,
                "dead_value": float(snapshot.dead_value),
            },
            ts,
        )
    ]
    for s in snapshot.skus:
        out.append(
            line(
                "kpi_sku",
                {**base, "sku": s.sku},
                {
                    "on_hand": float(s.on_hand),
                    "available": float(s.available),
                    "value": float(s.value),
                    "outflow": float(s.outflow),
                    "avg_on_hand": float(s.avg_on_hand),
                    "turnover": None if s.turnover is None else float(s.turnover),
                    "avg_daily_demand": float(s.avg_daily_demand),
                    "days_of_supply": (
                        None if s.days_of_supply is None else float(s.days_of_supply)
                    ),
                    "stockout_days": s.stockout_days,
                    "stockout_rate": float(s.stockout_rate),
                    "fill_rate": None if s.fill_rate is None else float(s.fill_rate),
                    "idle_days": None if s.idle_days is None else float(s.idle_days),
                    "movement": s.movement,
                },
                ts,
            )
        )
    for bucket in snapshot.ageing:
        out.append(
            line(
                "kpi_ageing",
                {**base, "bucket": bucket.label},
                {"qty": float(bucket.qty), "value": float(bucket.value)},
                ts,
            )
        )
    for due in snapshot.lots_due:
        out.append(
            line(
                "kpi_lots_due",
                {**base, "date": due.date, "horizon_days": str(due.horizon_days)},
                {"lots": due.lots, "qty": float(due.qty), "value": float(due.value)},
                ts,
            )
        )
    for r in snapshot.alerts:
        out.append(
            line(
                "kpi_alerts",
                {**base, "type": r.type, "severity": r.severity},
                {
                    "count": r.count,
                    "acked": r.acked,
                    "resolved": r.resolved,
                    "ack_mean_s": _float(r.ack_mean_s),
                    "ack_p90_s": _float(r.ack_p90_s),
                    "resolve_mean_s": _float(r.resolve_mean_s),
                    "resolve_p90_s": _float(r.resolve_p90_s),
                    "acked_in_time_share": _float(r.acked_in_time_share),
                },
                ts,
            )
        )
    return out


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class _Job:
    """One snapshot to compute: a site's period."""

    site: str
    period: Period
    start_ms: int
    end_ms: int


def _compute(calculator: KpiCalculator, jobs: Sequence[_Job]) -> tuple[list[SiteKpis], list[_Job]]:
    """The snapshots of ``jobs``, and the jobs that failed (logged)."""
    done: list[SiteKpis] = []
    failed: list[_Job] = []
    for job in jobs:
        try:
            done.append(calculator.snapshot(job.site, job.period, job.start_ms, job.end_ms))
        except Exception:
            # One site's bad data (a broken timezone, a corrupt row) must not stop the others.
            logger.exception("KPIs of site %s could not be computed", job.site)
            failed.append(job)
    return done, failed


class KpiProcessor:
    """The rules engine's KPI schedule: rolling snapshots and daily roll-ups per site.

    A snapshot reads every SKU of a site (seconds for ten thousand SKUs), so with a database
    file the due snapshots are computed in a worker thread over a read-only connection of its
    own (``calculator_on`` builds the calculator there), one batch at a time, and stored on the
    rules loop once done: the rules never wait for them. Without a file (an in-memory database)
    they are computed at the tick.
    """

    sample_types = ()  # KPIs come from the ledger and alerts

    def __init__(
        self,
        calculator: KpiCalculator,
        store: KpiStore,
        writer: BatchWriter | None,
        config: KpiSettings,
        *,
        calculator_on: Callable[[db.Connection], KpiCalculator] | None = None,
        database: db.Target | None = None,
    ) -> None:
        self._calculator = calculator
        self._store = store
        self._writer = writer
        self._config = config
        self._calculator_on = calculator_on
        self._database = database
        self._last_rolling_ms: int | None = None
        # Per site, the local midnight up to which daily roll-ups are done (or computing).
        self._rolled_until: dict[str, int] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._running: tuple[list[_Job], Future[tuple[list[SiteKpis], list[_Job]]]] | None = None

    def process(self, samples: Sequence[Sample]) -> None:
        """KPIs depend on the ledger and alerts, not on single readings."""
        del samples

    def tick(self, now_ms: int) -> None:
        """Rolling snapshots every ``interval_s``; each local midnight passed, that day's."""
        if not self._config.enabled:
            return
        self.collect()
        if self._running is not None:
            return  # the next batch starts once this one is stored
        jobs = self._due(now_ms)
        if not jobs:
            return
        calculator_on, database = self._calculator_on, self._database
        if calculator_on is None or database is None:
            self._store_results(*_compute(self._calculator, jobs))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpi")
        future = self._pool.submit(self._compute_on, calculator_on, database, jobs)
        self._running = (jobs, future)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # collected at the next tick
        # Stored as soon as it is done, on the loop that owns the connection.
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self.collect))

    def collect(self) -> int:
        """Store the snapshots of a finished batch; how many."""
        if self._running is None or not self._running[1].done():
            return 0
        _, future = self._running
        self._running = None
        try:
            done, failed = future.result()
        except Exception:
            logger.exception("KPI batch failed")
            done, failed = [], []
            self._rolled_until.clear()  # the day roll-ups are tried again
        self._store_results(done, failed)
        return len(done)

    def wait(self, timeout_s: float) -> bool:
        """Wait until a batch in flight is done (not stored); False on timeout."""
        if self._running is None:
            return True
        _, running = futures_wait([self._running[1]], timeout=timeout_s)
        return not running

    def close(self) -> None:
        """Store a finished batch and stop the worker (a batch still running is dropped)."""
        self.collect()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _due(self, now_ms: int) -> list[_Job]:
        interval_ms = round(self._config.interval_s * 1000)
        rolling_due = self._last_rolling_ms is None or now_ms - self._last_rolling_ms >= interval_ms
        jobs: list[_Job] = []
        for site in self._calculator.sites():
            try:
                day = self._day_due(site, now_ms)
            except Exception:
                logger.exception("KPI day of site %s could not be scheduled", site)
                day = None
            if day is not None:
                jobs.append(day)
            if rolling_due:
                start = now_ms - self._config.period_days * DAY_MS
                jobs.append(_Job(site, "rolling", start, now_ms))
        if rolling_due:
            self._last_rolling_ms = now_ms
        return jobs

    def _day_due(self, site: str, now_ms: int) -> _Job | None:
        tz = self._calculator.timezone(site)
        today = datetime.fromtimestamp(now_ms / 1000, tz).date()
        midnight = f.local_midnight_ms(today, tz)
        done = self._rolled_until.get(site)
        if done is None:
            # After a restart: roll up yesterday if it is not stored yet, never older days.
            latest = self._store.latest(site, "day")
            done = latest.end_ms if latest is not None else None
        if done is not None and done >= midnight:
            self._rolled_until[site] = done
            return None
        self._rolled_until[site] = midnight
        return _Job(site, "day", f.local_midnight_ms(today - timedelta(days=1), tz), midnight)

    @staticmethod
    def _compute_on(
        calculator_on: Callable[[db.Connection], KpiCalculator],
        database: db.Target,
        jobs: list[_Job],
    ) -> tuple[list[SiteKpis], list[_Job]]:
        started = time.perf_counter()
        conn = db.connect_readonly(database)
        try:
            result = _compute(calculator_on(conn), jobs)
        finally:
            conn.close()
        logger.info("%d KPI snapshots computed in %.2f s", len(jobs), time.perf_counter() - started)
        return result

    def _store_results(self, done: Sequence[SiteKpis], failed: Sequence[_Job]) -> None:
        for snapshot in done:
            self._store.save(snapshot)
            if self._writer is not None:
                self._writer.add_nowait(kpi_lines(snapshot))
        for job in failed:
            if job.period == "day":
                self._rolled_until.pop(job.site, None)  # tried again at the next tick


def build_kpi_processor(
    settings: Settings,
    conn: db.Connection,
    alerts_raised: AlertsRaised,
    writer: BatchWriter | None,
    seed: Seed,
) -> KpiProcessor:
    """The KPI schedule over the pipeline's connection and writer; sites' timezones from the
    seed. Snapshots are computed over a read-only connection of their own (see
    :class:`KpiProcessor`)."""

    def calculator(stores: InventoryStores, raised: AlertsRaised) -> KpiCalculator:
        return KpiCalculator(
            stores,
            raised,
            settings.alerting.routes,
            settings.kpi,
            dead_after_days=settings.inventory.dead_after_days,
            timezones={site.id: site.timezone for site in seed.sites},
            sites=settings.mqtt.sites,
        )

    def calculator_on(worker_conn: db.Connection) -> KpiCalculator:
        raised = AlertStores.over(worker_conn, []).state.raised_between
        return calculator(InventoryStores.over(worker_conn), raised)

    return KpiProcessor(
        calculator(InventoryStores.over(conn), alerts_raised),
        KpiStore(conn),
        writer,
        settings.kpi,
        calculator_on=calculator_on,
        database=conn.target,
    )
