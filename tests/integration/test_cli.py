"""The ``stocksense`` command as users start it: a subprocess with STOCKSENSE_* strings.

Stopping (SIGTERM stops everything a command started, exit 0), one-line errors with their exit
codes, /metrics and /health of ``stocksense run``, ``services`` export lines, ``simulate``
output, the README's ``.env`` example.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import IO

import httpx
import psutil  # type: ignore[import-untyped]
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import topics
from stocksense.devservices import LocalStack, free_port, mosquitto
from tests.conftest import Publisher, wait_for
from tests.unit.test_settings_env import readme_dotenv

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WAREHOUSE = ROOT / "examples" / "demo-warehouse.yaml"
ATTEMPT = re.compile(r" WARNING +stocksense\.probes: .* is not reachable \(attempt \d+ of \d+\)")


class Cli:
    """One ``stocksense`` process with its output collected line by line."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stocksense.cli", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str], into: list[str]) -> None:
        with stream:
            for line in stream:  # appended as they come: tests wait on them
                into.append(line.rstrip("\n"))

    def wait_stdout(self, pattern: str, timeout: float = 60.0) -> str:
        """The first stdout line matching ``pattern``; fails if the process exits first."""
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in self.stdout if re.search(pattern, line)]
            if not found and self.process.poll() is not None:
                pytest.fail(f"stocksense {self.args} exited {self.process.returncode}: {self}")
            return bool(found)

        wait_for(seen, timeout=timeout, what=f"{pattern!r} from stocksense {self.args[0]}")
        return found[0]

    def descendants(self) -> list[psutil.Process]:
        """Every process this command started, and theirs."""
        found: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        return found

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``signum`` and wait for the exit code."""
        self.process.send_signal(signum)
        return self.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        """The exit code, once the process ended and its output is read."""
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def kill(self) -> None:
        """Clean up after a failed test."""
        if self.process.poll() is None:
            for child in self.descendants():
                child.kill()
            self.process.kill()
            self.wait(30)

    def __str__(self) -> str:
        return "\nstdout:\n" + "\n".join(self.stdout) + "\nstderr:\n" + "\n".join(self.stderr)


def clean_env(**values: str) -> dict[str, str]:
    """This environment without STOCKSENSE_* variables, plus ``values`` (strings, as a shell)."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("STOCKSENSE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **values}


def stack_env(stack: LocalStack, tmp_path: Path, **values: str) -> dict[str, str]:
    """Environment pointing at the session's services, with a database of its own."""
    unique = uuid.uuid4().hex[:10]
    defaults = {
        "STOCKSENSE_DATA_DIR": str(tmp_path / "data"),
        "STOCKSENSE_MQTT__PORT": str(stack.mqtt_port),
        "STOCKSENSE_MQTT__CLIENT_ID": f"cli-{unique}",
        "STOCKSENSE_INFLUX__URL": stack.influx_url,
        "STOCKSENSE_INFLUX__DATABASE": f"cli_{unique}",
        "STOCKSENSE_INFLUX__FLUSH_INTERVAL_S": "0.1",
    }
    return clean_env(**(defaults | values))


@pytest.fixture
def processes() -> Iterator[list[Cli]]:
    """Commands started by a test, killed (with what they started) if it fails midway."""
    started: list[Cli] = []
    yield started
    for cli in started:
        cli.kill()


def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60.0) -> Cli:
    """Run a command to its end."""
    cli = Cli(*args, env=env, cwd=cwd)
    try:
        cli.wait(timeout)
    finally:
        cli.kill()
    return cli


def test_version(tmp_path: Path) -> None:
    cli = run_cli("--version", env=clean_env(), cwd=tmp_path)
    assert cli.process.returncode == 0
    assert cli.stdout == [f"stocksense {version('stocksense')}"]


# -- SIGTERM stops what a command started ------------------------------------------------


def _start(
    command: str, stack: LocalStack, tmp_path: Path
) -> tuple[Cli, str, Callable[[Cli], None]]:
    """Start ``command``; returns it, the line that says it is up, and extra checks."""

    def nothing(cli: Cli) -> None:
        del cli

    if command == "demo":
        cli = Cli(
            "demo", "--data-dir", str(tmp_path / "var"), env=clean_env(), cwd=tmp_path
        )
        return cli, r"^Virtual warehouse publishing", nothing
    if command == "services":
        cli = Cli(
            "services", "--data-dir", str(tmp_path / "svc"), env=clean_env(), cwd=tmp_path
        )
        return cli, r"^# Mosquitto and InfluxDB run under", nothing
    if command == "run":
        env = stack_env(stack, tmp_path)
        cli = Cli("run", "--port", str(free_port()), env=env, cwd=tmp_path)

        def warned_once(cli: Cli) -> None:
            warnings = [line for line in cli.stderr if "no cold-chain zone" in line]
            assert len(warnings) == 1, cli
            assert "STOCKSENSE_RULES__SEED_FILE is not set" in warnings[0]

        return cli, r"^stocksense run: running;", warned_once
    env = stack_env(stack, tmp_path)
    cli = Cli(
        "simulate", "--site", f"sim{uuid.uuid4().hex[:6]}", "--progress", "0.5",
        "--speed", "5", env=env, cwd=tmp_path,
    )  # fmt: skip

    def reported(cli: Cli) -> None:
        progress = [line for line in cli.stdout if re.search(r" \d+ messages, \d+ readings", line)]
        assert progress, cli
        summary = cli.stdout[-1]
        found = re.search(r"published (\d+) messages with (\d+) readings to mqtt://", summary)
        assert found, cli
        assert int(found.group(1)) > 0
        assert int(found.group(2)) > 0

    return cli, r"^stocksense simulate: site ", reported


@pytest.mark.parametrize("command", ["demo", "services", "run", "simulate"])
def test_sigterm_stops_everything_the_command_started(
    command: str, stack: LocalStack, tmp_path: Path, processes: list[Cli]
) -> None:
    cli, up, check = _start(command, stack, tmp_path)
    processes.append(cli)
    cli.wait_stdout(up, timeout=90)
    if command == "simulate":
        cli.wait_stdout(r" \d+ messages, \d+ readings", timeout=30)
    started = cli.descendants()
    if command in ("demo", "services"):
        names = sorted(p.name() for p in started)
        assert names == ["influxd", "mosquitto"], names
    assert cli.stop(signal.SIGTERM) == 0, cli
    left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], cli
    assert not any("Traceback" in line for line in cli.stderr), cli
    check(cli)


def test_sigint_stops_the_services_too(tmp_path: Path, processes: list[Cli]) -> None:
    cli = Cli("services", env=clean_env(), cwd=tmp_path)
    processes.append(cli)
    cli.wait_stdout(r"^# Mosquitto and InfluxDB run under", timeout=90)
    started = cli.descendants()
    assert len(started) == 2
    assert cli.stop(signal.SIGINT) == 0, cli
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started)


# -- one line per misconfiguration or unreachable service -------------------------------


def _one_line(cli: Cli, code: int, *needles: str) -> str:
    """The single error line of ``cli`` (beyond per-attempt lines), which names ``needles``."""
    assert cli.process.returncode == code, cli
    assert not any("Traceback" in line for line in cli.stderr), cli
    others = [line for line in cli.stderr if not ATTEMPT.search(line)]
    assert len(others) == 1, cli
    for needle in needles:
        assert needle in others[0], cli
    return others[0]


def _closed_port() -> int:
    return free_port()  # nothing listens there


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        (
            {"STOCKSENSE_NOTIFIER__CHANNELS": "[{bad"},
            ["stocksense run: STOCKSENSE_NOTIFIER__CHANNELS: not valid JSON"],
        ),
        (
            {
                "STOCKSENSE_NOTIFIER__CHANNELS": '[{"name": "ops", "kind": "slack",'
                ' "url": "https://hooks.slack.com/services/T0/B0/x"}]'
            },
            ["STOCKSENSE_NOTIFIER__CHANNELS: [0].kind:", "'dingtalk', 'wecom' or 'webhook'",
             "got 'slack'"],
        ),
        (
            {"STOCKSENSE_INGEST__ADAPTERS": '[{"pattern": "tele/+/SENSOR", "adapter": "sonoff",'
             ' "site": "wh1"}]'},
            ["STOCKSENSE_INGEST__ADAPTERS: [0].adapter:", "'tasmota'", "got 'sonoff'"],
        ),
        (
            {"STOCKSENSE_INGEST__ADAPTERS": '[{"pattern": "tele/+/SENSOR", "adapter": "tasmota",'
             ' "site": "wh1", "device_level": 1}]'},
            ["STOCKSENSE_INGEST__ADAPTERS: [0].device_level: is not a known key"],
        ),
        (
            {"STOCKSENSE_RULES__SEED_FILE": "/nonexistent/warehouse.yaml"},
            ["STOCKSENSE_RULES__SEED_FILE: seed file /nonexistent/warehouse.yaml does not exist"],
        ),
        (
            {"STOCKSENSE_MQTT__QOS": "2"},
            ["STOCKSENSE_MQTT__QOS: Input should be 0 or 1, got 2"],
        ),
        (
            {
                "STOCKSENSE_ENVIRONMENT": "production",
                "STOCKSENSE_NOTIFIER__CHANNELS": '[{"name": "ops", "kind": "dingtalk", "url":'
                ' "https://oapi.dingtalk.com/robot/send?access_token="}]',
            },
            ["channel 'ops' (dingtalk) url access_token is empty", "secret is not set",
             "STOCKSENSE_ENVIRONMENT=production"],
        ),
    ],
)  # fmt: skip
def test_run_refuses_bad_configuration_in_one_line(
    env: dict[str, str], needles: list[str], tmp_path: Path
) -> None:
    cli = run_cli(
        "run", "--port", str(free_port()), env=clean_env(**env), cwd=tmp_path, timeout=30
    )
    _one_line(cli, 2, *needles)


def test_an_influxdb_down_at_start_is_retried_then_named(
    stack: LocalStack, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    env = stack_env(
        stack, tmp_path,
        STOCKSENSE_INFLUX__URL=url, STOCKSENSE_STARTUP__ATTEMPTS="3",
        STOCKSENSE_STARTUP__BACKOFF_S="0.1",
    )  # fmt: skip
    cli = run_cli("run", "--port", str(free_port()), env=env, cwd=tmp_path)
    line = _one_line(cli, 1, f"InfluxDB at {url} is unreachable after 3 attempts",
                     "connection refused", "STOCKSENSE_INFLUX__URL")  # fmt: skip
    assert line.startswith("stocksense run: ")
    attempts = [line for line in cli.stderr if ATTEMPT.search(line)]
    assert [f"attempt {n} of 3" in a and url in a for n, a in enumerate(attempts, 1)] == [True] * 3


def test_a_broker_down_at_start_is_retried_then_named(stack: LocalStack, tmp_path: Path) -> None:
    port = _closed_port()
    env = stack_env(
        stack, tmp_path,
        STOCKSENSE_MQTT__PORT=str(port), STOCKSENSE_STARTUP__ATTEMPTS="2",
        STOCKSENSE_STARTUP__BACKOFF_S="0.1",
    )  # fmt: skip
    cli = run_cli("run", "--port", str(free_port()), env=env, cwd=tmp_path)
    _one_line(cli, 1, f"MQTT broker at 127.0.0.1:{port} is unreachable after 2 attempts",
              "STOCKSENSE_MQTT__HOST / STOCKSENSE_MQTT__PORT")  # fmt: skip
    attempts = [line for line in cli.stderr if ATTEMPT.search(line)]
    assert len(attempts) == 2
    assert all(f"127.0.0.1:{port}" in a for a in attempts)


def test_simulate_without_a_broker(tmp_path: Path) -> None:
    port = _closed_port()
    env = clean_env(
        STOCKSENSE_MQTT__PORT=str(port), STOCKSENSE_STARTUP__ATTEMPTS="2",
        STOCKSENSE_STARTUP__BACKOFF_S="0.1",
    )  # fmt: skip
    cli = run_cli("simulate", env=env, cwd=tmp_path)
    _one_line(cli, 1, "stocksense simulate: MQTT broker at", f"127.0.0.1:{port}", "unreachable")
    assert len([line for line in cli.stderr if ATTEMPT.search(line)]) == 2


def test_the_api_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cli = run_cli("run", "--port", str(port), env=clean_env(), cwd=tmp_path)
    _one_line(cli, 2, f"API port 127.0.0.1:{port} is in use", "--port")


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        (["seed", "missing.yaml"], 2, ["stocksense seed: seed file", "missing.yaml does not"]),
        (["seed", str(WAREHOUSE)], 2, ["holds no catalog", "STOCKSENSE_RULES__SEED_FILE",
                                       "examples/demo-catalog.yaml"]),
        (["simulate", "--excursion-at", "5"], 2, ["--excursion-at needs --excursion-for"]),
        (["simulate", "--interval", "0"], 2, ["argument --interval: '0' must be above 0"]),
        (["run", "--port", "99999"], 2, ["argument --port: '99999' is not a TCP port"]),
    ],
)  # fmt: skip
def test_command_errors_in_one_line(
    args: list[str], code: int, needles: list[str], tmp_path: Path
) -> None:
    cli = run_cli(*args, env=clean_env(), cwd=tmp_path, timeout=30)
    _one_line(cli, code, *needles)


# -- settings as strings reach the running components -----------------------------------


def test_the_readme_dotenv_example_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(readme_dotenv(), encoding="utf-8")
    cli = run_cli("config", env=clean_env(), cwd=tmp_path)
    assert cli.process.returncode == 0, cli
    config = json.loads("\n".join(cli.stdout))
    assert config["mqtt"]["host"] == "broker.wh1.internal"
    assert (config["mqtt"]["qos"], config["mqtt"]["sites"]) == (0, ["wh1"])
    assert config["influx"]["url"] == "http://influx.wh1.internal:8086"
    assert config["data_dir"] == "/var/lib/stocksense"
    assert config["log_level"] == "WARNING"
    assert config["notifier"]["channels"][0]["kind"] == "wecom"
    assert config["notifier"]["channels"][0]["url"] == "**********"  # masked
    assert config["alerting"]["types"]["cold_chain_excursion"]["debounce_s"] == 30.0


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _temp_message(seq: int, celsius: float) -> str:
    reading = {"sensor": "t1", "celsius": celsius}
    return json.dumps({"ts": int(time.time() * 1000), "seq": seq, "readings": [reading]})


def test_run_from_environment_strings_serves_metrics_and_health(
    stack: LocalStack, tmp_path: Path, processes: list[Cli]
) -> None:
    api_port, metrics_port = free_port(), free_port()
    site = f"m{uuid.uuid4().hex[:6]}"
    channels = [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}]
    env = stack_env(
        stack, tmp_path,
        STOCKSENSE_MQTT__QOS="0",
        STOCKSENSE_MQTT__SITES=site,
        STOCKSENSE_LOG_LEVEL="debug",
        STOCKSENSE_INGEST__METRICS_PORT=str(metrics_port),
        STOCKSENSE_RULES__SEED_FILE=str(WAREHOUSE),
        STOCKSENSE_NOTIFIER__CHANNELS=json.dumps(channels),
    )  # fmt: skip
    cli = Cli("run", "--port", str(api_port), env=env, cwd=tmp_path)
    processes.append(cli)
    cli.wait_stdout(r"^stocksense run: running;")
    ingest = cli.wait_stdout(r"^stocksense run: ingest ")
    assert f"mqtt://127.0.0.1:{stack.mqtt_port} QoS 0 into InfluxDB {stack.influx_url}" in ingest
    assert f"data in {tmp_path / 'data'}" in ingest
    api_line = cli.wait_stdout(r"^stocksense run: API")
    assert f"console http://127.0.0.1:{api_port}/console" in api_line
    # The level from the environment is the level the process logs at.
    assert any(" DEBUG " in line and "effective settings" in line for line in cli.stderr), cli
    assert not any("no cold-chain zone" in line for line in cli.stderr)
    assert (tmp_path / "data" / "stocksense.db").is_file()
    assert (tmp_path / "data" / "spool" / env["STOCKSENSE_MQTT__CLIENT_ID"]).is_dir()

    before = _metrics(metrics_port)
    assert before[("stocksense_rules_queue_batches", ())] == 0
    assert before[("stocksense_ingest_messages_received_total", ())] == 0
    assert before[("stocksense_notifier_outbox_rows", (("status", "pending"),))] == 0
    assert before[("stocksense_notifier_outbox_rows", (("status", "dead"),))] == 0
    assert before[("stocksense_notifier_channel_up", (("channel", "hook"),))] == 1
    # One writer and one spool for the whole process.
    spools = {k: v for k, v in before.items() if k[0] == "stocksense_writer_spool_batches"}
    assert spools == {("stocksense_writer_spool_batches", (("writer", "influxdb"),)): 0}

    publisher = Publisher(stack.mqtt_port)
    try:
        for seq in range(3):
            publisher.publish(topics.build(site, "temp", "probe-1"), _temp_message(seq, 4.5), qos=0)
        publisher.flush()
    finally:
        publisher.close()
    wait_for(
        lambda: _metrics(metrics_port)[("stocksense_rules_readings_processed_total", ())] == 3,
        what="three readings through ingest and the rules",
    )
    after = _metrics(metrics_port)
    assert after[("stocksense_ingest_messages_received_total", ())] == 3
    assert after[("stocksense_ingest_readings_total", ())] == 3
    assert after[("stocksense_rules_queue_batches", ())] == 0

    health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=10)
    assert health.status_code == 200, health.text
    report = health.json()
    assert report["status"] == "ok"
    assert {name: check["ok"] for name, check in report["checks"].items()} == {
        "database": True, "broker": True, "influxdb": True,
    }  # fmt: skip
    assert report["checks"]["broker"]["detail"] == f"127.0.0.1:{stack.mqtt_port}: reachable"
    assert report["spool_batches"] == 0
    assert cli.stop() == 0, cli


def test_health_is_503_while_the_broker_is_down(
    stack: LocalStack, tmp_path: Path, processes: list[Cli]
) -> None:
    broker = mosquitto(tmp_path / "own-broker").start()
    try:
        api_port = free_port()
        env = stack_env(stack, tmp_path, STOCKSENSE_MQTT__PORT=str(broker.port))
        cli = Cli("run", "--port", str(api_port), env=env, cwd=tmp_path)
        processes.append(cli)
        cli.wait_stdout(r"^stocksense run: running;")
        url = f"http://127.0.0.1:{api_port}/health"
        assert httpx.get(url, timeout=10).status_code == 200
        broker.kill()
        down = httpx.get(url, timeout=10)
        assert down.status_code == 503
        assert down.json()["status"] == "down"
        assert down.json()["checks"]["broker"] == {
            "ok": False, "detail": f"127.0.0.1:{broker.port}: connection refused",
        }  # fmt: skip
        assert down.json()["checks"]["influxdb"]["ok"] is True
        assert cli.stop() == 0, cli
    finally:
        broker.stop()


def test_services_detach_prints_exports_for_eval_and_stop_stops_them(tmp_path: Path) -> None:
    root = tmp_path / "svc"
    script = (
        f'eval "$({sys.executable} -m stocksense.cli services --detach --data-dir {root})"\n'
        'echo "$STOCKSENSE_MQTT__HOST $STOCKSENSE_MQTT__PORT $STOCKSENSE_INFLUX__URL"\n'
    )
    shell = subprocess.run(
        ["bash", "-c", script], env=clean_env(), cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    host, port, influx_url = shell.stdout.split()
    pids = [int(p.read_text()) for p in sorted(root.glob("*/*.pid"))]
    try:
        assert host == "127.0.0.1"
        assert len(pids) == 2
        with socket.create_connection((host, int(port)), timeout=5):
            pass
        assert httpx.get(f"{influx_url}/ping", timeout=5).status_code == 204
        stop = run_cli("services", "--stop", str(root), env=clean_env(), cwd=tmp_path)
        assert stop.process.returncode == 0, stop
        assert stop.stdout == [f"# stopped influxdb and mosquitto under {root}"]
        assert not any(psutil.pid_exists(p) and _alive(p) for p in pids)
    finally:
        for pid in pids:
            if psutil.pid_exists(pid) and _alive(pid):
                psutil.Process(pid).kill()


def _alive(pid: int) -> bool:
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    return status != "zombie"
