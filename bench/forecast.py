"""Benchmark of demand forecasting on simulated truth; prints figures, asserts nothing.

    .venv/bin/python -m bench.forecast                       # accuracy, replay, nightly 100k
    .venv/bin/python -m bench.forecast --skus 10000 --days 730 --skip-replay
    .venv/bin/python -m bench.forecast --skip-nightly --seed 3  # replay another year

- accuracy: median MASE against seasonal naive over ``--replay-skus`` mixed SKUs;
- replay: one simulated year of a periodic-review policy (order up to ROP + d·R when the
  position is at or below ROP) with ``forecast`` levels and with ``dynamic`` levels
  (:func:`rules.inventory.replenishment.dynamic_levels` from raw demand mean and sigma): cycle
  service level and average on-hand stock of each;
- nightly: :func:`rules.inventory.forecast.plan_levels_batch` over ``--skus`` x ``--days`` in
  ``--workers`` processes, wall time and peak memory (demand generation not timed);
- refresh (``--refresh``): the rules' once-a-day refresh of one site for ``--refresh-skus``
  forecast SKUs in a SQLite ledger, at 56, 90, 180 and 365 days of history: from
  :meth:`rules.inventory.reorder.ForecastPlanner.refresh` (ledger read and batch in the worker
  thread) until :meth:`~rules.inventory.reorder.ForecastPlanner.collect` has stored the results,
  and how long the calling (rules) thread is held by the start and by the store.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core import db
from core.inventory import DAY_MS, InventoryStores, Sku
from core.inventory.forecasts import ForecastStore
from rules.inventory.forecast import BatchLevels, plan_levels_batch
from rules.inventory.reorder import ForecastPlanner
from rules.inventory.replenishment import dynamic_levels, z_for_service_level
from simulators.demand import demand_matrix, sku_mix

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LEAD_DAYS = 7.0
LEAD_SD_DAYS = 1.5
REVIEW_DAYS = 7
SERVICE = 0.95
DYNAMIC_WINDOW = 90  # days of raw demand behind the dynamic levels, as ERP reorder reports use


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """What a replayed policy achieved over all SKUs."""

    cycles: int
    cycle_service: float
    mean_on_hand: float
    fill_rate: float
    orders: int
    sku_cycles: IntArray
    sku_serviced: IntArray
    sku_on_hand: FloatArray

    def subset(self, mask: npt.NDArray[np.bool_]) -> tuple[float, float]:
        """Cycle service level and mean on hand per SKU of the SKUs in ``mask``."""
        cycles = int(self.sku_cycles[mask].sum())
        service = float(self.sku_serviced[mask].sum()) / cycles if cycles else 1.0
        return service, float(self.sku_on_hand[mask].mean())


@dataclass(frozen=True, slots=True)
class ReviewPlans:
    """The levels a policy computed at every review: ``ROP = expected + z · spread``.

    Arrays are ``[reviews, skus]``; ``rate`` is the demand per day behind the order quantity.
    Keeping ``z`` apart lets one set of forecasts be replayed at several service settings.
    """

    expected: FloatArray
    spread: FloatArray
    rate: FloatArray

    def reorder_point(self, k: int, z: float) -> FloatArray:
        """Reorder points at review ``k`` for the safety factor ``z``."""
        rop: FloatArray = self.expected[k] + z * self.spread[k]
        return rop


Z_TARGET = z_for_service_level(SERVICE)


def forecast_plan(history: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(expected, spread, rate)`` from :func:`plan_levels_batch` (the ``forecast`` levels)."""
    b = plan_levels_batch(
        history,
        lead_time_days=LEAD_DAYS,
        review_days=REVIEW_DAYS,
        service_level=SERVICE,
        lead_time_sd_days=LEAD_SD_DAYS,
    )
    return b.forecast_horizon, b.safety_stock / Z_TARGET, b.forecast_per_day


def dynamic_plan(history: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(expected, spread, rate)`` from raw demand mean and sigma (the ``dynamic`` levels).

    The protection interval is the same lead time + review period the forecast covers, and the
    raw demand is the latest ``DYNAMIC_WINDOW`` days.
    """
    window = history[:, -DYNAMIC_WINDOW:]
    d_mean, _, ss, _ = dynamic_levels(
        window, np.asarray(LEAD_DAYS + REVIEW_DAYS), np.asarray(LEAD_SD_DAYS), np.asarray(SERVICE)
    )
    return d_mean * (LEAD_DAYS + REVIEW_DAYS), ss / Z_TARGET, d_mean


def review_plans(demand: IntArray, *, start_day: int, levels: str) -> ReviewPlans:
    """Levels of ``levels`` (``"forecast"`` or ``"dynamic"``) at every review from ``start_day``,
    each computed from the history before the review day."""
    compute = forecast_plan if levels == "forecast" else dynamic_plan
    history = demand.astype(np.float64)
    planned = [compute(history[:, :day]) for day in range(start_day, demand.shape[1], REVIEW_DAYS)]
    return ReviewPlans(
        expected=np.stack([p[0] for p in planned]),
        spread=np.stack([p[1] for p in planned]),
        rate=np.stack([p[2] for p in planned]),
    )


def replay_policy(
    demand: IntArray,
    plans: ReviewPlans,
    *,
    start_day: int,
    z: float = Z_TARGET,
    seed: int = 0,
) -> PolicyOutcome:
    """Replay days ``start_day ..`` of ``demand`` ``[skus, days]`` under one policy's plans.

    Every ``REVIEW_DAYS`` the policy's latest levels apply; when the inventory position (on hand
    + on order) is at or below the reorder point, an order brings it up to ROP + d·R and
    arrives after a lead time drawn from a rounded normal (mean ``LEAD_DAYS``, sigma
    ``LEAD_SD_DAYS``, at least one day; the same draws for every policy). Unmet demand is
    backordered. A cycle runs from one arrival to the next and counts as serviced when on hand
    never went negative in it.
    """
    n, days = demand.shape
    rng = np.random.default_rng(seed)
    n_reviews = plans.expected.shape[0]
    lead = np.maximum(1, np.rint(rng.normal(LEAD_DAYS, LEAD_SD_DAYS, (n, n_reviews)))).astype(
        np.int64
    )
    rows = np.arange(n)
    history = demand.astype(np.float64)
    on_hand = np.ceil(plans.reorder_point(0, z) + plans.rate[0] * REVIEW_DAYS)
    arrivals = np.zeros((n, days + int(lead.max()) + 1))
    on_order = np.zeros(n)
    short_in_cycle = np.zeros(n, dtype=bool)
    had_arrival = np.zeros(n, dtype=bool)
    sku_cycles = np.zeros(n, dtype=np.int64)
    sku_serviced = np.zeros(n, dtype=np.int64)
    orders = 0
    on_hand_sum = np.zeros(n)
    demanded = filled = 0.0
    for day in range(start_day, days):
        arriving = arrivals[:, day]
        got = arriving > 0
        # A cycle ends when an order arrives; the first partial cycle has no order behind it.
        closed = got & had_arrival
        sku_cycles += closed
        sku_serviced += closed & ~short_in_cycle
        short_in_cycle[got] = False
        had_arrival |= got
        on_hand += arriving
        on_order -= arriving
        if (day - start_day) % REVIEW_DAYS == 0:
            k = (day - start_day) // REVIEW_DAYS
            rop = plans.reorder_point(k, z)
            position = on_hand + on_order
            up_to = rop + np.maximum(plans.rate[k] * REVIEW_DAYS, 1.0)
            qty = np.where(position <= rop, np.maximum(np.ceil(up_to - position), 0.0), 0.0)
            arrivals[rows, day + lead[:, k]] += qty
            on_order += qty
            orders += int((qty > 0).sum())
        d = history[:, day]
        filled += float(np.minimum(d, np.maximum(on_hand, 0.0)).sum())
        demanded += float(d.sum())
        on_hand -= d
        short_in_cycle |= on_hand < 0
        on_hand_sum += np.maximum(on_hand, 0.0)
    replay_days = days - start_day
    cycles = int(sku_cycles.sum())
    return PolicyOutcome(
        cycles=cycles,
        cycle_service=float(sku_serviced.sum()) / cycles if cycles else 1.0,
        mean_on_hand=float(on_hand_sum.sum()) / replay_days / n,
        fill_rate=filled / demanded if demanded else 1.0,
        orders=orders,
        sku_cycles=sku_cycles,
        sku_serviced=sku_serviced,
        sku_on_hand=on_hand_sum / replay_days,
    )


def z_for_realised_service(
    demand: IntArray, plans: ReviewPlans, *, start_day: int, target: float = SERVICE
) -> tuple[float, PolicyOutcome]:
    """The smallest safety factor (to 0.01) whose replay realises ``target`` cycle service."""
    lo, hi = 0.0, 6.0
    best = replay_policy(demand, plans, start_day=start_day, z=hi)
    while hi - lo > 0.01:
        mid = (lo + hi) / 2
        out = replay_policy(demand, plans, start_day=start_day, z=mid)
        if out.cycle_service >= target:
            hi, best = mid, out
        else:
            lo = mid
    return hi, best


# --------------------------------------------------------------------------- figures


def simulated(n: int, days: int, seed: int) -> IntArray:
    """``[n, days]`` of mixed simulated demand (50 % regular, 20 % seasonal, 30 % slow)."""
    return simulated_with_kinds(n, days, seed)[0]


def simulated_with_kinds(n: int, days: int, seed: int) -> tuple[IntArray, list[str]]:
    """Mixed simulated demand and each SKU's kind (regular, seasonal or intermittent)."""
    rng = np.random.default_rng(seed)
    profiles = sku_mix(n, rng, days=days)
    return demand_matrix(profiles, days, rng), [p.kind for p in profiles]


def accuracy(n: int, days: int) -> None:
    demand = simulated(n, days, seed=1)
    b = plan_levels_batch(
        demand,
        lead_time_days=LEAD_DAYS,
        review_days=REVIEW_DAYS,
        service_level=SERVICE,
        lead_time_sd_days=LEAD_SD_DAYS,
    )
    print(f"accuracy, {n:,} mixed SKUs x {days} days, horizon {int(LEAD_DAYS) + REVIEW_DAYS} d:")
    print(f"  median MASE vs seasonal naive {np.nanmedian(b.mase):.3f}")
    for name in BatchLevels.CLASS_NAMES:
        m = b.demand_class == BatchLevels.CLASS_NAMES.index(name)
        if m.any():
            print(
                f"  {name:<12} {int(m.sum()):>6} SKUs  median MASE {np.nanmedian(b.mase[m]):.3f}"
                f"  median bias {np.nanmedian(b.bias[m]):+.3f}"
                f"  fell back {float((b.fell_back_to[m] >= 0).mean()):.1%}"
            )
    for i, model_name in enumerate(BatchLevels.MODEL_NAMES):
        count = int((b.model == i).sum())
        if count:
            print(f"  model {model_name:<15} {count:>6} SKUs")


KINDS = ("regular", "seasonal", "intermittent")


def replay(n: int, seed: int = 2) -> None:
    demand, kinds = simulated_with_kinds(n, 730, seed=seed)
    kind_arr = np.asarray(kinds)
    print(
        f"replay, {n:,} mixed SKUs (seed {seed}), days 365-729, review {REVIEW_DAYS} d, lead time "
        f"{LEAD_DAYS:g} ± {LEAD_SD_DAYS:g} d, target cycle service {SERVICE:.0%} "
        f"(z {Z_TARGET:.3f}):"
    )
    nominal: dict[str, PolicyOutcome] = {}
    calibrated: dict[str, tuple[float, PolicyOutcome]] = {}
    for levels in ("forecast", "dynamic"):
        start = time.perf_counter()
        plans = review_plans(demand, start_day=365, levels=levels)
        planned_s = time.perf_counter() - start
        out = nominal[levels] = replay_policy(demand, plans, start_day=365)
        print(
            f"  {levels:<8} cycle service {out.cycle_service:.3f} ({out.cycles:,} cycles)  "
            f"fill rate {out.fill_rate:.3f}  mean on hand {out.mean_on_hand:.1f} units/SKU  "
            f"(levels {planned_s:.1f} s)"
        )
        for kind in KINDS:
            service, stock = out.subset(kind_arr == kind)
            print(f"    {kind:<12} cycle service {service:.3f}  mean on hand {stock:.1f}")
        calibrated[levels] = z_for_realised_service(demand, plans, start_day=365)
    f_out, d_out = nominal["forecast"], nominal["dynamic"]
    print(
        f"  at z {Z_TARGET:.3f}: forecast holds {f_out.mean_on_hand / d_out.mean_on_hand:.1%} of "
        "the dynamic policy's stock"
    )
    for levels, (z, out) in calibrated.items():
        print(
            f"  {levels:<8} reaches {SERVICE:.0%} realised cycle service at z {z:.2f}: "
            f"service {out.cycle_service:.3f}, mean on hand {out.mean_on_hand:.1f} units/SKU"
        )
        for kind in KINDS:
            service, stock = out.subset(kind_arr == kind)
            print(f"    {kind:<12} cycle service {service:.3f}  mean on hand {stock:.1f}")
    d_at_target = calibrated["dynamic"][1].mean_on_hand
    ratio = calibrated["forecast"][1].mean_on_hand / d_at_target
    print(f"  at {SERVICE:.0%} realised: forecast needs {ratio:.1%} of the dynamic policy's stock")
    print(
        f"  forecast at z {Z_TARGET:.3f} ({f_out.cycle_service:.3f} realised) holds "
        f"{f_out.mean_on_hand / d_at_target:.1%} of what dynamic needs for {SERVICE:.0%}"
    )


def _nightly_chunk(args: tuple[int, int, int]) -> tuple[float, int]:
    n, days, seed = args
    demand = simulated(n, days, seed)
    start = time.perf_counter()
    b = plan_levels_batch(
        demand,
        lead_time_days=LEAD_DAYS,
        review_days=REVIEW_DAYS,
        service_level=SERVICE,
        lead_time_sd_days=LEAD_SD_DAYS,
    )
    elapsed = time.perf_counter() - start
    if not np.all(np.isfinite(b.reorder_point)):
        raise RuntimeError("a reorder point is not finite")
    return elapsed, int(b.reorder_point.size)


def nightly(skus: int, days: int, workers: int, chunk: int) -> None:
    jobs = [(min(chunk, skus - i), days, 1000 + i) for i in range(0, skus, chunk)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_nightly_chunk, jobs))
    wall = time.perf_counter() - start
    forecast_cpu = sum(r[0] for r in results)
    planned = sum(r[1] for r in results)
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"nightly, {planned:,} SKUs x {days} days, {workers} workers, chunks of {chunk:,}:")
    print(f"  wall {wall:.1f} s including generation; forecast + backtest {forecast_cpu:.1f} s")
    print(
        f"  (summed over workers, {forecast_cpu / workers:.1f} s per worker); "
        f"peak RSS per worker {child_kb / 1024:.0f} MB, parent {self_kb / 1024:.0f} MB, "
        f"at most {(workers * child_kb + self_kb) / 1024:.0f} MB together"
    )
    per_sku_ms = forecast_cpu / planned * 1000
    print(f"  {per_sku_ms:.2f} ms of forecast CPU per SKU")


REFRESH_DAYS = (56, 90, 180, 365)
WAVES = 3  # picks per day with demand, as the simulated warehouse picks in waves


def refresh(skus: int) -> None:
    """Time one site's forecast refresh over a SQLite ledger of ``skus`` SKUs."""
    site = "bench"
    days = max(REFRESH_DAYS)
    demand = simulated(skus, days, seed=7)
    end_ms = 20_000 * DAY_MS
    with tempfile.TemporaryDirectory() as tmp:
        conn = db.connect(Path(tmp) / "bench.db")
        stores = InventoryStores.over(conn)
        catalog = [
            Sku(sku=f"F{i:05d}", policy="forecast", lead_time_days=7, lead_time_sigma_days=1.5)
            for i in range(skus)
        ]
        stores.load_catalog(skus=catalog, ts_ms=end_ms - (days + 1) * DAY_MS)
        booked = time.perf_counter()
        with stores.ledger.transaction():
            for i, sku in enumerate(catalog):
                stores.ledger.record(
                    ts_ms=end_ms - (days + 1) * DAY_MS, site=site, location="A", sku=sku.sku,
                    qty=float(demand[i].sum() + 100), kind="receipt", source="seed",
                )  # fmt: skip
                for day in np.flatnonzero(demand[i]).tolist():
                    units = int(demand[i, day])
                    parts = [units // WAVES + (w < units % WAVES) for w in range(WAVES)]
                    for wave, qty in enumerate(p for p in parts if p):
                        stores.ledger.record(
                            ts_ms=end_ms - (days - day) * DAY_MS + (8 + 4 * wave) * 3_600_000,
                            site=site, location="A", sku=sku.sku, qty=-float(qty), kind="pick",
                            source="sensor",
                        )  # fmt: skip
        rows = conn.execute("SELECT COUNT(*) FROM inv_ledger").fetchone()[0]
        print(
            f"refresh, {skus:,} forecast SKUs at one site, {rows:,} ledger rows "
            f"(booked in {time.perf_counter() - booked:.0f} s):"
        )
        for history_days in REFRESH_DAYS:
            planner = ForecastPlanner(
                stores=stores, forecasts=ForecastStore(conn), history_days=history_days
            )
            on_loop, total = [], []
            for k in range(3):  # a day later each time, so every SKU is due again
                start = time.perf_counter()
                due = planner.refresh(site, at_ms=end_ms + k * DAY_MS + 60_000)
                started = time.perf_counter() - start
                while planner.refreshing:
                    time.sleep(0.001)
                    before = time.perf_counter()
                    planned = planner.collect()
                    applied = time.perf_counter() - before
                on_loop.append(max(started, applied))
                total.append(time.perf_counter() - start)
            print(
                f"  {history_days:>3} days: {min(total):.2f}-{max(total):.2f} s until stored "
                f"({due:,} SKUs, {len(planned):,} stored); the rules thread is held "
                f"{1000 * max(on_loop):.0f} ms at most (start, then store)"
            )
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=100_000, help="SKUs of the nightly run")
    parser.add_argument("--days", type=int, default=730, help="days of history per SKU")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=5_000, help="SKUs per worker task")
    parser.add_argument("--replay-skus", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=2, help="seed of the replayed demand")
    parser.add_argument("--skip-replay", action="store_true", help="nightly run only")
    parser.add_argument("--skip-nightly", action="store_true", help="accuracy and replay only")
    parser.add_argument("--refresh", action="store_true", help="only the rules' site refresh")
    parser.add_argument("--refresh-skus", type=int, default=1_000)
    args = parser.parse_args()
    if args.refresh:
        refresh(args.refresh_skus)
        return
    if not args.skip_replay:
        accuracy(args.replay_skus, 730)
        replay(args.replay_skus, args.seed)
    if not args.skip_nightly:
        nightly(args.skus, args.days, args.workers, max(1, args.chunk))


if __name__ == "__main__":
    main()
