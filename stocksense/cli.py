"""The ``stocksense`` command line: the composition root of every service.

Exit codes: 0 done, or stopped by SIGINT or SIGTERM after stopping everything the command
started; 1 a service it needs stayed unreachable or failed; 2 bad configuration or arguments.
Every error is one line on stderr that names the variable, file or option at fault.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from core.errors import ConfigError, StockSenseError
from stocksense import __version__

if TYPE_CHECKING:
    from core.settings import Settings
    from rules.seed import Seed
    from stocksense.devservices import LocalStack

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_CONFIG = 2
SIMULATE_EXCURSION_AT_S = 30.0
STOP_HINT = "Ctrl-C or SIGTERM stops it"
MAX_API_WORKERS = 64
EXIT_CODES = (
    "Exit codes: 0 done, or stopped by SIGINT or SIGTERM after stopping everything the command\n"
    "started; 1 a service it needs stayed unreachable or failed; 2 bad configuration or\n"
    "arguments. Every error is one line on stderr naming the variable, file or option at fault."
)


def configure_logging(level: str) -> None:
    """Log at ``level`` to stderr, with the chattiest libraries at WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "gmqtt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _settings() -> Settings:
    """Settings from the environment and ``.env``; logging at their level."""
    # Imported here: the edge agent's command reads a YAML file instead, and the settings tree
    # would cost a small gateway ~8 MB.
    from core.settings import load_settings, unknown_variables  # noqa: PLC0415

    settings = load_settings()
    configure_logging(settings.log_level)
    for name in unknown_variables():
        logger.warning(
            "%s is not a StockSense setting and is ignored: check its spelling against the"
            " configuration table of the README",
            name,
        )
    logger.debug("effective settings: %s", settings.model_dump_json())
    return settings


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` until it returns or SIGINT/SIGTERM arrives.

    A signal cancels ``main`` instead of killing the process, so every ``finally`` runs:
    brokers, databases, servers and the pipeline it started are stopped in order, and the
    exit code is 0. A second signal while stopping is ignored.
    """
    return asyncio.run(_until_signal(main))


async def _until_signal(main: Coroutine[Any, Any, int]) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[signal.Signals] = []

    def on_signal(signum: signal.Signals) -> None:
        if received:
            logger.warning("%s again: still stopping", signum.name)
            return
        received.append(signum)
        logger.info("%s received: stopping", signum.name)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await main
    except asyncio.CancelledError:
        if not received:
            raise
        return EXIT_OK
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _site_seed(settings: Settings) -> Seed:
    """The seed of ``STOCKSENSE_RULES__SEED_FILE`` (empty when unset)."""
    from rules.seed import Seed, load_seed  # noqa: PLC0415

    if settings.rules.seed_file is None:
        return Seed()
    try:
        return load_seed(settings.rules.seed_file)
    except ConfigError as exc:
        raise ConfigError(f"STOCKSENSE_RULES__SEED_FILE: {exc}") from None


def _warn_without_cold_chain(settings: Settings, seed: Seed) -> None:
    if any(zone.temp_band is not None for site in seed.sites for zone in site.zones):
        return
    why = (
        "STOCKSENSE_RULES__SEED_FILE is not set"
        if settings.rules.seed_file is None
        else f"{settings.rules.seed_file} has no zone with a temp_band"
    )
    logger.warning(
        "no cold-chain zone: %s, so temperatures are stored but no band is checked"
        " (see examples/demo-warehouse.yaml)",
        why,
    )


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - names the wildcard, binds nothing
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def _cmd_demo(args: argparse.Namespace) -> int:
    from stocksense.demo import run_demo  # noqa: PLC0415 - keep CLI start-up light

    configure_logging("WARNING" if not args.verbose else "INFO")
    return _run(
        run_demo(
            Path(args.data_dir),
            excursion_at_s=args.excursion_at,
            excursion_s=args.excursion_for,
            linger_s=args.linger,
        )
    )


def _cmd_run(args: argparse.Namespace) -> int:
    settings = _settings()
    if "console_url" not in settings.notifier.model_fields_set:
        # Messages link to the console this process serves, unless told otherwise.
        console = f"http://{_url_host(args.host)}:{args.port}/console"
        notifier = settings.notifier.model_copy(update={"console_url": console})
        settings = settings.model_copy(update={"notifier": notifier})
    return _run(_run_everything(settings, args))


async def _run_everything(settings: Settings, args: argparse.Namespace) -> int:
    from stocksense import probes  # noqa: PLC0415
    from stocksense.apiserver import ApiServer, AsgiServer, bind  # noqa: PLC0415
    from stocksense.metrics import PipelineCollector, metrics_app  # noqa: PLC0415
    from stocksense.pipeline import Pipeline  # noqa: PLC0415

    seed = _site_seed(settings)
    async with contextlib.AsyncExitStack() as stack:
        # Ports first: a port in use is reported before anything connects or starts.
        api_sock = None
        if not args.no_api:
            api_sock = bind(args.host, args.port, what="API port", fix="free it or pass --port")
            stack.callback(api_sock.close)
        metrics_sock = None
        if settings.ingest.metrics_port is not None:
            metrics_sock = bind(
                "0.0.0.0",  # noqa: S104 - scraped from elsewhere, like `stocksense ingest`
                settings.ingest.metrics_port,
                what="metrics port",
                fix="set STOCKSENSE_INGEST__METRICS_PORT to a free port",
            )
            stack.callback(metrics_sock.close)
        await probes.wait_reachable(
            [probes.influxdb(settings.influx), probes.broker(settings.mqtt)], settings.startup
        )
        pipeline = Pipeline(settings, seed=seed)
        stack.push_async_callback(pipeline.stop)
        await pipeline.start()
        _warn_without_cold_chain(settings, seed)
        collector = PipelineCollector(pipeline)
        lines = [
            (
                f"ingest mqtt://{settings.mqtt.host}:{settings.mqtt.port} QoS {settings.mqtt.qos}"
                f" into InfluxDB {settings.influx.url} database {settings.influx.database!r};"
                f" data in {settings.data_dir.absolute()}"
            )
        ]
        if api_sock is not None:
            api = ApiServer(
                settings,
                sock=api_sock,
                health_checks=probes.health_checks(settings),
                spool_batches=collector.spool_batches,
            )
            await api.start()
            stack.push_async_callback(api.stop)
            lines.append(
                f"API {api.url} (health {api.url}/health), console"
                f" {settings.notifier.console_url}"
            )
        if metrics_sock is not None:
            metrics = AsgiServer(metrics_app(pipeline, collector), metrics_sock)
            await metrics.start()
            stack.push_async_callback(metrics.stop)
            lines.append(f"Prometheus metrics at http://{_url_host('0.0.0.0')}:{metrics.port}/metrics")  # noqa: S104
        for line in lines:
            print(f"stocksense run: {line}")
        print(f"stocksense run: running; {STOP_HINT}", flush=True)
        await asyncio.Event().wait()
    return EXIT_OK


def _cmd_ingest(args: argparse.Namespace) -> int:
    del args
    settings = _settings()
    return _run(_ingest(settings))


async def _ingest(settings: Settings) -> int:
    from ingest.service import run_ingest  # noqa: PLC0415
    from stocksense import probes  # noqa: PLC0415
    from stocksense.apiserver import bind  # noqa: PLC0415

    if settings.ingest.metrics_port is not None:
        bind(
            "0.0.0.0",  # noqa: S104 - where run_ingest serves /metrics
            settings.ingest.metrics_port,
            what="metrics port",
            fix="set STOCKSENSE_INGEST__METRICS_PORT to a free port",
        ).close()
    await probes.wait_reachable(
        [probes.influxdb(settings.influx), probes.broker(settings.mqtt)], settings.startup
    )
    return await run_ingest(settings)


def _cmd_api(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.workers > 1:
        return _api_workers(settings, args)
    return _run(_api(settings, args))


def _api_workers(settings: Settings, args: argparse.Namespace) -> int:
    from core import db  # noqa: PLC0415
    from stocksense.apiserver import bind, serve_workers  # noqa: PLC0415

    sock = bind(args.host, args.port, what="API port", fix="stop it or pass another --port")
    try:
        # Migrated here, once, before any worker: a database that cannot be reached or
        # migrated is this command's error, not each worker's.
        db.connect(settings.database).close()
    except BaseException:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    print(
        f"stocksense api: API http://{host}:{port} from {args.workers} processes"
        " (docs /docs, console /console, health /health)"
    )
    print(f"stocksense api: running; {STOP_HINT}", flush=True)
    serve_workers(sock, args.workers)
    return EXIT_OK


async def _api(settings: Settings, args: argparse.Namespace) -> int:
    from stocksense.apiserver import ApiServer  # noqa: PLC0415

    api = ApiServer(settings, host=args.host, port=args.port)
    await api.start()
    try:
        print(f"stocksense api: API {api.url} (docs /docs, console /console, health /health)")
        print(f"stocksense api: running; {STOP_HINT}", flush=True)
        await asyncio.Event().wait()
    finally:
        await api.stop()
    return EXIT_OK


def _exports(stack: LocalStack) -> None:
    """The variables that point StockSense at ``stack``, for ``eval "$(...)"``."""
    for name, value in (
        ("STOCKSENSE_MQTT__HOST", "127.0.0.1"),
        ("STOCKSENSE_MQTT__PORT", str(stack.mqtt_port)),
        ("STOCKSENSE_INFLUX__URL", stack.influx_url),
    ):
        print(f"export {name}={shlex.quote(value)}")


def _cmd_services(args: argparse.Namespace) -> int:
    from stocksense.devservices import stop_stack  # noqa: PLC0415

    configure_logging("INFO")
    if args.stop is not None:
        root = Path(args.stop)
        stopped = stop_stack(root)
        what = " and ".join(stopped) if stopped else "nothing (no service of ours runs there)"
        print(f"# stopped {what} under {root.resolve()}")
        return EXIT_OK
    if args.detach:
        root = Path(args.data_dir or tempfile.mkdtemp(prefix="stocksense-services-"))
        return _run(_services_detached(root))
    return _run(_services(Path(args.data_dir) if args.data_dir else None))


async def _services(root: Path | None) -> int:
    from stocksense.devservices import local_stack  # noqa: PLC0415

    with local_stack(root) as stack:
        _exports(stack)
        print(f"# Mosquitto and InfluxDB run under {stack.root}; {STOP_HINT}", flush=True)
        await asyncio.Event().wait()
    return EXIT_OK


async def _services_detached(root: Path) -> int:
    from stocksense.devservices import start_stack  # noqa: PLC0415

    stack = start_stack(root)
    try:
        await asyncio.sleep(0)  # a signal that came while starting stops them again
    except asyncio.CancelledError:
        stack.stop()
        raise
    _exports(stack)
    print(f"# Mosquitto and InfluxDB keep running; stop them: stocksense services --stop {root}")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.warehouse import Excursion, VirtualWarehouse, WarehouseConfig  # noqa: PLC0415

    if args.excursion_at is not None and args.excursion_for is None:
        raise ConfigError(
            "--excursion-at needs --excursion-for: give the fault's duration in simulated seconds"
        )
    if (args.api is None) != (args.token_file is None):
        given, missing = ("--api", "--token-file") if args.api else ("--token-file", "--api")
        raise ConfigError(f"{given} needs {missing}: picks are recorded at an API with a token")
    settings = _settings()
    edge_given = _edge_requested(args)
    if edge_given and args.scenario is None:
        raise ConfigError("--edge-shelf, --edge-probe and --edge-scale need --scenario")
    if edge_given and args.edge_config is None:
        raise ConfigError(
            "--edge-shelf, --edge-probe and --edge-scale need --edge-config FILE: where the"
            " edge agent's configuration is written"
        )
    if args.scenario is not None:
        with contextlib.ExitStack() as servers:
            warehouse = _scenario_warehouse(settings, args, servers)
            return _run(_simulate(settings, warehouse, args))
    excursions = []
    if args.excursion_for is not None:
        start = SIMULATE_EXCURSION_AT_S if args.excursion_at is None else args.excursion_at
        excursions.append(Excursion(start_s=start, duration_s=args.excursion_for))
    config = WarehouseConfig(
        site=args.site or "wh1",
        speed=args.speed or 1.0,
        interval_s=args.interval or 1.0,
        excursions=excursions,
    )
    warehouse = VirtualWarehouse(
        config,
        host=settings.mqtt.host,
        port=settings.mqtt.port,
        broker=settings.mqtt,
        picks=_pick_recorder(args, [config.site]),
    )
    return _run(_simulate(settings, warehouse, args))


def _pick_recorder(args: argparse.Namespace, sites: list[str]) -> Any:
    """The recorder of ``--api`` and ``--token-file`` (None without them), once the API has
    said the token may record picks at every simulated site."""
    import httpx  # noqa: PLC0415

    from simulators.warehouse import ApiPickRecorder  # noqa: PLC0415
    from stocksense.devservices import ServiceError  # noqa: PLC0415

    if args.api is None:
        return None
    path = Path(args.token_file).expanduser()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"--token-file {path}: {exc.strerror or exc}") from None
    if not token:
        raise ConfigError(f"--token-file {path} is empty: put a token of `stocksense users token`")
    url = args.api.rstrip("/")
    try:
        answer = httpx.get(f"{url}/auth/me", headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise ServiceError(f"the API at {url} is unreachable: {exc}") from None
    if answer.status_code == 401:
        raise ConfigError(f"the API at {url} refused the token of --token-file {path}")
    if answer.status_code != 200:
        raise ServiceError(f"the API at {url} answered /auth/me with {answer.status_code}")
    me = answer.json()
    if "picks.record" not in me["permissions"]:
        raise ConfigError(
            f"--token-file {path}: {me['name']} ({me['role']}) may not record picks;"
            " give the token of an operator, approver or admin"
        )
    outside = [site for site in sites if me["sites"] and site not in me["sites"]]
    if outside:
        raise ConfigError(f"--token-file {path}: {me['name']} may not record picks at {outside[0]}")
    return ApiPickRecorder(url, token)


def _scenario_warehouse(
    settings: Settings, args: argparse.Namespace, servers: contextlib.ExitStack
) -> Any:
    from pydantic import ValidationError  # noqa: PLC0415

    from rules.seed import describe_errors  # noqa: PLC0415
    from simulators.scenario import Scenario, load_scenario  # noqa: PLC0415
    from simulators.warehouse import ScenarioWarehouse  # noqa: PLC0415

    given = [o for o, v in (("--site", args.site), ("--excursion-for", args.excursion_for)) if v]
    if given:
        raise ConfigError(
            f"with --scenario the file names the sites and faults: leave out {' and '.join(given)}"
        )
    loaded = load_scenario(Path(args.scenario))
    changes = {"speed": args.speed, "interval_s": args.interval}
    try:
        scenario = Scenario.model_validate(
            {**loaded.model_dump(by_alias=True), **{k: v for k, v in changes.items() if v}}
        )
    except ValidationError as exc:
        problems = describe_errors(exc.errors())
        raise ConfigError(f"{args.scenario} with --speed/--interval: {problems}") from None
    picks = _pick_recorder(args, [s.id for s in scenario.sites])
    if _edge_requested(args):
        return _edge_warehouse(settings, args, scenario, picks, servers)
    return ScenarioWarehouse(
        scenario,
        host=settings.mqtt.host,
        port=settings.mqtt.port,
        broker=settings.mqtt,
        picks=picks,
    )


def _edge_requested(args: argparse.Namespace) -> bool:
    """Whether ``simulate`` was asked to serve scenario devices for an edge agent."""
    return bool(args.edge_shelf or args.edge_probe or args.edge_scale)


def _edge_warehouse(
    settings: Settings,
    args: argparse.Namespace,
    scenario: Any,
    picks: Any,
    servers: contextlib.ExitStack,
) -> Any:
    """The scenario with some devices served as Modbus TCP and a serial scale for an edge agent,
    whose configuration is written to ``--edge-config``."""
    import yaml  # noqa: PLC0415
    from pydantic import ValidationError  # noqa: PLC0415

    from rules.seed import describe_errors  # noqa: PLC0415
    from simulators.edge_warehouse import EdgeBinding, EdgeWarehouse, ScaleCell  # noqa: PLC0415
    from simulators.modbus_devices import ThreadedDevices  # noqa: PLC0415
    from simulators.serial_scale import SerialScale  # noqa: PLC0415

    scale_cell = None
    shelf, _, cell = (args.edge_scale or "").partition("/")
    if args.edge_scale is not None and not (shelf and cell):
        raise ConfigError(f"--edge-scale {args.edge_scale!r}: give SHELF/CELL, e.g. shelf-a2/c1")
    try:
        if args.edge_scale is not None:
            scale_cell = ScaleCell(shelf=shelf, cell=cell)
        binding = EdgeBinding(
            shelf=args.edge_shelf, probes=args.edge_probe or [], scale=scale_cell
        )
    except ValidationError as exc:
        problems = describe_errors(exc.errors())
        raise ConfigError(f"--edge-shelf, --edge-probe or --edge-scale: {problems}") from None
    try:  # before any port is taken: a binding the scenario does not fit serves nothing
        binding.check(scenario)
    except ValueError as exc:
        raise ConfigError(f"{args.scenario}: {exc}") from None
    try:
        modbus = ThreadedDevices(port=args.edge_modbus_port).start()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(
            f"--edge-modbus-port {args.edge_modbus_port}: cannot serve Modbus TCP there ({exc})"
        ) from None
    servers.callback(modbus.stop)
    scale = None
    if scale_cell is not None:
        scale = SerialScale().start()
        servers.callback(scale.stop)
    warehouse = EdgeWarehouse(
        scenario,
        binding,
        modbus.devices,
        host=settings.mqtt.host,
        port=settings.mqtt.port,
        broker=settings.mqtt,
        picks=picks,
        scale=scale,
    )
    broker: dict[str, object] = {"host": settings.mqtt.host, "port": settings.mqtt.port}
    if settings.mqtt.username:
        broker["username"] = settings.mqtt.username
    path = Path(args.edge_config)
    config = {
        "site": warehouse.site.id,
        "agent_id": "edge-sim",
        "broker": broker,
        "queue": {"path": str(path.with_suffix(".queue.sqlite").resolve())},
        "devices": warehouse.agent_devices("127.0.0.1", modbus.port),
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    print(
        f"stocksense simulate: {', '.join(sorted(binding.devices()))} served for the edge agent"
        f" (Modbus TCP 127.0.0.1:{modbus.port}{f', scale {scale.device}' if scale else ''});"
        f" run: stocksense edge --config {path}",
        flush=True,
    )
    return warehouse


async def _sleep_unless(event: threading.Event, seconds: float) -> None:
    """Sleep ``seconds``, or until ``event`` (set by another thread) is set."""
    end = time.monotonic() + seconds
    # A threading.Event set by the publishing thread: polled, as asyncio cannot await it.
    while not event.is_set() and (left := end - time.monotonic()) > 0:  # noqa: ASYNC110
        await asyncio.sleep(min(0.2, left))


async def _simulate(settings: Settings, warehouse: Any, args: argparse.Namespace) -> int:
    from stocksense import probes  # noqa: PLC0415

    await probes.wait_reachable([probes.broker(settings.mqtt)], settings.startup)
    broker = f"mqtt://{settings.mqtt.host}:{settings.mqtt.port}"
    warehouse.start()
    started = time.monotonic()
    scenario = getattr(warehouse, "scenario", None)
    if scenario is None:
        config = warehouse.config
        site, interval, speed = config.site, config.interval_s, config.speed
        faults = ", ".join(
            f"cold room at {e.celsius} °C from t={e.start_s:.0f}s for {e.duration_s:.0f}s"
            for e in config.excursions
        )
    else:
        site = ", ".join(s.id for s in scenario.sites)
        interval, speed = scenario.interval_s, scenario.speed
        faults = ", ".join(f.kind for f in scenario.faults)
        until = f" for {scenario.duration:g} simulated s" if scenario.duration else ""
        faults = f"{faults or 'no fault'}; seed {scenario.seed}{until}"
    picks = warehouse.picks
    recording = f"picks recorded at {args.api.rstrip('/')}; " if picks is not None else ""
    print(
        f"stocksense simulate: site {site} to {broker}, a round every {interval:g}"
        f" simulated s at {speed:g}x; {faults or 'no fault'}; {recording}{STOP_HINT}",
        flush=True,
    )
    deadline = started + args.duration if args.duration > 0 else None
    try:
        while (deadline is None or time.monotonic() < deadline) and not warehouse.finished.is_set():
            pause = args.progress if args.progress > 0 else 3600.0
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
            await _sleep_unless(warehouse.finished, max(0.0, pause))
            if args.progress > 0:
                cold = "" if scenario else f"; cold room {warehouse.cold_celsius:.1f} °C"
                print(
                    f"stocksense simulate: t={warehouse.sim_elapsed_s():.0f} s simulated:"
                    f" {warehouse.published} messages, {warehouse.readings} readings{cold}",
                    flush=True,
                )
    finally:
        warehouse.stop()
        if picks is not None:
            picks.close()
            print(
                f"stocksense simulate: recorded {picks.recorded} picks at {args.api.rstrip('/')}"
                f" ({picks.failed} not recorded)",
                flush=True,
            )
        print(
            f"stocksense simulate: stopped after {time.monotonic() - started:.1f} s"
            f" ({warehouse.sim_elapsed_s():.0f} simulated s): published"
            f" {warehouse.published} messages with {warehouse.readings} readings to {broker}",
            flush=True,
        )
    return EXIT_OK


def _cmd_seed(args: argparse.Namespace) -> int:
    from core import db  # noqa: PLC0415
    from core.inventory import InventoryStores, now_ms  # noqa: PLC0415
    from rules.seed import load_seed  # noqa: PLC0415

    settings = _settings()
    seed = load_seed(Path(args.file))
    if not (seed.skus or seed.shelves or seed.rfid_zones or seed.lots):
        where = (
            f": it describes sites ({', '.join(s.id for s in seed.sites)}), which the rules read"
            " from STOCKSENSE_RULES__SEED_FILE"
            if seed.sites
            else ""
        )
        raise ConfigError(
            f"{args.file} holds no catalog (no skus, shelves, rfid_zones or lots){where};"
            " seed a catalog such as examples/demo-catalog.yaml"
        )
    conn = db.connect(settings.database)
    try:
        counts = InventoryStores.over(conn).load_catalog(
            skus=seed.skus,
            shelves=seed.shelves,
            rfid_zones=seed.rfid_zones,
            lots=seed.lots,
            ts_ms=now_ms(),
        )
    finally:
        conn.close()
    loaded = ", ".join(f"{n} {what}" for what, n in counts.items())
    print(f"loaded into {settings.database}: {loaded}")
    return EXIT_OK


def _cmd_notify(args: argparse.Namespace) -> int:
    del args
    settings = _settings()
    return _run(_notify(settings))


async def _notify(settings: Settings) -> int:
    from rules.notify.service import run_notifier  # noqa: PLC0415

    await run_notifier(settings)
    return EXIT_OK


def _cmd_config(args: argparse.Namespace) -> int:
    del args
    settings = _settings()
    print(settings.model_dump_json(indent=2))
    return EXIT_OK


def _cmd_edge(args: argparse.Namespace) -> int:
    from edge.config import load_config  # noqa: PLC0415

    config = load_config(Path(args.config))
    configure_logging(args.log_level)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we log each failed poll once
    return _run(_edge(config))


async def _edge(config: Any) -> int:
    from edge.agent import EdgeAgent  # noqa: PLC0415

    agent = EdgeAgent(config)
    names = ", ".join(d.name for d in config.devices)
    print(
        f"stocksense edge: site {config.site}, {len(config.devices)} devices ({names}) to"
        f" mqtt://{config.broker.host}:{config.broker.port}; queue {config.queue.path}",
        flush=True,
    )
    print(f"stocksense edge: running; {STOP_HINT}", flush=True)
    await agent.run()
    return EXIT_OK


def _cmd_devices(args: argparse.Namespace) -> int:
    from stocksense.devices import command  # noqa: PLC0415

    return command(args)


def _cmd_users(args: argparse.Namespace) -> int:
    from stocksense.users import command  # noqa: PLC0415

    _settings()
    return command(args)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: message`` and exit 2."""
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
    return value


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be below 0")
    return value


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_API_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of processes (1-{MAX_API_WORKERS})"
        )
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def _edge_parser(sub: Any) -> None:
    """The ``edge`` subcommand."""
    edge = sub.add_parser(
        "edge",
        help="the edge agent: Modbus and serial devices to the broker, store-and-forward",
        description="Poll the devices of a YAML file (docs/edge.md), queue every reading on"
        " disk and publish the canonical contract to the broker; exit 2 on a bad file.",
    )
    edge.add_argument("--config", required=True, help="agent YAML, e.g. examples/edge-shelf.yaml")
    edge.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default: %(default)s)",
    )
    edge.set_defaults(func=_cmd_edge)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = _Parser(
        prog="stocksense",
        description=f"StockSense: IoT warehouse sensing and alerting.\n\n{EXIT_CODES}",
        epilog="Settings come from STOCKSENSE_* variables or a .env file (README: Configuration);"
        " `stocksense config` prints them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stocksense {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    demo = sub.add_parser(
        "demo",
        help="live demo: local broker and InfluxDB, pipeline, virtual warehouse, alert",
        description="Start Mosquitto, InfluxDB, the pipeline, the API, a local DingTalk robot"
        " and a virtual warehouse; a cold-room excursion is alerted, delivered and resolved."
        " Exit 0 once the resolved notice was delivered.",
    )
    demo.add_argument(
        "--data-dir",
        default="var",
        help="directory for the run's database, spools and service logs (default: %(default)s)",
    )
    demo.add_argument(
        "--excursion-at",
        type=_not_negative,
        default=8.0,
        metavar="S",
        help="seconds after start when the cold room warms (default: %(default)s)",
    )
    demo.add_argument(
        "--excursion-for",
        type=_positive,
        default=25.0,
        metavar="S",
        help="seconds the cold room stays warm (default: %(default)s)",
    )
    demo.add_argument(
        "--linger",
        type=_not_negative,
        default=3.0,
        metavar="S",
        help="seconds to keep everything running after the summary (default: %(default)s)",
    )
    demo.add_argument("-v", "--verbose", action="store_true", help="log at INFO, not WARNING")
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser(
        "run",
        help="ingest, rules, notifier, API and console in one process",
        description="Run the whole pipeline from STOCKSENSE_* settings; /metrics on"
        " STOCKSENSE_INGEST__METRICS_PORT when set. Waits for the broker and InfluxDB"
        " (STOCKSENSE_STARTUP__ATTEMPTS) and exits 1 when they stay unreachable.",
    )
    run.add_argument(
        "--host", default="127.0.0.1", help="address the API listens on (default: %(default)s)"
    )
    run.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="TCP port of the API and console (default: %(default)s); messages link to it"
        " unless STOCKSENSE_NOTIFIER__CONSOLE_URL is set",
    )
    run.add_argument("--no-api", action="store_true", help="run without the API and console")
    run.set_defaults(func=_cmd_run)

    notify = sub.add_parser(
        "notify", help="the notifier alone: deliver the alert outbox to the channels"
    )
    notify.set_defaults(func=_cmd_notify)

    ingest = sub.add_parser(
        "ingest",
        help="one ingest worker alone: MQTT to InfluxDB",
        description="One ingest worker; /metrics on STOCKSENSE_INGEST__METRICS_PORT when set.",
    )
    ingest.set_defaults(func=_cmd_ingest)

    api = sub.add_parser("api", help="the HTTP API and ops console alone")
    api.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    api.add_argument(
        "--port", type=_port, default=8000, help="TCP port to listen on (default: %(default)s)"
    )
    api.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="processes serving the port, one CPU core each at most (default: %(default)s)",
    )
    api.set_defaults(func=_cmd_api)

    services = sub.add_parser(
        "services",
        help="a local Mosquitto and InfluxDB on free ports, for trying and testing",
        description="Start Mosquitto and InfluxDB 1.x on free loopback ports and print export"
        ' lines for them: eval "$(stocksense services --detach)" points this shell at them.',
    )
    services.add_argument(
        "--data-dir",
        default=None,
        help="directory for their config, data and logs (default: a new temporary directory)",
    )
    mode = services.add_mutually_exclusive_group()
    mode.add_argument(
        "--detach",
        action="store_true",
        help="leave them running and exit after printing the export lines",
    )
    mode.add_argument(
        "--stop",
        metavar="DIR",
        default=None,
        help="stop the services a --detach run left in DIR",
    )
    services.set_defaults(func=_cmd_services)

    seed = sub.add_parser(
        "seed", help="load a catalog YAML (SKUs, shelves, RFID zones, lots) into the database"
    )
    seed.add_argument("file", help="catalog file, e.g. examples/demo-catalog.yaml")
    seed.set_defaults(func=_cmd_seed)

    _simulate_parser(sub)

    config = sub.add_parser(
        "config", help="check the STOCKSENSE_* settings and print them (secrets masked)"
    )
    config.set_defaults(func=_cmd_config)

    _edge_parser(sub)

    from stocksense.devices import configure_parser  # noqa: PLC0415

    devices = sub.add_parser("devices", help="enrol or revoke a device on a Mosquitto broker")
    configure_parser(devices)
    devices.set_defaults(func=_cmd_devices)
    _add_users(sub)
    return parser


def _simulate_parser(sub: Any) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="publish a virtual warehouse to the configured broker",
        description="Publish a virtual warehouse (cold room, ambient probe, shelves, dock"
        " reader), or the one a scenario file describes (docs/simulator.md), to the"
        " STOCKSENSE_MQTT__* broker, printing what it sent every few seconds and a summary"
        " when stopped.",
    )
    simulate.add_argument(
        "--scenario",
        metavar="FILE",
        default=None,
        help="a scenario file (examples/scenario-week.yaml): its sites, demand, receipts,"
        " faults, speed, interval, duration and seed; it stops after its duration",
    )
    simulate.add_argument(
        "--site", default=None, help="site id in the topics (default: wh1; not with --scenario)"
    )
    simulate.add_argument(
        "--speed",
        type=_positive,
        default=None,
        help="simulated seconds per real second (default: 1, or the scenario's)",
    )
    simulate.add_argument(
        "--interval",
        type=_positive,
        default=None,
        metavar="S",
        help="simulated seconds between two rounds of readings (default: 1, or the scenario's)",
    )
    simulate.add_argument(
        "--duration",
        type=_not_negative,
        default=0.0,
        metavar="S",
        help="real seconds to run; 0 runs until stopped (default: %(default)s)",
    )
    simulate.add_argument(
        "--excursion-at",
        type=_not_negative,
        default=None,
        metavar="S",
        help=f"simulated second when the cold room warms (default: {SIMULATE_EXCURSION_AT_S:g});"
        " needs --excursion-for",
    )
    simulate.add_argument(
        "--excursion-for",
        type=_positive,
        default=None,
        metavar="S",
        help="simulated seconds the cold room stays warm (default: no excursion)",
    )
    simulate.add_argument(
        "--api",
        metavar="URL",
        default=None,
        help="record each pick at this StockSense API as a WMS would (a scenario's waves as"
        " pick lists; thefts are not recorded); needs --token-file",
    )
    simulate.add_argument(
        "--token-file",
        metavar="PATH",
        default=None,
        help="file holding an API token (`stocksense users token`) of a user who may record"
        " picks: operator, approver or admin",
    )
    simulate.add_argument(
        "--progress",
        type=_not_negative,
        default=5.0,
        metavar="S",
        help="real seconds between progress lines; 0 prints only the summary"
        " (default: %(default)s)",
    )
    edge = simulate.add_argument_group(
        "devices behind an edge agent (with --scenario at speed 1; docs/simulator.md)"
    )
    edge.add_argument(
        "--edge-shelf",
        metavar="DEVICE",
        default=None,
        help="a scenario shelf served as the simulated Modbus shelf indicator (up to 4 cells)",
    )
    edge.add_argument(
        "--edge-probe",
        metavar="DEVICE",
        action="append",
        default=None,
        help="a scenario probe served on the simulated Modbus transmitter (repeatable, 4 sensors)",
    )
    edge.add_argument(
        "--edge-scale",
        metavar="SHELF/CELL",
        default=None,
        help="a shelf cell whose load lies on a simulated serial scale (a pseudo-terminal)",
    )
    edge.add_argument(
        "--edge-modbus-port",
        type=_port,
        default=5020,
        metavar="PORT",
        help="Modbus TCP port of the simulated devices on 127.0.0.1 (default: %(default)s)",
    )
    edge.add_argument(
        "--edge-config",
        metavar="FILE",
        default=None,
        help="where to write the edge agent's configuration (`stocksense edge --config FILE`)",
    )
    simulate.set_defaults(func=_cmd_simulate)


def _add_users(sub: Any) -> None:
    from stocksense.users import configure_parser  # noqa: PLC0415

    users = sub.add_parser(
        "users",
        help="API and console logins: add, token, revoke, list, remove",
        description="Users of the API and console, their roles and sites (docs/access.md)."
        " Passwords and tokens are printed once and stored only as argon2 hashes.",
    )
    configure_parser(users)
    users.set_defaults(func=_cmd_users)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stocksense`` command; errors become one line and an exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        return _fail(args, exc, EXIT_CONFIG)
    except StockSenseError as exc:
        # Unreachable or failing services: ServiceError, BrokerConnectError, StoreError.
        return _fail(args, exc, EXIT_UNAVAILABLE)
    except OSError as exc:
        if exc.filename is None:
            raise
        return _fail(args, f"{exc.filename}: {exc.strerror or exc}", EXIT_CONFIG)
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C before the command's own handling was in place
    return code


def _fail(args: argparse.Namespace, error: object, code: int) -> int:
    text = " ".join(str(error).split())
    print(f"stocksense {args.command}: {text}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
