"""Stock and alert reads through the real API over PostgreSQL at catalog scale, under wrk.

    .venv/bin/python -m bench.api [--skus 100000] [--ledger-rows 10000000] [--rate 200]
                                  [--duration 30] [--route-duration 10] [--connections 20]
                                  [--api-workers 1]

Starts a private PostgreSQL (fsync on), migrates a database and loads it server-side
(``INSERT ... SELECT ... FROM generate_series``): ``--skus`` SKUs at two sites, their stock at
one or two locations, lots for 30 % of them, ``--ledger-rows`` ledger movements over 90 days and
20,000 alerts (300 active) with their events. Then a ``stocksense api`` subprocess serves that
database as users run it, and wrk (``bench/api.lua``) requests a random SKU, site or alert per
request, paced by wrk's ``delay()`` (drawn around a mean) to ``--rate`` requests/s: one run of
the mix the console and ERP/WMS poll, then one run per route. Prints the achieved rate,
latency percentiles, the API's CPU per request, errors, its peak RSS, and the plans (EXPLAIN
ANALYZE) of the SQL the stores run for those routes. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import proc_cpu_s, proc_memory_mb
from core import db
from core.alerts import AlertStores
from core.auth import AuthStore, Role
from core.inventory import InventoryStores
from stocksense import devservices

SITES = ("wh1", "wh2")
LOCATIONS = ("A-01", "A-02", "B-01", "B-02")
RESERVE = "R-01"  # every fourth SKU also has stock here
ALERTS = 20_000
ACTIVE_ALERTS = 300
DAY_MS = 86_400_000
CHUNK = 1_000_000
LUA = Path(__file__).with_suffix(".lua")
ROUTES = ("stock", "movements", "active", "alert", "page", "stock_any_site", "movements_any_site")
PATHS = {
    "mix": "35% stock, 20% movements, 15% active, 20% alert, 10% page",
    "stock": "/inventory/stock?site=S&sku=K",
    "movements": "/inventory/movements?site=S&sku=K&limit=100",
    "active": "/alerts?state=active&site=S",
    "alert": "/alerts/ID",
    "page": "/alerts?limit=200",
    "stock_any_site": "/inventory/stock?sku=K",
    "movements_any_site": "/inventory/movements?sku=K&limit=100",
}
# The one index this benchmark proposes; the 'with' phase creates it on the loaded data.


def sku_digits(skus: int) -> int:
    """Width of the zero-padded number in SKU ids (``S000042``)."""
    return max(6, len(str(skus - 1)))


# ------------------------------------------------------------------------------ loading


def load(url: str, skus: int, ledger_rows: int, *, t0: int) -> None:
    """Fill the migrated database at ``url`` server-side, printing each step's time."""
    width = sku_digits(skus)
    sku = f"'S' || lpad(k::text, {width}, '0')"
    sites = "ARRAY[" + ", ".join(f"'{s}'" for s in SITES) + "]"
    locations = "ARRAY[" + ", ".join(f"'{loc}'" for loc in LOCATIONS) + "]"
    location = f"({locations})[1 + mod(k, {len(LOCATIONS)})]"
    start = t0 - 90 * DAY_MS
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SELECT setseed(0.42)")

        def step(what: str, *sql: str) -> None:
            began = time.perf_counter()
            for statement in sql:
                conn.execute(statement.encode())
            print(f"  {what:<44} {time.perf_counter() - began:7.1f} s", flush=True)

        step(
            f"{skus:,} SKUs",
            f"""INSERT INTO inv_skus (sku, gtin, name, unit_grams, weight_tolerance, unit_cost,
                lead_time_days, lead_time_sigma_days, review_days, service_level, policy,
                min_qty, max_qty, pack_multiple, supplier, home_zone, created_at, updated_at)
            SELECT {sku}, (4000000000000 + k)::text, 'Item ' || k || ' ' || md5(k::text),
                CASE WHEN mod(k, 5) = 0 THEN NULL ELSE 20 + mod(k * 7, 2000) END, 0.2,
                round((0.5 + random() * 80)::numeric, 2), 2 + mod(k, 12), mod(k, 3),
                CASE WHEN mod(k, 4) = 0 THEN 7 ELSE 0 END, 0.95,
                (ARRAY['min_max', 'dynamic', 'forecast'])[1 + mod(k, 3)], 10 + mod(k, 40),
                100 + mod(k, 400), (ARRAY[1, 1, 6, 12])[1 + mod(k, 4)],
                'SUP' || lpad(mod(k, 250)::text, 3, '0'), 'Z' || mod(k, 20),
                {start - 30 * DAY_MS}, {start - 30 * DAY_MS}
            FROM generate_series(0, {skus - 1}) k""",
        )
        step(
            "stock rows",
            f"""INSERT INTO inv_stock (site, location, sku, qty, updated_at)
            SELECT site, {location}, {sku}, floor(random() * 500), {t0}
            FROM unnest({sites}) site, generate_series(0, {skus - 1}) k""",
            f"""INSERT INTO inv_stock (site, location, sku, qty, updated_at)
            SELECT site, '{RESERVE}', {sku}, floor(random() * 2000), {t0}
            FROM unnest({sites}) site, generate_series(0, {skus - 1}, 4) k""",
        )
        step(
            "lots (30 % of SKUs, 2 per site)",
            f"""INSERT INTO inv_lots (lot, sku, site, location, qty, received_at, expiration_at,
                best_before_at, removal_at, updated_at)
            SELECT 'L' || k || '-' || n, {sku}, site, {location}, floor(random() * 200), r,
                r + (180 + mod(k, 185)) * {DAY_MS}::bigint,
                CASE WHEN mod(k, 2) = 0 THEN r + 150 * {DAY_MS}::bigint END,
                CASE WHEN mod(k, 3) = 0 THEN r + 170 * {DAY_MS}::bigint END, {t0}
            FROM unnest({sites}) site, generate_series(0, {skus - 1}) k,
                generate_series(1, 2) n,
                LATERAL (SELECT {start} + floor(random() * 80 * {DAY_MS})::bigint AS r) rec
            WHERE mod(k, 10) < 3""",
        )
        # The secondary indexes are built once after the load, not row by row.
        indexes = [
            (str(name), str(definition))
            for name, definition in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'inv_ledger'"
                " AND indexname NOT LIKE '%pkey'"
            )
        ]
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"'.encode())
        span = 90 * DAY_MS
        chunks = [
            f"""INSERT INTO inv_ledger (ts, site, location, sku, lot, qty, kind, source, ref,
                created_at)
            SELECT ts, site, {location}, {sku},
                CASE WHEN kind = 'receipt' AND mod(k, 10) < 3
                    THEN 'L' || k || '-' || (1 + mod(j, 2)) END,
                CASE kind WHEN 'pick' THEN -(1 + floor(s * 5)) WHEN 'put' THEN 1 + floor(s * 5)
                    WHEN 'receipt' THEN 20 + floor(s * 200) WHEN 'issue' THEN -(1 + floor(s * 20))
                    ELSE floor(s * 7) - 3 END,
                kind,
                CASE WHEN j < {skus} THEN 'seed' WHEN kind IN ('pick', 'put') THEN 'sensor'
                    ELSE 'api' END,
                CASE kind WHEN 'receipt' THEN 'PO-' || (j / 40) WHEN 'issue' THEN 'SO-' || (j / 9)
                END,
                ts
            FROM (
                SELECT j, k, s, site, {start} + (j::numeric * {span} / {ledger_rows})::bigint
                        + floor(s * 60000)::bigint AS ts,
                    CASE WHEN r < 0.60 THEN 'pick' WHEN r < 0.75 THEN 'put'
                        WHEN r < 0.85 THEN 'receipt' WHEN r < 0.95 THEN 'issue'
                        ELSE 'adjust' END AS kind
                FROM (
                    SELECT j, floor(random() * {skus})::int AS k, random() AS r, random() AS s,
                        ({sites})[1 + floor(random() * {len(SITES)})::int] AS site
                    FROM generate_series({first}, {min(first + CHUNK, ledger_rows) - 1}) j
                ) raw
            ) moves"""
            for first in range(0, ledger_rows, CHUNK)
        ]
        step(f"{ledger_rows:,} ledger rows", *chunks)
        step(
            "ledger indexes " + ", ".join(name for name, _ in indexes),
            *(definition for _, definition in indexes),
        )
        step(
            f"{ALERTS:,} alerts ({ACTIVE_ALERTS} active) and their events",
            f"""INSERT INTO alerts (source, type, severity, state, site, zone, title, message,
                value, threshold, details, raised_at, cleared_at, acked_by, acked_at,
                updated_at, flapping, occurrence, peak_value, last_seen_at, owner, ack_due_at,
                resolve_due_at, resolved_by, cause, time_to_ack_s, time_to_resolve_s)
            SELECT site || '/probe-' || i, type,
                (ARRAY['critical', 'major', 'minor', 'warning'])[1 + mod(i, 4)],
                CASE WHEN active THEN 'active' ELSE 'cleared' END, site, 'Z' || mod(i, 20),
                initcap(replace(type, '_', ' ')) || ' in zone Z' || mod(i, 20),
                'Reading ' || (8 + mod(i, 5)) || ' beyond threshold 8', 8 + mod(i, 5), 8,
                '{{"device": "probe-' || i || '"}}', raised,
                CASE WHEN NOT active THEN raised + ttr END,
                CASE WHEN acked THEN 'operator' || mod(i, 7) END,
                CASE WHEN acked THEN raised + tta END,
                raised + CASE WHEN active THEN tta ELSE ttr END, 0, 1, 9 + mod(i, 5),
                raised + CASE WHEN active THEN 0 ELSE ttr END,
                CASE WHEN mod(i, 3) = 0 THEN 'team-' || site END, raised + 900000,
                raised + 14400000, CASE WHEN NOT active THEN 'operator' || mod(i, 7) END,
                CASE WHEN NOT active THEN (ARRAY['equipment', 'process', 'supplier', 'data',
                    'false_alarm', 'other'])[1 + mod(i, 6)] END,
                CASE WHEN acked THEN tta / 1000.0 END,
                CASE WHEN NOT active THEN ttr / 1000.0 END
            FROM (
                SELECT i, ({sites})[1 + mod(i, {len(SITES)})] AS site,
                    (ARRAY['temperature_high', 'temperature_low', 'humidity_high', 'stock_low',
                        'weight_mismatch', 'device_offline'])[1 + mod(i / 2, 6)] AS type,
                    {start} + (i::bigint * {span - DAY_MS} / {ALERTS}) AS raised,
                    i > {ALERTS - ACTIVE_ALERTS} AS active,
                    i <= {ALERTS - ACTIVE_ALERTS} OR mod(i, 2) = 0 AS acked,
                    60000 + floor(random() * 1800000)::bigint AS tta,
                    3600000 + floor(random() * 7200000)::bigint AS ttr
                FROM generate_series(1, {ALERTS}) i
            ) a""",
            """INSERT INTO alert_events (alert_id, event, at, actor, note)
            SELECT id, 'raised', raised_at, NULL, NULL FROM alerts
            UNION ALL SELECT id, 'acked', acked_at, acked_by, NULL FROM alerts
                WHERE acked_at IS NOT NULL
            UNION ALL SELECT id, 'cleared', cleared_at, resolved_by, 'back in band' FROM alerts
                WHERE cleared_at IS NOT NULL
            ORDER BY 3""",
        )
        step("VACUUM ANALYZE", "VACUUM ANALYZE")


def table_sizes(url: str) -> None:
    """Rows and on-disk size (table + indexes) of the loaded tables."""
    tables = ("inv_skus", "inv_stock", "inv_lots", "inv_ledger", "alerts", "alert_events")
    with psycopg.connect(url, autocommit=True) as conn:
        print(f"  {'table':<14} {'rows':>12} {'table MB':>9} {'indexes MB':>11}")
        for table in tables:
            row = conn.execute(
                f"SELECT count(*), pg_table_size('{table}'), pg_indexes_size('{table}')"
                f" FROM {table}".encode()
            ).fetchone()
            assert row is not None
            rows, data, index = row
            print(f"  {table:<14} {rows:>12,} {data / 2**20:>9.0f} {index / 2**20:>11.0f}")


# ------------------------------------------------------------------------------ query plans


class RecordingConnection(db.PgConnection):
    """A PostgreSQL connection that keeps every statement the stores send through it."""

    def __init__(self, target: db.Target) -> None:
        super().__init__(target)
        self.statements: list[tuple[str, db.Params]] = []

    def execute(self, sql: str, params: db.Params = ()) -> db.Cursor:
        self.statements.append((sql, params))
        return super().execute(sql, params)


def plans(url: str, skus: int) -> None:
    """EXPLAIN ANALYZE of the statements the stores run for the benchmarked routes."""
    conn = RecordingConnection(db.Target.parse(url))
    try:
        inventory = InventoryStores.over(conn)
        alerts = AlertStores.over(conn, []).state
        sku = f"S{skus // 3:0{sku_digits(skus)}d}"
        calls: dict[str, Callable[[], object]] = {
            "stock": lambda: inventory.ledger.stock(site=SITES[0], sku=sku),
            "movements": lambda: inventory.ledger.ledger(site=SITES[0], sku=sku, limit=100),
            "active": lambda: alerts.list(state="active", site=SITES[0], limit=100),
            "alert": lambda: alerts.get(ALERTS // 2),
            "page": lambda: alerts.list(limit=200),
            "stock_any_site": lambda: inventory.ledger.stock(sku=sku),
            "movements_any_site": lambda: inventory.ledger.ledger(sku=sku, limit=100),
        }
        for route, call in calls.items():
            conn.statements.clear()
            call()
            for sql, params in list(conn.statements):
                rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()
                lines = [str(r[0]) for r in rows]
                print(f"  {route} ({PATHS[route]}): {' '.join(sql.split())}  {tuple(params)}")
                for line in lines:
                    if not line.startswith(("Planning:", "  Buffers: shared hit")):
                        print(f"      {line}")
                scans = [ln.strip() for ln in lines if "Seq Scan on inv_" in ln]
                if scans:
                    print(f"      ** sequential scan of a big table: {scans[0]}")
    finally:
        conn.close()


# ------------------------------------------------------------------------------ the API and wrk


def wrk_binary() -> str:
    """wrk on the PATH; installs the Debian package ``wrk`` with apt-get as root if missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: installing the Debian package 'wrk' with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk not found: install the Debian package 'wrk' (apt-get install wrk)")
    return found


def api_token(url: str) -> str:
    """A token of a viewer of every site (reads only)."""
    conn = db.connect(url)
    try:
        auth = AuthStore(conn)
        auth.add_user("bench", Role.VIEWER)
        return auth.create_token("bench", "bench.api")[1]
    finally:
        conn.close()


class ApiProcess:
    """``stocksense api`` as users start it, over the benchmark's database."""

    def __init__(self, url: str, data_dir: Path, workers: int = 1) -> None:
        self.port = devservices.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "STOCKSENSE_DATABASE_URL": url,
            "STOCKSENSE_DATA_DIR": str(data_dir),
        }
        self.log = data_dir / "api.log"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stocksense.cli",
                    "api",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(workers),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        devservices.wait_until(self._answers, timeout=60, what=f"the API on {self.base}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise SystemExit(f"stocksense api exited ({self.process.returncode}): see {self.log}")
        try:
            httpx.get(self.base + "/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return True

    def prime(self, token: str) -> None:
        """One request with the token, so the API has verified it (Argon2) before the load:
        otherwise the first request of every connection would verify it at once."""
        answer = httpx.get(
            self.base + "/alerts?limit=1", headers={"Authorization": f"Bearer {token}"}
        )
        answer.raise_for_status()

    def processes(self) -> list[int]:
        """The pids serving requests: the command, or its worker processes."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        spawned = [
            int(pid)
            for pid in children.read_text().split()
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        return spawned or [self.process.pid]

    def cpu_s(self) -> float:
        """CPU seconds used so far by the processes serving requests."""
        return sum(proc_cpu_s(pid) for pid in self.processes())

    def peak_rss_mb(self) -> float:
        return sum(proc_memory_mb(pid, "VmHWM") for pid in self.processes())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Wrk:
    """One wrk configuration against the API."""

    binary: str
    base: str
    token: str
    args: argparse.Namespace
    max_alert_id: int

    def run(self, route: str, seconds: float, delay_ms: int) -> dict[str, Any]:
        """One paced run of ``route`` (or ``mix``); wrk's figures from bench/api.lua's done()."""
        connections = self.args.connections
        argv = [
            self.binary,
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-H",
            f"Authorization: Bearer {self.token}",
            "-s",
            str(LUA),
            self.base,
            "--",
            route,
            str(self.args.skus),
            str(sku_digits(self.args.skus)),
            ",".join(SITES),
            str(self.max_alert_id),
            str(delay_ms),
        ]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("BENCH-JSON "))
        figures: dict[str, Any] = json.loads(line.removeprefix("BENCH-JSON "))
        figures["rate"] = figures["requests"] / (figures["duration_us"] / 1e6)
        non2xx = [ln for ln in out.splitlines() if "Non-2xx" in ln]
        figures["non2xx"] = int(non2xx[0].split(":")[1]) if non2xx else 0
        return figures

    def paced(
        self, route: str, seconds: float, api_cpu_s: Callable[[], float]
    ) -> tuple[dict[str, Any], int, float]:
        """A calibrated run: a 3 s warm-up at the nominal delay measures the time each request
        takes, the delay is then shortened by it so the connections offer ``--rate``. Returns
        wrk's figures, the delay and the CPU seconds the API process spent in the run."""
        connections, rate = self.args.connections, self.args.rate
        nominal = round(connections * 1000 / rate)
        warm = self.run(route, 3, nominal)
        busy_ms = max(connections * 1000 / max(warm["rate"], 1e-9) - nominal, 0.0)
        delay = max(round(connections * 1000 / rate - busy_ms), 0)
        cpu_before = api_cpu_s()
        figures = self.run(route, seconds, delay)
        return figures, delay, api_cpu_s() - cpu_before


def report(name: str, figures: dict[str, Any], delay: int, cpu_ms: float) -> None:
    ms = {k: figures[k] / 1000 for k in ("p50", "p75", "p90", "p99", "max")}
    errors = sum(figures[k] for k in ("connect", "read", "write", "timeout"))
    print(
        f"  {name:<19} {figures['requests']:>8,} {figures['rate']:>7.1f} {delay:>6}"
        f" {ms['p50']:>7.1f} {ms['p75']:>7.1f} {ms['p90']:>7.1f} {ms['p99']:>7.1f}"
        f" {ms['max']:>8.1f} {cpu_ms:>7.2f} {figures['non2xx']:>7} {errors:>6}",
        flush=True,
    )


def run_api(url: str, root: Path, bench: Wrk) -> None:
    """The mixed run and the per-route runs against one ``stocksense api`` process."""
    args = bench.args
    data_dir = root / "data"
    data_dir.mkdir()
    api = ApiProcess(url, data_dir, args.api_workers)
    try:
        api.prime(bench.token)
        bench.base = api.base
        print(
            f"wrk against stocksense api --workers {args.api_workers}:"
            f" {args.connections} connections paced"
            f" to {args.rate:.0f} req/s (latencies in ms; delay = mean wrk delay() per"
            f" request in ms; cpu/req = the API process's CPU ms per request; load average"
            f" {loadavg()}):"
        )
        print(
            f"  {'route':<19} {'requests':>8} {'req/s':>7} {'delay':>6} {'p50':>7}"
            f" {'p75':>7} {'p90':>7} {'p99':>7} {'max':>8} {'cpu/req':>7} {'non-2xx':>7}"
            f" {'errors':>6}"
        )
        for route in ["mix", *filter(None, args.routes.split(","))]:
            seconds = args.duration if route == "mix" else args.route_duration
            figures, delay, cpu_s = bench.paced(route, seconds, api.cpu_s)
            report(route, figures, delay, 1000 * cpu_s / max(figures["requests"], 1))
        print(
            f"  API peak RSS {api.peak_rss_mb():.0f} MB (its processes together);"
            f" load average {loadavg()}"
        )
    finally:
        api.stop()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Server:
    """The private PostgreSQL server and its benchmark database."""

    process: devservices.ManagedProcess
    url: str


@contextlib.contextmanager
def postgresql(root: Path) -> Iterator[Server]:
    """A private PostgreSQL server with a migrated database ``bench``; removed after."""
    server = devservices.postgresql(root / "postgresql", fsync=True)
    server.start()
    try:
        with psycopg.connect(devservices.postgres_url(server), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        url = devservices.postgres_url(server, "bench")
        db.connect(url).close()  # migrates it
        yield Server(server, url)
    finally:
        server.stop()
        devservices.remove_postgresql(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=100_000, help="SKUs in the catalog")
    parser.add_argument("--ledger-rows", type=int, default=10_000_000, help="ledger movements")
    parser.add_argument("--rate", type=float, default=200.0, help="target requests/s")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the mixed run")
    parser.add_argument(
        "--route-duration", type=float, default=10.0, help="seconds of each per-route run"
    )
    parser.add_argument("--connections", type=int, default=20, help="wrk connections")
    parser.add_argument(
        "--api-workers", type=int, default=1, help="stocksense api --workers (processes)"
    )
    parser.add_argument(
        "--routes", default=",".join(ROUTES), help="per-route runs (comma separated; '' none)"
    )
    args = parser.parse_args(argv)
    wrk = wrk_binary()
    print(f"load average {loadavg()} on {os.cpu_count()} CPUs before the run")
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        root = Path(tmp)
        with postgresql(root) as server:
            print(f"Loading {args.skus:,} SKUs, {args.ledger_rows:,} ledger rows:")
            began = time.perf_counter()
            load(server.url, args.skus, args.ledger_rows, t0=int(time.time() * 1000))
            print(f"  {'loaded in':<44} {time.perf_counter() - began:7.1f} s")
            table_sizes(server.url)
            token = api_token(server.url)
            with psycopg.connect(server.url) as conn:
                row = conn.execute("SELECT max(id) FROM alerts").fetchone()
                assert row is not None
                max_alert_id = int(row[0])
            print("Query plans:")
            plans(server.url, args.skus)
            run_api(server.url, root, Wrk(wrk, "", token, args, max_alert_id))
            print("Routes:")
            for name, path in PATHS.items():
                print(f"  {name:<19} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
