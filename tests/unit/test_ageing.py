"""Ageing (days on hand, dead stock, turnover, days of supply) and supply/demand imbalance."""

from __future__ import annotations

import math

import pytest

from rules.inventory import InvalidParameterError
from rules.inventory.ageing import (
    DAY_MS,
    SkuActivity,
    ageing_figures,
    days_of_supply,
    days_on_hand,
    inventory_turnover,
)
from rules.inventory.imbalance import (
    DemandLine,
    InboundLine,
    find_imbalances,
)

T0 = 1_795_309_200_000


# --------------------------------------------------------------------------- ageing


def test_days_on_hand_is_stock_over_average_daily_outflow() -> None:
    assert days_on_hand(120, 4) == 30
    assert days_on_hand(0, 4) == 0
    assert days_on_hand(10, 0) == math.inf
    assert days_of_supply(90, 6) == 15


def test_inventory_turnover() -> None:
    # 1,200 units out over the period, average inventory 300 -> turned 4 times
    assert inventory_turnover(1_200, 300) == 4
    assert inventory_turnover(0, 300) == 0
    assert inventory_turnover(10, 0) == math.inf


def test_ageing_figures_from_a_30_day_ledger() -> None:
    # 30 days: 20 days of 3 units, 10 days of 0 -> 60 units out, 2 per day on average
    activity = SkuActivity(
        site="wh1",
        sku="A",
        stock=50,
        daily_outflow=[3.0] * 20 + [0.0] * 10,
        last_outflow_ms=T0 - 10 * DAY_MS,
        avg_inventory=40,
        forecast_daily_demand=5,
    )
    figures = ageing_figures(activity, now_ms=T0, dead_after_days=90)
    assert figures.avg_daily_outflow == 2
    assert figures.days_on_hand == 25  # 50 / 2
    assert figures.days_of_supply == 10  # 50 / 5 (forecast)
    assert figures.turnover == 1.5  # 60 / 40
    assert figures.days_since_outflow == 10
    assert not figures.dead


@pytest.mark.parametrize(("idle_days", "dead"), [(89, False), (90, True), (200, True)])
def test_dead_stock_after_n_days_without_outflow(idle_days: int, dead: bool) -> None:
    activity = SkuActivity(
        site="wh1",
        sku="B",
        stock=7,
        daily_outflow=[0.0] * 30,
        last_outflow_ms=T0 - idle_days * DAY_MS,
    )
    assert ageing_figures(activity, now_ms=T0, dead_after_days=90).dead is dead


def test_dead_stock_threshold_is_configurable_and_needs_stock() -> None:
    idle = SkuActivity(
        site="wh1", sku="C", stock=7, daily_outflow=[], stocked_since_ms=T0 - 100 * DAY_MS
    )
    assert ageing_figures(idle, now_ms=T0, dead_after_days=90).dead
    assert not ageing_figures(idle, now_ms=T0, dead_after_days=180).dead
    empty = SkuActivity(
        site="wh1", sku="C", stock=0, daily_outflow=[], stocked_since_ms=T0 - 400 * DAY_MS
    )
    assert not ageing_figures(empty, now_ms=T0).dead
    with pytest.raises(InvalidParameterError):
        ageing_figures(idle, now_ms=T0, dead_after_days=0)


# --------------------------------------------------------------------------- imbalance


def _demand() -> list[DemandLine]:
    return [
        DemandLine(site="wh1", sku="A", qty=30, due_ms=T0 + 2 * DAY_MS),
        DemandLine(site="wh1", sku="A", qty=20, due_ms=T0 + 6 * DAY_MS),
        DemandLine(site="wh1", sku="A", qty=99, due_ms=T0 + 8 * DAY_MS),  # beyond 7 days
        DemandLine(site="wh1", sku="B", qty=10, due_ms=T0 + 1 * DAY_MS),
        DemandLine(site="wh1", sku="C", qty=5, due_ms=T0 + 3 * DAY_MS),
        DemandLine(site="wh1", sku="D", qty=8, due_ms=T0 - DAY_MS),  # overdue, still owed
    ]


def _available() -> dict[tuple[str, str], float]:
    return {("wh1", "A"): 25, ("wh1", "B"): 2, ("wh1", "C"): 9, ("wh1", "D"): 0}


def _inbound() -> list[InboundLine]:
    return [
        InboundLine(site="wh1", sku="A", qty=5, eta_ms=T0 + 3 * DAY_MS),
        InboundLine(site="wh1", sku="A", qty=100, eta_ms=T0 + 10 * DAY_MS),  # too late
        InboundLine(site="wh1", sku="B", qty=3),
    ]


COSTS = {"A": 2.0, "B": 12.5, "C": 1.0, "D": 4.0}


def test_imbalances_are_ranked_by_value_at_risk() -> None:
    items = find_imbalances(
        demand=_demand(),
        available=_available(),
        in_transit=_inbound(),
        unit_cost=COSTS,
        now_ms=T0,
    )
    # A: 50 due - 25 available - 5 arriving in time = 20 short x 2.0 = 40.0
    # B: 10 confirmed - 2 - 3 = 5 short x 12.5 = 62.5
    # C: covered; D: 8 overdue - 0 = 8 x 4.0 = 32.0
    assert [(i.sku, i.shortfall, i.value_at_risk) for i in items] == [
        ("B", 5, 62.5),
        ("A", 20, 40.0),
        ("D", 8, 32.0),
    ]
    a = items[1]
    assert (a.demand, a.available, a.in_transit, a.first_due_ms) == (50, 25, 5, T0 + 2 * DAY_MS)


def test_imbalance_horizon_must_be_positive() -> None:
    with pytest.raises(InvalidParameterError):
        find_imbalances(demand=[], available={}, unit_cost={}, now_ms=T0, horizon_days=0)
