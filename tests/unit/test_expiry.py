"""Lot dates (Odoo semantics): availability, FEFO pick plans and the dates a lot has reached."""

from __future__ import annotations

import pytest

from core.inventory import DAY_MS, Lot
from rules.inventory import InvalidParameterError
from rules.inventory.expiry import (
    LotDateReached,
    PickLine,
    fefo_order,
    is_available,
    lot_dates_reached,
    plan_fefo_pick,
)

T0 = 1_795_309_200_000


def _lot(
    name: str,
    qty: float,
    *,
    removal_day: int | None,
    received_day: int = 0,
    location: str = "A",
    alert_day: int | None = None,
) -> Lot:
    removal = None if removal_day is None else T0 + removal_day * DAY_MS
    return Lot(
        id=1,
        updated_at=T0,
        lot=name,
        sku="MILK",
        site="wh1",
        location=location,
        qty=qty,
        received_at=T0 + received_day * DAY_MS,
        expiration_at=None if removal is None else removal + 2 * DAY_MS,
        removal_at=removal,
        alert_at=None if alert_day is None else T0 + alert_day * DAY_MS,
    )


def test_fefo_orders_by_removal_date_then_receipt_and_undated_last() -> None:
    lots = [
        _lot("late", 5, removal_day=40),
        _lot("undated", 5, removal_day=None),
        _lot("soon-b", 5, removal_day=10, received_day=2),
        _lot("soon-a", 5, removal_day=10, received_day=1),
        _lot("past", 5, removal_day=-1),
        _lot("empty", 0, removal_day=1),
    ]
    order = [lot.lot for lot in fefo_order(lots, now_ms=T0)]
    assert order == ["soon-a", "soon-b", "late", "undated"]


def test_stock_is_available_until_exactly_its_removal_date() -> None:
    lot = _lot("a", 4, removal_day=3)
    assert is_available(lot, T0 + 3 * DAY_MS - 1)
    assert not is_available(lot, T0 + 3 * DAY_MS)
    assert not is_available(_lot("b", 0, removal_day=10), T0)


def test_expiration_date_stands_in_for_a_missing_removal_date() -> None:
    lot = _lot("x", 3, removal_day=None).model_copy(update={"expiration_at": T0 + DAY_MS})
    assert is_available(lot, T0)
    assert not is_available(lot, T0 + DAY_MS)
    assert lot_dates_reached(lot, now_ms=T0 + DAY_MS) == [
        LotDateReached(kind="removal", due_ms=T0 + DAY_MS)
    ]


def test_pick_spans_fresh_lots_in_fefo_order() -> None:
    lots = [_lot("late", 10, removal_day=40), _lot("soon", 4, removal_day=5)]
    plan = plan_fefo_pick(lots, 7, location="A", loose=0, now_ms=T0)
    assert plan.lines == (PickLine(lot="soon", qty=4), PickLine(lot="late", qty=3))
    assert (plan.unlotted, plan.shortfall) == (0, 0)


def test_pick_skips_an_expired_lot_while_fresh_stock_covers_it() -> None:
    lots = [_lot("OLD", 5, removal_day=-1), _lot("NEW", 10, removal_day=30)]
    plan = plan_fefo_pick(lots, 3, location="A", loose=0, now_ms=T0)
    assert plan.lines == (PickLine(lot="NEW", qty=3),)


def test_pick_draws_loose_stock_before_expired_lots_and_says_when_it_drew_expired() -> None:
    lots = [_lot("OLD", 5, removal_day=-1), _lot("NEW", 2, removal_day=30)]
    plan = plan_fefo_pick(lots, 6, location="A", loose=1, now_ms=T0)
    assert plan.lines == (
        PickLine(lot="NEW", qty=2),
        PickLine(lot="OLD", qty=3, drew_expired=True),
    )
    assert (plan.unlotted, plan.shortfall) == (1, 0)


def test_pick_never_draws_another_locations_lot_and_reports_the_shortfall() -> None:
    lots = [_lot("LA", 3, removal_day=30), _lot("LB", 10, removal_day=5, location="B")]
    plan = plan_fefo_pick(lots, 5, location="A", loose=0, now_ms=T0)
    assert plan.lines == (PickLine(lot="LA", qty=3),)
    assert (plan.location, plan.unlotted, plan.shortfall) == ("A", 2, 2)
    nothing_here = plan_fefo_pick(lots, 2, location="C", loose=0, now_ms=T0)
    assert (nothing_here.lines, nothing_here.shortfall) == ((), 2)


def test_pick_quantity_must_not_be_negative() -> None:
    with pytest.raises(InvalidParameterError):
        plan_fefo_pick([], -1, location="A", loose=0, now_ms=T0)


def test_dates_reached_follow_the_clock_and_stop_when_the_lot_is_empty() -> None:
    lot = _lot("L1", 12, removal_day=25, alert_day=23)
    assert lot_dates_reached(lot, now_ms=T0 + 23 * DAY_MS - 1) == []
    alert = LotDateReached(kind="alert", due_ms=T0 + 23 * DAY_MS)
    assert lot_dates_reached(lot, now_ms=T0 + 23 * DAY_MS) == [alert]
    assert lot_dates_reached(lot, now_ms=T0 + 25 * DAY_MS) == [
        LotDateReached(kind="removal", due_ms=T0 + 25 * DAY_MS),
        alert,
    ]
    emptied = lot.model_copy(update={"qty": 0.0})
    assert lot_dates_reached(emptied, now_ms=T0 + 40 * DAY_MS) == []
