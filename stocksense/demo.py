"""The live demo: real Mosquitto and InfluxDB, the whole pipeline, a virtual warehouse with a
cold-room excursion, and a local DingTalk robot that checks signatures, all in one command."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path

from core.alerts import Alert
from core.influx import query_sync, rows
from core.settings import ChannelSettings, InfluxSettings, MqttSettings, NotifierSettings, Settings
from rules.seed import load_seed
from simulators.robots import DingTalkRobot, WebhookReceiver
from simulators.warehouse import Excursion, VirtualWarehouse, WarehouseConfig
from stocksense.devservices import local_stack
from stocksense.pipeline import Pipeline

logger = logging.getLogger(__name__)

SEED = Path(__file__).resolve().parent.parent / "examples" / "demo-warehouse.yaml"


async def _wait(predicate: object, timeout: float) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.2)
    return False


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


async def run_demo(
    data_dir: Path, *, excursion_at_s: float, excursion_s: float, linger_s: float
) -> int:
    """Run the demo; returns a process exit code (0 when the alert was delivered and cleared)."""
    run_dir = data_dir / time.strftime("demo-%Y%m%d-%H%M%S")
    dingtalk = DingTalkRobot(
        access_token=secrets.token_hex(16), secret="SEC" + secrets.token_hex(24)
    )
    webhook = WebhookReceiver()
    dingtalk.start()
    webhook.start()
    with local_stack(run_dir / "services", keep=True) as stack:
        settings = Settings(
            data_dir=run_dir,
            mqtt=MqttSettings(port=stack.mqtt_port, client_id="stocksense-demo"),
            influx=InfluxSettings(
                url=stack.influx_url, database="stocksense", flush_interval_s=0.5
            ),
            notifier=NotifierSettings(
                channels=[
                    ChannelSettings(
                        name="dingtalk-ops",
                        kind="dingtalk",
                        url=dingtalk.url,
                        secret=dingtalk.secret,
                        language="zh",
                    ),
                    ChannelSettings(name="webhook", kind="webhook", url=webhook.url),
                ]
            ),
        )
        _banner("StockSense demo")
        print(f"Mosquitto     mqtt://127.0.0.1:{stack.mqtt_port}  (topics stocksense/v1/#)")
        print(f"InfluxDB      {stack.influx_url}  database 'stocksense'")
        print(f"DingTalk robot (local, signed) http://127.0.0.1:{dingtalk.port}/robot/send")
        print(f"Data dir      {run_dir}")
        pipeline = Pipeline(settings, seed=load_seed(SEED))
        await pipeline.start()
        warehouse = VirtualWarehouse(
            WarehouseConfig(excursions=[Excursion(start_s=excursion_at_s, duration_s=excursion_s)]),
            host="127.0.0.1",
            port=stack.mqtt_port,
        ).start()
        print(
            f"Virtual warehouse publishing; cold room (2–8 °C, allowance 10 s) excursion "
            f"injected at t={excursion_at_s:.0f}s for {excursion_s:.0f}s"
        )
        started = time.monotonic()
        code = 1
        try:
            delivered = await _wait(lambda: len(dingtalk.log.accepted) >= 1, excursion_at_s + 45)
            if not delivered:
                print("!! no alert reached the DingTalk robot in time", flush=True)
                return 1
            alert = pipeline.store.list(limit=1)[0]
            _banner(f"Alert delivered to DingTalk after {time.monotonic() - started:.1f}s")
            _print_alert(alert, dingtalk.log.texts()[0])
            cleared = await _wait(lambda: len(dingtalk.log.accepted) >= 2, excursion_s + 30)
            if cleared:
                _banner("Back in band: resolved notice delivered")
                print(dingtalk.log.texts()[1].splitlines()[0])
            await _wait(lambda: False, linger_s)
            _print_where_to_look(settings, run_dir, stack.mqtt_port)
            code = 0 if cleared else 1
        finally:
            warehouse.stop()
            await pipeline.stop()
            dingtalk.stop()
            webhook.stop()
    return code


def _print_alert(alert: Alert, text: str) -> None:
    print(f"Alert #{alert.id} [{alert.severity}] {alert.title}")
    print(f"  source {alert.source}  type {alert.type}  state {alert.state}")
    print(f"  {alert.message}")
    print("DingTalk message (markdown, signed with HMAC-SHA256):")
    for text_line in text.splitlines():
        print(f"  | {text_line}")


def _print_where_to_look(settings: Settings, run_dir: Path, mqtt_port: int) -> None:
    _banner("Where to look")
    influx = settings.influx
    counts = rows(query_sync(influx, "SELECT count(celsius) FROM temperature"))
    alerts = rows(query_sync(influx, "SELECT alert_id, event, severity, message FROM alerts"))
    print(f"InfluxDB {influx.url}, database '{influx.database}':")
    print("  measurements: temperature, weight, rfid, device_status, alerts")
    print(f"  temperature points so far: {counts[0]['count'] if counts else 0}")
    for row in alerts:
        print(f"  alerts: #{row['alert_id']} {row['event']} {row['severity']}: {row['message']}")
    query = "SELECT * FROM alerts"
    print(f"  try: curl -G {influx.url}/query --data-urlencode db={influx.database} \\")
    print(f"         --data-urlencode 'q={query}'")
    print(f"SQLite alerts and outbox: {settings.sqlite_path}")
    print(f"Dead letters: mosquitto_sub -p {mqtt_port} -t stocksense/v1/_deadletter -v")
    print(f"Logs and service data: {run_dir}")
