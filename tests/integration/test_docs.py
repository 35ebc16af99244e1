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
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from core.device_registry import enrolled_devices
from core.errors import ConfigError
from core.influx import query_sync, rows
from core.settings import (
    ChannelSettings,
    IngestSettings,
    InventorySettings,
    NotifierSettings,
    Settings,
)
from ingest.adapters import AdapterRoute, decode, topic_matches
from ingest.service import IngestService
from rules.notify import dingtalk, wecom
from rules.notify.digest import DEFAULT_TOP, DigestEntry
from rules.notify.dingtalk import DingTalkChannel
from rules.notify.pacing import TokenBucket
from rules.notify.service import MAX_BACKOFF_S
from rules.notify.wecom import WeComChannel
from rules.seed import ProbeZones, Seed, Zone, load_seed
from tests.conftest import Publisher, until
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
    assert IngestSettings(adapters=json.loads(value[1:-1])).adapters == json.loads(value[1:-1])


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
    return any(topic_matches(pattern, topic) for pattern in reads)


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
    assert any(topic_matches(pattern, topic) for pattern in writes), f"{vendor}: {topic}"
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
    cfg = settings.model_copy(update={"ingest": IngestSettings(adapters=routes)})

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


def test_documented_limits_are_the_code_s() -> None:
    doc = " ".join((DOCS / "robots.md").read_text(encoding="utf-8").split())
    bucket = TokenBucket.for_robot(DingTalkChannel.rate_limit_per_minute)
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
