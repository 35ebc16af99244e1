"""The live demo: real Mosquitto and InfluxDB, the whole pipeline, a virtual warehouse and a
local DingTalk robot that checks signatures, all in one command.

What happens, on the warehouse's clock:
- the shelves settle and count their stock (opening balances in the ledger);
- t=12 s: three bags of coffee are picked and leave through the dock's shipping antenna;
- t=14 s: four packs of tea are picked, which takes tea below its minimum: a purchase
  suggestion (Odoo min/max: up to 40, in packs of 6) and a reorder alert follow;
- each pick is recorded through the API (``POST /inventory/picks``, as a picker's scanner
  would), so the shelves' drops are explained and no unexplained loss is raised;
- t=8 s to 33 s: the cold room warms to 11.5 °C; after the 10 s allowance one critical alert is
  raised, signed and delivered to the DingTalk robot, then resolved when it cools down.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from core import db
from core.alerts import Alert, AlertStores
from core.auth import AuthStore, Role
from core.influx import query_sync, rows
from core.inventory import InventoryStores, now_ms
from core.mqtt_settings import MqttSettings
from core.settings import ChannelSettings, InfluxSettings, NotifierSettings, Settings
from rules.coldchain import ALERT_TYPE as COLD_CHAIN
from rules.seed import Seed, load_seed
from simulators.robots import DingTalkRobot, WebhookReceiver
from simulators.warehouse import (
    ApiPickRecorder,
    Excursion,
    ScriptedPick,
    ShelfSpec,
    VirtualWarehouse,
    WarehouseConfig,
)
from stocksense.apiserver import ApiServer
from stocksense.devservices import free_port, local_stack
from stocksense.pipeline import Pipeline

logger = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEED = EXAMPLES / "demo-warehouse.yaml"
CATALOG = EXAMPLES / "demo-catalog.yaml"
COFFEE_GTIN = "80614141123458"
DINGTALK = "dingtalk-ops"
DEMO_USER = "demo-operator"
DEMO_SCANNER = "demo-scanner"  # the pickers' scanners record picks with its API token


async def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.2)
    return predicate()


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def _delivered(store: AlertStores, alert_type: str, event: str) -> Alert | None:
    """The first alert of ``alert_type`` whose ``event`` reached the DingTalk robot."""
    for item in store.outbox.outbox(status="sent"):
        if item.channel == DINGTALK and item.event == event:
            alert = store.state.get(item.alert_id)
            if alert is not None and alert.type == alert_type:
                return alert
    return None


def _warehouse(catalog: Seed) -> WarehouseConfig:
    return WarehouseConfig(
        skus={(s.device, s.cell): s.sku for s in catalog.shelves},
        shelves=[
            ShelfSpec(device="shelf-a1", cells={"c1": 250.0, "c2": 500.0},
                      start_units_by_cell={"c1": 30, "c2": 13}),
            ShelfSpec(device="shelf-a2", cells={"c1": 1000.0, "c2": 125.0}, start_units=40),
        ],
        pick_probability=0.0,
        random_tag_reads=False,
        scripted_picks=[
            ScriptedPick(at_s=12, device="shelf-a1", cell="c1", units=3, gtin=COFFEE_GTIN),
            ScriptedPick(at_s=14, device="shelf-a1", cell="c2", units=4),
        ],
    )  # fmt: skip


def _load_catalog(settings: Settings, catalog: Seed) -> None:
    conn = db.connect(settings.database)
    try:
        InventoryStores.over(conn).load_catalog(
            skus=catalog.skus,
            shelves=catalog.shelves,
            rfid_zones=catalog.rfid_zones,
            lots=catalog.lots,
            ts_ms=now_ms(),
        )
    finally:
        conn.close()


def _demo_login(settings: Settings) -> tuple[str, str]:
    """An operator login for the console of this run (its database is new each run)."""
    conn = db.connect(settings.database)
    try:
        user, password = AuthStore(conn).add_user(DEMO_USER, Role.OPERATOR)
    finally:
        conn.close()
    return user.name, password


def _scanner_token(settings: Settings) -> str:
    """An API token of the pickers' scanners (an operator may record picks)."""
    conn = db.connect(settings.database)
    try:
        store = AuthStore(conn)
        store.add_user(DEMO_SCANNER, Role.OPERATOR)
        return store.create_token(DEMO_SCANNER, label="pick scanners")[1]
    finally:
        conn.close()


async def run_demo(
    data_dir: Path, *, excursion_at_s: float, excursion_s: float, linger_s: float
) -> int:
    """Run the demo; returns a process exit code (0 when the alert was delivered and cleared)."""
    run_dir = data_dir / time.strftime("demo-%Y%m%d-%H%M%S")
    api_port = free_port()
    dingtalk = DingTalkRobot(
        access_token=secrets.token_hex(16), secret="SEC" + secrets.token_hex(24)
    )
    webhook = WebhookReceiver()
    dingtalk.start()
    webhook.start()
    try:
        with local_stack(run_dir / "services") as stack:
            settings = Settings(
                data_dir=run_dir,
                mqtt=MqttSettings(port=stack.mqtt_port, client_id="stocksense-demo"),
                influx=InfluxSettings(url=stack.influx_url, database="stocksense"),
                notifier=NotifierSettings(
                    console_url=f"http://127.0.0.1:{api_port}/console",
                    channels=[
                        ChannelSettings(name=DINGTALK, kind="dingtalk", url=dingtalk.url,
                                        secret=dingtalk.secret, language="zh"),
                        ChannelSettings(name="erp-webhook", kind="webhook", url=webhook.url),
                    ]
                ),
            )  # fmt: skip
            return await _run(settings, stack.mqtt_port, stack.influx_url, dingtalk, api_port,
                              excursion_at_s=excursion_at_s, excursion_s=excursion_s,
                              linger_s=linger_s)  # fmt: skip
    except asyncio.CancelledError:
        # SIGINT or SIGTERM: everything above is stopped by now; the caller exits 0.
        _banner("Stopped: the pipeline, Mosquitto and InfluxDB are shut down")
        raise
    finally:
        dingtalk.stop()
        webhook.stop()


async def _run(
    settings: Settings,
    mqtt_port: int,
    influx_url: str,
    dingtalk: DingTalkRobot,
    api_port: int,
    *,
    excursion_at_s: float,
    excursion_s: float,
    linger_s: float,
) -> int:
    _banner("StockSense demo")
    print(f"Mosquitto      mqtt://127.0.0.1:{mqtt_port}  (topics stocksense/v1/#)")
    print(f"InfluxDB       {influx_url}  database 'stocksense'")
    print(
        f"DingTalk robot http://127.0.0.1:{dingtalk.port}/robot/send (local, signed, rate-limited)"
    )
    print(f"Data dir       {settings.data_dir}")
    catalog = load_seed(CATALOG)
    _load_catalog(settings, catalog)
    pipeline = Pipeline(settings, seed=load_seed(SEED))
    await pipeline.start()
    api = ApiServer(settings, host="127.0.0.1", port=api_port)
    await api.start()
    print(f"Ops console    {settings.notifier.console_url}  (API docs at {api.url}/docs)")
    user, password = _demo_login(settings)
    print(f"Console login  {user} / {password}  (operator: ack and silence alerts)")
    config = _warehouse(catalog)
    config.excursions.append(Excursion(start_s=excursion_at_s, duration_s=excursion_s))
    scanner = ApiPickRecorder(api.url, _scanner_token(settings))
    warehouse = VirtualWarehouse(config, host="127.0.0.1", port=mqtt_port, picks=scanner).start()
    print(
        f"Virtual warehouse publishing: cold room 2–8 °C (allowance 10 s), excursion at "
        f"t={excursion_at_s:.0f}s for {excursion_s:.0f}s; picks at t=12s (coffee) and t=14s (tea)"
    )
    started = time.monotonic()
    store = pipeline.alerts
    try:
        raised = await _wait(lambda: _delivered(store, COLD_CHAIN, "raised") is not None,
                             excursion_at_s + 45)  # fmt: skip
        if not raised:
            print("!! the cold-chain alert did not reach the DingTalk robot in time", flush=True)
            return 1
        alert = _delivered(store, COLD_CHAIN, "raised")
        assert alert is not None
        _banner(f"Cold-chain alert delivered to DingTalk after {time.monotonic() - started:.1f}s")
        _print_alert(alert, _message_for(dingtalk, alert))
        cleared = await _wait(lambda: _delivered(store, COLD_CHAIN, "cleared") is not None,
                              excursion_s + 30)  # fmt: skip
        if cleared:
            _banner("Back in band: resolved notice delivered")
            print(_message_for(dingtalk, alert, event="cleared").splitlines()[0])
        await pipeline.rules.drain()
        _print_inventory(pipeline)
        errors = ", ".join(str(code) for code in dingtalk.log.errors) or "none"
        print(f"  DingTalk robot accepted {len(dingtalk.log.accepted)} messages; errors: {errors}")
        _print_where_to_look(settings, mqtt_port)
        if linger_s > 0:
            print(f"\nServices stay up for {linger_s:.0f}s (Ctrl-C to stop now).", flush=True)
            await asyncio.sleep(linger_s)
        return 0 if cleared else 1
    finally:
        warehouse.stop()
        scanner.close()
        await api.stop()
        await pipeline.stop()


def _message_for(dingtalk: DingTalkRobot, alert: Alert, event: str = "raised") -> str:
    """The robot's copy of the message about ``alert`` (messages link to ``#alert-<id>``)."""
    marker = f"#alert-{alert.id}"
    label = "已恢复" if event == "cleared" else "告警"
    for text in dingtalk.log.texts():
        if marker in text and label in text.splitlines()[0]:
            return text
    return ""


def _print_alert(alert: Alert, text: str) -> None:
    print(f"Alert #{alert.id} [{alert.severity}] {alert.title}")
    print(f"  source {alert.source}  type {alert.type}  state {alert.state}")
    print(f"  {alert.message}")
    print("DingTalk message (markdown, signed with HMAC-SHA256):")
    for text_line in text.splitlines():
        print(f"  | {text_line}")


def _print_inventory(pipeline: Pipeline) -> None:
    inventory = InventoryStores.over(pipeline.conn)
    _banner("Live inventory")
    for level in inventory.ledger.stock():
        print(f"  {level.site} {level.location:<10} {level.sku:<12} {level.qty:>6.0f} units")
    moves = inventory.ledger.ledger()
    print(f"  ledger: {len(moves)} movements ({', '.join(sorted({m.kind for m in moves}))})")
    for suggestion in inventory.planning.suggestions():
        print(
            f"  purchase suggestion #{suggestion.id}: {suggestion.qty:.0f} x {suggestion.sku} "
            f"({suggestion.state}; projected {suggestion.projected:.0f}, trigger level "
            f"{suggestion.trigger_level:.0f}): {suggestion.reason}"
        )
    for pick in inventory.picks.picks():
        print(
            f"  recorded pick {pick.ref}: {pick.qty:.0f} x {pick.sku} ({pick.status}; "
            f"{pick.matched_qty:.0f} matched to a shelf drop)"
        )
    print("  alerts:")
    for alert in reversed(pipeline.alerts.state.list(limit=50)):
        print(
            f"    #{alert.id} {alert.type:<22} {alert.severity:<8} {alert.state:<8} {alert.source}"
        )


def _print_where_to_look(settings: Settings, mqtt_port: int) -> None:
    _banner("Where to look")
    influx = settings.influx
    counts = rows(query_sync(influx, "SELECT count(celsius) FROM temperature"))
    alerts = rows(query_sync(influx, "SELECT alert_id, event, type, severity FROM alerts"))
    print(f"InfluxDB {influx.url}, database '{influx.database}':")
    print("  measurements: temperature, weight, rfid, device_status, alerts, stock, movements,")
    print("                suggestions")
    print(f"  temperature points so far: {counts[0]['count'] if counts else 0}")
    for row in alerts:
        print(f"  alerts: #{row['alert_id']} {row['event']:<8} {row['type']} {row['severity']}")
    query = "SELECT * FROM alerts"
    print(f"  try: curl -G {influx.url}/query --data-urlencode db={influx.database} \\")
    print(f"         --data-urlencode 'q={query}'")
    print(f"database (alerts, outbox, catalog, ledger): {settings.database}")
    print(f"Dead letters: mosquitto_sub -p {mqtt_port} -t stocksense/v1/_deadletter -v")
    print(f"Logs and service data: {settings.data_dir}")
