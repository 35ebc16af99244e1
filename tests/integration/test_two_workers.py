"""Two ``stocksense run`` workers partitioned by site and one ``stocksense api``, on one
PostgreSQL database, started the way users start them: subprocesses configured by environment
strings, each worker with its own process, data dir, MQTT client id and InfluxDB database.

The demo warehouse runs on two sites (``examples/demo-warehouse.yaml`` and
``examples/demo-catalog.yaml`` with the site id replaced): one ``stocksense simulate`` per site
warms its cold room and records its picks at the API. Each site's cold-chain excursion is raised
once and cleared, both sites' stock is served by the API, each worker stored only its own
site's readings, and the DingTalk robot (signed) and the webhook receive every message of the
outbox once.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from core import db
from core.influx import query_sync, rows
from core.settings import InfluxSettings
from rules.coldchain import ALERT_TYPE as COLD_CHAIN
from simulators.robots import DingTalkRobot, WebhookReceiver
from stocksense.devservices import LocalStack, ManagedProcess, free_port, postgres_url
from tests.conftest import wait_for
from tests.integration.test_cli import Cli, clean_env, run_cli

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEMO_SITE = "wh1"
DINGTALK = "dingtalk-ops"
HOOK = "ops-hook"
TIMEOUT = 120.0
# Title labels of the DingTalk messages (language zh), by outbox event.
ZH_EVENTS = {"告警": "raised", "已恢复": "cleared", "升级": "escalated", "提醒": "reminder"}
ALERT_LINK = re.compile(r"#alert-(\d+)")


def _for_site(value: Any, site: str) -> Any:
    """``value`` with every string naming the demo's site replaced by ``site``."""
    if isinstance(value, dict):
        return {k: _for_site(v, site) for k, v in value.items()}
    if isinstance(value, list):
        return [_for_site(v, site) for v in value]
    return site if value == DEMO_SITE else value


def _two_site_files(tmp_path: Path, sites: tuple[str, str]) -> tuple[Path, Path]:
    """The demo's site seed and catalog for ``sites``: (seed file, catalog file)."""
    warehouse = yaml.safe_load((EXAMPLES / "demo-warehouse.yaml").read_text("utf-8"))
    assert [s["id"] for s in warehouse["sites"]] == [DEMO_SITE]
    warehouse["sites"] = [_for_site(s, site) for site in sites for s in warehouse["sites"]]
    catalog = yaml.safe_load((EXAMPLES / "demo-catalog.yaml").read_text("utf-8"))
    for key in ("shelves", "rfid_zones", "lots"):
        assert {item["site"] for item in catalog[key]} == {DEMO_SITE}, key
        catalog[key] = [_for_site(item, site) for site in sites for item in catalog[key]]
    seed, catalog_file = tmp_path / "warehouse.yaml", tmp_path / "catalog.yaml"
    for path, data in ((seed, warehouse), (catalog_file, catalog)):
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        assert DEMO_SITE not in text
        path.write_text(text, "utf-8")
    return seed, catalog_file


@contextlib.contextmanager
def _database(server: ManagedProcess) -> Iterator[str]:
    """A new, empty PostgreSQL database of this test (the first process migrates it)."""
    name = f"two_workers_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url(server, "postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_url(server, name)
    finally:
        with psycopg.connect(postgres_url(server, "postgres"), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _stop(cli: Cli, timeout: float = 60.0) -> int | None:
    """SIGTERM, then kill (with what it started) when it does not exit in time."""
    if cli.process.poll() is None:
        cli.process.terminate()
    try:
        return cli.wait(timeout)
    except subprocess.TimeoutExpired:
        cli.kill()
        return None


def _robot_messages(robot: DingTalkRobot) -> list[tuple[int, str]]:
    """(alert id, event) of each message the robot accepted: its title's label, its link."""
    with robot.lock:
        accepted = [r.body["markdown"] for r in robot.log.accepted]
    found = []
    for message in accepted:
        label = re.match(r"\[([^\]]+)\]", message["title"])
        link = ALERT_LINK.findall(message["text"])
        assert label is not None, message
        assert len(set(link)) == 1, message
        found.append((int(link[0]), ZH_EVENTS[label.group(1)]))
    return found


def _outbox(url: str) -> list[db.Row]:
    conn = db.connect(url)
    try:
        return conn.execute(
            "SELECT id, channel, alert_id, event, status FROM outbox ORDER BY id", ()
        ).fetchall()
    finally:
        conn.close()


def _influx_sites(influx_url: str, database: str) -> dict[str, set[str]]:
    """Sites of the readings a worker stored, per measurement."""
    settings = InfluxSettings(url=influx_url, database=database)
    found: dict[str, set[str]] = {}
    for measurement in ("temperature", "weight"):
        series = query_sync(settings, f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "site"')
        found[measurement] = {row["value"] for row in rows(series)}
    return found


def test_two_workers_partitioned_by_site_and_one_api_on_one_postgresql(
    postgres: ManagedProcess, stack: LocalStack, tmp_path: Path
) -> None:
    unique = uuid.uuid4().hex[:6]
    sites = (f"wa{unique}", f"wb{unique}")
    seed, catalog = _two_site_files(tmp_path, sites)
    dingtalk = DingTalkRobot(
        access_token=secrets.token_hex(16), secret="SEC" + secrets.token_hex(24)
    ).start()
    hook = WebhookReceiver().start()
    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    channels = [
        {"name": DINGTALK, "kind": "dingtalk", "url": dingtalk.url, "secret": dingtalk.secret,
         "language": "zh"},
        {"name": HOOK, "kind": "webhook", "url": hook.url},
    ]  # fmt: skip
    started: list[Cli] = []
    with _database(postgres) as url:
        common = {
            "STOCKSENSE_DATABASE_URL": url,
            "STOCKSENSE_MQTT__PORT": str(stack.mqtt_port),
            "STOCKSENSE_INFLUX__URL": stack.influx_url,
            "STOCKSENSE_INFLUX__FLUSH_INTERVAL_S": "0.1",
            "STOCKSENSE_RULES__SEED_FILE": str(seed),
            "STOCKSENSE_NOTIFIER__CHANNELS": json.dumps(channels),
            "STOCKSENSE_NOTIFIER__CONSOLE_URL": f"{api_url}/console",
        }

        def env(name: str, **values: str) -> dict[str, str]:
            own = {
                "STOCKSENSE_DATA_DIR": str(tmp_path / name),
                "STOCKSENSE_MQTT__CLIENT_ID": f"{name}-{unique}",
                "STOCKSENSE_INFLUX__DATABASE": f"{name}_{unique}",
            }
            return clean_env(**(common | own | values))

        def start(name: str, *args: str, **values: str) -> Cli:
            cli = Cli(*args, env=env(name, **values), cwd=tmp_path)
            started.append(cli)
            return cli

        client = httpx.Client(base_url=api_url, timeout=30)
        try:
            # The catalog of both sites, an operator for the pickers' scanners and the reads.
            loaded = run_cli("seed", str(catalog), env=env("admin"), cwd=tmp_path)
            assert loaded.process.returncode == 0, loaded
            added = run_cli("users", "add", "ops", "--role", "operator",
                            env=env("admin"), cwd=tmp_path)  # fmt: skip
            assert added.process.returncode == 0, added
            made = run_cli("users", "token", "ops", "--label", "scanners",
                           env=env("admin"), cwd=tmp_path)  # fmt: skip
            assert made.process.returncode == 0, made
            token = made.stdout[-1].rsplit(" ", 1)[1]
            token_file = tmp_path / "ops.token"
            token_file.write_text(token + "\n", "utf-8")

            api = start("api", "api", "--port", str(api_port))
            workers = {
                site: start(f"worker{i}", "run", "--no-api", STOCKSENSE_MQTT__SITES=site)
                for i, site in enumerate(sites)
            }
            api.wait_stdout(r"^stocksense api: running", timeout=TIMEOUT)
            for worker in workers.values():
                worker.wait_stdout(r"^stocksense run: running", timeout=TIMEOUT)
            simulators = [
                start(f"sim{i}", "simulate", "--site", site, "--speed", "2",
                      "--excursion-at", "6", "--excursion-for", "30", "--progress", "0",
                      "--api", api_url, "--token-file", str(token_file))
                for i, site in enumerate(sites)
            ]  # fmt: skip
            client.headers["Authorization"] = f"Bearer {token}"

            def get(path: str, **params: str | int) -> list[dict[str, Any]]:
                answer = client.get(path, params=params)
                assert answer.status_code == 200, answer.text
                found: list[dict[str, Any]] = answer.json()
                return found

            shelves = {
                site: {(s["location"], s["sku"]) for s in yaml.safe_load(
                    catalog.read_text("utf-8"))["shelves"] if s["site"] == site}
                for site in sites
            }  # fmt: skip

            def scenario_done() -> bool:
                for cli in started:
                    assert cli.process.poll() is None, f"stocksense {cli.args} exited: {cli}"
                cold = get("/alerts", type=COLD_CHAIN, limit=1000)
                cleared = {a["site"] for a in cold if a["state"] == "cleared"}
                stocked = all(
                    shelves[site]
                    <= {(s["location"], s["sku"]) for s in get("/inventory/stock", site=site)}
                    for site in sites
                )
                ids = {a["id"] for a in cold if a["state"] == "cleared"}
                told = {a for a, event in _robot_messages(dingtalk) if event == "cleared"}
                seen[:] = [cold, told, stocked]
                return cleared == set(sites) and stocked and ids <= told

            seen: list[Any] = []
            try:
                wait_for(scenario_done, timeout=TIMEOUT, what="both excursions cleared and told")
            except pytest.fail.Exception:
                pytest.fail(f"{seen}\n" + "\n".join(f"{c.args}: {c}" for c in started))
            for cli in simulators:
                assert _stop(cli) == 0, cli
            for worker in workers.values():
                assert _stop(worker) == 0, worker

            # Each alert once: one cold-chain excursion per site, no condition raised twice.
            alerts = get("/alerts", limit=1000)
            assert {a["site"] for a in alerts} <= set(sites), alerts
            cold = [a for a in alerts if a["type"] == COLD_CHAIN]
            assert sorted((a["site"], a["state"]) for a in cold) == [
                (sites[0], "cleared"), (sites[1], "cleared")
            ], cold  # fmt: skip
            doubles = Counter((a["source"], a["type"]) for a in alerts)
            assert [k for k, n in doubles.items() if n > 1] == [], alerts

            # Each worker handled its own site: it raised that site's excursion, and its log
            # names no other site.
            for site, worker in workers.items():
                log = "\n".join(worker.stderr)
                assert log.count(f"{COLD_CHAIN} raised for {site}/cold-room") == 1, worker
                assert [s for s in sites if s != site and s in log] == [], worker

            # Both sites' stock, each on its own shelves, served by the API.
            for site in sites:
                stock = get("/inventory/stock", site=site)
                assert {s["site"] for s in stock} == {site}, stock
                on_shelves = {(s["location"], s["sku"]): s["qty"] for s in stock
                              if (s["location"], s["sku"]) in shelves[site]}  # fmt: skip
                assert on_shelves.keys() == shelves[site], stock
                assert all(qty > 0 for qty in on_shelves.values()), stock

            # Each worker stored its own site's readings only.
            for i, site in enumerate(sites):
                stored = _influx_sites(stack.influx_url, f"worker{i}_{unique}")
                assert stored == {"temperature": {site}, "weight": {site}}, (site, stored)

            # Every outbox row of the robot and the webhook was sent, and received once.
            outbox = [r for r in _outbox(url) if r["channel"] in (DINGTALK, HOOK)]
            assert {r["status"] for r in outbox} == {"sent"}, [dict(r) for r in outbox]
            assert dingtalk.log.errors == []
            robot = Counter(_robot_messages(dingtalk))
            sent = Counter((r["alert_id"], r["event"]) for r in outbox if r["channel"] == DINGTALK)
            assert robot == sent
            assert set(robot.values()) == {1}
            hooked = Counter((r.body["alert"]["id"], r.body["event"]) for r in hook.log.accepted)
            assert hooked == Counter(
                (r["alert_id"], r["event"]) for r in outbox if r["channel"] == HOOK
            )
            assert set(hooked.values()) == {1}
            for alert in cold:  # the robot was told of each excursion and of its end
                assert (robot[(alert["id"], "raised")], robot[(alert["id"], "cleared")]) == (1, 1)
        finally:
            for cli in reversed(started):
                _stop(cli)
            client.close()
            dingtalk.stop()
            hook.stop()
