"""The onboarding docs say what the code does: their examples run through the real parts.

Code blocks the tests read carry a tag after the language, ```` ```json routes:tasmota ````
(GitHub shows only the language). Devices: every route validates as ingest's AdapterRoute,
every sample message is the vendor fixture and goes through a real Mosquitto and ingest into
InfluxDB, where it must land as the doc's line protocol says; seeds and ACL blocks load with
StockSense's own code. Robots: every channel validates as ChannelSettings and the limits the
doc states are the code's. Catalog and zones: every seed loads, and every invalid example
fails with the message the doc shows. Service: the systemd units pass ``systemd-analyze
verify``, their command lines parse with the real CLI parser, and every variable of the
example environment file is a setting.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from core import db, topics
from core.device_registry import enrolled_devices
from core.errors import ConfigError
from core.influx import query_sync, rows
from core.migrations import HEAD
from core.settings import (
    ChannelSettings,
    IngestSettings,
    InventorySettings,
    NotifierSettings,
    Settings,
)
from ingest.adapters import AdapterRoute, decode
from ingest.service import IngestService
from rules.notify import dingtalk, wecom
from rules.notify.digest import DEFAULT_TOP, DigestEntry
from rules.notify.dingtalk import DingTalkChannel
from rules.notify.pacing import TokenBucket
from rules.notify.service import MAX_BACKOFF_S
from rules.notify.wecom import WeComChannel
from rules.seed import ProbeZones, Seed, Zone, load_seed
from stocksense.cli import build_parser
from tests.conftest import Publisher, until, wait_for
from tests.integration.test_vendor_ingest import FIXTURES
from tests.unit.test_digest import make_alert

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
ROUTES = TypeAdapter(list[AdapterRoute])
FENCE = re.compile(r"^```(\w+) ([\w:.-]+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    """A tagged code block: ```` ```<lang> <kind>:<name> key=value ````."""

    lang: str
    kind: str
    name: str
    attrs: dict[str, str]
    text: str


def blocks(doc: str, kind: str) -> dict[str, Block]:
    """The blocks of ``docs/<doc>`` tagged ``kind``, by name."""
    found: dict[str, Block] = {}
    for lang, tag, rest, text in FENCE.findall((DOCS / doc).read_text(encoding="utf-8")):
        block_kind, _, name = tag.partition(":")
        if block_kind != kind:
            continue
        attrs = dict(word.split("=", 1) for word in rest.split())
        assert name not in found, f"{doc}: two {kind} blocks named {name!r}"
        found[name] = Block(lang, block_kind, name, attrs, text)
    return found


def _seed(block: Block, tmp_path: Path) -> Seed:
    path = tmp_path / f"{block.kind}-{block.name}.yaml"
    path.write_text(block.text, encoding="utf-8")
    return load_seed(path)


# -- docs/devices.md --------------------------------------------------------------------------

VENDORS = ("tasmota", "tasmota-hx711", "shelly", "zebra", "impinj")
MEASUREMENT_TAGS = {
    "temperature": ("site", "device", "sensor"),
    "weight": ("site", "device", "cell"),
    "rfid": ("site", "device", "antenna"),
}


@dataclass(frozen=True)
class Point:
    """One line of the doc's line protocol (no timestamp)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, Any]


def _field(text: str) -> Any:
    if text.startswith('"'):
        return json.loads(text)
    if text.endswith("i"):
        return int(text[:-1])
    if text in ("t", "true", "f", "false"):
        return text.startswith("t")
    return float(text)


def points(block: Block) -> list[Point]:
    """The doc's expected points: ``measurement,tag=v,... field=v,...`` per line."""
    out = []
    for line in block.text.strip().splitlines():
        series, fields = line.split(" ", 1)
        measurement, *tags = series.split(",")
        out.append(
            Point(
                measurement,
                dict(tag.split("=", 1) for tag in tags),
                {k: _field(v) for k, v in (f.split("=", 1) for f in fields.split(","))},
            )
        )
    return out


def sample(name: str) -> tuple[str, bytes]:
    """The doc's sample message (topic line, then payload), checked against its fixture."""
    block = blocks("devices.md", "sample")[name]
    topic, payload = block.text.split("\n", 1)
    fixture = json.loads((FIXTURES / block.attrs["fixture"]).read_text())
    assert json.loads(payload) == fixture["payload"], f"{name}: the sample is not the fixture"
    return topic, json.dumps(fixture["payload"]).encode()


def test_every_documented_route_is_accepted_by_ingest() -> None:
    routes = blocks("devices.md", "routes")
    assert sorted(routes) == sorted(VENDORS)
    combined: list[AdapterRoute] = []
    for block in routes.values():
        parsed = ROUTES.validate_json(block.text)
        assert parsed, block.name
        combined += parsed
    # The one-variable form holds exactly the routes of the sections, in the same order.
    env = blocks("devices.md", "adapters-env")[""].text.strip()
    name, _, value = env.partition("=")
    assert name == "STOCKSENSE_INGEST__ADAPTERS"
    assert value[0] == value[-1] == "'", "single quotes keep the JSON whole"
    assert ROUTES.validate_json(value[1:-1]) == combined
    assert IngestSettings(adapters=json.loads(value[1:-1])).adapters == combined


@pytest.mark.parametrize("vendor", VENDORS)
def test_documented_readings_are_bound_by_the_documented_seed(vendor: str, tmp_path: Path) -> None:
    seed = _seed(blocks("devices.md", "seed")[vendor], tmp_path)
    for point in points(blocks("devices.md", "influx")[vendor]):
        site, device = point.tags["site"], point.tags["device"]
        if point.measurement == "temperature":
            zones = ProbeZones(seed).zones(site, device, point.tags["sensor"])
            assert len(zones) == 1, f"{vendor}: {point.tags} is in no cold-chain zone"
            assert zones[0].temp_band is not None
            assert zones[0].temp_band.low <= point.fields["celsius"] <= zones[0].temp_band.high
        elif point.measurement == "weight":
            cells = [(s.site, s.device, s.cell) for s in seed.shelves]
            assert (site, device, point.tags["cell"]) in cells, f"{vendor}: no shelf"
        elif point.tags["antenna"] != "1":  # antenna 1: the read without tag metadata
            antennas = [(z.site, z.device, z.antenna) for z in seed.rfid_zones]
            assert (site, device, int(point.tags["antenna"])) in antennas, f"{vendor}: no zone"


def _ingest_reads(topic: str) -> bool:
    acl = (REPO / "deploy" / "mosquitto" / "acl").read_text().split("user stocksense-ingest")[1]
    reads = re.findall(r"^topic read (\S+)$", acl.split("\nuser ")[0], re.MULTILINE)
    return any(topics.matches(pattern, topic) for pattern in reads)


@pytest.mark.parametrize("vendor", VENDORS)
def test_documented_account_enrols_the_device_and_lets_it_publish(vendor: str) -> None:
    block = blocks("devices.md", "acl")[vendor]
    topic, payload = sample(vendor)
    routes = ROUTES.validate_json(blocks("devices.md", "routes")[vendor].text)
    decoded = decode(topic, payload, time.time_ns() // 1_000_000, routes)
    # The block enrols exactly the device key ingest gives these readings...
    assert enrolled_devices(block.text) == {decoded.device_key}
    assert f"user {decoded.device_key}" in block.text.splitlines()
    # ...lets the device write the topic it publishes, and the shipped ingest account read it.
    writes = re.findall(r"^topic write (\S+)$", block.text, re.MULTILINE)
    assert any(topics.matches(pattern, topic) for pattern in writes), f"{vendor}: {topic}"
    assert _ingest_reads(topic), f"deploy/mosquitto/acl: ingest may not read {topic}"


def _stored(settings: Settings, point: Point) -> list[dict[str, Any]]:
    where = " AND ".join(f"\"{k}\" = '{v}'" for k, v in point.tags.items())
    fields = ", ".join(f'"{f}"' for f in point.fields)
    query = f"SELECT {fields} FROM {point.measurement} WHERE {where}"
    found = rows(query_sync(settings.influx, query))
    return [{k: r[k] for k in point.fields} for r in found]


@pytest.mark.integration
@pytest.mark.parametrize("vendor", VENDORS)
def test_documented_message_lands_as_documented(
    vendor: str, settings: Settings, publisher: Publisher
) -> None:
    """The sample, published on a real broker to ingest configured with the doc's route."""
    routes = json.loads(blocks("devices.md", "routes")[vendor].text)
    topic, payload = sample(vendor)
    expected = points(blocks("devices.md", "influx")[vendor])
    # Canonical topics of one unused site only: retained status messages other tests leave on
    # the session broker must not add to the counts. Vendor topics come through the routes.
    mqtt = settings.mqtt.model_copy(update={"sites": ("docs-devices",)})
    cfg = settings.model_copy(update={"ingest": IngestSettings(adapters=routes), "mqtt": mqtt})

    async def scenario() -> IngestService:
        service = IngestService(cfg)
        await service.start()
        try:
            publisher.publish(topic, payload)
            publisher.flush()
            await until(
                lambda: (
                    service.metrics.value("stocksense_ingest_points_written_total") >= len(expected)
                ),
                what=f"{vendor} readings written",
            )
        finally:
            await service.stop()
        return service

    service = asyncio.run(scenario())
    assert service.metrics.value("stocksense_ingest_points_written_total") == len(expected)
    for point in expected:
        assert set(MEASUREMENT_TAGS[point.measurement]) == set(point.tags)
        assert _stored(cfg, point) == [point.fields], f"{vendor}: {point}"
    # One message, all of its readings written: nothing was dead-lettered or ignored.
    assert service.metrics.value("stocksense_ingest_messages_received_total") == 1


# -- docs/robots.md ---------------------------------------------------------------------------


def _env_lines(block: Block) -> dict[str, str]:
    """``NAME=value`` lines of an env block; single-quoted values unquoted."""
    out = {}
    for line in block.text.strip().splitlines():
        name, _, value = line.partition("=")
        if value[:1] == "'":
            assert value[-1] == "'", f"{name}: unbalanced quotes"
            value = value[1:-1]
        out[name] = value
    return out


def test_every_documented_channel_is_a_valid_channel() -> None:
    channels = blocks("robots.md", "channel")
    assert {"dingtalk-signed", "dingtalk-keyword", "wecom", "wecom-mobiles"} <= set(channels)
    parsed = [ChannelSettings.model_validate_json(b.text) for b in channels.values()]
    assert len({c.name for c in parsed}) == len(parsed)
    env = _env_lines(blocks("robots.md", "channels-env")[""])
    listed = TypeAdapter(list[ChannelSettings]).validate_json(env["STOCKSENSE_NOTIFIER__CHANNELS"])
    assert [c.kind for c in listed] == ["dingtalk", "wecom"]
    settings = Settings(
        notifier=NotifierSettings(
            channels=listed, console_url=env["STOCKSENSE_NOTIFIER__CONSOLE_URL"]
        )
    )
    assert settings.notifier.console_url.endswith("/console")


def test_documented_limits_are_the_code_s(tmp_path: Path) -> None:
    doc = " ".join((DOCS / "robots.md").read_text(encoding="utf-8").split())
    conn = db.connect(tmp_path / "a.db")
    bucket = TokenBucket.for_robot(conn, "robot", DingTalkChannel.rate_limit_per_minute)
    assert bucket.capacity == 19
    for phrase in (
        f"at most **{bucket.capacity} messages in any {bucket.window_s:g} s** per robot",
        (
            f"pauses **{DingTalkChannel.throttle_penalty_s:g} s** (DingTalk) or "
            f"**{WeComChannel.throttle_penalty_s:g} s** (WeCom)"
        ),
        f"**{dingtalk.MAX_BODY_BYTES:,} bytes** (errcode 460101 above it)",
        (
            f"markdown content **{wecom.MARKDOWN_MAX_BYTES:,} bytes**, text content "
            f"**{wecom.TEXT_MAX_BYTES:,} bytes**"
        ),
        f"each of the **{DEFAULT_TOP}** most severe",
        f"at most **{MAX_BACKOFF_S:g} s**",
        f"After **{NotifierSettings().max_attempts}** attempts",
        f"errcode **{next(iter(DingTalkChannel.rate_limit_codes))}**",
        f"errcode **{next(iter(WeComChannel.rate_limit_codes))}**",
    ):
        assert phrase in doc, phrase


@pytest.mark.parametrize(("language", "keyword"), [("zh", "查看控制台"), ("en", "Open console")])
def test_documented_keyword_is_in_every_dingtalk_message(language: str, keyword: str) -> None:
    cfg = ChannelSettings.model_validate_json(
        blocks("robots.md", "channel")["dingtalk-keyword"].text
    )
    cfg = cfg.model_copy(update={"language": language})
    channel = DingTalkChannel(cfg, console_url="https://stocksense.wh1.example.com/console")
    doc = (DOCS / "robots.md").read_text(encoding="utf-8")
    assert f"**{keyword}**" in doc
    alert = make_alert(1, severity="major")
    payloads = [p for e in ("raised", "escalated") for p in channel.render(alert, e)]
    payloads += channel.render(make_alert(2, cleared_at=alert.raised_at + 60_000), "cleared")
    # A storm big enough for the digest to continue over several parts.
    storm = [DigestEntry(key=i, alert=make_alert(i), event="raised") for i in range(1, 5001)]
    parts = [payload for payload, _ in channel.render_digest(storm)]
    assert len(parts) >= 2
    payloads += parts
    for payload in payloads:
        assert keyword in payload["markdown"]["text"]
    asyncio.run(channel.aclose())


# -- docs/catalog-and-zones.md ----------------------------------------------------------------


def test_documented_zones_and_catalog_load(tmp_path: Path) -> None:
    seeds = blocks("catalog-and-zones.md", "seed")
    zones, catalog = _seed(seeds["zones"], tmp_path), _seed(seeds["catalog"], tmp_path)
    assert [z.id for z in zones.sites[0].zones] == ["cold-room", "freezer", "ambient", "dispatch"]
    assert [zones.skus, zones.shelves, zones.rfid_zones, zones.lots] == [[], [], [], []]
    assert not catalog.sites
    assert {s.sku for s in catalog.skus} == {s.sku for s in catalog.shelves}
    # One file with both works as well: the sections simply add up.
    both = tmp_path / "both.yaml"
    both.write_text(seeds["zones"].text + seeds["catalog"].text, encoding="utf-8")
    sections = {k: v for k, v in catalog if k != "sites"}
    assert load_seed(both) == zones.model_copy(update=sections)
    # The two demo files the page points at load as described.
    assert load_seed(REPO / "examples" / "demo-warehouse.yaml").sites
    assert load_seed(REPO / "examples" / "demo-catalog.yaml").skus


def test_documented_defaults_are_the_code_s() -> None:
    doc = " ".join((DOCS / "catalog-and-zones.md").read_text(encoding="utf-8").split())
    interval = InventorySettings().evaluate_interval_s
    assert f"(`STOCKSENSE_INVENTORY__EVALUATE_INTERVAL_S`, {interval:g} s)" in doc
    assert f"(default {Zone(id='z').allowance_s:g})" in doc


INVALID = blocks("catalog-and-zones.md", "invalid")


@pytest.mark.parametrize("name", sorted(INVALID))
def test_documented_mistake_gives_the_documented_message(name: str, tmp_path: Path) -> None:
    expected = blocks("catalog-and-zones.md", "error")[name].text.strip()
    with pytest.raises(ConfigError) as caught:
        _seed(INVALID[name], tmp_path)
    assert str(caught.value).endswith(f" is invalid: {expected}")


# -- docs/running-as-a-service.md -------------------------------------------------------------

SYSTEMD = REPO / "deploy" / "systemd"
SERVICE_DOC = "running-as-a-service.md"
UNITS = {
    "stocksense.service": ("run", 45),
    "stocksense-api.service": ("api", 15),
    "stocksense-ingest.service": ("ingest", 30),
    "stocksense-notify.service": ("notify", 30),
}
INSTALLED_COMMAND = "/opt/stocksense/.venv/bin/stocksense"


def _unit(name: str) -> dict[str, list[str]]:
    """The directives of a unit file, each with every value it is given."""
    out: dict[str, list[str]] = {}
    for raw in (SYSTEMD / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package 'systemd')")
    command = Path(sys.executable).with_name("stocksense")
    assert command.exists(), "the stocksense command is not installed in this virtualenv"
    for name in UNITS:
        text = (SYSTEMD / name).read_text(encoding="utf-8")
        # verify checks that the command exists: point it at this checkout's.
        (tmp_path / name).write_text(text.replace(INSTALLED_COMMAND, str(command)))
    done = subprocess.run(
        [tool, "verify", *(str(tmp_path / name) for name in UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_runs_the_documented_command_as_documented(name: str) -> None:
    command, stop_s = UNITS[name]
    unit = _unit(name)
    assert unit["User"] == unit["Group"] == ["stocksense"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["EnvironmentFile"][0] == "/etc/stocksense/stocksense.env"
    assert unit["KillSignal"] == ["SIGTERM"]
    assert unit["TimeoutStopSec"] == [str(stop_s)]
    assert unit["NoNewPrivileges"] == unit["PrivateTmp"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/stocksense"]
    (exec_start,) = unit["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == INSTALLED_COMMAND
    args = build_parser().parse_args(argv[1:])
    assert args.command == command
    assert callable(args.func)
    doc = (DOCS / SERVICE_DOC).read_text(encoding="utf-8")
    assert f"| `{name}` | `stocksense {' '.join(argv[1:])}` |" in doc


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _names_a_setting(variable: str) -> bool:
    model: type[BaseModel] = Settings
    keys = variable.removeprefix("STOCKSENSE_").lower().split("__")
    for depth, key in enumerate(keys):
        field = model.model_fields.get(key)
        if field is None:
            return False
        if depth == len(keys) - 1:
            return True
        nested = [
            m
            for m in _members(field.annotation)
            if isinstance(m, type) and issubclass(m, BaseModel)
        ]
        if not nested:
            return False
        model = nested[0]
    return False


def _env_file(path: Path) -> dict[str, str]:
    """NAME=value lines, checked for what systemd's EnvironmentFile reads differently."""
    out = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        name, sep, value = raw.partition("=")
        assert sep, f"{path.name}: {raw!r} is not NAME=value"
        assert name.startswith("STOCKSENSE_"), name
        if value.startswith("'"):
            assert value.endswith("'"), f"{name}: unbalanced quote"
            value = value[1:-1]
        else:
            assert not re.search(r"[\s\"'#\\]", value), f"{name}: quote a value like this"
        out[name] = value
    return out


@pytest.mark.parametrize("example", ["stocksense.env", "ingest.env"])
def test_example_environment_names_only_settings(example: str) -> None:
    variables = _env_file(SYSTEMD / example)
    assert variables
    unknown = sorted(v for v in variables if not _names_a_setting(v))
    assert unknown == []


def test_example_environment_builds_the_settings_the_units_expect(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("STOCKSENSE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    common = SYSTEMD / "stocksense.env"
    settings = Settings(_env_file=common, environment="local")
    assert settings.data_dir == Path(_unit("stocksense.service")["ReadWritePaths"][0])
    assert settings.mqtt.port == 8883
    assert settings.mqtt.tls.enabled
    assert ROUTES.validate_python(settings.ingest.adapters)
    assert [c.kind for c in settings.notifier.channels] == ["dingtalk"]
    # The unedited example cannot go live: production refuses its placeholders.
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(_env_file=common)
    # The extra worker: the common file, then ingest.env, whose values win.
    worker = Settings(_env_file=(common, SYSTEMD / "ingest.env"), environment="local")
    assert worker.mqtt.client_id != settings.mqtt.client_id
    assert worker.mqtt.sites == ("wh2",)
    assert worker.mqtt.share_group is None
    assert {r.site for r in ROUTES.validate_python(worker.ingest.adapters)} == {"wh2"}


def _local(text: str, data: Path, backups: Path) -> str:
    """A documented shell block with the machine's paths made the test's, root steps skipped."""
    swaps = {
        "runuser -u stocksense -- ": "",
        "install -o stocksense -g stocksense ": "install ",
        "/var/lib/stocksense": str(data),
        "/var/backups/stocksense": str(backups),
    }
    lines = []
    for line in text.strip().splitlines():
        if line.startswith("systemctl "):
            continue
        local = line
        for old, new in swaps.items():
            local = local.replace(old, new)
        lines.append(local)
    return "\n".join(lines)


WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
n = 0
while True:
    conn.execute("INSERT INTO backup_probe (n) VALUES (?)", (n,))
    n += 1
    if n % 50 == 0:
        print(n, flush=True)
"""


def _count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute("SELECT COUNT(*) FROM backup_probe").fetchone()[0])
    finally:
        conn.close()


def test_documented_backup_and_restore_on_a_live_database(tmp_path: Path) -> None:
    if shutil.which("sqlite3") is None:
        pytest.skip("the sqlite3 tool is not installed (Debian package 'sqlite3')")
    data, backups = tmp_path / "var-lib-stocksense", tmp_path / "backups"
    data.mkdir()
    backups.mkdir()
    live = data / "stocksense.db"
    conn = db.connect(live)
    revision = db.schema_revision(conn)
    conn.execute("CREATE TABLE backup_probe (n INTEGER NOT NULL)")
    conn.close()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(live)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    progress = [int(writer.stdout.readline())]  # it writes: the database is live from here
    reader = threading.Thread(
        target=lambda: progress.extend(int(line) for line in writer.stdout or ()), daemon=True
    )
    reader.start()
    try:
        backup = _local(blocks(SERVICE_DOC, "backup-sqlite3")[""].text, data, backups)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", backup], capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == "ok"
        exec(_local(blocks(SERVICE_DOC, "backup-python")[""].text, data, backups), {})
        copies = [backups / "stocksense-backup.db", backups / "stocksense-python.db"]
        counts = [_count(copy) for copy in copies]
        for copy in copies:
            assert not copy.with_name(copy.name + "-wal").exists(), "a backup is one file"
        # Consistent snapshots of a database being written: every row committed before.
        assert min(counts) >= progress[0]
        wait_for(lambda: progress[-1] > max(counts) + 500, what="the writer to go on")
    finally:
        writer.kill()  # a crash: what it committed since its last checkpoint is in the -wal
        writer.wait()
    reader.join(timeout=10)
    writer.stdout.close()
    assert live.with_name("stocksense.db-wal").stat().st_size > 0
    crashed = _count(live)  # opened read-write: replays its WAL
    assert crashed >= progress[-1] > max(counts)
    script = _local(blocks(SERVICE_DOC, "restore")[""].text, data, backups)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "ok"
    # The restored database is the backup: no WAL of the replaced one replayed into it...
    assert _count(live) == counts[0]
    restored = db.connect(live)
    assert db.schema_revision(restored) == revision == HEAD
    restored.close()
    # ...and the replaced one is kept whole beside it.
    assert _count(data / "before-restore" / "stocksense.db") == crashed


def test_documented_alembic_commands_answer_as_documented(database: db.Target) -> None:
    db.connect(database).close()
    env = {**os.environ, "STOCKSENSE_DATABASE_URL": database.url}
    expected = {
        "current": f"{HEAD} (head)",
        "check": "No new upgrade operations detected",
        "upgrade": "CREATE TABLE inv_ledger",
    }
    commands = [
        line.split("#", 1)[0].strip()
        for line in blocks("database.md", "alembic")[""].text.strip().splitlines()
    ]
    assert [c.split()[1] for c in commands] == list(expected)
    for command, answer in zip(commands, expected.values(), strict=True):
        done = subprocess.run(
            ["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert answer in done.stdout + done.stderr


def test_documented_logrotate_configuration_parses(tmp_path: Path) -> None:
    tool = shutil.which("logrotate") or next(
        (p for p in ("/usr/sbin/logrotate", "/sbin/logrotate") if Path(p).exists()), None
    )
    if tool is None:
        pytest.skip("logrotate is not installed (Debian package 'logrotate')")
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "stocksense.log").write_text("one line\n")
    conf = tmp_path / "stocksense"
    conf.write_text(
        blocks(SERVICE_DOC, "logrotate")[""].text.replace("/var/log/stocksense", str(logs))
    )
    conf.chmod(0o644)
    done = subprocess.run(
        [tool, "--debug", "--force", "--state", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "error" not in output.lower(), output
    assert "copytruncate" in output or "truncating" in output, output
