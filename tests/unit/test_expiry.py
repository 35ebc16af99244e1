"""Lot dates (Odoo semantics), FEFO, availability and idempotent expiry alerts."""

from __future__ import annotations

import pytest

from rules.inventory import InvalidParameterError
from rules.inventory.expiry import (
    DAY_MS,
    ExpiryMonitor,
    Lot,
    LotDatePolicy,
    PickLine,
    available_qty,
    fefo_order,
    plan_fefo_pick,
)

T0 = 1_795_309_200_000


def _lot(lot_id: str, qty: float, *, removal_day: int | None, received_day: int = 0) -> Lot:
    removal = None if removal_day is None else T0 + removal_day * DAY_MS
    return Lot(
        site="wh1",
        sku="MILK",
        lot_id=lot_id,
        qty=qty,
        received_ms=T0 + received_day * DAY_MS,
        expiration_ms=None if removal is None else removal + 2 * DAY_MS,
        removal_ms=removal,
    )


def test_policy_derives_the_four_dates_from_receipt() -> None:
    # expiration 30 days after receipt; best before 10, removal 5, alert 7 days before expiry
    policy = LotDatePolicy(expiration_days=30, best_before_days=10, removal_days=5, alert_days=7)
    lot = policy.lot(site="wh1", sku="MILK", lot_id="L1", qty=12, received_ms=T0)
    assert lot.expiration_ms == T0 + 30 * DAY_MS
    assert lot.best_before_ms == T0 + 20 * DAY_MS
    assert lot.removal_ms == T0 + 25 * DAY_MS
    assert lot.alert_ms == T0 + 23 * DAY_MS
    assert lot.is_past_best_before(T0 + 20 * DAY_MS)
    assert not lot.is_expired(T0 + 29 * DAY_MS)


def test_policy_rejects_negative_offsets() -> None:
    with pytest.raises(InvalidParameterError):
        LotDatePolicy(expiration_days=30, removal_days=-1)


def test_fefo_orders_by_removal_date_then_receipt_and_undated_last() -> None:
    lots = [
        _lot("late", 5, removal_day=40),
        _lot("undated", 5, removal_day=None),
        _lot("soon-b", 5, removal_day=10, received_day=2),
        _lot("soon-a", 5, removal_day=10, received_day=1),
        _lot("past", 5, removal_day=-1),
    ]
    order = [lot.lot_id for lot in fefo_order(lots, now_ms=T0)]
    assert order == ["soon-a", "soon-b", "late", "undated"]


def test_stock_past_its_removal_date_is_not_available() -> None:
    lots = [_lot("a", 4, removal_day=3), _lot("b", 6, removal_day=10)]
    assert available_qty(lots, now_ms=T0) == 10
    assert available_qty(lots, now_ms=T0 + 3 * DAY_MS - 1) == 10
    assert available_qty(lots, now_ms=T0 + 3 * DAY_MS) == 6  # removal date reached
    assert available_qty(lots, now_ms=T0 + 10 * DAY_MS) == 0


def test_expiration_date_stands_in_for_a_missing_removal_date() -> None:
    lot = Lot(site="wh1", sku="MILK", lot_id="x", qty=3, expiration_ms=T0 + DAY_MS)
    assert lot.is_available(T0)
    assert not lot.is_available(T0 + DAY_MS)


def test_fefo_pick_plan_spans_lots_and_reports_the_shortfall() -> None:
    lots = [
        _lot("late", 10, removal_day=40),
        _lot("soon", 4, removal_day=5),
        _lot("gone", 50, removal_day=-2),
    ]
    plan = plan_fefo_pick(lots, 7, now_ms=T0)
    assert plan.lines == (PickLine(lot_id="soon", qty=4), PickLine(lot_id="late", qty=3))
    assert plan.shortfall == 0
    short = plan_fefo_pick(lots, 20, now_ms=T0)
    assert sum(line.qty for line in short.lines) == 14
    assert short.shortfall == 6


def test_alerts_are_raised_on_their_dates_exactly_once() -> None:
    policy = LotDatePolicy(expiration_days=30, removal_days=5, alert_days=7)
    lot = policy.lot(site="wh1", sku="MILK", lot_id="L1", qty=12, received_ms=T0)
    monitor = ExpiryMonitor()
    assert monitor.evaluate([lot], now_ms=T0 + 22 * DAY_MS) == []
    raised = monitor.evaluate([lot], now_ms=T0 + 23 * DAY_MS)
    assert [(a.kind, a.lot_id, a.due_ms) for a in raised] == [("alert", "L1", T0 + 23 * DAY_MS)]
    assert monitor.evaluate([lot], now_ms=T0 + 24 * DAY_MS) == []
    raised = monitor.evaluate([lot], now_ms=T0 + 25 * DAY_MS)
    assert [a.kind for a in raised] == ["removal"]
    raised = monitor.evaluate([lot], now_ms=T0 + 30 * DAY_MS)
    assert [(a.kind, a.qty) for a in raised] == [("expired", 12)]
    for day in (30, 31, 60):
        assert monitor.evaluate([lot], now_ms=T0 + day * DAY_MS) == []


def test_a_late_first_evaluation_raises_each_kind_once() -> None:
    policy = LotDatePolicy(expiration_days=30, removal_days=5, alert_days=7)
    lot = policy.lot(site="wh1", sku="MILK", lot_id="L2", qty=1, received_ms=T0)
    monitor = ExpiryMonitor()
    raised = monitor.evaluate([lot, lot], now_ms=T0 + 40 * DAY_MS)
    assert sorted(a.kind for a in raised) == ["alert", "expired", "removal"]
    assert monitor.evaluate([lot], now_ms=T0 + 41 * DAY_MS) == []


def test_empty_lots_raise_nothing_and_forget_allows_a_new_lot_with_the_same_id() -> None:
    policy = LotDatePolicy(expiration_days=10, alert_days=2)
    empty = policy.lot(site="wh1", sku="MILK", lot_id="L3", qty=0, received_ms=T0)
    monitor = ExpiryMonitor()
    assert monitor.evaluate([empty], now_ms=T0 + 20 * DAY_MS) == []
    full = policy.lot(site="wh1", sku="MILK", lot_id="L3", qty=5, received_ms=T0)
    assert len(monitor.evaluate([full], now_ms=T0 + 20 * DAY_MS)) == 3
    monitor.forget(site="wh1", sku="MILK", lot_id="L3")
    assert len(monitor.evaluate([full], now_ms=T0 + 20 * DAY_MS)) == 3
