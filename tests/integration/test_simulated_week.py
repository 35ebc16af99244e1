"""A simulated week of a small warehouse (examples/scenario-week.yaml): seasonal demand picked
in waves and shipped through the dock, receipts, and one of every fault, published on the
scenario's accelerated clock through the real broker, ingest, rules and InfluxDB. A WMS records
each wave's picks as a pick list through the real API; nobody records a theft.

The rules tick on the simulation's clock (``caught_up_clock``): the time of the last round
they have fully seen, so no device looks silent while its readings are still queued.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from core import db
from core.inventory import InventoryStores
from core.settings import Settings
from rules.engine import RulesEngine
from simulators.scenario import Scenario, Theft, load_scenario
from simulators.warehouse import ApiPickRecorder, ScenarioSimulation, ScenarioWarehouse
from stocksense.apiserver import ApiServer
from stocksense.devservices import LocalStack, free_port
from stocksense.pipeline import Pipeline
from tests.authutil import api_token
from tests.conftest import until
from tests.integration.test_cli import Cli, _one_line, clean_env, run_cli, stack_env

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).resolve().parents[2] / "examples" / "scenario-week.yaml"
SITE = "sim1"
SPEED = 20_160.0  # a week in 30 s


def test_a_simulated_week_keeps_the_ledger_on_the_shelves_and_raises_every_fault(
    settings: Settings, stack: LocalStack
) -> None:
    scenario = load_scenario(SCENARIO).model_copy(update={"speed": SPEED})
    # This site's topics only: other tests' retained messages must not count as its readings.
    cfg = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"sites": (SITE,)})})
    # The API on the pipeline's database; the WMS signs in with an operator's API token.
    api = ApiServer(cfg, port=0)
    wms = ApiPickRecorder(api.url, api_token(cfg, "operator", "wms"))
    warehouse = ScenarioWarehouse(scenario, host="127.0.0.1", port=stack.mqtt_port, picks=wms)
    catalog = scenario.catalog(warehouse.start_ms)
    conn = db.connect(cfg.database)
    try:
        InventoryStores.over(conn).load_catalog(
            skus=catalog.skus,
            shelves=catalog.shelves,
            rfid_zones=catalog.rfid_zones,
            lots=catalog.lots,
            ts_ms=warehouse.start_ms,
        )
    finally:
        conn.close()
    sim = warehouse.simulation

    async def week() -> None:
        engine: list[RulesEngine] = []
        clock = warehouse.caught_up_clock(lambda: engine[0].processed if engine else 0)
        pipeline = Pipeline(
            cfg, seed=catalog, anomaly_sites={SITE}, tick_interval_s=0.05, clock=clock
        )
        engine.append(pipeline.rules)
        await pipeline.start()
        await api.start()
        started = time.monotonic()
        warehouse.start()
        try:
            await until(warehouse.finished.is_set, timeout=90, what="the week published")
            await until(
                lambda: pipeline.rules.processed >= warehouse.samples,
                timeout=60,
                what="rules caught up with the week",
            )
            wall_s = time.monotonic() - started
            end_ms = warehouse.sim_ms()
            assert end_ms - warehouse.start_ms == 7 * 86_400_000
            assert clock() * 1000 == end_ms
            pipeline.rules.tick(end_ms)
            assert pipeline.rules.dropped == 0
            _check_ledger(pipeline)
            _check_picks(pipeline)
            _check_alerts(pipeline)
            print(
                f"simulated week: {warehouse.published} messages, {warehouse.samples} readings"
                f" in {wall_s:.1f} s"
            )
            assert wall_s < 60
        finally:
            warehouse.stop()
            wms.close()
            await api.stop()
            await pipeline.stop()

    def _check_ledger(pipeline: Pipeline) -> None:
        ledger = InventoryStores.over(pipeline.conn).ledger
        site = scenario.sites[0]
        for shelf, cell in site.cells():
            on_shelf = sim.units(SITE, shelf.device, cell.cell)
            truth = sim.truth.get((SITE, cell.sku))
            assert cell.location is not None
            booked = ledger.qty_at(SITE, cell.location, cell.sku)
            assert (cell.sku, booked) == (cell.sku, on_shelf)
            if truth is None:  # no demand, no receipt, no theft: the opening count alone
                assert on_shelf == cell.units
                continue
            # The simulation's own books balance: what is on the shelf is what was there,
            # plus what was put away, minus what was picked and stolen.
            assert on_shelf == cell.units + truth.put - truth.picked - truth.stolen
            assert truth.picked == truth.demanded - truth.short > 0
            moves = ledger.ledger(site=SITE, sku=cell.sku, limit=100_000)
            shelf_moves = [m for m in moves if m.location == cell.location]
            picked = -sum(m.qty for m in shelf_moves if m.kind == "pick")
            put = sum(m.qty for m in shelf_moves if m.kind == "put")
            assert (picked, put) == (truth.picked + truth.stolen, truth.put)
            # Dock receipts are booked where the portal read them; shipped units were all
            # picked from a shelf first, so the shipping zone books nothing.
            assert ledger.qty_at(SITE, "dock-in", cell.sku) == truth.received
            assert ledger.qty_at(SITE, "dock-out", cell.sku) == 0
            assert truth.shipped == truth.picked

    def _check_picks(pipeline: Pipeline) -> None:
        # Every wave's pick went through the API and explained the drop it caused, in full.
        picks = InventoryStores.over(pipeline.conn).picks.picks(site=SITE, limit=100_000)
        assert (wms.recorded, wms.failed) == (len(picks), 0)
        recorded: dict[str, float] = {}
        for pick in picks:
            recorded[pick.sku] = recorded.get(pick.sku, 0.0) + pick.qty
        truth = {sku: t for (site, sku), t in sim.truth.items() if site == SITE}
        assert recorded == {sku: float(t.picked) for sku, t in truth.items() if t.picked}
        assert [(p.ref, p.status, p.matched_qty) for p in picks] == [
            (p.ref, "matched", p.qty) for p in picks
        ]
        assert all(p.recorded_by == "wms" and p.list_ref for p in picks)

    def _check_alerts(pipeline: Pipeline) -> None:
        alerts = pipeline.alerts.state.list(site=SITE, limit=1000)
        raised = sorted((a.type, a.source) for a in alerts)
        # Each fault raised its alert, once, and nothing else did.
        assert raised == sorted(scenario.expected_alerts())
        by_type = {a.type: a for a in alerts}
        # Recorded picks explain every other drop: the only losses are the thefts, each of
        # exactly the units stolen.
        losses = {a.source: a.value for a in alerts if a.type == "unexplained_loss"}
        thefts = [f for f in scenario.faults if isinstance(f, Theft)]
        assert thefts
        assert losses == {f"{SITE}/{t.device}/{t.cell}": float(t.units) for t in thefts}
        # Faults that end have their alerts resolved; the lot still sits past its dates.
        states = {t: a.state for t, a in by_type.items()}
        assert states == {
            "unexplained_loss": "active",
            "misplaced_item": "cleared",
            "sensor_drift": "cleared",
            "sensor_offline": "cleared",
            "expiry_alert": "active",
            "expired_on_shelf": "active",
            "cold_chain_excursion": "cleared",
        }
        excursion = by_type["cold_chain_excursion"]
        assert excursion.raised_at - warehouse.start_ms >= (5 * 24 + 13) * 3_600_000 + 600_000

    asyncio.run(week())


def test_stocksense_simulate_publishes_a_scenario_for_its_duration(
    stack: LocalStack, tmp_path: Path
) -> None:
    site = f"cli{uuid.uuid4().hex[:6]}"  # retained births of its own, away from the week's
    scenario = tmp_path / "week.yaml"
    scenario.write_text(SCENARIO.read_text(encoding="utf-8").replace("sim1", site), "utf-8")
    loaded = load_scenario(scenario)
    before = loaded.start_ms(time.time_ns() // 1_000_000)
    cli = run_cli(
        "simulate", "--scenario", str(scenario), "--speed", "302400", "--progress", "0",
        env=stack_env(stack, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    after = loaded.start_ms(time.time_ns() // 1_000_000)
    assert cli.process.returncode == 0, cli
    assert cli.stdout[0].startswith(
        f"stocksense simulate: site {site} to mqtt://127.0.0.1:{stack.mqtt_port}, a round every"
        " 60 simulated s at 302400x; theft, misplacement, sensor_drift, device_offline,"
        " expiring_lot, cold_room_excursion; seed 2611 for 604800 simulated s;"
    ), cli
    # The whole week, as the simulation publishes it from the start the command chose (the
    # same unless a local midnight passed while it ran).
    summaries = {
        f"(604800 simulated s): published {messages} messages with {readings} readings"
        f" to mqtt://127.0.0.1:{stack.mqtt_port}"
        for messages, readings in (_offline(loaded, before), _offline(loaded, after))
    }
    assert any(cli.stdout[-1].endswith(summary) for summary in summaries), (cli, summaries)


def test_stocksense_simulate_records_the_picks_at_a_running_api(
    settings: Settings, stack: LocalStack, tmp_path: Path
) -> None:
    site = f"wms{uuid.uuid4().hex[:6]}"
    scenario = tmp_path / "week.yaml"
    scenario.write_text(SCENARIO.read_text(encoding="utf-8").replace("sim1", site), "utf-8")
    loaded = load_scenario(scenario)
    before = loaded.start_ms(time.time_ns() // 1_000_000)
    catalog = loaded.catalog(before)
    conn = db.connect(settings.database)  # the database of the API and the CLI below
    try:
        InventoryStores.over(conn).load_catalog(
            skus=catalog.skus, shelves=catalog.shelves, rfid_zones=catalog.rfid_zones,
            lots=catalog.lots, ts_ms=before,
        )  # fmt: skip
    finally:
        conn.close()
    # The API started below must open this test's database, on either engine.
    on_url = (
        {} if settings.database_url is None else {"STOCKSENSE_DATABASE_URL": settings.database.url}
    )
    env = stack_env(stack, tmp_path, **on_url)
    port = str(free_port())
    url = f"http://127.0.0.1:{port}"
    api = Cli("api", "--port", port, env=env, cwd=tmp_path)
    try:
        api.wait_stdout(r"^stocksense api: running")
        tokens = {}
        for name, role in (("wms", "operator"), ("auditor", "viewer")):
            tokens[name] = tmp_path / f"{name}.token"
            tokens[name].write_text(api_token(settings, role, name) + "\n", "utf-8")
        tokens["bad"] = tmp_path / "bad.token"
        tokens["bad"].write_text("not-a-token", "utf-8")
        simulate = ("simulate", "--scenario", str(scenario), "--speed", "302400", "--progress", "0")
        # A token that may not record picks, or none the API knows, is refused before anything
        # is published.
        viewer = run_cli(*simulate, "--api", url, "--token-file", str(tokens["auditor"]),
                         env=env, cwd=tmp_path)  # fmt: skip
        _one_line(viewer, 2, "auditor (viewer) may not record picks", "operator, approver or admin")
        bad = run_cli(*simulate, "--api", url, "--token-file", str(tokens["bad"]),
                      env=env, cwd=tmp_path)  # fmt: skip
        _one_line(bad, 2, f"the API at {url} refused the token of --token-file")
        cli = run_cli(*simulate, "--api", url + "/", "--token-file", str(tokens["wms"]),
                      env=env, cwd=tmp_path)  # fmt: skip
        after = loaded.start_ms(time.time_ns() // 1_000_000)
        assert cli.process.returncode == 0, cli
        assert cli.stdout[0].endswith(
            f"seed 2611 for 604800 simulated s; picks recorded at {url}; Ctrl-C or SIGTERM stops it"
        ), cli
        headers = {"Authorization": f"Bearer {tokens['wms'].read_text('utf-8').strip()}"}
        answer = httpx.get(f"{url}/inventory/picks", params={"site": site}, headers=headers)
        assert answer.status_code == 200, answer.text
        stored = answer.json()
    finally:
        api.stop()
    # Every pick of the week, as the simulation makes them from the start the command chose,
    # recorded once, by the WMS's user, as lines of a pick list; thefts are not picks.
    expected = [_picks(loaded, start) for start in (before, after)]
    got = Counter((p["sku"], p["qty"], p["ts"], p["ref"]) for p in stored)
    assert got in expected, (sorted(got), expected)
    assert cli.stdout[-2] == (
        f"stocksense simulate: recorded {len(stored)} picks at {url} (0 not recorded)"
    ), cli
    assert {(p["recorded_by"], p["status"], p["list_ref"][: len(site) + 6]) for p in stored} == {
        ("wms", "pending", f"{site}-wave-")
    }


def test_simulate_records_picks_only_with_both_the_api_and_a_token(tmp_path: Path) -> None:
    for args, needle in (
        (["--api", "http://127.0.0.1:8000"], "--api needs --token-file"),
        (["--token-file", "token"], "--token-file needs --api"),
    ):
        cli = run_cli("simulate", *args, env=clean_env(), cwd=tmp_path)
        _one_line(cli, 2, f"stocksense simulate: {needle}: picks are recorded at an API")
    missing = tmp_path / "missing.token"
    cli = run_cli("simulate", "--api", f"http://127.0.0.1:{free_port()}", "--token-file",
                  str(missing), env=clean_env(), cwd=tmp_path)  # fmt: skip
    _one_line(cli, 2, f"--token-file {missing}: No such file or directory")
    token = tmp_path / "token"
    token.write_text("tok", "utf-8")
    closed = f"http://127.0.0.1:{free_port()}"
    cli = run_cli("simulate", "--api", closed, "--token-file", str(token),
                  env=clean_env(), cwd=tmp_path)  # fmt: skip
    _one_line(cli, 1, f"the API at {closed} is unreachable")


def _picks(scenario: Scenario, start_ms: int) -> Counter[tuple[str, float, int, str]]:
    """The picks the simulation records over the whole scenario."""
    sim = ScenarioSimulation(scenario, start_ms=start_ms)
    assert scenario.duration is not None
    picks = []
    for k in range(round(scenario.duration / scenario.interval_s) + 1):
        sim.round(k)
        picks += sim.take_picks()
    assert picks
    return Counter((p.sku, float(p.qty), p.ts, p.ref) for p in picks)


def _offline(scenario: Scenario, start_ms: int) -> tuple[int, int]:
    """Messages and readings of the whole scenario, from the simulation without MQTT."""
    sim = ScenarioSimulation(scenario, start_ms=start_ms)
    messages = sim.births()
    assert scenario.duration is not None
    for k in range(round(scenario.duration / scenario.interval_s) + 1):
        messages += sim.round(k)
    data = [m for m in messages if "readings" in m.payload or "reads" in m.payload]
    return len(messages), sum(m.samples for m in data)
