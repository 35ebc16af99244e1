"""Inventory-health and alert-response KPI snapshots: the figures the rules compute on a
schedule and the API serves, and their store.

The rules write a ``rolling`` snapshot per site every few minutes (the last N days up to now)
and a ``day`` snapshot per site at each local midnight (the day that ended). Definitions and
formulas are in ``docs/kpis.md``.
"""

from __future__ import annotations

import builtins
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.db import SqlStore

Period = Literal["rolling", "day"]
MovementClass = Literal["active", "slow", "dead"]
# Rolling snapshots are kept this long; day snapshots are kept for good (one row a site a day).
ROLLING_KEEP_MS = 2 * 86_400_000


class Figures(BaseModel):
    """Base of the KPI records: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SkuKpi(Figures):
    """One SKU at one site over the snapshot's period."""

    sku: str
    on_hand: float
    available: float
    unit_cost: float
    value: float
    outflow: float
    avg_on_hand: float
    turnover: float | None
    avg_daily_demand: float
    days_of_supply: float | None
    days: int
    days_with_demand: int
    stockout_days: int
    stockout_rate: float
    fill_rate: float | None
    idle_days: float | None
    movement: MovementClass


class AgeBucket(Figures):
    """Stock received ``label`` days ago (by lot receipt date): quantity and value."""

    label: str
    qty: float
    value: float


class LotsDueFigures(Figures):
    """Lots on hand whose ``date`` (alert, removal, expiration) falls in the next N days."""

    date: Literal["alert", "removal", "expiration"]
    horizon_days: int
    lots: int
    qty: float
    value: float


class AlertResponseFigures(Figures):
    """Alerts of one type and severity raised in the period, and how fast people answered."""

    type: str
    severity: str
    count: int
    acked: int
    resolved: int
    ack_mean_s: float | None
    ack_p90_s: float | None
    resolve_mean_s: float | None
    resolve_p90_s: float | None
    acked_in_time_share: float | None


class SiteKpis(Figures):
    """Every KPI of one site over ``[start_ms, end_ms)``."""

    site: str
    period: Period
    start_ms: int
    end_ms: int
    timezone: str
    stock_value: float
    stockout_rate: float
    fill_rate: float | None
    slow_skus: int
    slow_value: float
    dead_skus: int
    dead_value: float
    skus: list[SkuKpi]
    ageing: list[AgeBucket]
    lots_due: list[LotsDueFigures]
    alerts: list[AlertResponseFigures]

    def sku(self, sku: str) -> SkuKpi | None:
        """The figures of one SKU, if the site holds or moved it."""
        return next((s for s in self.skus if s.sku == sku), None)


class KpiStore(SqlStore):
    """KPI snapshots in the relational store (table ``kpi_snapshots``)."""

    def save(self, snapshot: SiteKpis) -> None:
        """Store a snapshot (replacing one of the same site, period and end); prune old rolling
        snapshots of the site in the same transaction."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO kpi_snapshots (site, period, at, body) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (site, period, at) DO UPDATE SET body = excluded.body",
                (snapshot.site, snapshot.period, snapshot.end_ms, snapshot.model_dump_json()),
            )
            self._conn.execute(
                "DELETE FROM kpi_snapshots WHERE site = ? AND period = 'rolling' AND at < ?",
                (snapshot.site, snapshot.end_ms - ROLLING_KEEP_MS),
            )

    def latest(self, site: str, period: Period = "rolling") -> SiteKpis | None:
        """The newest snapshot of a site and period."""
        row = self._conn.execute(
            "SELECT body FROM kpi_snapshots WHERE site = ? AND period = ? ORDER BY at DESC LIMIT 1",
            (site, period),
        ).fetchone()
        return None if row is None else SiteKpis.model_validate_json(row[0])

    def history(
        self, site: str, period: Period, *, since_ms: int, until_ms: int, limit: int = 400
    ) -> builtins.list[SiteKpis]:
        """Snapshots of a site and period ending in ``[since_ms, until_ms]``, oldest first."""
        rows = self._conn.execute(
            """SELECT body FROM kpi_snapshots WHERE site = ? AND period = ? AND at >= ?
               AND at <= ? ORDER BY at LIMIT ?""",
            (site, period, since_ms, until_ms, limit),
        )
        return [SiteKpis.model_validate_json(r[0]) for r in rows]

    def sites(self) -> builtins.list[str]:
        """Sites with at least one snapshot."""
        rows = self._conn.execute("SELECT DISTINCT site FROM kpi_snapshots ORDER BY site")
        return [str(r[0]) for r in rows]
