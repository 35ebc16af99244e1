"""Inventory health (uid ``stocksense-inventory``): the KPIs of one site (docs/kpis.md) from the
latest rolling snapshot, and their daily roll-ups as trends, down to each SKU."""

# ruff: noqa: S608 - InfluxQL from this module's constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.kit import (
    Influx,
    barchart,
    colour_cells,
    dashboard,
    prop,
    row,
    stat,
    table,
    tag_variable,
    timeseries,
    value_colours,
)

UID = "stocksense-inventory"
SITE = '"site" =~ /^$site$/'
ROLLING = "\"period\" = 'rolling' AND $timeFilter"
DAY = "\"period\" = 'day' AND $timeFilter"
SITE_KPIS = f'FROM "kpi_site" WHERE {SITE} AND'
SKU_KPIS = f'FROM "kpi_sku" WHERE {SITE} AND "sku" =~ /^$sku$/ AND'
# The table lists every SKU of the site, so that another can be picked after the first.
ALL_SKUS = f'FROM "kpi_sku" WHERE {SITE} AND'
# A table's newest row per series: the latest snapshot of each SKU, bucket or horizon.
LATEST = "ORDER BY time DESC LIMIT 1"
MOVEMENT = {"active": ("active", "green"), "slow": ("slow", "orange"), "dead": ("dead", "red")}
SKU_LINK = "/d/stocksense-inventory?var-site=${site}&var-sku=${__value.raw}&${__url_time_range}"


def build() -> Dashboard:
    """The inventory-health dashboard."""
    board = dashboard(
        UID,
        "Inventory health",
        "Stock value, stock-outs, fill rate, slow and dead stock, ageing, lots due and per-SKU"
        " turnover and days of supply of one site, from the pipeline's KPI snapshots.",
        ["inventory", "kpi"],
    ).time("now-30d", "now")
    board.with_variable(tag_variable("site", "Site", "kpi_site", "site", multi=False))
    board.with_variable(tag_variable("sku", "SKU", "kpi_sku", "sku", where=["site"]))
    _site(board)
    _ageing_and_lots(board)
    _skus(board)
    return board


def _site(board: Dashboard) -> None:
    board.with_row(row(1, "Site: the latest rolling snapshot and the daily roll-ups", 0))
    board.with_panel(
        stat(
            2,
            "Stock value",
            "On hand × unit cost over every SKU of the site, now.",
            (0, 1, 4, 5),
            Influx(f'SELECT last("stock_value") {SITE_KPIS} {ROLLING}'),
            unit="short",
        )
    )
    board.with_panel(
        stat(
            3,
            "Stock-out rate",
            "Stock-out SKU-days ÷ SKU-days of the rolling period: days with demand while on hand"
            " was 0 or less.",
            (4, 1, 4, 5),
            Influx(f'SELECT last("stockout_rate") {SITE_KPIS} {ROLLING}'),
            unit="percentunit",
            decimals=1,
            steps=((None, "green"), (0.02, "orange"), (0.05, "red")),
        )
    )
    board.with_panel(
        stat(
            4,
            "Fill rate",
            "Units of demand lines fulfilled ÷ units due in the rolling period (empty when"
            " nothing was due).",
            (8, 1, 4, 5),
            Influx(f'SELECT last("fill_rate") {SITE_KPIS} {ROLLING}'),
            unit="percentunit",
            decimals=1,
            steps=((None, "red"), (0.9, "orange"), (0.98, "green")),
        )
    )
    board.with_panel(
        stat(
            5,
            "Slow and dead SKUs",
            "SKUs with stock and no outflow for the slow (30 days) and dead (90 days) thresholds.",
            (12, 1, 6, 5),
            Influx(
                f'SELECT last("slow_skus") AS "slow", last("dead_skus") AS "dead" {SITE_KPIS}'
                f" {ROLLING}"
            ).alias("$col"),
            steps=((None, "green"), (1, "orange")),
            names=True,
        )
    )
    board.with_panel(
        stat(
            6,
            "Slow and dead stock value",
            "Value at unit cost of the slow and of the dead SKUs' stock.",
            (18, 1, 6, 5),
            Influx(
                f'SELECT last("slow_value") AS "slow", last("dead_value") AS "dead" {SITE_KPIS}'
                f" {ROLLING}"
            ).alias("$col"),
            unit="short",
            steps=((None, "green"), (1, "orange")),
            names=True,
        )
    )
    board.with_panel(
        timeseries(
            7,
            "Stock value per day",
            "Stock value at the end of each local day (daily roll-ups).",
            (0, 6, 12, 8),
            Influx(f'SELECT "stock_value" {SITE_KPIS} {DAY}').alias("stock value"),
            unit="short",
            minimum=0,
            points=True,
        )
    )
    board.with_panel(
        timeseries(
            8,
            "Stock-out and fill rate per day",
            "Each local day's stock-out rate and fill rate (daily roll-ups; no fill rate on a"
            " day without demand lines due).",
            (12, 6, 12, 8),
            Influx(
                f'SELECT "stockout_rate" AS "stock-out rate", "fill_rate" AS "fill rate"'
                f" {SITE_KPIS} {DAY}"
            ).alias("$col"),
            unit="percentunit",
            minimum=0,
            points=True,
        )
    )


def _ageing_and_lots(board: Dashboard) -> None:
    board.with_row(row(9, "Ageing and lots due", 14))
    board.with_panel(
        barchart(
            10,
            "Stock by age",
            "Units and value in lots by whole days since receipt (STOCKSENSE_KPI__AGE_BUCKETS),"
            " latest rolling snapshot.",
            (0, 15, 12, 8),
            Influx(
                f'SELECT "qty", "value" FROM "kpi_ageing" WHERE {SITE} AND {ROLLING}'
                f' GROUP BY "bucket" {LATEST}'
            ),
            x_field="bucket",
            overrides=[("value", [prop("custom.axisPlacement", "right"), prop("unit", "short")])],
        )
    )
    board.with_panel(
        table(
            11,
            "Lots due in 7 and 30 days",
            "Lots on hand whose alert, removal or expiration date falls within the next 7 or 30"
            " days (dates already passed are the expiry alerts' business).",
            (12, 15, 12, 8),
            Influx(
                f'SELECT "lots", "qty", "value" FROM "kpi_lots_due" WHERE {SITE} AND {ROLLING}'
                f' GROUP BY "date", "horizon_days" {LATEST}'
            ),
            decimals=0,
            overrides=[
                ("Time", [prop("custom.hidden", True)]),
                ("date", [prop("displayName", "date kind")]),
                ("horizon_days", [prop("displayName", "within (days)")]),
            ],
        )
    )


def _skus(board: Dashboard) -> None:
    board.with_row(row(12, "Per SKU: pick one in the table, or in the SKU variable", 23))
    columns = (
        '"on_hand", "available", "value", "turnover", "days_of_supply", "stockout_rate",'
        ' "fill_rate", "idle_days", "movement"'
    )
    board.with_panel(
        table(
            13,
            "SKUs",
            "Latest rolling snapshot per SKU. Turnover is turns in the rolling period; click a"
            " SKU to show only its trends below.",
            (0, 24, 24, 9),
            Influx(f'SELECT {columns} {ALL_SKUS} {ROLLING} GROUP BY "sku" {LATEST}'),
            decimals=2,
            overrides=[
                ("Time", [prop("custom.hidden", True)]),
                (
                    "sku",
                    [prop("links", [{"title": "Show ${__value.raw} only", "url": SKU_LINK}])],
                ),
                (
                    "stockout_rate",
                    [prop("unit", "percentunit"), prop("displayName", "stock-out rate")],
                ),
                ("fill_rate", [prop("unit", "percentunit"), prop("displayName", "fill rate")]),
                ("days_of_supply", [prop("unit", "d"), prop("displayName", "days of supply")]),
                ("idle_days", [prop("unit", "d"), prop("displayName", "idle")]),
                (
                    "movement",
                    [prop("mappings", value_colours(MOVEMENT)), colour_cells("color-text")],
                ),
            ],
            filterable=True,
        )
    )
    board.with_panel(
        timeseries(
            14,
            "Turnover per day",
            "Outflow ÷ average on hand of each local day, per SKU (daily roll-ups).",
            (0, 33, 8, 8),
            Influx(f'SELECT "turnover" {SKU_KPIS} {DAY} GROUP BY "sku"').alias("$tag_sku"),
            decimals=2,
            minimum=0,
            points=True,
        )
    )
    board.with_panel(
        timeseries(
            15,
            "Days of supply per day",
            "Available ÷ the day's demand, per SKU (daily roll-ups; none on a day without demand).",
            (8, 33, 8, 8),
            Influx(f'SELECT "days_of_supply" {SKU_KPIS} {DAY} GROUP BY "sku"').alias("$tag_sku"),
            unit="d",
            minimum=0,
            points=True,
        )
    )
    board.with_panel(
        timeseries(
            16,
            "Stock-out rate per day",
            "1 on a local day with demand while on hand was 0 or less, per SKU (daily roll-ups).",
            (16, 33, 8, 8),
            Influx(f'SELECT "stockout_rate" {SKU_KPIS} {DAY} GROUP BY "sku"').alias("$tag_sku"),
            unit="percentunit",
            minimum=0,
            points=True,
        )
    )
