"""Every dashboard query, rendered as Grafana would, runs against the real InfluxDB 1.x."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest

from core.influx import InfluxClient, line, query_sync, rows
from core.kpi import AgeBucket, AlertResponseFigures, LotsDueFigures, Period, SiteKpis, SkuKpi
from core.settings import Settings
from dashboards import dashboard_files
from rules.kpi.service import kpi_lines

pytestmark = pytest.mark.integration

MINUTE_NS = 60 * 1_000_000_000
NOW_NS = time.time_ns()
T0 = (NOW_NS // MINUTE_NS - 45) * MINUTE_NS  # first point, on a whole minute
Fields = dict[str, float | int | bool | str | None]


def _at(minute: int, offset_s: int = 0) -> int:
    return T0 + minute * MINUTE_NS + offset_s * 1_000_000_000


def data_set() -> list[str]:
    """A small warehouse: two sites, a cold room with one excursion, shelves, readers, stock."""
    lines: list[str] = []

    def add(measurement: str, tags: dict[str, str], fields: Fields, ts_ns: int) -> None:
        lines.append(line(measurement, tags, fields, ts_ns))

    for minute in range(40):
        # cold room at 4.0 °C except a 5-minute excursion to 9.5 °C (minutes 30-34)
        celsius = 9.5 if 30 <= minute < 35 else 4.0
        tags = {"site": "wh1", "device": "coldroom-1", "sensor": "t1"}
        add("temperature", tags, {"celsius": celsius, "humidity": 80.0, "seq": minute}, _at(minute))
        tags = {"site": "wh1", "device": "ambient-1", "sensor": "t1"}
        add("temperature", tags, {"celsius": 20.0, "humidity": 45.0, "seq": minute}, _at(minute))
        tags = {"site": "wh2", "device": "freezer-9", "sensor": "t1"}
        add("temperature", tags, {"celsius": -18.0, "seq": minute}, _at(minute))
    for minute, c1 in ((0, 9987.5), (10, 7487.5)):
        for cell, grams in (("c1", c1), ("c2", 2500.0)):
            tags = {"site": "wh1", "device": "shelf-1", "cell": cell}
            add("weight", tags, {"grams": grams, "stable": True, "seq": minute}, _at(minute))
    for i in range(6):  # antenna 1: 3 distinct EPCs read twice each; antenna 2: 2 EPCs x 3 reads
        tags = {"site": "wh1", "device": "reader-1", "antenna": "1"}
        fields: Fields = {"epc": f"3034257BF7194E400000303{i % 3}", "rssi": -50.0 - i, "count": 1}
        add("rfid", tags, {**fields, "seq": i}, _at(5 + i))
    for i in range(2):
        tags = {"site": "wh1", "device": "reader-1", "antenna": "2"}
        fields = {"epc": f"3034257BF7194E40000030A{i}", "rssi": -61.0, "count": 3, "seq": 10 + i}
        add("rfid", tags, fields, _at(20 + i))
    add(
        "device_status",
        {"site": "wh1", "kind": "temp", "device": "coldroom-1"},
        {"online": True, "interval_s": 10.0},
        _at(0),
    )
    add(
        "device_status",
        {"site": "wh1", "kind": "weight", "device": "shelf-1"},
        {"online": True, "interval_s": 10.0},
        _at(0),
    )
    add(
        "device_status",
        {"site": "wh1", "kind": "weight", "device": "shelf-1"},
        {"online": False, "reason": "lwt"},
        _at(25),
    )
    alert: Fields = {
        "alert_id": 1,
        "title": "Cold-chain excursion in Cold room 1",
        "message": "coldroom-1/t1 reads 9.5 °C, above the 2–8 °C band",
        "source": "wh1/cold-room",
        "value": 9.5,
        "threshold": 8.0,
    }
    cold = {
        "site": "wh1",
        "zone": "cold-room",
        "type": "cold_chain_excursion",
        "severity": "critical",
    }
    add("alerts", {**cold, "event": "raised"}, {**alert, "state": "active"}, _at(31))
    add("alerts", {**cold, "event": "cleared"}, {**alert, "state": "cleared"}, _at(35))
    add(
        "alerts",
        {
            "site": "wh1",
            "zone": "ambient",
            "type": "reorder",
            "severity": "major",
            "event": "raised",
        },
        {
            "alert_id": 2,
            "state": "active",
            "title": "Reorder SKU-1",
            "message": "13 ≤ 15",
            "source": "wh1/SKU-1",
            "value": 13.0,
            "threshold": 15.0,
        },
        _at(36),
    )
    for minute, location, sku, qty in (
        (1, "A-01", "SKU-1", 10),
        (12, "A-01", "SKU-1", 8),
        (2, "B-02", "SKU-1", 5),
        (3, "A-02", "SKU-2", 20),
    ):
        tags = {"site": "wh1", "location": location, "sku": sku, "basis": "ledger"}
        add("stock", tags, {"qty": qty}, _at(minute))
    # RFID zone counts share the measurement; stock panels must not add them to the ledger.
    add("stock", {"site": "wh1", "location": "dock-in", "sku": "SKU-1", "basis": "rfid"},
        {"qty": 99}, _at(5))  # fmt: skip
    add(
        "movements",
        {"site": "wh1", "sku": "SKU-1", "kind": "pick", "source": "sensor"},
        {"qty": 2, "location": "A-01", "lot": "L2026-11"},
        _at(12),
    )
    add(
        "movements",
        {"site": "wh1", "sku": "SKU-2", "kind": "receipt", "source": "sensor"},
        {"qty": 20, "location": "A-02", "lot": "L2026-12"},
        _at(3),
    )
    add("suggestions", {"site": "wh1", "sku": "SKU-1", "state": "open"}, {"qty": 50}, _at(37))
    # KPI snapshots as the pipeline writes them: two day roll-ups, then two rolling ones.
    lines += kpi_lines(kpi_snapshot("day", _at(10), on_hand=30, acked_after_s=120))
    lines += kpi_lines(kpi_snapshot("day", _at(20), on_hand=25, acked_after_s=600))
    lines += kpi_lines(kpi_snapshot("rolling", _at(30), on_hand=22, acked_after_s=300))
    lines += kpi_lines(kpi_snapshot("rolling", _at(38), on_hand=20, acked_after_s=240))
    return lines


def kpi_snapshot(period: Period, end_ns: int, *, on_hand: float, acked_after_s: float) -> SiteKpis:
    """A KPI snapshot of site wh1 with two SKUs (SKU-2 undemanded), ageing, lots and alerts."""

    def sku(name: str, qty: float, outflow: float) -> SkuKpi:
        daily = outflow / 30
        return SkuKpi(
            sku=name, on_hand=qty, available=qty, unit_cost=2.0, value=qty * 2.0,
            outflow=outflow, avg_on_hand=qty, turnover=outflow / qty if qty else None,
            avg_daily_demand=daily, days_of_supply=qty / daily if daily else None, days=30,
            days_with_demand=10 if outflow else 0, stockout_days=3 if outflow else 0,
            stockout_rate=0.1 if outflow else 0.0, fill_rate=0.8 if outflow else None,
            idle_days=1.0 if outflow else 40.0, movement="active" if outflow else "slow",
        )  # fmt: skip

    skus = [sku("SKU-1", on_hand, 15.0), sku("SKU-2", 20.0, 0.0)]
    return SiteKpis(
        site="wh1", period=period, start_ms=0, end_ms=end_ns // 1_000_000, timezone="UTC",
        stock_value=sum(s.value for s in skus), stockout_rate=0.05, fill_rate=0.8, slow_skus=1,
        slow_value=40.0, dead_skus=0, dead_value=0.0, skus=skus,
        ageing=[
            AgeBucket(label=label, qty=qty, value=qty * 2.0)
            for label, qty in (("0-30", on_hand), ("31-60", 0.0), ("61-90", 20.0), ("90+", 0.0))
        ],
        lots_due=[
            LotsDueFigures(date=date, horizon_days=h, lots=lots, qty=lots * 5.0, value=lots * 10)
            for date in ("alert", "removal", "expiration")
            for h, lots in ((7, 1), (30, 2))
        ],
        alerts=[
            AlertResponseFigures(
                type="cold_chain_excursion", severity="critical", count=2, acked=2, resolved=1,
                ack_mean_s=acked_after_s, ack_p90_s=2 * acked_after_s, resolve_mean_s=900.0,
                resolve_p90_s=900.0, acked_in_time_share=0.5,
            ),
            AlertResponseFigures(
                type="reorder", severity="major", count=1, acked=0, resolved=0, ack_mean_s=None,
                ack_p90_s=None, resolve_mean_s=None, resolve_p90_s=None, acked_in_time_share=None,
            ),
        ],
    )  # fmt: skip


def regex_escape(value: str) -> str:
    """Escape a value for an InfluxQL regex, as Grafana's InfluxDB datasource does."""
    return re.sub(r"([\\^$*+?.()|\[\]{}/])", r"\\\1", value)


def render(
    query: str,
    values: dict[str, str | list[str]],
    *,
    range_ms: tuple[int, int] | None = None,
    interval: str = "1m",
) -> str:
    """Interpolate a query like Grafana: $timeFilter, $__interval and template variables.

    A list value is a multi-value selection (``(a|b)``); ``"$__all"`` uses the allValue ``.*``.
    ``range_ms`` is the dashboard's time range (by default around :func:`data_set`).
    """
    start_ms, end_ms = range_ms or (T0 // 1_000_000 - 60_000, NOW_NS // 1_000_000 + 60_000)
    out = query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    out = out.replace("$__interval", interval)
    for name in sorted(values, key=len, reverse=True):
        value = values[name]
        if value == "$__all":
            text = ".*"
        elif isinstance(value, list):
            escaped = [regex_escape(v) for v in value]
            text = escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        elif f"/^${name}$/" in out:
            text = regex_escape(value)
        else:
            text = value
        out = out.replace(f"${{{name}}}", text).replace(f"${name}", text)
    assert not re.search(r"\$\{?\w", out), f"unrendered variable in {out}"
    return out


DEFAULTS: dict[str, str | list[str]] = {
    "site": "wh1",
    "device": "$__all",
    "sensor": "$__all",
    "band_low": "2",
    "band_high": "8",
    "sku": "$__all",
    "shelf": "$__all",
    "reader": "$__all",
    "severity": "$__all",
    "type": "$__all",
}


def panel_queries(model: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(key, target) of every panel target: the panel's title, ``title#B`` for a second one."""
    out = []
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            suffix = "" if target["refId"] == "A" else f"#{target['refId']}"
            out.append((f"{panel['title']}{suffix}", target))
    return out


def dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard model."""
    models = [json.loads(p.read_text(encoding="utf-8")) for p in dashboard_files()]
    return {m["uid"]: m for m in models}


@pytest.fixture
def loaded(settings: Settings) -> Settings:
    """The unique test database, filled with :func:`data_set`."""

    async def write() -> None:
        client = InfluxClient(settings.influx)
        try:
            await client.ensure_database()
            await client.write(("\n".join(data_set()) + "\n").encode())
        finally:
            await client.aclose()

    asyncio.run(write())
    return settings


def by_title(settings: Settings, values: dict[str, str | list[str]]) -> dict[str, Any]:
    """Run every panel, annotation and variable query; key -> series (panel title or var name)."""
    results: dict[str, Any] = {}
    for uid, model in dashboards().items():
        for key, target in panel_queries(model):
            query = render(target["query"], values)
            results[f"{uid}:{key}"] = query_sync(settings.influx, query)
        for annotation in model["annotations"]["list"]:
            if "target" in annotation:
                query = render(annotation["target"]["query"], values)
                results[f"{uid}:@{annotation['name']}"] = query_sync(settings.influx, query)
        for variable in model["templating"]["list"]:
            if variable["type"] == "query":
                query = render(variable["query"], values)
                series = query_sync(settings.influx, query)
                results[f"{uid}:${variable['name']}"] = sorted(r["value"] for r in rows(series))
    return results


def by_tags(series: list[dict[str, Any]], column: str, *tags: str) -> dict[str, Any]:
    """Last non-null ``column`` value per series, keyed by its tag values joined with '/'."""
    out: dict[str, Any] = {}
    for s in series:
        index = s["columns"].index(column)
        values = [v[index] for v in s["values"] if v[index] is not None]
        out["/".join(s["tags"][t] for t in tags)] = values[-1]
    return out


def test_every_query_runs_and_returns_the_written_values(loaded: Settings) -> None:
    results = by_title(loaded, DEFAULTS)
    empty = [key for key, series in results.items() if not series]
    assert empty == []  # the data set covers every panel, annotation and variable

    cold = {k.split(":", 1)[1]: v for k, v in results.items() if k.startswith("stocksense-cold")}
    assert cold["$site"] == ["wh1", "wh2"]
    assert cold["$device"] == ["ambient-1", "coldroom-1"]
    assert cold["$sensor"] == ["t1"]
    summary = {(r["device"], r["sensor"]): r for r in rows(cold["Sensor summary"])}
    assert set(summary) == {("ambient-1", "t1"), ("coldroom-1", "t1")}  # wh2 filtered out
    assert summary["coldroom-1", "t1"]["max"] == 9.5
    assert summary["coldroom-1", "t1"]["min"] == 4.0
    assert summary["coldroom-1", "t1"]["readings"] == 40
    assert by_tags(cold["Time out of band"], "count", "device", "sensor") == {
        "coldroom-1/t1": 300,  # five one-minute means at 9.5 °C
        "ambient-1/t1": 2400,  # always above 8 °C
    }
    assert by_tags(cold["Current temperature"], "last", "device", "sensor") == {
        "coldroom-1/t1": 4.0,
        "ambient-1/t1": 20.0,
    }
    mkt = by_tags(cold["Mean kinetic temperature"], "mkt", "device", "sensor")
    assert mkt["ambient-1/t1"] == pytest.approx(20.0, abs=1e-6)
    assert 4.0 < mkt["coldroom-1/t1"] < 9.5
    peaks = by_tags(cold["Temperature per sensor"], "mean", "device", "sensor")
    assert peaks == {"coldroom-1/t1": 4.0, "ambient-1/t1": 20.0}  # last interval
    peak = {
        s["tags"]["device"]: max(v[1] for v in s["values"] if v[1] is not None)
        for s in cold["Temperature per sensor"]
    }
    assert peak == {"coldroom-1": 9.5, "ambient-1": 20.0}
    events = rows(cold["Cold-chain alert events"])
    assert [e["event"] for e in events] == ["cleared", "raised"]  # newest first
    annotations = rows(cold["@Cold-chain alerts"])
    assert {a["severity"] for a in annotations} == {"critical"}
    assert annotations[0]["message"].startswith("coldroom-1/t1 reads 9.5")

    wh = {k.split(":", 1)[1]: v for k, v in results.items() if k.startswith("stocksense-ware")}
    assert wh["$sku"] == ["SKU-1", "SKU-2"]
    assert wh["$shelf"] == ["shelf-1"]
    assert wh["$reader"] == ["reader-1"]
    assert by_tags(wh["Stock on hand per SKU"], "sum", "sku") == {"SKU-1": 13, "SKU-2": 20}
    levels = by_tags(wh["Stock level per SKU and location"], "last", "sku", "location")
    assert levels == {"SKU-1/A-01": 8, "SKU-1/B-02": 5, "SKU-2/A-02": 20}
    moved = {s["tags"]["kind"]: sum(v[1] for v in s["values"]) for s in wh["Movements per kind"]}
    assert moved == {"pick": 2, "receipt": 20}
    recent = rows(wh["Recent movements"])
    assert [(m["kind"], m["sku"], m["lot"]) for m in recent] == [
        ("pick", "SKU-1", "L2026-11"),
        ("receipt", "SKU-2", "L2026-12"),
    ]
    assert [(s["sku"], s["state"], s["qty"]) for s in rows(wh["Purchase suggestions"])] == [
        ("SKU-1", "open", 50)
    ]
    assert by_tags(wh["Current load per cell"], "last", "device", "cell") == {
        "shelf-1/c1": 7487.5,
        "shelf-1/c2": 2500.0,
    }
    reads = {
        s["tags"]["antenna"]: sum(v[1] for v in s["values"])
        for s in wh["RFID reads per reader and antenna"]
    }
    assert reads == {"1": 6, "2": 6}
    distinct = by_tags(wh["Distinct EPCs per reader and antenna"], "count", "device", "antenna")
    assert distinct == {"reader-1/1": 3, "reader-1/2": 2}
    assert by_tags(wh["RSSI per antenna"], "mean", "device", "antenna")["reader-1/2"] == -61.0
    assert by_tags(wh["Device online status"], "last", "kind", "device") == {
        "temp/coldroom-1": True,
        "weight/shelf-1": False,
    }
    assert rows(wh["Devices offline"])[0]["count"] == 1
    latest = {(r["kind"], r["device"]): r["online"] for r in rows(wh["Latest device status"])}
    assert latest == {("temp", "coldroom-1"): True, ("weight", "shelf-1"): False}
    written = {
        s["name"]: sum(v[1] for v in s["values"]) for s in wh["Readings written per measurement"]
    }
    assert written == {"temperature": 80, "weight": 4, "rfid": 8}  # site wh1 only

    al = {k.split(":", 1)[1]: v for k, v in results.items() if k.startswith("stocksense-alerts")}
    assert al["$severity"] == ["critical", "major"]
    assert al["$type"] == ["cold_chain_excursion", "reorder"]
    assert rows(al["Alerts raised"])[0]["count"] == 2
    assert rows(al["Critical alerts raised"])[0]["count"] == 1
    assert rows(al["Alerts cleared"])[0]["count"] == 1
    assert by_tags(al["Raised per type"], "count", "type") == {
        "cold_chain_excursion": 1,
        "reorder": 1,
    }
    per_severity = {
        s["tags"]["severity"]: sum(v[1] for v in s["values"])
        for s in al["Alerts raised by severity"]
    }
    assert per_severity == {"critical": 1, "major": 1}
    table = rows(al["Alert events"])
    assert [(r["severity"], r["event"], r["alert_id"]) for r in table] == [
        ("major", "raised", 2),
        ("critical", "cleared", 1),
        ("critical", "raised", 1),
    ]
    assert len(rows(al["@Alerts"])) == 3

    inv = {k.split(":", 1)[1]: v for k, v in results.items() if k.startswith("stocksense-inv")}
    assert inv["$site"] == ["wh1"]
    assert inv["$sku"] == ["SKU-1", "SKU-2"]
    assert rows(inv["Stock value"])[0]["last"] == 80.0  # the latest rolling: (20 + 20) units at 2.0
    assert rows(inv["Fill rate"])[0]["last"] == 0.8
    slow = inv["Slow and dead SKUs"][0]
    assert dict(zip(slow["columns"], slow["values"][0], strict=True))["slow"] == 1
    assert [v[1] for v in inv["Stock value per day"][0]["values"]] == [100.0, 90.0]
    ages = {r["bucket"]: (r["qty"], r["value"]) for r in rows(inv["Stock by age"])}
    assert ages == {"0-30": (20, 40), "31-60": (0, 0), "61-90": (20, 40), "90+": (0, 0)}
    due = {
        (r["date"], r["horizon_days"]): r["lots"] for r in rows(inv["Lots due in 7 and 30 days"])
    }
    assert len(due) == 6
    assert due["expiration", "7"] == 1
    assert due["removal", "30"] == 2
    skus = {r["sku"]: r for r in rows(inv["SKUs"])}
    assert skus["SKU-1"]["on_hand"] == 20
    assert skus["SKU-1"]["days_of_supply"] == 40  # 20 ÷ (15 / 30)
    assert skus["SKU-2"]["days_of_supply"] is None  # undefined without demand, not 0
    assert skus["SKU-2"]["movement"] == "slow"
    turnover = {s["tags"]["sku"]: [v[1] for v in s["values"]] for s in inv["Turnover per day"]}
    assert turnover == {"SKU-1": [0.5, 0.6], "SKU-2": [0.0, 0.0]}

    ar = {k.split(":", 1)[1]: v for k, v in results.items() if "alert-response" in k}
    assert ar["$type"] == ["cold_chain_excursion", "reorder"]
    totals = ar["Alerts raised, acknowledged and resolved"][0]
    assert dict(zip(totals["columns"], totals["values"][0], strict=True)) == {
        "time": 0,
        "raised": 3,
        "acknowledged": 2,
        "resolved": 1,
    }
    assert by_tags(ar["Alerts by type"], "sum", "type") == {"cold_chain_excursion": 2, "reorder": 1}
    ack = by_tags(ar["Time to acknowledge"], "last", "type", "severity")
    assert ack == {"cold_chain_excursion/critical": 240.0}  # reorder: none acknowledged
    assert by_tags(ar["Time to acknowledge#B"], "last", "type", "severity") == {
        "cold_chain_excursion/critical": 480.0
    }
    per_day = by_tags(ar["Time to acknowledge per day"], "ack_mean_s", "type", "severity")
    assert per_day == {"cold_chain_excursion/critical": 600.0}
    response = {(r["type"], r["severity"]): r for r in rows(ar["Response per type and severity"])}
    assert response["reorder", "major"]["count"] == 1
    assert response["reorder", "major"]["acked_in_time_share"] is None
    assert response["cold_chain_excursion", "critical"]["acked_in_time_share"] == 0.5


def test_selections_render_as_grafana_regexes(loaded: Settings) -> None:
    values: dict[str, str | list[str]] = {
        **DEFAULTS,
        "device": ["coldroom-1"],
        "severity": ["critical", "warning"],
        "sku": ["SKU-2"],
        "site": "wh2",
    }
    results = by_title(loaded, values)
    wh2_summary = rows(results["stocksense-cold-chain:Sensor summary"])
    assert wh2_summary == []  # coldroom-1 does not exist in wh2
    values["site"] = "wh1"
    results = by_title(loaded, values)
    summary = rows(results["stocksense-cold-chain:Sensor summary"])
    assert [(r["device"], r["max"]) for r in summary] == [("coldroom-1", 9.5)]
    table = rows(results["stocksense-alerts:Alert events"])
    assert {r["severity"] for r in table} == {"critical"}
    stock = by_tags(results["stocksense-warehouse:Stock on hand per SKU"], "sum", "sku")
    assert stock == {"SKU-2": 20}
