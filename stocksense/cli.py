"""The ``stocksense`` command line: the composition root of every service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

from core.settings import Settings


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "gmqtt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _cmd_demo(args: argparse.Namespace) -> int:
    from stocksense.demo import run_demo  # noqa: PLC0415 - keep CLI start-up light

    _logging("WARNING" if not args.verbose else "INFO")
    return asyncio.run(
        run_demo(
            Path(args.data_dir),
            excursion_at_s=args.excursion_at,
            excursion_s=args.excursion_for,
            linger_s=args.linger,
        )
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from stocksense.apiserver import ApiServer  # noqa: PLC0415
    from stocksense.pipeline import Pipeline  # noqa: PLC0415

    settings = Settings()
    _logging(settings.log_level)

    async def everything() -> None:
        api = None if args.no_api else ApiServer(settings, host=args.host, port=args.port)
        if api is not None:
            await api.start()
            logging.getLogger(__name__).info("API and console at %s/console", api.url)
        try:
            await Pipeline(settings).run_forever()
        finally:
            if api is not None:
                await api.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(everything())
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.service import run_ingest  # noqa: PLC0415

    settings = Settings()
    _logging(settings.log_level)
    del args
    return asyncio.run(run_ingest(settings))


def _cmd_api(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    from api.app import create_app  # noqa: PLC0415

    settings = Settings()
    _logging(settings.log_level)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def _cmd_services(args: argparse.Namespace) -> int:
    from stocksense.devservices import local_stack  # noqa: PLC0415

    _logging("INFO")

    def stop_on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so the context manager below stops what it started

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    with local_stack(Path(args.data_dir) if args.data_dir else None) as stack:
        print(f"STOCKSENSE_MQTT__PORT={stack.mqtt_port}")
        print(f"STOCKSENSE_INFLUX__URL={stack.influx_url}")
        print("# services running; Ctrl-C stops them", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.warehouse import Excursion, VirtualWarehouse, WarehouseConfig  # noqa: PLC0415

    settings = Settings()
    _logging(settings.log_level)
    excursions = (
        [Excursion(start_s=args.excursion_at, duration_s=args.excursion_for)]
        if (args.excursion_for > 0)
        else []
    )
    config = WarehouseConfig(
        site=args.site, speed=args.speed, interval_s=args.interval, excursions=excursions
    )
    warehouse = VirtualWarehouse(
        config, host=settings.mqtt.host, port=settings.mqtt.port, broker=settings.mqtt
    ).start()
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(args.duration if args.duration > 0 else 10**9)
    warehouse.stop()
    print(f"published {warehouse.published} messages")
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from core import db  # noqa: PLC0415
    from core.errors import ConfigError  # noqa: PLC0415
    from core.inventory import InventoryStore, now_ms  # noqa: PLC0415
    from rules.seed import load_seed  # noqa: PLC0415

    settings = Settings()
    _logging(settings.log_level)
    try:
        seed = load_seed(Path(args.file))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    conn = db.connect(settings.sqlite_path)
    try:
        counts = InventoryStore(conn).load_catalog(
            skus=seed.skus,
            shelves=seed.shelves,
            rfid_zones=seed.rfid_zones,
            lots=seed.lots,
            ts_ms=now_ms(),
        )
    finally:
        conn.close()
    loaded = ", ".join(f"{n} {what}" for what, n in counts.items())
    print(f"loaded into {settings.sqlite_path}: {loaded}")
    return 0


def _cmd_notify(args: argparse.Namespace) -> int:
    from rules.notify.service import run_notifier  # noqa: PLC0415

    settings = Settings()
    _logging(settings.log_level)
    del args
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_notifier(settings))
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from stocksense.devices import command  # noqa: PLC0415

    return command(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="stocksense", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="live demo: services, pipeline, virtual warehouse, alert")
    demo.add_argument("--data-dir", default="var", help="where run data and service logs go")
    demo.add_argument("--excursion-at", type=float, default=8.0, help="seconds until the fault")
    demo.add_argument("--excursion-for", type=float, default=25.0, help="fault duration, s")
    demo.add_argument("--linger", type=float, default=3.0, help="seconds to keep running after")
    demo.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser("run", help="ingest, rules, notifier and API from STOCKSENSE_* settings")
    run.add_argument("--host", default="127.0.0.1", help="API address")
    run.add_argument("--port", type=int, default=8000, help="API port")
    run.add_argument("--no-api", action="store_true", help="run without the API and console")
    run.set_defaults(func=_cmd_run)

    notify = sub.add_parser("notify", help="run the notifier alone: deliver the alert outbox")
    notify.set_defaults(func=_cmd_notify)

    ingest = sub.add_parser("ingest", help="run an ingest worker alone (STOCKSENSE_* settings)")
    ingest.set_defaults(func=_cmd_ingest)

    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(func=_cmd_api)

    services = sub.add_parser("services", help="start a local Mosquitto and InfluxDB")
    services.add_argument("--data-dir", default=None)
    services.set_defaults(func=_cmd_services)

    seed = sub.add_parser("seed", help="load a seed YAML (SKUs, shelves, RFID zones, lots)")
    seed.add_argument("file", help="seed file, e.g. examples/demo-catalog.yaml")
    seed.set_defaults(func=_cmd_seed)

    simulate = sub.add_parser("simulate", help="publish a virtual warehouse to the broker")
    simulate.add_argument("--site", default="wh1")
    simulate.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    simulate.add_argument("--interval", type=float, default=1.0, help="simulated s between rounds")
    simulate.add_argument("--duration", type=float, default=0, help="real seconds; 0 = forever")
    simulate.add_argument("--excursion-at", type=float, default=30.0)
    simulate.add_argument("--excursion-for", type=float, default=0.0)
    simulate.set_defaults(func=_cmd_simulate)

    from stocksense.devices import configure_parser  # noqa: PLC0415

    devices = sub.add_parser("devices", help="enrol or revoke a device on a Mosquitto broker")
    configure_parser(devices)
    devices.set_defaults(func=_cmd_devices)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stocksense`` command."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
