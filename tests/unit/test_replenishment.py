"""Replenishment formulas against published values, reorder rules and suggestion decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.inventory import Suggestion, SuggestionState
from rules.inventory import InvalidParameterError
from rules.inventory.replenishment import (
    MinMaxRule,
    NewSuggestion,
    ReorderLevelRule,
    ReorderPointRule,
    RevisedSuggestion,
    dynamic_levels,
    horizon_safety_stock,
    negative_binomial_quantile,
    projected_qty,
    reorder_point,
    round_up_to_multiple,
    safety_stock,
    suggestion_change,
    z_for_service_level,
)

T0 = 1_795_309_200_000


# --------------------------------------------------------------------------- formulas


def test_z_for_95_percent_service_level_is_1_645() -> None:
    assert z_for_service_level(0.95) == pytest.approx(1.645, abs=0.001)
    assert z_for_service_level(0.5) == pytest.approx(0.0, abs=1e-12)
    assert z_for_service_level(0.99) == pytest.approx(2.326, abs=0.001)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_z_rejects_service_levels_outside_the_open_interval(p: float) -> None:
    with pytest.raises(InvalidParameterError):
        z_for_service_level(p)


def test_safety_stock_and_reorder_point_for_a_small_ledger() -> None:
    # Daily demand over five days: 10, 12, 8, 11, 9.
    #   d = 50 / 5 = 10
    #   deviations 0, 2, -2, 1, -1 -> squares 0 + 4 + 4 + 1 + 1 = 10
    #   sample variance sd^2 = 10 / (5 - 1) = 2.5, sd = 1.5811
    # Lead time L = 4 days, sL = 1 day, 95 % service level -> z = 1.64485
    #   L*sd^2 + d^2*sL^2 = 4*2.5 + 100*1 = 110, sqrt(110) = 10.48809
    #   SS = 1.64485 * 10.48809 = 17.2514
    #   ROP = d*L + SS = 40 + 17.2514 = 57.2514
    ledger = [10.0, 12.0, 8.0, 11.0, 9.0]
    d = sum(ledger) / len(ledger)
    sd = math.sqrt(sum((x - d) ** 2 for x in ledger) / (len(ledger) - 1))
    assert d == 10.0
    assert sd == pytest.approx(1.5811, abs=1e-4)
    z = z_for_service_level(0.95)
    ss = safety_stock(z, d, sd, 4, 1)
    assert ss == pytest.approx(17.2514, abs=1e-4)
    assert reorder_point(d, 4, ss) == pytest.approx(57.2514, abs=1e-4)


def test_safety_stock_without_lead_time_variation_is_z_sigma_sqrt_l() -> None:
    # sL = 0 reduces to the classic z * sd * sqrt(L): 2 * 3 * sqrt(9) = 18
    assert safety_stock(2.0, 50.0, 3.0, 9.0, 0.0) == pytest.approx(18.0)


def test_safety_stock_rejects_negative_inputs() -> None:
    with pytest.raises(InvalidParameterError):
        safety_stock(1.645, 10, 1, -1, 0)


def test_horizon_safety_stock_adds_lead_time_variation_to_the_measured_error() -> None:
    # A measured 14-day RMSE of 30 units and d·sL = 20 · 2 = 40: √(30² + 40²) = 50 per z.
    assert horizon_safety_stock(1.0, 30.0, 20.0, 2.0) == pytest.approx(50.0)
    assert horizon_safety_stock(1.645, 30.0, 20.0, 0.0) == pytest.approx(1.645 * 30.0)
    # The same buffer as the per-day formula with sigma_e = e_h / √L.
    assert horizon_safety_stock(1.645, 30.0, 20.0, 2.0) == pytest.approx(
        safety_stock(1.645, 20.0, 30.0 / math.sqrt(14), 14, 2.0)
    )
    with pytest.raises(InvalidParameterError):
        horizon_safety_stock(1.645, -1.0, 20.0, 0.0)


def test_negative_binomial_quantile_against_closed_forms() -> None:
    # Poisson(2): P(X ≤ 4) = 0.947, P(X ≤ 5) = 0.983.
    assert float(negative_binomial_quantile(2.0, 2.0, 0.95)) == 5.0
    assert float(negative_binomial_quantile(2.0, 2.0, 0.94)) == 4.0
    # Geometric (variance m + m²): P(X ≤ k) = 1 - (m / (1 + m))^(k+1).
    for m, p in ((3.0, 0.95), (0.4, 0.9), (12.0, 0.99)):
        k = math.ceil(math.log(1 - p) / math.log(m / (1 + m)) - 1 - 1e-9)
        assert float(negative_binomial_quantile(m, m + m * m, p)) == k
    # Shapes broadcast, a zero mean needs nothing, and a heavy tail sits above the normal one.
    q = negative_binomial_quantile(
        np.array([[0.0, 5.6], [5.6, 5.6]]), [[0.0, 81.0], [5.6, 81.0]], 0.95
    )
    assert q.shape == (2, 2)
    assert q[0, 0] == 0.0
    assert q[0, 1] - 5.6 > 1.645 * 9.0
    assert q[1, 0] == float(negative_binomial_quantile(5.6, 5.6, 0.95))


def test_negative_binomial_quantile_gives_nan_beyond_its_reach_and_rejects_bad_inputs() -> None:
    assert math.isnan(float(negative_binomial_quantile(5_000.0, 20_000.0, 0.95)))
    with pytest.raises(InvalidParameterError):
        negative_binomial_quantile(1.0, 1.0, 1.0)
    with pytest.raises(InvalidParameterError):
        negative_binomial_quantile(-1.0, 1.0, 0.5)


def test_dynamic_levels_match_the_scalar_formulas() -> None:
    rng = np.random.default_rng(7)
    demand = rng.poisson(lam=[[5.0], [20.0], [0.5]], size=(3, 90)).astype(np.float64)
    demand[0, :5] = [10, 12, 8, 11, 9]
    lead_mean = np.array([4.0, 10.0, 2.0])
    lead_sigma = np.array([1.0, 2.5, 0.0])
    service = np.array([0.95, 0.99, 0.95])
    d_mean, d_sigma, ss, rop = dynamic_levels(demand, lead_mean, lead_sigma, service)
    for i in range(3):
        row = demand[i]
        mean = float(row.mean())
        sigma = float(row.std(ddof=1))
        z = z_for_service_level(float(service[i]))
        expected_ss = safety_stock(z, mean, sigma, float(lead_mean[i]), float(lead_sigma[i]))
        assert d_mean[i] == pytest.approx(mean)
        assert d_sigma[i] == pytest.approx(sigma)
        assert ss[i] == pytest.approx(expected_ss)
        assert rop[i] == pytest.approx(mean * lead_mean[i] + expected_ss)


def test_dynamic_levels_reproduce_the_hand_computed_ledger() -> None:
    demand = np.array([[10.0, 12.0, 8.0, 11.0, 9.0]])
    _, d_sigma, ss, rop = dynamic_levels(demand, np.array([4.0]), np.array([1.0]), np.array([0.95]))
    assert d_sigma[0] == pytest.approx(1.5811, abs=1e-4)
    assert ss[0] == pytest.approx(17.2514, abs=1e-4)
    assert rop[0] == pytest.approx(57.2514, abs=1e-4)


def test_dynamic_levels_reject_bad_shapes_and_levels() -> None:
    with pytest.raises(InvalidParameterError):
        dynamic_levels(np.ones(5), np.ones(1), np.ones(1), np.full(1, 0.95))
    with pytest.raises(InvalidParameterError):
        dynamic_levels(np.ones((2, 5)), np.ones(2), np.ones(2), np.array([0.95, 1.0]))


# --------------------------------------------------------------------------- rules


def test_projected_quantity_is_on_hand_plus_on_order_minus_reserved() -> None:
    assert projected_qty(on_hand=20, on_order=5, reserved=17) == 8


def test_odoo_min_max_example_orders_36() -> None:
    # Odoo docs: min 10, max 40, multiple 6, forecast 8 -> 40 - 8 = 32 -> rounded up to 36
    rule = MinMaxRule(site="wh1", sku="A", min_qty=10, max_qty=40, multiple=6)
    assert rule.triggered(8)
    assert rule.order_qty(8) == 36


def test_min_max_triggers_strictly_below_the_minimum() -> None:
    # Odoo stock_orderpoint: float_compare(qty_forecast, product_min_qty) < 0
    rule = MinMaxRule(site="wh1", sku="A", min_qty=10, max_qty=40, multiple=6)
    assert rule.trigger_op == "<"
    assert not rule.triggered(10)
    assert rule.order_qty(10) == 0  # exactly at the minimum: nothing to order
    assert not rule.triggered(10 - 1e-12)  # float noise at the minimum is the minimum
    assert not rule.triggered(10.5)
    assert rule.order_qty(11) == 0
    assert rule.triggered(9)
    assert rule.order_qty(9) == 36  # 40 - 9 = 31 -> packs of 6 -> 36
    assert rule.order_qty(9.999) == 36  # 30.001 -> 36


def test_round_up_to_multiple_keeps_exact_multiples() -> None:
    assert round_up_to_multiple(36, 6) == 36
    assert round_up_to_multiple(0.3 * 3, 0.3) == pytest.approx(0.9)
    assert round_up_to_multiple(7, 0) == 7


def test_erpnext_reorder_qty_is_max_of_reorder_qty_and_gap() -> None:
    rule = ReorderLevelRule(site="wh1", sku="B", reorder_level=20, reorder_qty=15)
    assert rule.order_qty(12) == 15  # gap 8 < reorder qty 15
    assert rule.order_qty(2) == 18  # gap 18 > reorder qty 15
    assert rule.order_qty(-5) == 25  # reservations beyond stock widen the gap
    assert rule.order_qty(20) == 0  # ERPNext fires strictly below the level


def test_dynamic_rule_fires_at_or_below_the_reorder_point() -> None:
    rule = ReorderPointRule.dynamic(site="wh1", sku="C", reorder_point=57.25, order_qty=304.05)
    assert rule.trigger_level == 57.25
    assert rule.trigger_op == "≤"
    assert not rule.triggered(58)
    assert not rule.triggered(57.26)
    assert rule.triggered(57.25)  # projected ≤ ROP: the reorder point itself fires
    assert rule.order_qty(57.25) == 305  # 304.05 -> whole units
    # 57.25 + 304.05 - 50 = 311.3 -> whole units (default multiple 1) -> 312
    assert rule.order_qty(50) == 312


# --------------------------------------------------------------------------- suggestions

# ``projected`` is on hand + on order - reserved, where on order holds the ordered suggestions
# (ordering one opens an inbound line): the processor's definition.


def _odoo_rule() -> MinMaxRule:
    return MinMaxRule(site="wh1", sku="A", min_qty=10, max_qty=40, multiple=6)


def _open(suggestion_id: int, state: SuggestionState, qty: float) -> Suggestion:
    return Suggestion(
        id=suggestion_id,
        site="wh1",
        sku="A",
        qty=qty,
        state=state,
        reason="below min",
        projected=0,
        trigger_level=10,
        created_at=T0,
        updated_at=T0,
    )


def test_suggestion_is_made_once_and_reevaluation_is_idempotent() -> None:
    rule = _odoo_rule()
    assert suggestion_change(rule, projected=8, open_suggestions=[]) == NewSuggestion(qty=36)
    pending = [_open(1, "suggested", 36)]
    for projected in (8, 8, 9):
        assert suggestion_change(rule, projected=projected, open_suggestions=pending) is None


def test_no_suggestion_at_or_above_the_minimum() -> None:
    for projected in (10, 11):
        assert suggestion_change(_odoo_rule(), projected=projected, open_suggestions=[]) is None


def test_ordered_suggestion_still_covers_the_gap() -> None:
    ordered = [_open(1, "ordered", 36)]
    # projected dropped to 5 on hand, but the 36 on order keep it above the minimum
    assert suggestion_change(_odoo_rule(), projected=5 + 36, open_suggestions=ordered) is None


def test_a_new_gap_beyond_an_ordered_purchase_gets_a_new_suggestion() -> None:
    rule = _odoo_rule()
    ordered = [_open(1, "ordered", 36)]
    # a big reservation: -30 + 36 on order = 6 < 10, so the order no longer covers it
    assert suggestion_change(rule, projected=6, open_suggestions=ordered) == NewSuggestion(qty=36)
    both = [*ordered, _open(2, "suggested", 36)]
    assert suggestion_change(rule, projected=6, open_suggestions=both) is None


def test_pending_suggestion_is_revised_not_duplicated() -> None:
    rule = _odoo_rule()
    pending = [_open(7, "suggested", 36)]
    assert suggestion_change(rule, projected=-2, open_suggestions=pending) is None  # 34 covers
    change = suggestion_change(rule, projected=-30, open_suggestions=pending)
    assert change == RevisedSuggestion(id=7, qty=72)  # 40 + 30 = 70 -> 72
    revised = [_open(7, "suggested", 72)]
    assert suggestion_change(rule, projected=-30, open_suggestions=revised) is None


def test_the_oldest_pending_suggestion_is_the_one_revised() -> None:
    rule = _odoo_rule()
    open_items = [_open(3, "ordered", 36), _open(4, "suggested", 6), _open(5, "suggested", 6)]
    # -60 + 36 on order = -24; pending 12 leave it at -12 < 10
    assert suggestion_change(rule, projected=-24, open_suggestions=open_items) == (
        RevisedSuggestion(id=4, qty=66)  # 40 + 24 = 64 -> 66
    )


def test_erpnext_rule_suggests_max_of_reorder_qty_and_gap() -> None:
    rule = ReorderLevelRule(site="wh1", sku="B", reorder_level=20, reorder_qty=15)
    assert suggestion_change(rule, projected=2, open_suggestions=[]) == NewSuggestion(qty=18)
    pending = [_open(1, "suggested", 18)]
    assert suggestion_change(rule, projected=2, open_suggestions=pending) is None


def test_ordered_quantity_reaching_exactly_the_minimum_covers_the_gap() -> None:
    rule = _odoo_rule()
    ordered = [_open(1, "ordered", 36)]
    # -26 + 36 on order = 10: exactly the minimum, which the min/max rule does not reorder at
    assert suggestion_change(rule, projected=10, open_suggestions=ordered) is None
    # -27 + 36 = 9 < 10: a new gap, 40 - 9 = 31 -> 36
    assert suggestion_change(rule, projected=9, open_suggestions=ordered) == NewSuggestion(qty=36)


def test_reorder_point_rule_is_not_covered_by_an_order_reaching_exactly_the_rop() -> None:
    rule = ReorderPointRule.dynamic(site="wh1", sku="C", reorder_point=20, order_qty=10)
    assert suggestion_change(rule, projected=20, open_suggestions=[]) == NewSuggestion(qty=10)
    ordered = [_open(1, "ordered", 10)]
    assert suggestion_change(rule, projected=21, open_suggestions=ordered) is None  # 11 + 10
    # 10 + 10 on order = 20 <= 20: fires again, up to 30 - 20
    assert suggestion_change(rule, projected=20, open_suggestions=ordered) == NewSuggestion(qty=10)
