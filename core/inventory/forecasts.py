"""The forecast store: the forecast policy's levels per site and SKU, and the demand behind them.

The rules refresh a site's forecasts once a day and store them here, so a restart reuses the
day's levels instead of recomputing them, and the API shows what a reorder point came from.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from typing import Literal

from core.errors import NotFoundError
from core.inventory.base import SqlStore, as_dict
from core.inventory.models import DAY_MS, OUTFLOW_KINDS, Stored

ForecastModel = Literal["ets", "sba", "tsb", "seasonal_naive", "mean", "none"]
DemandClass = Literal["smooth", "erratic", "intermittent", "lumpy", "no_demand"]


class StoredForecast(Stored):
    """Forecast levels of one SKU at one site and the inputs they were computed from.

    ``history_end`` is the UTC midnight the daily demand history ends at (exclusive) and
    ``history_days`` its length; the lead time, review period and service level are the SKU's
    at ``computed_at`` (rules time, epoch ms). ``mase``, ``bias`` and ``pis`` are None without
    a backtest, ``fell_back_to`` None when the demand class's own model stood.
    """

    site: str
    sku: str
    model: ForecastModel
    demand_class: DemandClass
    horizon_days: int
    forecast_per_day: float
    forecast_horizon: float
    sigma_per_day: float
    safety_stock: float
    reorder_point: float
    adi: float | None
    cv2: float | None
    mase: float | None
    bias: float | None
    pis: float | None
    fell_back_to: ForecastModel | None
    reason: str
    history_end: int
    history_days: int
    lead_time_days: float
    lead_time_sigma_days: float
    review_days: float
    service_level: float
    computed_at: int


_COLUMNS = tuple(StoredForecast.model_fields)


class ForecastStore(SqlStore):
    """Stored forecast levels (one row per site and SKU, replaced at each refresh)."""

    def save(self, forecasts: Iterable[StoredForecast]) -> int:
        """Store (replace) forecasts in one transaction; how many."""
        cols = ", ".join(_COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        sets = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("site", "sku"))
        rows = [tuple(f.model_dump().values()) for f in forecasts]
        with self.transaction():
            self._conn.executemany(
                f"INSERT INTO inv_forecasts ({cols}) VALUES ({marks}) "  # noqa: S608 - columns come from the model
                f"ON CONFLICT (site, sku) DO UPDATE SET {sets}",
                rows,
            )
        return len(rows)

    def get(self, site: str, sku: str) -> StoredForecast:
        """The stored forecast of a SKU at a site (``NotFoundError`` if there is none)."""
        row = self._conn.execute(
            "SELECT * FROM inv_forecasts WHERE site = ? AND sku = ?", (site, sku)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no forecast is stored for SKU {sku} at site {site}")
        return StoredForecast.model_validate(as_dict(row))

    def for_site(self, site: str) -> dict[str, StoredForecast]:
        """Every stored forecast of a site, by SKU."""
        rows = self._conn.execute("SELECT * FROM inv_forecasts WHERE site = ?", (site,))
        return {str(r["sku"]): StoredForecast.model_validate(as_dict(r)) for r in rows}

    def daily_outflows(
        self, site: str, skus: Sequence[str], *, end_ms: int, days: int
    ) -> dict[str, builtins.list[float]]:
        """Units picked or issued per day of each SKU for the ``days`` days before ``end_ms``.

        The same days as :meth:`core.inventory.LedgerStore.daily_outflows`, oldest first, for
        many SKUs in one query (summed per day by SQLite), which a site's refresh needs.
        """
        out = {sku: [0.0] * days for sku in skus}
        if not skus or days <= 0:
            return out
        start = end_ms - days * DAY_MS
        kinds = ", ".join("?" for _ in OUTFLOW_KINDS)
        rows = self._conn.execute(
            f"""SELECT sku, LEAST((ts - ?) / {DAY_MS}, ?) AS day, -SUM(qty) FROM inv_ledger
                WHERE site = ? AND ts >= ? AND ts < ? AND kind IN ({kinds})
                GROUP BY sku, day""",  # noqa: S608 - fixed kinds and a constant
            (start, days - 1, site, start, end_ms, *OUTFLOW_KINDS),
        )
        for sku, day, qty in rows:
            history = out.get(str(sku))
            if history is not None:
                history[int(day)] += float(qty)
        return out
