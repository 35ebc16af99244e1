"""Ageing and dead stock: days on hand, turnover, days of supply, no outflow in N days.

- days on hand = stock ÷ average daily outflow (history);
- days of supply = stock ÷ expected daily demand (forecast when known, else history);
- inventory turnover = outflow over the period ÷ average inventory over the period;
- dead stock = stock on hand and no outflow for ``dead_after_days`` (e.g. 90 or 180).

A SKU with stock and no outflow has infinite days on hand; one without stock has zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rules.inventory import InvalidParameterError

DAY_MS = 86_400_000


def days_on_hand(stock: float, avg_daily_outflow: float) -> float:
    """Stock ÷ average daily outflow; ``inf`` for stock that does not move, 0 without stock."""
    if stock <= 0:
        return 0.0
    if avg_daily_outflow <= 0:
        return math.inf
    return stock / avg_daily_outflow


def days_of_supply(stock: float, daily_demand: float) -> float:
    """Days the stock lasts at ``daily_demand``; same edge cases as :func:`days_on_hand`."""
    return days_on_hand(stock, daily_demand)


def inventory_turnover(outflow: float, avg_inventory: float) -> float:
    """Outflow over a period ÷ average inventory over it (0 when nothing moved)."""
    if outflow <= 0:
        return 0.0
    if avg_inventory <= 0:
        return math.inf
    return outflow / avg_inventory


@dataclass(frozen=True, slots=True, kw_only=True)
class SkuActivity:
    """What the ledger says about one SKU at one site.

    ``daily_outflow`` holds one entry per day of the review period, oldest first.
    ``stocked_since_ms`` stands in for the last outflow of stock that never moved.
    """

    site: str
    sku: str
    stock: float
    daily_outflow: Sequence[float]
    last_outflow_ms: int | None = None
    stocked_since_ms: int | None = None
    avg_inventory: float | None = None
    forecast_daily_demand: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgeingFigures:
    """Ageing figures of one SKU at one site."""

    site: str
    sku: str
    stock: float
    avg_daily_outflow: float
    days_on_hand: float
    days_of_supply: float
    turnover: float
    days_since_outflow: float | None
    dead: bool


def ageing_figures(
    activity: SkuActivity, *, now_ms: int, dead_after_days: float = 90
) -> AgeingFigures:
    """Compute the ageing figures of one SKU at ``now_ms``."""
    if dead_after_days <= 0:
        raise InvalidParameterError(f"dead_after_days {dead_after_days} must be positive")
    period = len(activity.daily_outflow)
    outflow = float(sum(activity.daily_outflow))
    avg_out = outflow / period if period else 0.0
    demand = (
        activity.forecast_daily_demand if activity.forecast_daily_demand is not None else avg_out
    )
    avg_inventory = activity.avg_inventory if activity.avg_inventory is not None else activity.stock
    reference = (
        activity.last_outflow_ms
        if activity.last_outflow_ms is not None
        else activity.stocked_since_ms
    )
    since_days = None if reference is None else (now_ms - reference) / DAY_MS
    # Without any reference date nothing proves the stock idle, so it is not called dead.
    dead = activity.stock > 0 and since_days is not None and since_days >= dead_after_days
    return AgeingFigures(
        site=activity.site,
        sku=activity.sku,
        stock=activity.stock,
        avg_daily_outflow=avg_out,
        days_on_hand=days_on_hand(activity.stock, avg_out),
        days_of_supply=days_of_supply(activity.stock, demand),
        turnover=inventory_turnover(outflow, avg_inventory),
        days_since_outflow=since_days,
        dead=dead,
    )
