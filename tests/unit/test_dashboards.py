"""Dashboards as code: structure, datasource wiring, InfluxQL against the contract, push command."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.kpi import AgeBucket, AlertResponseFigures, LotsDueFigures, SiteKpis, SkuKpi
from dashboards import DASHBOARD_DIR, DATASOURCE_UID, DATASOURCE_VARIABLE, dashboard_files
from dashboards.build import BUILDERS, generate, stale, write
from dashboards.build import main as build_main
from dashboards.push import (
    PushError,
    folder_uid_for,
    load_dashboards,
    main,
    redact,
    safe_url,
)
from rules.kpi.service import kpi_lines

REPO = Path(__file__).resolve().parents[2]
DS_REF = {"type": "influxdb", "uid": f"${{{DATASOURCE_VARIABLE}}}"}
EXPECTED_UIDS = {
    "stocksense-cold-chain",
    "stocksense-warehouse",
    "stocksense-alerts",
    "stocksense-inventory",
    "stocksense-alert-response",
}
BUILTIN_VARIABLES = {"timeFilter", "__interval"}
# Inventory measurements written by the rules engine (tags, fields), as documented.
INVENTORY: dict[str, tuple[set[str], set[str]]] = {
    "stock": ({"site", "location", "sku", "basis"}, {"qty"}),
    "movements": (
        {"site", "sku", "kind", "source"},
        {"qty", "location", "lot", "ref", "ledger_id"},
    ),
    "suggestions": (
        {"site", "sku", "state"},
        {"suggestion_id", "qty", "projected", "trigger_level", "reason"},
    ),
}


def kpi_contract() -> dict[str, tuple[set[str], set[str]]]:
    """KPI measurements -> (tags, fields), from the lines the pipeline writes for a snapshot
    with every figure defined."""
    sku = SkuKpi(
        sku="TEA", on_hand=10, available=8, unit_cost=2, value=20, outflow=5, avg_on_hand=9,
        turnover=0.5, avg_daily_demand=0.2, days_of_supply=40, days=30, days_with_demand=12,
        stockout_days=1, stockout_rate=1 / 30, fill_rate=0.9, idle_days=2, movement="active",
    )  # fmt: skip
    snapshot = SiteKpis(
        site="wh1", period="rolling", start_ms=0, end_ms=30 * 86_400_000, timezone="UTC",
        stock_value=20, stockout_rate=1 / 30, fill_rate=0.9, slow_skus=0, slow_value=0,
        dead_skus=0, dead_value=0, skus=[sku],
        ageing=[AgeBucket(label="0-30", qty=10, value=20)],
        lots_due=[LotsDueFigures(date="alert", horizon_days=7, lots=1, qty=10, value=20)],
        alerts=[
            AlertResponseFigures(
                type="reorder", severity="major", count=2, acked=1, resolved=1, ack_mean_s=60,
                ack_p90_s=60, resolve_mean_s=600, resolve_p90_s=600, acked_in_time_share=1.0,
            )
        ],
    )  # fmt: skip
    table: dict[str, tuple[set[str], set[str]]] = {}
    for point in kpi_lines(snapshot):
        series, fields, _ = point.split(" ")
        measurement, *tags = series.split(",")
        table[measurement] = (
            {t.split("=")[0] for t in tags},
            {f.split("=")[0] for f in fields.split(",")},
        )
    return table


def wire_contract() -> dict[str, tuple[set[str], set[str]]]:
    """Measurements -> (tags, fields) from the table in docs/wire-contract.md, plus inventory
    and KPIs."""
    text = (REPO / "docs" / "wire-contract.md").read_text(encoding="utf-8")
    table: dict[str, tuple[set[str], set[str]]] = {}
    for match in re.finditer(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$", text, re.MULTILINE):
        tags = set(re.findall(r"`(\w+)`", match.group(2)))
        fields = set(re.findall(r"`(\w+)`", match.group(3)))
        table[match.group(1)] = (tags, fields)
    for name, (tags, fields) in INVENTORY.items():
        if name in table:  # once documented, the doc and the dashboards must agree
            assert table[name] == (tags, fields), name
        table[name] = (tags, fields)
    for name, (tags, fields) in kpi_contract().items():
        if name in table:
            assert table[name] == (tags, fields), name
        table[name] = (tags, fields)
    return table


CONTRACT = wire_contract()


def load_all() -> dict[str, dict[str, Any]]:
    """Dashboard file name -> parsed JSON."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in dashboard_files()}


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, InfluxQL) of every panel target, annotation and query variable."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["query"]
    for annotation in dashboard["annotations"]["list"]:
        if "target" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["target"]["query"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']!r}", variable["query"]


DASHBOARDS = load_all()
PARAMS = sorted(DASHBOARDS)


def test_every_dashboard_exists_with_a_unique_uid() -> None:
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    assert {f"{u}.json" for u in uids} == set(DASHBOARDS)


@pytest.mark.parametrize("name", PARAMS)
def test_dashboard_model_basics(name: str) -> None:
    dashboard = DASHBOARDS[name]
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["title"].startswith("StockSense")
    assert "stocksense" in dashboard["tags"]
    assert dashboard.get("id") is None  # Grafana assigns one when it saves the dashboard
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    for panel in all_panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["description"], panel["title"]


@pytest.mark.parametrize("name", PARAMS)
def test_every_datasource_reference_is_the_stocksense_variable(name: str) -> None:
    dashboard = DASHBOARDS[name]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds_var = variables[DATASOURCE_VARIABLE]
    assert ds_var["type"] == "datasource"
    assert ds_var["query"] == "influxdb"
    assert ds_var["current"]["value"] == DATASOURCE_UID
    refs = []
    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        refs.append(panel["datasource"])
        refs.extend(t["datasource"] for t in panel["targets"])
    refs.extend(v["datasource"] for v in variables.values() if v["type"] == "query")
    refs.extend(a["datasource"] for a in dashboard["annotations"]["list"] if not a.get("builtIn"))
    assert refs
    assert all(ref == DS_REF for ref in refs), [r for r in refs if r != DS_REF]


@pytest.mark.parametrize("name", PARAMS)
def test_targets_are_raw_influxql_with_time_filter(name: str) -> None:
    dashboard = DASHBOARDS[name]
    targets = [t for p in all_panels(dashboard) for t in p.get("targets", [])]
    targets += [a["target"] for a in dashboard["annotations"]["list"] if "target" in a]
    for target in targets:
        assert target["rawQuery"] is True
        assert target["query"].startswith("SELECT "), target["query"]
        assert "$timeFilter" in target["query"], target["query"]
        assert target.get("resultFormat", "time_series") in {"time_series", "table"}
        if "GROUP BY time(" in target["query"] and "time(1m)" not in target["query"]:
            assert "GROUP BY time($__interval)" in target["query"], target["query"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert re.match(r'^SHOW TAG VALUES FROM "\w+" WITH KEY = "\w+"', variable["query"])
            assert variable.get("definition", variable["query"]) == variable["query"]


@pytest.mark.parametrize("name", PARAMS)
def test_measurements_tags_and_fields_exist_in_the_contract(name: str) -> None:
    checked = 0
    for where, query in queries(DASHBOARDS[name]):
        measurements = set(re.findall(r'FROM\s+((?:"\w+"(?:\s*,\s*)?)+)', query))
        names = {m for group in measurements for m in re.findall(r'"(\w+)"', group)}
        assert names, f"{where}: no measurement"
        unknown = names - CONTRACT.keys()
        assert not unknown, f"{where}: unknown measurements {unknown}"
        allowed = set(names) | set(re.findall(r'AS "(\w+)"', query))
        for measurement in names:
            tags, fields = CONTRACT[measurement]
            allowed |= tags | fields
        identifiers = set(re.findall(r'"(\w+)"', query))
        assert identifiers <= allowed, f"{where}: not in the contract: {identifiers - allowed}"
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("name", PARAMS)
def test_variables_and_aliases_resolve(name: str) -> None:
    dashboard = DASHBOARDS[name]
    defined = {v["name"] for v in dashboard["templating"]["list"]} | BUILTIN_VARIABLES
    for where, query in queries(dashboard):
        used = set(re.findall(r"\$\{?(\w+)", query))
        assert used <= defined, f"{where}: undefined variables {used - defined}"
        for regex_var in re.findall(r"=~ /\^\$(\w+)\$/", query):
            assert regex_var in defined
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            group_by = target["query"].rsplit("GROUP BY", 1)[-1]
            for tag in re.findall(r"\$tag_(\w+)", target.get("alias", "")):
                assert f'"{tag}"' in group_by, f"{panel['title']}: alias tag {tag} not grouped"


def test_cold_chain_has_band_thresholds_and_alert_annotations() -> None:
    dashboard = DASHBOARDS["stocksense-cold-chain.json"]
    panels = {p["title"]: p for p in all_panels(dashboard)}
    temperature = panels["Temperature per sensor"]["fieldConfig"]["defaults"]
    steps = [s["value"] for s in temperature["thresholds"]["steps"]]
    assert steps == [None, 2, 8]
    assert temperature["custom"]["thresholdsStyle"]["mode"] == "line+area"
    annotation = dashboard["annotations"]["list"][1]
    assert 'FROM "alerts"' in annotation["target"]["query"]
    assert annotation["target"]["textColumn"] == "message"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (variables["band_low"]["query"], variables["band_high"]["query"]) == ("2", "8")


def test_alert_table_colours_every_severity() -> None:
    dashboard = DASHBOARDS["stocksense-alerts.json"]
    table = next(p for p in all_panels(dashboard) if p["title"] == "Alert events")
    override = next(
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "severity"
    )
    props = {p["id"]: p["value"] for p in override["properties"]}
    assert props["custom.cellOptions"] == {"type": "color-background"}
    colours = props["mappings"][0]["options"]
    assert set(colours) == {"critical", "major", "minor", "warning", "info"}
    assert colours["critical"]["color"] == "dark-red"


def test_committed_json_is_what_the_code_generates() -> None:
    assert set(generate()) == set(DASHBOARDS) == {f"{uid}.json" for uid in BUILDERS}
    assert stale() == [], "run python -m dashboards.build"
    assert build_main(["--check"]) == 0


def test_build_writes_missing_and_changed_files_only(tmp_path: Path) -> None:
    assert sorted(write(tmp_path)) == sorted(generate())
    assert write(tmp_path) == []
    path = tmp_path / "stocksense-alerts.json"
    path.write_text(path.read_text(encoding="utf-8").replace("Alerts raised", "Raised"), "utf-8")
    (tmp_path / "stocksense-inventory.json").unlink()
    assert stale(tmp_path) == ["stocksense-alerts.json", "stocksense-inventory.json"]
    assert sorted(write(tmp_path)) == ["stocksense-alerts.json", "stocksense-inventory.json"]
    assert stale(tmp_path) == []


def kpi_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, query) of the panel targets on KPI measurements."""
    return [(w, q) for w, q in queries(dashboard) if w.startswith("panel") and '"kpi_' in q]


@pytest.mark.parametrize("name", ["stocksense-inventory.json", "stocksense-alert-response.json"])
def test_kpi_panels_read_one_kind_of_snapshot(name: str) -> None:
    found = kpi_queries(DASHBOARDS[name])
    assert len(found) >= 12
    for where, query in found:
        periods = re.findall(r"\"period\" = '(\w+)'", query)
        assert len(set(periods)) == 1, f"{where}: mixes or misses snapshot kinds: {query}"
        assert periods[0] in {"rolling", "day"}
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    assert variables["site"]["multi"] is False  # one site's figures at a time
    assert variables["site"]["query"] == 'SHOW TAG VALUES FROM "kpi_site" WITH KEY = "site"'


def test_inventory_health_shows_every_figure_and_drills_down_to_a_sku() -> None:
    dashboard = DASHBOARDS["stocksense-inventory.json"]
    panels = {p["title"]: p for p in all_panels(dashboard)}
    text = " ".join(t["query"] for p in panels.values() for t in p.get("targets", []))
    for field in (
        "stock_value", "stockout_rate", "fill_rate", "slow_skus", "slow_value", "dead_skus",
        "dead_value", "turnover", "days_of_supply",
    ):  # fmt: skip
        assert f'"{field}"' in text, field
    ageing = panels["Stock by age"]
    assert ageing["type"] == "barchart"
    assert ageing["options"]["xField"] == "bucket"
    assert 'GROUP BY "bucket" ORDER BY time DESC LIMIT 1' in ageing["targets"][0]["query"]
    lots = panels["Lots due in 7 and 30 days"]["targets"][0]["query"]
    assert 'FROM "kpi_lots_due"' in lots
    assert 'GROUP BY "date", "horizon_days"' in lots
    skus = panels["SKUs"]
    link = next(
        p["value"][0]
        for o in skus["fieldConfig"]["overrides"]
        if o["matcher"]["options"] == "sku"
        for p in o["properties"]
        if p["id"] == "links"
    )
    assert link["url"].startswith("/d/stocksense-inventory?var-site=${site}&var-sku=${__value.raw}")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["sku"]["multi"] is True
    for title in ("Turnover per day", "Days of supply per day", "Stock-out rate per day"):
        query = panels[title]["targets"][0]["query"]
        assert '"sku" =~ /^$sku$/' in query
        assert "\"period\" = 'day'" in query


def test_alert_response_shows_times_and_the_in_time_share() -> None:
    dashboard = DASHBOARDS["stocksense-alert-response.json"]
    panels = {p["title"]: p for p in all_panels(dashboard)}
    fields = {
        re.findall(r'"(\w+_s|acked_in_time_share)"', t["query"])[0]
        for p in panels.values()
        for t in p.get("targets", [])
        if re.search(r'"(\w+_s|acked_in_time_share)"', t["query"])
    }
    assert fields >= {"ack_mean_s", "ack_p90_s", "resolve_mean_s", "resolve_p90_s"}
    share = panels["Acknowledged within the escalation time"]
    assert share["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert [t["alias"] for t in panels["Time to acknowledge"]["targets"]] == [
        "mean $tag_type/$tag_severity",
        "p90 $tag_type/$tag_severity",
    ]
    trend = panels["Alerts per day by severity"]
    assert "\"period\" = 'day'" in trend["targets"][0]["query"]
    colours = {
        o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"]
        for o in trend["fieldConfig"]["overrides"]
    }
    assert colours["critical"] == "dark-red"


def test_provisioning_matches_the_dashboards() -> None:
    prov = DASHBOARD_DIR / "provisioning"
    datasources = yaml.safe_load((prov / "datasources" / "stocksense.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "influxdb"
    assert source["url"] == "${INFLUX_URL}"
    assert source["database"] == source["jsonData"]["dbName"] == "${INFLUX_DB}"
    assert source["jsonData"]["version"] == "InfluxQL"
    providers = yaml.safe_load((prov / "dashboards" / "stocksense.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((DASHBOARD_DIR / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    for path in dashboard_files():
        assert f"./{path.name}:{provider['options']['path']}/{path.name}:ro" in mounts
    env = compose["services"]["grafana"]["environment"]
    assert env["INFLUX_URL"] == "http://influxdb:8086"
    assert env["INFLUX_DB"] == compose["services"]["influxdb"]["environment"]["INFLUXDB_DB"]
    assert compose["services"]["influxdb"]["image"] == "influxdb:1.8"


# ------------------------------------------------------------------------------ push command

TOKEN = "glsa_test_0123456789abcdef"


class FakeGrafana(BaseHTTPRequestHandler):
    """Just enough of the Grafana HTTP API: folders and dashboard saves, bearer-token auth."""

    folders: list[dict[str, Any]]
    saved: list[dict[str, Any]]
    auth_headers: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Silence the default stderr access log."""

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        self.auth_headers.append(header)
        if header != f"Bearer {TOKEN}":
            self._reply(401, {"message": "invalid API key"})
            return False
        return True

    def do_GET(self) -> None:
        """List folders."""
        if self._authorised() and self.path.startswith("/api/folders"):
            self._reply(200, self.folders)

    def do_POST(self) -> None:
        """Create a folder or save a dashboard."""
        if not self._authorised():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/folders":
            folder = {"id": len(self.folders) + 1, "uid": body["uid"], "title": body["title"]}
            self.folders.append(folder)
            self._reply(200, folder)
        elif self.path == "/api/dashboards/db":
            self.saved.append(body)
            uid = body["dashboard"]["uid"]
            self._reply(200, {"status": "success", "uid": uid, "url": f"/d/{uid}", "version": 1})
        else:
            self._reply(404, {"message": "not found"})


@pytest.fixture
def grafana() -> Iterator[tuple[str, type[FakeGrafana]]]:
    """A fake Grafana on a free loopback port."""
    handler = type("Handler", (FakeGrafana,), {"folders": [], "saved": [], "auth_headers": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_push_creates_the_folder_and_overwrites_every_dashboard(
    grafana: tuple[str, type[FakeGrafana]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = grafana
    caplog.set_level(logging.INFO)
    assert main(["--url", url, "--token", TOKEN, "--folder", "Cold Store Ops"]) == 0
    assert handler.folders == [{"id": 1, "uid": "cold-store-ops", "title": "Cold Store Ops"}]
    assert {s["dashboard"]["uid"] for s in handler.saved} == EXPECTED_UIDS
    assert all(s["overwrite"] is True for s in handler.saved)
    assert all(s["folderUid"] == "cold-store-ops" for s in handler.saved)
    assert all(s["dashboard"]["id"] is None for s in handler.saved)
    assert set(handler.auth_headers) == {f"Bearer {TOKEN}"}
    assert f"pushed {len(EXPECTED_UIDS)} dashboards" in caplog.text
    assert TOKEN not in caplog.text


def test_push_reuses_an_existing_folder(
    grafana: tuple[str, type[FakeGrafana]], tmp_path: Path
) -> None:
    url, handler = grafana
    handler.folders.append({"id": 7, "uid": "abc123", "title": "StockSense"})
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert main(["--url", url, "--token-file", str(token_file)]) == 0
    assert len(handler.folders) == 1
    assert {s["folderUid"] for s in handler.saved} == {"abc123"}
    assert len(handler.saved) == len(EXPECTED_UIDS)


def test_push_reports_a_rejected_token_without_echoing_it(
    grafana: tuple[str, type[FakeGrafana]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = grafana
    wrong = "glsa_wrong_token_value"
    assert main(["--url", url, "--token", wrong]) == 1
    assert "rejected the token (HTTP 401)" in caplog.text
    assert wrong not in caplog.text
    assert handler.saved == []


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_push_reports_an_unreachable_grafana(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    assert main(["--url", url, "--token", TOKEN, "--timeout", "2"]) == 1
    assert f"cannot reach Grafana at {url}" in caplog.text
    assert TOKEN not in caplog.text


def test_helpers_hide_credentials() -> None:
    assert safe_url("http://admin:s3cret@grafana:3000/sub") == "http://grafana:3000/sub"
    assert safe_url("https://grafana.example.com") == "https://grafana.example.com"
    assert redact("token abc leaked abc", "abc") == "token *** leaked ***"
    assert folder_uid_for("StockSense / Ops") == "stocksense-ops"


def test_load_dashboards_rejects_a_model_without_uid(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"title": "x"}')
    with pytest.raises(PushError, match=r"broken\.json: a dashboard needs"):
        load_dashboards(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(PushError, match="cannot read dashboard JSON"):
        load_dashboards(tmp_path)
    assert [d["uid"] for d in load_dashboards()] == sorted(EXPECTED_UIDS)
