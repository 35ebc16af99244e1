"""Inventory-health and alert-response KPIs: pure formulas over plain values.

Definitions, units and a worked example of each are in ``docs/kpis.md``; every example there
is a unit test (``tests/unit/test_kpi.py``). Time arrives as epoch milliseconds and periods
as ``[start_ms, end_ms)``, so live, replayed and simulated data give the same figures.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from core.errors import ConfigError
from core.inventory.models import DAY_MS, OUTFLOW_KINDS
from core.kpi import AgeBucket, AlertResponseFigures, LotsDueFigures

DEFAULT_AGE_BUCKETS: tuple[int, ...] = (30, 60, 90)
LOT_HORIZONS_DAYS: tuple[int, ...] = (7, 30)
LOT_DATES: tuple[Literal["alert", "removal", "expiration"], ...] = (
    "alert",
    "removal",
    "expiration",
)


class KpiParameterError(ConfigError):
    """A KPI was asked for with parameters outside its domain (empty period, bad buckets)."""


@dataclass(frozen=True, slots=True, order=True)
class Move:
    """One ledger movement of a SKU at a site: signed quantity at a time."""

    ts_ms: int
    qty: float
    kind: str


def _check_period(start_ms: int, end_ms: int) -> None:
    if end_ms <= start_ms:
        raise KpiParameterError(f"period [{start_ms}, {end_ms}) is empty")


def outflow(moves: Iterable[Move], start_ms: int, end_ms: int) -> float:
    """Units that left stock by picks and issues in ``[start_ms, end_ms)``, net of issues taken
    back (a portal issue that a later shelf pick explained is booked back as ``+1`` issue).

    Adjustments (counts) and transfers are not demand, so they are not outflow.
    """
    net = -sum(m.qty for m in moves if m.kind in OUTFLOW_KINDS and start_ms <= m.ts_ms < end_ms)
    return max(float(net), 0.0)


def average_on_hand(opening: float, moves: Sequence[Move], start_ms: int, end_ms: int) -> float:
    """Time-weighted average quantity on hand over ``[start_ms, end_ms)``.

    ``opening`` is the quantity at ``start_ms``; ``moves`` are those inside the period, in
    any order. A negative running quantity (a sensed pick before its receipt was booked) counts
    as zero: there was nothing on the shelf.
    """
    _check_period(start_ms, end_ms)
    level = opening
    at = start_ms
    area = 0.0
    for move in sorted(m for m in moves if start_ms <= m.ts_ms < end_ms):
        area += max(level, 0.0) * (move.ts_ms - at)
        level += move.qty
        at = move.ts_ms
    area += max(level, 0.0) * (end_ms - at)
    return area / (end_ms - start_ms)


def local_midnight_ms(day: date, tz: ZoneInfo) -> int:
    """Epoch ms of ``day``'s local midnight in ``tz``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def local_days(start_ms: int, end_ms: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """The site's local calendar days covering ``[start_ms, end_ms)``, as ``[start, end)`` ms.

    Day boundaries are local midnights, so a DST change gives a 23 h or 25 h day; the first and
    last days are cut to the period.
    """
    _check_period(start_ms, end_ms)
    days: list[tuple[int, int]] = []
    day = datetime.fromtimestamp(start_ms / 1000, tz).date()
    at = start_ms
    while at < end_ms:
        day += timedelta(days=1)
        boundary = local_midnight_ms(day, tz)
        days.append((at, min(boundary, end_ms)))
        at = boundary
    return days


@dataclass(frozen=True, slots=True)
class StockoutFigures:
    """Stock-out rate of one SKU at one site over a period of local days."""

    days: int
    days_with_demand: int
    stockout_days: int

    @property
    def rate(self) -> float:
        """Share of the period's days with demand and nothing available at some time that day."""
        return self.stockout_days / self.days if self.days else 0.0


def stockout_days(
    opening: float,
    moves: Sequence[Move],
    demand_days: Iterable[int],
    days: Sequence[tuple[int, int]],
) -> StockoutFigures:
    """Count the days on which the SKU had demand while nothing was available.

    ``demand_days`` are timestamps at which demand existed (picks, and demand orders due):
    a day counts as a stock-out when it had demand and the quantity on hand was zero or less
    at any moment of it (its opening included).
    """
    ordered = sorted(moves)
    demand = sorted(demand_days)
    level = opening
    index = 0
    with_demand = 0
    out = 0
    for start, end in days:
        while index < len(ordered) and ordered[index].ts_ms < start:
            level += ordered[index].qty
            index += 1
        lowest = level
        while index < len(ordered) and ordered[index].ts_ms < end:
            level += ordered[index].qty
            lowest = min(lowest, level)
            index += 1
        had_demand = any(start <= ts < end for ts in demand)
        if had_demand:
            with_demand += 1
            if lowest <= 0:
                out += 1
    return StockoutFigures(days=len(days), days_with_demand=with_demand, stockout_days=out)


@dataclass(frozen=True, slots=True)
class OrderLine:
    """A demand order line due in the period: what was asked and what was delivered."""

    qty: float
    status: str  # confirmed, fulfilled or cancelled
    due_at_ms: int


def fill_rate(lines: Iterable[OrderLine], now_ms: int) -> float | None:
    """Units fulfilled ÷ units due by ``now_ms`` (cancelled lines left out).

    A confirmed line still open after its due time counts as not filled; lines not yet due
    do not count. None when nothing was due.
    """
    due = [line for line in lines if line.status != "cancelled" and line.due_at_ms <= now_ms]
    asked = sum(line.qty for line in due)
    if asked <= 0:
        return None
    return sum(line.qty for line in due if line.status == "fulfilled") / asked


def bucket_labels(bounds: Sequence[int]) -> list[str]:
    """``0-30``, ``31-60``, ``61-90``, ``90+`` for bounds (30, 60, 90)."""
    check_buckets(bounds)
    labels = []
    low = 0
    for high in bounds:
        labels.append(f"{low}-{high}")
        low = high + 1
    labels.append(f"{bounds[-1]}+")
    return labels


def check_buckets(bounds: Sequence[int]) -> None:
    """Bucket bounds are whole days, positive and strictly increasing."""
    if not bounds:
        raise KpiParameterError("ageing buckets need at least one bound")
    if any(b <= 0 for b in bounds) or any(b >= c for b, c in itertools.pairwise(bounds)):
        raise KpiParameterError(
            f"ageing bucket bounds {list(bounds)} must be positive and increasing"
        )


@dataclass(frozen=True, slots=True)
class LotHolding:
    """A lot on hand: its quantity, unit cost, receipt and lifecycle dates (epoch ms)."""

    qty: float
    unit_cost: float
    received_at_ms: int | None
    alert_at_ms: int | None = None
    removal_at_ms: int | None = None
    expiration_at_ms: int | None = None


def ageing_buckets(
    lots: Iterable[LotHolding], now_ms: int, bounds: Sequence[int] = DEFAULT_AGE_BUCKETS
) -> list[AgeBucket]:
    """Stock by age since receipt: a lot ``d`` whole days old is in the first bucket whose
    bound is ≥ ``d`` (0-30 holds day 30, 31-60 day 31), the last bucket holds the rest.

    Lots without a receipt date are left out (nothing says how old they are).
    """
    labels = bucket_labels(bounds)
    qty = [0.0] * len(labels)
    value = [0.0] * len(labels)
    for lot in lots:
        if lot.qty <= 0 or lot.received_at_ms is None:
            continue
        age_days = max(0, (now_ms - lot.received_at_ms) // DAY_MS)
        index = next((i for i, bound in enumerate(bounds) if age_days <= bound), len(bounds))
        qty[index] += lot.qty
        value[index] += lot.qty * lot.unit_cost
    return [
        AgeBucket(label=label, qty=q, value=v)
        for label, q, v in zip(labels, qty, value, strict=True)
    ]


def lots_due(
    lots: Sequence[LotHolding], now_ms: int, horizons: Sequence[int] = LOT_HORIZONS_DAYS
) -> list[LotsDueFigures]:
    """Lots on hand reaching their alert, removal and expiration dates in ``(now, now + h]``.

    A date already passed is not "reaching" any more (the expiry alerts cover those).
    """
    out = []
    for kind in LOT_DATES:
        for horizon in horizons:
            until = now_ms + horizon * DAY_MS
            hits = [
                lot
                for lot in lots
                if lot.qty > 0
                and (at := getattr(lot, f"{kind}_at_ms")) is not None
                and now_ms < at <= until
            ]
            out.append(
                LotsDueFigures(
                    date=kind,
                    horizon_days=horizon,
                    lots=len(hits),
                    qty=sum(lot.qty for lot in hits),
                    value=sum(lot.qty * lot.unit_cost for lot in hits),
                )
            )
    return out


def idle_days(
    last_outflow_ms: int | None, stocked_since_ms: int | None, now_ms: int
) -> float | None:
    """Days since the last outflow (or since stock arrived, if it never moved); None if unknown."""
    reference = last_outflow_ms if last_outflow_ms is not None else stocked_since_ms
    if reference is None:
        return None
    return max(0.0, (now_ms - reference) / DAY_MS)


def movement_class(idle: float | None, *, slow_after_days: float, dead_after_days: float) -> str:
    """``active``, ``slow`` (idle ≥ slow days) or ``dead`` (idle ≥ dead days)."""
    if not 0 < slow_after_days <= dead_after_days:
        raise KpiParameterError(
            f"slow_after_days {slow_after_days} must be positive and at most dead_after_days"
            f" {dead_after_days}"
        )
    if idle is None or idle < slow_after_days:
        return "active"
    return "dead" if idle >= dead_after_days else "slow"


@dataclass(frozen=True, slots=True)
class AlertTimes:
    """One alert's response: when it was raised, acknowledged and resolved (epoch ms)."""

    type: str
    severity: str
    raised_at_ms: int
    acked_at_ms: int | None
    cleared_at_ms: int | None
    escalate_after_s: float | None = None


def p90(values: Sequence[float]) -> float | None:
    """The 90th percentile by nearest rank: the smallest value ≥ 90 % of the values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def alert_response(alerts: Iterable[AlertTimes]) -> list[AlertResponseFigures]:
    """Counts and times to acknowledge and to resolve, by (type, severity).

    Only alerts that were acknowledged (resolved) count in the ack (resolve) times. The in-time
    share counts alerts whose route escalates: acknowledged within ``escalate_after_s``.
    """
    groups: dict[tuple[str, str], list[AlertTimes]] = {}
    for alert in alerts:
        groups.setdefault((alert.type, alert.severity), []).append(alert)
    out = []
    for (type_, severity), group in sorted(groups.items()):
        ack = [(a.acked_at_ms - a.raised_at_ms) / 1000 for a in group if a.acked_at_ms is not None]
        res = [
            (a.cleared_at_ms - a.raised_at_ms) / 1000 for a in group if a.cleared_at_ms is not None
        ]
        timed = [a for a in group if a.escalate_after_s is not None]
        in_time = [
            a
            for a in timed
            if a.acked_at_ms is not None
            and a.escalate_after_s is not None
            and (a.acked_at_ms - a.raised_at_ms) / 1000 <= a.escalate_after_s
        ]
        out.append(
            AlertResponseFigures(
                type=type_,
                severity=severity,
                count=len(group),
                acked=len(ack),
                resolved=len(res),
                ack_mean_s=_mean(ack),
                ack_p90_s=p90(ack),
                resolve_mean_s=_mean(res),
                resolve_p90_s=p90(res),
                acked_in_time_share=len(in_time) / len(timed) if timed else None,
            )
        )
    return out
