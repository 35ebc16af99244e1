"""Benchmark of the KPI schedule at catalog scale; prints figures, asserts nothing.

    .venv/bin/python -m bench.kpi [--skus 1000 --skus 10000] [--moves 60]

For each size, a SQLite database of one site with ``--skus`` SKUs, each with a receipt and
``--moves`` picks spread over the 30-day rolling period, then:

- the rolling snapshot of the site computed directly (:meth:`KpiCalculator.snapshot`), wall
  time and peak RSS;
- the same through :class:`KpiProcessor` as the rules run it (``build_kpi_processor``: a worker
  over a read-only connection) inside an asyncio loop whose heartbeat ticks every 10 ms: the
  longest gap between two heartbeats while the batch runs is how long the rules loop was held.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from pathlib import Path

from core import db
from core.alerts import AlertStores
from core.inventory import DAY_MS, InventoryStores, Sku
from core.kpi import KpiStore
from core.settings import Settings
from rules.kpi.service import KpiCalculator, build_kpi_processor
from rules.seed import Seed

T0 = 1_795_309_200_000
SITE = "wh1"


def build(path: Path, skus: int, moves: int) -> None:
    """One site of ``skus`` SKUs with a receipt and ``moves`` picks each over 30 days."""
    conn = db.connect(path)
    try:
        stores = InventoryStores.over(conn)
        catalog = [Sku(sku=f"S{i:06d}", unit_cost=2.0) for i in range(skus)]
        stores.load_catalog(skus=catalog, ts_ms=T0 - 40 * DAY_MS)
        rng = random.Random(1)
        rows = []
        for item in catalog:
            rows.append((T0 - 35 * DAY_MS, SITE, "A", item.sku, 100.0 + moves, "receipt", "api"))
            rows.extend(
                (T0 - 30 * DAY_MS + rng.randrange(30 * DAY_MS), SITE, "A", item.sku, -1.0, "pick",
                 "sensor")
                for _ in range(moves)
            )  # fmt: skip
        # Rows straight into the tables: booking them one by one would time the ledger instead.
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO inv_ledger (ts, site, location, sku, qty, kind, source, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            rows,
        )
        conn.executemany(
            "INSERT INTO inv_stock (site, location, sku, qty, updated_at) VALUES (?, 'A', ?, ?, ?)",
            [(SITE, item.sku, 100.0, T0) for item in catalog],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


async def held(path: Path) -> tuple[float, float]:
    """(batch wall time, longest heartbeat gap) of one rolling batch through the processor."""
    settings = Settings(data_dir=path.parent)
    conn = db.connect(path)
    try:
        alerts = AlertStores.over(conn, [])
        kpi = build_kpi_processor(settings, conn, alerts.state.raised_between, None, Seed())
        gaps = [0.0]
        beating = True

        async def heartbeat() -> None:
            last = time.perf_counter()
            while beating:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last - 0.01)
                last = now

        beat = asyncio.create_task(heartbeat())
        started = time.perf_counter()
        kpi.tick(T0)
        if not await asyncio.to_thread(kpi.wait, 3600.0):
            raise TimeoutError("the KPI batch took over an hour")
        wall = time.perf_counter() - started
        beating = False
        await beat
        kpi.close()
        if KpiStore(conn).latest(SITE, "rolling") is None:
            raise RuntimeError("the batch stored no rolling snapshot")
        return wall, max(gaps)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, action="append", help="SKUs (repeatable)")
    parser.add_argument("--moves", type=int, default=60, help="picks per SKU in the period")
    args = parser.parse_args(argv)
    settings = Settings()
    print(f"KPI snapshot of one site, {args.moves} picks per SKU over the 30-day period:")
    print(f"{'SKUs':>8} {'ledger rows':>12} {'direct s':>9} {'batch s':>8} {'loop held ms':>13}")
    for skus in args.skus or [1_000, 10_000]:
        with tempfile.TemporaryDirectory(prefix="bench-kpi-") as root:
            path = Path(root) / "stocksense.db"
            build(path, skus, args.moves)
            conn = db.connect(path)
            try:
                calculator = KpiCalculator(
                    InventoryStores.over(conn),
                    lambda *_: [],
                    settings.alerting.routes,
                    settings.kpi,
                    dead_after_days=settings.inventory.dead_after_days,
                )
                started = time.perf_counter()
                snapshot = calculator.snapshot(SITE, "rolling", T0 - 30 * DAY_MS, T0)
                direct = time.perf_counter() - started
            finally:
                conn.close()
            if len(snapshot.skus) != skus:
                raise RuntimeError(f"the snapshot has {len(snapshot.skus)} SKUs, not {skus}")
            wall, gap = asyncio.run(held(path))
            print(
                f"{skus:>8,} {skus * (args.moves + 1):>12,} {direct:>9.2f} {wall:>8.2f}"
                f" {gap * 1000:>13.0f}"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
