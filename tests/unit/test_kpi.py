"""The KPI formulas, with the worked examples of docs/kpis.md and their boundaries."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from rules.inventory.ageing import days_of_supply, inventory_turnover
from rules.kpi import formulas as f

DAY = 86_400_000
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp() * 1000)


def test_turnover_and_days_of_supply_worked_example() -> None:
    moves = [f.Move(2 * DAY, -5, "pick"), f.Move(6 * DAY, -5, "pick")]
    avg = f.average_on_hand(20, moves, 0, 10 * DAY)
    out = f.outflow(moves, 0, 10 * DAY)
    assert avg == 14
    assert out == 10
    assert inventory_turnover(out, avg) == pytest.approx(10 / 14)
    assert days_of_supply(10, out / 10) == 10


def test_outflow_counts_only_picks_and_issues_inside_the_period() -> None:
    moves = [
        f.Move(0, -1, "pick"),
        f.Move(5, -2, "issue"),
        f.Move(6, -4, "adjust"),
        f.Move(7, 9, "receipt"),
        f.Move(10, -8, "pick"),  # at the end: outside [0, 10)
    ]
    assert f.outflow(moves, 0, 10) == 3


def test_outflow_is_net_of_an_issue_taken_back() -> None:
    # The portal issued a unit before its shelf sensed the pick; the pick took the issue back.
    moves = [f.Move(1, -1, "issue"), f.Move(3, -1, "pick"), f.Move(4, 1, "issue")]
    assert f.outflow(moves, 0, 10) == 1
    assert f.outflow(moves, 0, 2) == 1
    # A period holding only the taking back does not go below nothing.
    assert f.outflow(moves, 4, 10) == 0


def test_average_on_hand_counts_a_negative_running_quantity_as_empty() -> None:
    # A sensed pick of 5 booked before the receipt that covers it.
    moves = [f.Move(0, -5, "pick"), f.Move(5, 10, "receipt")]
    assert f.average_on_hand(0, moves, 0, 10) == 2.5  # 0 (not -5) for 5 ms, then 5 for 5 ms


def test_average_on_hand_refuses_an_empty_period() -> None:
    with pytest.raises(f.KpiParameterError, match="empty"):
        f.average_on_hand(1, [], 10, 10)


def test_stockout_rate_worked_example() -> None:
    start = local(SHANGHAI, 2026, 3, 1)
    days = f.local_days(start, local(SHANGHAI, 2026, 3, 4), SHANGHAI)
    assert len(days) == 3
    pick = local(SHANGHAI, 2026, 3, 1, 10)
    moves = [f.Move(pick, -2, "pick"), f.Move(local(SHANGHAI, 2026, 3, 2, 15), 5, "receipt")]
    demand = [pick, local(SHANGHAI, 2026, 3, 2, 9), local(SHANGHAI, 2026, 3, 3, 12)]
    figures = f.stockout_days(2, moves, demand, days)
    assert (figures.days, figures.days_with_demand, figures.stockout_days) == (3, 3, 2)
    assert figures.rate == pytest.approx(2 / 3)


def test_a_day_without_demand_is_never_a_stockout() -> None:
    days = f.local_days(0, 2 * DAY, ZoneInfo("UTC"))
    figures = f.stockout_days(0, [], [DAY + 1], days)
    assert (figures.days_with_demand, figures.stockout_days) == (1, 1)
    assert f.stockout_days(0, [], [], days).stockout_days == 0


def test_stock_one_unit_above_zero_all_day_is_not_a_stockout() -> None:
    days = f.local_days(0, DAY, ZoneInfo("UTC"))
    moves = [f.Move(100, -1, "pick")]
    assert f.stockout_days(2, moves, [100], days).stockout_days == 0
    assert f.stockout_days(1, moves, [100], days).stockout_days == 1


def test_local_days_split_at_local_midnight() -> None:
    # 23:59:59 and 00:00:00 Shanghai time fall on different days.
    before = local(SHANGHAI, 2026, 5, 1, 23, 59, 59)
    midnight = local(SHANGHAI, 2026, 5, 2)
    days = f.local_days(before, midnight + 1000, SHANGHAI)
    assert days == [(before, midnight), (midnight, midnight + 1000)]


def test_local_days_across_dst_changes_last_23_and_25_hours() -> None:
    spring = f.local_days(local(BERLIN, 2026, 3, 29), local(BERLIN, 2026, 3, 30), BERLIN)
    autumn = f.local_days(local(BERLIN, 2026, 10, 25), local(BERLIN, 2026, 10, 26), BERLIN)
    assert [(e - s) / 3_600_000 for s, e in spring] == [23]
    assert [(e - s) / 3_600_000 for s, e in autumn] == [25]


def test_fill_rate_worked_example() -> None:
    lines = [
        f.OrderLine(10, "fulfilled", 1),
        f.OrderLine(5, "confirmed", 2),
        f.OrderLine(20, "cancelled", 3),
        f.OrderLine(8, "confirmed", 11),  # not due yet
    ]
    assert f.fill_rate(lines, 10) == pytest.approx(10 / 15)


def test_fill_rate_counts_a_line_due_exactly_now_and_nothing_when_nothing_is_due() -> None:
    assert f.fill_rate([f.OrderLine(4, "confirmed", 10)], 10) == 0
    assert f.fill_rate([f.OrderLine(4, "confirmed", 11)], 10) is None
    assert f.fill_rate([], 10) is None


def test_ageing_buckets_worked_example() -> None:
    now = 100 * DAY
    lots = [
        f.LotHolding(qty=10, unit_cost=2, received_at_ms=70 * DAY),
        f.LotHolding(qty=4, unit_cost=5, received_at_ms=69 * DAY),
        f.LotHolding(qty=1, unit_cost=2, received_at_ms=0),
        f.LotHolding(qty=3, unit_cost=2, received_at_ms=None),  # age unknown: left out
        f.LotHolding(qty=0, unit_cost=2, received_at_ms=99 * DAY),  # empty lot
    ]
    buckets = f.ageing_buckets(lots, now)
    assert [(b.label, b.qty, b.value) for b in buckets] == [
        ("0-30", 10, 20),
        ("31-60", 4, 20),
        ("61-90", 0, 0),
        ("90+", 1, 2),
    ]


def test_ageing_bucket_edges_and_a_lot_received_in_the_future() -> None:
    now = 100 * DAY
    edges = [
        f.LotHolding(qty=1, unit_cost=0, received_at_ms=now - 90 * DAY),  # 90 days: 61-90
        f.LotHolding(qty=2, unit_cost=0, received_at_ms=now - 91 * DAY),  # 91 days: 90+
        f.LotHolding(qty=4, unit_cost=0, received_at_ms=now + DAY),  # clock skew: age 0
    ]
    assert [b.qty for b in f.ageing_buckets(edges, now)] == [4, 0, 1, 2]
    assert [b.label for b in f.ageing_buckets(edges, now, (7,))] == ["0-7", "7+"]


@pytest.mark.parametrize("bounds", [(), (0, 30), (30, 30), (60, 30), (-1,)])
def test_bad_bucket_bounds_are_refused(bounds: tuple[int, ...]) -> None:
    with pytest.raises(f.KpiParameterError):
        f.ageing_buckets([], 0, bounds)


def test_lots_due_worked_example() -> None:
    lots = [
        f.LotHolding(qty=5, unit_cost=1, received_at_ms=0, expiration_at_ms=7 * DAY),
        f.LotHolding(qty=2, unit_cost=3, received_at_ms=0, expiration_at_ms=8 * DAY),
        f.LotHolding(qty=9, unit_cost=1, received_at_ms=0, expiration_at_ms=-DAY),
        f.LotHolding(qty=0, unit_cost=1, received_at_ms=0, expiration_at_ms=DAY),  # empty
    ]
    due = {(d.date, d.horizon_days): (d.lots, d.qty, d.value) for d in f.lots_due(lots, 0)}
    assert due[("expiration", 7)] == (1, 5, 5)
    assert due[("expiration", 30)] == (2, 7, 11)
    assert due[("alert", 7)] == (0, 0, 0)
    assert due[("removal", 30)] == (0, 0, 0)
    assert len(due) == 6


def test_a_date_exactly_now_is_not_due_any_more() -> None:
    lot = f.LotHolding(qty=1, unit_cost=1, received_at_ms=0, alert_at_ms=0)
    assert all(d.lots == 0 for d in f.lots_due([lot], 0))


def test_movement_classes_at_their_edges() -> None:
    def cls(idle: float | None) -> str:
        return f.movement_class(idle, slow_after_days=30, dead_after_days=90)

    assert [cls(None), cls(29.99), cls(30), cls(89.99), cls(90)] == [
        "active",
        "active",
        "slow",
        "slow",
        "dead",
    ]
    with pytest.raises(f.KpiParameterError):
        f.movement_class(1, slow_after_days=91, dead_after_days=90)
    with pytest.raises(f.KpiParameterError):
        f.movement_class(1, slow_after_days=0, dead_after_days=90)


def test_idle_days_fall_back_to_the_first_arrival() -> None:
    assert f.idle_days(2 * DAY, 0, 5 * DAY) == 3
    assert f.idle_days(None, DAY, 5 * DAY) == 4
    assert f.idle_days(None, None, 5 * DAY) is None
    assert f.idle_days(6 * DAY, None, 5 * DAY) == 0


def test_alert_response_worked_example() -> None:
    acks = [60, 120, 180, 600]
    resolves = [300, 400, 900, None]
    alerts = [
        f.AlertTimes(
            type="cold_chain_excursion",
            severity="critical",
            raised_at_ms=1000 * i,
            acked_at_ms=1000 * i + ack * 1000,
            cleared_at_ms=None if res is None else 1000 * i + res * 1000,
            escalate_after_s=300,
        )
        for i, (ack, res) in enumerate(zip(acks, resolves, strict=True))
    ]
    [figures] = f.alert_response(alerts)
    assert (figures.count, figures.acked, figures.resolved) == (4, 4, 3)
    assert figures.ack_mean_s == 240
    assert figures.ack_p90_s == 600
    assert figures.resolve_mean_s == pytest.approx(1600 / 3)
    assert figures.resolve_p90_s == 900
    assert figures.acked_in_time_share == 0.75


def test_alert_response_groups_by_type_and_severity_and_handles_no_acks() -> None:
    alerts = [
        f.AlertTimes("reorder", "minor", 0, None, None),
        f.AlertTimes("reorder", "major", 0, 300_000, None, escalate_after_s=300),
        f.AlertTimes("reorder", "minor", 0, None, 10_000, escalate_after_s=60),
    ]
    out = {(r.type, r.severity): r for r in f.alert_response(alerts)}
    assert out[("reorder", "minor")].ack_mean_s is None
    assert out[("reorder", "minor")].ack_p90_s is None
    assert out[("reorder", "minor")].acked_in_time_share == 0  # escalating, never acked
    assert out[("reorder", "major")].acked_in_time_share == 1  # acked exactly at 300 s
    assert f.alert_response([]) == []


def test_p90_by_nearest_rank() -> None:
    assert f.p90([5]) == 5
    assert f.p90(list(range(1, 11))) == 9
    assert f.p90(list(range(1, 12))) == 10
    assert f.p90([]) is None
