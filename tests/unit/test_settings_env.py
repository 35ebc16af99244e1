"""Every variable of the README's configuration table, set as a string the way a shell, a
systemd unit or docker sets it, reaches Settings and the component built from it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.influx import InfluxClient
from core.settings import AdapterRoute, Settings, load_settings, unknown_variables
from ingest.service import IngestService

README = Path(__file__).resolve().parents[2] / "README.md"

ROUTE = {
    "pattern": "tele/+/SENSOR",
    "adapter": "tasmota",
    "site": "wh1",
    "timezone": "Asia/Shanghai",
    "device_segment": -2,
    "kind": "weight",
    "weight_unit": "g",
}
CHANNEL = {
    "name": "ops",
    "kind": "dingtalk",
    "url": "https://oapi.dingtalk.com/robot/send?access_token=9f1c",
    "secret": "SEC1a2b",
    "allow_unsigned": False,
    "language": "en",
    "at_mobiles": ["13800000000"],
    "at_user_ids": ["li.wei"],
}


Check = Callable[[Settings], Any]

# variable -> (value as the environment holds it, what to read back, the expected value)
CASES: dict[str, tuple[str, Check, Any]] = {
    "STOCKSENSE_ENVIRONMENT": ("production", lambda s: s.environment, "production"),
    "STOCKSENSE_DATA_DIR": ("~/stocksense-data", lambda s: s.data_dir, "HOME/stocksense-data"),
    "STOCKSENSE_DATABASE_PATH": ("/srv/ss/alerts.db", lambda s: s.sqlite_path, "/srv/ss/alerts.db"),
    "STOCKSENSE_DATABASE_URL": (
        "postgresql://ss:pw@db.wh1.internal:5433/stocksense",
        lambda s: (s.database.engine.value, str(s.database)),
        ("postgresql", "postgresql://ss:***@db.wh1.internal:5433/stocksense"),
    ),
    "STOCKSENSE_LOG_LEVEL": ("debug", lambda s: s.log_level, "DEBUG"),
    "STOCKSENSE_MQTT__HOST": ("broker.wh1.internal", lambda s: s.mqtt.host, "broker.wh1.internal"),
    "STOCKSENSE_MQTT__PORT": ("8883", lambda s: s.mqtt.port, 8883),
    "STOCKSENSE_MQTT__USERNAME": ("ingest", lambda s: s.mqtt.username, "ingest"),
    "STOCKSENSE_MQTT__PASSWORD": (
        "Zq8-r2Lm",
        lambda s: s.mqtt.password and s.mqtt.password.get_secret_value(),
        "Zq8-r2Lm",
    ),
    "STOCKSENSE_MQTT__CLIENT_ID": ("ingest-wh1-a", lambda s: s.mqtt.client_id, "ingest-wh1-a"),
    "STOCKSENSE_MQTT__QOS": ("0", lambda s: s.mqtt.qos, 0),
    "STOCKSENSE_MQTT__SHARE_GROUP": ("ingest", lambda s: s.mqtt.share_group, "ingest"),
    "STOCKSENSE_MQTT__SITES": ("wh1,wh2", lambda s: s.mqtt.sites, ("wh1", "wh2")),
    "STOCKSENSE_MQTT__TLS__ENABLED": ("true", lambda s: s.mqtt.tls.enabled, True),
    "STOCKSENSE_MQTT__TLS__CA_FILE": (
        "/etc/stocksense/ca.pem",
        lambda s: s.mqtt.tls.ca_file,
        Path("/etc/stocksense/ca.pem"),
    ),
    "STOCKSENSE_MQTT__TLS__CERT_FILE": (
        "/etc/stocksense/ingest.pem",
        lambda s: s.mqtt.tls.cert_file,
        Path("/etc/stocksense/ingest.pem"),
    ),
    "STOCKSENSE_MQTT__TLS__KEY_FILE": (
        "/etc/stocksense/ingest.key",
        lambda s: s.mqtt.tls.key_file,
        Path("/etc/stocksense/ingest.key"),
    ),
    "STOCKSENSE_MQTT__TLS__VERIFY_HOSTNAME": (
        "false",
        lambda s: s.mqtt.tls.verify_hostname,
        False,
    ),
    "STOCKSENSE_MQTT__TLS__SERVER_NAME": (
        "broker.wh1.internal",
        lambda s: s.mqtt.tls.server_name,
        "broker.wh1.internal",
    ),
    "STOCKSENSE_INFLUX__URL": ("http://influx:8086", lambda s: s.influx.url, "http://influx:8086"),
    "STOCKSENSE_INFLUX__DATABASE": ("wh1", lambda s: s.influx.database, "wh1"),
    "STOCKSENSE_INFLUX__TOKEN": (
        "k8Jd-2fQ",
        lambda s: s.influx.token and s.influx.token.get_secret_value(),
        "k8Jd-2fQ",
    ),
    "STOCKSENSE_INFLUX__USERNAME": ("writer", lambda s: s.influx.username, "writer"),
    "STOCKSENSE_INFLUX__PASSWORD": (
        "p4-Hx9",
        lambda s: s.influx.password and s.influx.password.get_secret_value(),
        "p4-Hx9",
    ),
    "STOCKSENSE_INFLUX__BATCH_LINES": ("2000", lambda s: s.influx.batch_lines, 2000),
    "STOCKSENSE_INFLUX__FLUSH_INTERVAL_S": ("0.5", lambda s: s.influx.flush_interval_s, 0.5),
    "STOCKSENSE_INFLUX__GZIP": ("false", lambda s: s.influx.gzip, False),
    "STOCKSENSE_INGEST__ADAPTERS": (
        json.dumps([ROUTE]),
        lambda s: s.ingest.adapters[0].model_dump(),
        ROUTE,
    ),
    "STOCKSENSE_INGEST__MAX_DEVICES_PER_SITE": (
        "0",
        lambda s: s.ingest.max_devices_per_site,
        0,
    ),
    "STOCKSENSE_INGEST__MAX_TRACKED_DEVICES": (
        "1000",
        lambda s: s.ingest.max_tracked_devices,
        1000,
    ),
    "STOCKSENSE_INGEST__KNOWN_DEVICES_ONLY": (
        "true",
        lambda s: s.ingest.known_devices_only,
        True,
    ),
    "STOCKSENSE_INGEST__DEVICE_ACL_FILE": (
        "/etc/mosquitto/stocksense.acl",
        lambda s: s.ingest.device_acl_file,
        Path("/etc/mosquitto/stocksense.acl"),
    ),
    "STOCKSENSE_INGEST__METRICS_PORT": ("9102", lambda s: s.ingest.metrics_port, 9102),
    "STOCKSENSE_RULES__SEED_FILE": (
        "examples/demo-warehouse.yaml",
        lambda s: s.rules.seed_file,
        Path("examples/demo-warehouse.yaml"),
    ),
    "STOCKSENSE_NOTIFIER__CHANNELS": (
        json.dumps([CHANNEL]),
        lambda s: s.notifier.channels[0].model_dump(mode="json")
        | {
            "url": s.notifier.channels[0].url.get_secret_value(),
            "secret": s.notifier.channels[0].secret
            and s.notifier.channels[0].secret.get_secret_value(),
        },
        CHANNEL,
    ),
    "STOCKSENSE_NOTIFIER__CONSOLE_URL": (
        "https://ops.wh1.internal/console",
        lambda s: s.notifier.console_url,
        "https://ops.wh1.internal/console",
    ),
    "STOCKSENSE_ALERTING__ROUTES": (
        ('[{"severities": ["critical"], "channels": ["ops"], "escalate_after_s": 900,'
        ' "escalate_to": ["duty"], "owner": "li.wei", "remind_every_s": 1800}]'),
        lambda s: (
            s.alerting.routes[0].severities,
            s.alerting.routes[0].escalate_after_s,
            s.alerting.routes[0].escalate_to,
            s.alerting.routes[0].owner,
            s.alerting.routes[0].remind_every_s,
        ),
        (("critical",), 900.0, ("duty",), "li.wei", 1800.0),
    ),
    "STOCKSENSE_ALERTING__TYPES": (
        '{"cold_chain_excursion": {"debounce_s": 30, "severity": "major", "remind_every_s": 1800}}',
        lambda s: s.alerting.policy("cold_chain_excursion").model_dump(),
        {"debounce_s": 30.0, "debounce_count": 1, "severity": "major", "remind_every_s": 1800.0},
    ),
    "STOCKSENSE_ALERTING__DUE": (
        '{"critical": {"ack_s": 600, "resolve_s": 7200}}',
        lambda s: (
            s.alerting.due_for("critical").ack_s,
            s.alerting.due_for("critical").resolve_s,
            s.alerting.due_for("major").ack_s,
        ),
        (600.0, 7200.0, None),
    ),
    "STOCKSENSE_ALERTING__ONCALL": (
        ('[{"sites": ["wh1"], "timezone": "Asia/Shanghai", "days": {"mon": "li.wei"},'
        ' "default": "wang"}]'),
        lambda s: (
            s.alerting.oncall[0].sites,
            s.alerting.oncall[0].timezone,
            s.alerting.oncall[0].days,
            s.alerting.oncall[0].default,
        ),
        (("wh1",), "Asia/Shanghai", {"mon": "li.wei"}, "wang"),
    ),
    "STOCKSENSE_ALERTING__UPDATE_INTERVAL_S": (
        "10",
        lambda s: s.alerting.update_interval_s,
        10.0,
    ),
    "STOCKSENSE_ALERTING__COLD_CHAIN": (
        '{"mkt_window_s": 3600, "daily_out_limit_s": null}',
        lambda s: (s.alerting.cold_chain.mkt_window_s, s.alerting.cold_chain.daily_out_limit_s),
        (3600.0, None),
    ),
    "STOCKSENSE_ALERTING__OFFLINE": (
        '{"timeout_factor": 4, "learn_kinds": ["temp"]}',
        lambda s: (s.alerting.offline.timeout_factor, s.alerting.offline.learn_kinds),
        (4.0, ("temp",)),
    ),
    "STOCKSENSE_ALERTING__SENSOR_HEALTH": (
        '{"drift_threshold_c": 2}',
        lambda s: s.alerting.sensor_health.drift_threshold_c,
        2.0,
    ),
    "STOCKSENSE_INVENTORY__DEAD_AFTER_DAYS": (
        "180",
        lambda s: s.inventory.dead_after_days,
        180.0,
    ),
    "STOCKSENSE_INVENTORY__SETTLE_S": ("300", lambda s: s.inventory.settle_s, 300.0),
    "STOCKSENSE_KPI__INTERVAL_S": ("60", lambda s: s.kpi.interval_s, 60.0),
    "STOCKSENSE_KPI__PERIOD_DAYS": ("7", lambda s: s.kpi.period_days, 7),
    "STOCKSENSE_KPI__SLOW_AFTER_DAYS": ("14", lambda s: s.kpi.slow_after_days, 14.0),
    "STOCKSENSE_KPI__AGE_BUCKETS": ("[15, 45]", lambda s: s.kpi.age_buckets, (15, 45)),
    "STOCKSENSE_KPI__LOT_HORIZONS_DAYS": ("[3]", lambda s: s.kpi.lot_horizons_days, (3,)),
    "STOCKSENSE_STARTUP__ATTEMPTS": ("3", lambda s: s.startup.attempts, 3),
    "STOCKSENSE_STARTUP__BACKOFF_S": ("0.5", lambda s: s.startup.backoff_s, 0.5),
    # "false" is refused in production, which the all-at-once case sets.
    "STOCKSENSE_API__AUTH": ("yes", lambda s: s.api.auth, True),
    "STOCKSENSE_API__CORS_ORIGINS": (
        "https://erp.wh1.internal,https://wms.wh1.internal",
        lambda s: s.api.cors_origins,
        ("https://erp.wh1.internal", "https://wms.wh1.internal"),
    ),
    "STOCKSENSE_API__SESSION_TTL_S": ("3600", lambda s: s.api.session_ttl_s, 3600.0),
    "STOCKSENSE_API__COOKIE_SECURE": ("true", lambda s: s.api.cookie_secure, True),
    "STOCKSENSE_API__LOGIN_MAX_FAILURES": ("3", lambda s: s.api.login_max_failures, 3),
    "STOCKSENSE_API__LOGIN_WINDOW_S": ("600", lambda s: s.api.login_window_s, 600.0),
    "STOCKSENSE_PURCHASING__CURRENCY": ("EUR", lambda s: s.purchasing.currency, "EUR"),
    "STOCKSENSE_PURCHASING__APPROVAL_RULES": (
        ('[{"below": 1000, "approvals": 0}, {"sites": ["wh1"], "up_to": 8000, "approvals": 1},'
         ' {"approvals": 2}]'),
        lambda s: [s.purchasing.approvals_required(a, "wh1", None) for a in (999, 8000, 8001)],
        [0, 1, 2],
    ),
    "STOCKSENSE_PURCHASING__CATEGORIES": (
        '{"RICE": "food"}',
        lambda s: s.purchasing.categories,
        {"RICE": "food"},
    ),
    "STOCKSENSE_PURCHASING__ERP__KIND": ("erpnext", lambda s: s.purchasing.erp.kind, "erpnext"),
    "STOCKSENSE_PURCHASING__ERP__URL": (
        "https://erp.wh1.internal",
        lambda s: s.purchasing.erp.url,
        "https://erp.wh1.internal",
    ),
    "STOCKSENSE_PURCHASING__ERP__SECRET": (
        "q7Rk2Lx9",
        lambda s: s.purchasing.erp.secret and s.purchasing.erp.secret.get_secret_value(),
        "q7Rk2Lx9",
    ),
    "STOCKSENSE_PURCHASING__ERP__API_KEY": ("a1b2c3d4", lambda s: s.purchasing.erp.api_key,
                                            "a1b2c3d4"),
    "STOCKSENSE_PURCHASING__ERP__API_SECRET": (
        "Zk81nQ0w",
        lambda s: s.purchasing.erp.api_secret and s.purchasing.erp.api_secret.get_secret_value(),
        "Zk81nQ0w",
    ),
    "STOCKSENSE_PURCHASING__ERP__COMPANY": ("StockSense Ltd", lambda s: s.purchasing.erp.company,
                                            "StockSense Ltd"),
    "STOCKSENSE_PURCHASING__ERP__WAREHOUSES": (
        '{"wh1": "Stores - WH1"}',
        lambda s: s.purchasing.erp.warehouses,
        {"wh1": "Stores - WH1"},
    ),
    "STOCKSENSE_PURCHASING__ERP__DATABASE": ("odoo-wh", lambda s: s.purchasing.erp.database,
                                             "odoo-wh"),
    "STOCKSENSE_PURCHASING__ERP__USERNAME": ("stocksense", lambda s: s.purchasing.erp.username,
                                             "stocksense"),
    "STOCKSENSE_PURCHASING__ERP__PASSWORD": (
        "Vb4-9mWp",
        lambda s: s.purchasing.erp.password and s.purchasing.erp.password.get_secret_value(),
        "Vb4-9mWp",
    ),
    "STOCKSENSE_PURCHASING__ERP__TIMEOUT_S": ("5", lambda s: s.purchasing.erp.timeout_s, 5.0),
    "STOCKSENSE_PURCHASING__ERP__MAX_ATTEMPTS": ("4", lambda s: s.purchasing.erp.max_attempts, 4),
    "STOCKSENSE_PURCHASING__ERP__POLL_INTERVAL_S": (
        "0.5",
        lambda s: s.purchasing.erp.poll_interval_s,
        0.5,
    ),
}

# The same class of values written other ways a shell or a unit file writes them.
MORE_CASES: list[tuple[str, str, Check, Any]] = [
    ("STOCKSENSE_MQTT__QOS", "1", lambda s: s.mqtt.qos, 1),
    ("STOCKSENSE_MQTT__SITES", '["wh1","wh2"]', lambda s: s.mqtt.sites, ("wh1", "wh2")),
    ("STOCKSENSE_MQTT__SITES", "wh1", lambda s: s.mqtt.sites, ("wh1",)),
    ("STOCKSENSE_MQTT__SHARE_GROUP", "", lambda s: s.mqtt.share_group, None),
    ("STOCKSENSE_INGEST__METRICS_PORT", "", lambda s: s.ingest.metrics_port, None),
    ("STOCKSENSE_INFLUX__GZIP", "0", lambda s: s.influx.gzip, False),
    ("STOCKSENSE_INFLUX__GZIP", "yes", lambda s: s.influx.gzip, True),
    ("STOCKSENSE_LOG_LEVEL", "Warning", lambda s: s.log_level, "WARNING"),
    ("STOCKSENSE_ENVIRONMENT", "Production", lambda s: s.environment, "production"),
    ("STOCKSENSE_ALERTING__DEFAULT_CHANNELS", "ops,duty", lambda s: s.alerting.default_channels,
     ("ops", "duty")),
    ("STOCKSENSE_ALERTING__OFFLINE__LEARN_KINDS", "temp", lambda s: s.alerting.offline.learn_kinds,
     ("temp",)),
    ("STOCKSENSE_ALERTING__OFFLINE__TIMEOUT_FACTOR", "4",
     lambda s: s.alerting.offline.timeout_factor, 4.0),
    ("STOCKSENSE_ALERTING__TYPES__COLD_CHAIN_EXCURSION__DEBOUNCE_S", "30",
     lambda s: s.alerting.policy("cold_chain_excursion").debounce_s, 30.0),
    ("STOCKSENSE_ALERTING__COLD_CHAIN_ZONES", '{"wh1/cold": {"mkt_threshold_c": 8}}',
     lambda s: s.alerting.cold_chain_for("wh1", "cold").mkt_threshold_c, 8.0),
    ("STOCKSENSE_API__AUTH", "false", lambda s: s.api.auth, False),
    ("STOCKSENSE_API__CORS_ORIGINS", "", lambda s: s.api.cors_origins, ()),
    ("STOCKSENSE_DATA_DIR", "/var/lib/stocksense", lambda s: s.sqlite_path,
     Path("/var/lib/stocksense/stocksense.db")),
]  # fmt: skip


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean STOCKSENSE_* environment, a fixed HOME and a working directory without .env."""
    for name in list(os.environ):
        if name.upper().startswith("STOCKSENSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def readme_section(title: str) -> str:
    """The text of a ``## title`` section of the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def readme_variables() -> list[str]:
    """Every variable named in the first column of the configuration table.

    ``STOCKSENSE_A__B`` / ``__C`` names ``STOCKSENSE_A__B`` and ``STOCKSENSE_A__C``.
    """
    names: list[str] = []
    for row in readme_section("Configuration").splitlines():
        if not row.startswith("| `STOCKSENSE_"):
            continue
        first = row.split("|")[1]
        cells = re.findall(r"`([A-Z0-9_]+)`", first)
        head = cells[0]
        names.append(head)
        for more in cells[1:]:
            names.append(head.rsplit("__", 1)[0] + more)
    return names


def readme_route_fields() -> list[str]:
    """The first column of the adapter route table."""
    section = readme_section("Configuration")
    table = section[section.index("| route field |") :].split("\n\n")[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)


def readme_dotenv() -> str:
    """The ``.env`` example of the configuration section."""
    section = readme_section("Configuration")
    return section.split("```dotenv\n", 1)[1].split("```", 1)[0]


def _expected(value: Any, env: pytest.MonkeyPatch) -> Any:
    del env
    if value == "HOME/stocksense-data":
        return Path(os.environ["HOME"]) / "stocksense-data"
    if isinstance(value, str) and value.startswith("/srv/"):
        return Path(value)
    return value


def test_every_readme_variable_has_a_case() -> None:
    listed = readme_variables()
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    assert sorted(listed) == sorted(CASES)


def test_route_table_lists_every_route_field() -> None:
    assert sorted(readme_route_fields()) == sorted(AdapterRoute.model_fields)
    assert sorted(ROUTE) == sorted(AdapterRoute.model_fields)


@pytest.mark.parametrize("name", sorted(CASES))
def test_readme_variable_from_the_environment(env: pytest.MonkeyPatch, name: str) -> None:
    value, read, expected = CASES[name]
    env.setenv(name, value)
    assert read(load_settings()) == _expected(expected, env)


@pytest.mark.parametrize(("name", "value", "read", "expected"), MORE_CASES)
def test_other_spellings(
    env: pytest.MonkeyPatch, name: str, value: str, read: Check, expected: Any
) -> None:
    env.setenv(name, value)
    assert read(load_settings()) == expected


def test_all_readme_variables_at_once(env: pytest.MonkeyPatch) -> None:
    for name, (value, _, _) in CASES.items():
        env.setenv(name, value)
    settings = load_settings()
    for name, (_, read, expected) in CASES.items():
        assert read(settings) == _expected(expected, env), name
    assert unknown_variables() == []


def test_key_values_reach_the_components(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("STOCKSENSE_MQTT__QOS", "0")
    env.setenv("STOCKSENSE_MQTT__PORT", "18830")
    env.setenv("STOCKSENSE_MQTT__CLIENT_ID", "ingest-wh1-a")
    env.setenv("STOCKSENSE_INFLUX__URL", "http://influx.wh1.internal:8086")
    env.setenv("STOCKSENSE_DATA_DIR", str(tmp_path / "data"))
    env.setenv("STOCKSENSE_INGEST__ADAPTERS", json.dumps([ROUTE]))
    service = IngestService(load_settings())
    assert (service.settings.mqtt.qos, service.settings.mqtt.port) == (0, 18830)
    assert service.client_id == "ingest-wh1-a"
    assert service.writer.spool.directory == tmp_path / "data" / "spool" / "ingest-wh1-a"
    assert service.writer.spool.directory.is_dir()
    influx = InfluxClient(service.settings.influx)
    assert influx.settings.url == "http://influx.wh1.internal:8086"


def test_the_readme_dotenv_example_is_read(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(readme_dotenv(), encoding="utf-8")
    settings = load_settings()
    assert settings.mqtt.host == "broker.wh1.internal"
    assert (settings.mqtt.port, settings.mqtt.qos, settings.mqtt.sites) == (1883, 0, ("wh1",))
    assert settings.influx.url == "http://influx.wh1.internal:8086"
    assert settings.data_dir == Path("/var/lib/stocksense")
    assert settings.log_level == "WARNING"
    assert settings.rules.seed_file == Path("/etc/stocksense/warehouse.yaml")
    assert [(c.name, c.kind) for c in settings.notifier.channels] == [("ops", "wecom")]
    assert settings.alerting.policy("cold_chain_excursion").debounce_s == 30.0
    # A real variable wins over the file.
    env.setenv("STOCKSENSE_MQTT__PORT", "8883")
    assert load_settings().mqtt.port == 8883


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STOCKSENSE_MQTT__QOS", "2", "STOCKSENSE_MQTT__QOS: Input should be 0 or 1, got 2"),
        (
            "STOCKSENSE_DATABASE_URL",
            "mysql://root:pw@db/ss",
            ("STOCKSENSE_DATABASE_URL: unsupported database URL"
             " 'mysql://root:***@db/ss': use sqlite:///path or postgresql://"),
        ),
        (
            "STOCKSENSE_MQTT__PORT",
            "70000",
            "STOCKSENSE_MQTT__PORT: Input should be less than or equal to 65535, got '70000'",
        ),
        (
            "STOCKSENSE_NOTIFIER__CHANNELS",
            "[{bad",
            ("STOCKSENSE_NOTIFIER__CHANNELS: not valid JSON (expecting property name enclosed in"
            " double quotes at character 2)"),
        ),
        (
            "STOCKSENSE_NOTIFIER__CHANNELS",
            '[{"name": "ops", "kind": "slack", "url": "https://hooks.slack.com/x"}]',
            ("STOCKSENSE_NOTIFIER__CHANNELS: [0].kind: Input should be 'dingtalk', 'wecom' or"
            " 'webhook', got 'slack'"),
        ),
        (
            "STOCKSENSE_NOTIFIER__CHANNELS",
            '[{"name": "ops", "kind": "wecom"}]',
            "STOCKSENSE_NOTIFIER__CHANNELS: [0].url: is required",
        ),
        (
            "STOCKSENSE_ALERTING__TYPES__COLD_CHAIN_EXCURSION__DEBOUNCE_S",
            "soon",
            ("STOCKSENSE_ALERTING__TYPES__COLD_CHAIN_EXCURSION__DEBOUNCE_S: Input should be a"
            " valid number"),
        ),
        (
            "STOCKSENSE_LOG_LEVEL",
            "loud",
            "STOCKSENSE_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
        ),
        (
            "STOCKSENSE_INGEST__ADAPTERS",
            '[{"pattern": "tele/+/SENSOR", "adapter": "sonoff", "site": "wh1"}]',
            ("STOCKSENSE_INGEST__ADAPTERS: [0].adapter: Input should be 'canonical', 'impinj',"
            " 'zebra', 'tasmota' or 'shelly', got 'sonoff'"),
        ),
        (
            "STOCKSENSE_INGEST__ADAPTERS",
            ('[{"pattern": "a/#", "adapter": "zebra", "site": "wh1"},'
            ' {"pattern": "tele/#/SENSOR", "adapter": "tasmota", "site": "wh1"}]'),
            ("STOCKSENSE_INGEST__ADAPTERS: [1].pattern: topic filter 'tele/#/SENSOR': '#' must"
            " be the whole last level"),
        ),
        (
            "STOCKSENSE_INGEST__ADAPTERS",
            '[{"pattern": "tele/+SENSOR", "adapter": "tasmota", "site": "wh1"}]',
            ("STOCKSENSE_INGEST__ADAPTERS: [0].pattern: topic filter 'tele/+SENSOR': '+' must be"
            " a whole level"),
        ),
        (
            "STOCKSENSE_INGEST__ADAPTERS",
            '[{"pattern": "$share/g/tele/#", "adapter": "tasmota", "site": "wh1"}]',
            "STOCKSENSE_INGEST__ADAPTERS: [0].pattern: route patterns match received topics",
        ),
        (
            "STOCKSENSE_INGEST__ADAPTERS",
            '[{"pattern": "tele/#", "adapter": "tasmota", "site": "wh:1"}]',
            ("STOCKSENSE_INGEST__ADAPTERS: [0].site: String should match pattern"
            " '^[A-Za-z0-9_.\\-]{1,64}$', got 'wh:1'"),
        ),
        (
            "STOCKSENSE_INGEST__ADAPTERS",
            '[{"pattern": "tele/#", "adapter": "tasmota", "site": "wh1\\n"}]',
            "STOCKSENSE_INGEST__ADAPTERS: [0].site: String should match pattern",
        ),
        (
            "STOCKSENSE_MQTT__SHARE_GROUP",
            "ingest/a",
            (
                "STOCKSENSE_MQTT__SHARE_GROUP: a share group is one topic level without '/',"
                " '+' or '#', not 'ingest/a'"
            ),
        ),
        (
            "STOCKSENSE_INGEST__ADAPTERS",
            '[{"pattern": "tele/#", "adapter": "tasmota"}]',
            "STOCKSENSE_INGEST__ADAPTERS: [0]: a tasmota route needs a site",
        ),
        (
            "STOCKSENSE_INGEST__ADAPTERS",
            '[{"pattern": "tele/#", "adapter": "tasmota", "site": "wh1", "timezone": "Mars/Base"}]',
            "STOCKSENSE_INGEST__ADAPTERS: [0].timezone: unknown time zone 'Mars/Base'",
        ),
        (
            "STOCKSENSE_INGEST__ADAPTERS",
            '[{"pattern": "tele/#", "adapter": "tasmota", "site": "wh1", "device_level": 1}]',
            "STOCKSENSE_INGEST__ADAPTERS: [0].device_level: is not a known key",
        ),
    ],
)
def test_a_bad_value_names_its_variable_in_one_line(
    env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_secret_values_never_appear_in_errors(env: pytest.MonkeyPatch) -> None:
    env.setenv(
        "STOCKSENSE_NOTIFIER__CHANNELS",
        '[{"name": "ops", "kind": "wecom", "url": 12345678, "secret": ["SECabcdef"]}]',
    )
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "12345678" not in str(caught.value)
    assert "SECabcdef" not in str(caught.value)
    assert str(caught.value).startswith("STOCKSENSE_NOTIFIER__CHANNELS: [0].url: ")


def test_unknown_variables_are_reported(env: pytest.MonkeyPatch) -> None:
    env.setenv("STOCKSENSE_MQTT__PROT", "1884")
    env.setenv("STOCKSENSE_ALERTING__TYPES__ANY_TYPE__DEBOUNCE_S", "5")
    env.setenv("STOCKSENSE_LOGLEVEL", "debug")
    assert unknown_variables() == ["STOCKSENSE_LOGLEVEL", "STOCKSENSE_MQTT__PROT"]
