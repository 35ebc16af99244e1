"""Warehouse (uid ``stocksense-warehouse``): stock, movements, suggestions, shelves, RFID reads,
device status and ingest volume."""

# ruff: noqa: S608 - InfluxQL from this module's constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models.common import BarGaugeDisplayMode

from dashboards.kit import (
    ONLINE,
    Influx,
    bargauge,
    colour_cells,
    dashboard,
    prop,
    row,
    stat,
    state_timeline,
    table,
    tag_variable,
    timeseries,
    value_colours,
)

UID = "stocksense-warehouse"
SITE = '"site" =~ /^$site$/'
# RFID zone counts share the measurement; the ledger's stock is what the panels add up.
STOCK = f'FROM "stock" WHERE "basis" = \'ledger\' AND {SITE} AND "sku" =~ /^$sku$/ AND $timeFilter'
MOVEMENTS = f'FROM "movements" WHERE {SITE} AND "sku" =~ /^$sku$/ AND $timeFilter'
SHELVES = f'FROM "weight" WHERE {SITE} AND "device" =~ /^$shelf$/ AND $timeFilter'
READERS = f'FROM "rfid" WHERE {SITE} AND "device" =~ /^$reader$/ AND $timeFilter'
STATUS = f'FROM "device_status" WHERE {SITE} AND $timeFilter'
ANTENNA = "$tag_device #$tag_antenna"


def build() -> Dashboard:
    """The warehouse dashboard."""
    board = dashboard(
        UID,
        "Warehouse",
        "Stock per SKU, movements, purchase suggestions, shelf weights, RFID reads, device"
        " status and ingest volume.",
        ["warehouse"],
    )
    board.with_variable(tag_variable("site", "Site", "device_status", "site", multi=False))
    board.with_variable(tag_variable("sku", "SKU", "stock", "sku", where=["site"]))
    board.with_variable(tag_variable("shelf", "Shelf", "weight", "device", where=["site"]))
    board.with_variable(tag_variable("reader", "RFID reader", "rfid", "device", where=["site"]))
    _stock(board)
    _shelves_and_readers(board)
    _devices(board)
    return board


def _stock(board: Dashboard) -> None:
    board.with_row(row(1, "Stock", 0))
    board.with_panel(
        bargauge(
            2,
            "Stock on hand per SKU",
            "Latest quantity per location summed per SKU (stock levels written in the last 7"
            " days).",
            (0, 1, 8, 9),
            Influx(
                f'SELECT sum("qty") FROM (SELECT last("qty") AS "qty" {STOCK}'
                ' GROUP BY "location", "sku") GROUP BY "sku"'
            ).alias("$tag_sku"),
            steps=((None, "red"), (1, "orange"), (10, "green")),
        ).time_from("7d")
    )
    board.with_panel(
        timeseries(
            3,
            "Stock level per SKU and location",
            "Quantity on hand over time.",
            (8, 1, 16, 9),
            Influx(
                f'SELECT last("qty") {STOCK} GROUP BY time($__interval), "sku", "location"'
                " fill(previous)"
            ).alias("$tag_sku @ $tag_location"),
            decimals=0,
            minimum=0,
        )
    )
    board.with_panel(
        timeseries(
            4,
            "Movements per kind",
            "Units moved per interval, stacked by movement kind.",
            (0, 10, 12, 8),
            Influx(
                f'SELECT sum("qty") {MOVEMENTS} GROUP BY time($__interval), "kind" fill(none)'
            ).alias("$tag_kind"),
            decimals=0,
            bars=True,
        )
    )
    board.with_panel(
        table(
            5,
            "Recent movements",
            "Latest 200 movements with their lot.",
            (12, 10, 12, 8),
            Influx(
                f'SELECT "kind", "sku", "location", "qty", "lot" {MOVEMENTS}'
                " ORDER BY time DESC LIMIT 200"
            ),
        )
    )
    board.with_panel(
        table(
            6,
            "Purchase suggestions",
            "Latest suggested quantity per SKU and suggestion state (last 7 days).",
            (0, 18, 24, 6),
            Influx(
                'SELECT last("qty") AS "qty" FROM "suggestions" WHERE'
                f' {SITE} AND "sku" =~ /^$sku$/ AND $timeFilter GROUP BY "sku", "state"'
            ),
            decimals=0,
            overrides=[("Time", [prop("displayName", "Updated")])],
        ).time_from("7d")
    )


def _shelves_and_readers(board: Dashboard) -> None:
    board.with_row(row(7, "Shelves and readers", 24))
    board.with_panel(
        timeseries(
            8,
            "Weight per shelf cell",
            "Mean net grams per load cell and interval.",
            (0, 25, 16, 9),
            Influx(
                f'SELECT mean("grams") {SHELVES} GROUP BY time($__interval), "device", "cell"'
                " fill(none)"
            ).alias("$tag_device/$tag_cell"),
            unit="massg",
        )
    )
    board.with_panel(
        bargauge(
            9,
            "Current load per cell",
            "Latest net grams per cell.",
            (16, 25, 8, 9),
            Influx(f'SELECT last("grams") {SHELVES} GROUP BY "device", "cell"').alias(
                "$tag_device/$tag_cell"
            ),
            unit="massg",
            decimals=None,
            mode=BarGaugeDisplayMode.LCD,
        )
    )
    board.with_panel(
        timeseries(
            10,
            "RFID reads per reader and antenna",
            "Tag reads per interval (read counts summed).",
            (0, 34, 12, 8),
            Influx(
                f'SELECT sum("count") {READERS} GROUP BY time($__interval), "device", "antenna"'
                " fill(0)"
            ).alias(ANTENNA),
            decimals=0,
            bars=True,
        )
    )
    board.with_panel(
        bargauge(
            11,
            "Distinct EPCs per reader and antenna",
            "Different tags seen in the range.",
            (12, 34, 6, 8),
            Influx(f'SELECT count(distinct("epc")) {READERS} GROUP BY "device", "antenna"').alias(
                ANTENNA
            ),
        )
    )
    board.with_panel(
        timeseries(
            12,
            "RSSI per antenna",
            "Mean RSSI per antenna: a falling line often means a moved or detuned antenna.",
            (18, 34, 6, 8),
            Influx(
                f'SELECT mean("rssi") {READERS} GROUP BY time($__interval), "device", "antenna"'
                " fill(none)"
            ).alias(ANTENNA),
            unit="dBm",
        )
    )


def _devices(board: Dashboard) -> None:
    board.with_row(row(13, "Devices and ingest", 42))
    board.with_panel(
        state_timeline(
            14,
            "Device online status",
            "Birth, heartbeat and Last Will messages per device (retained status topic).",
            (0, 43, 16, 9),
            Influx(
                f'SELECT last("online") {STATUS} GROUP BY time($__interval), "kind", "device"'
                " fill(previous)"
            ).alias("$tag_kind/$tag_device"),
            mappings=ONLINE,
        )
    )
    board.with_panel(
        stat(
            15,
            "Devices offline",
            "Devices whose latest status in the range is offline.",
            (16, 43, 4, 9),
            Influx(
                f'SELECT count("online") FROM (SELECT last("online") AS "online" {STATUS}'
                ' GROUP BY "kind", "device") WHERE "online" = false'
            ),
            steps=((None, "green"), (1, "red")),
            background=True,
        )
    )
    board.with_panel(
        table(
            16,
            "Latest device status",
            "Latest status per device.",
            (20, 43, 4, 9),
            Influx(f'SELECT last("online") AS "online" {STATUS} GROUP BY "kind", "device"'),
            overrides=[
                (
                    "online",
                    [prop("mappings", value_colours(ONLINE)), colour_cells("color-background")],
                ),
                ("Time", [prop("custom.hidden", True)]),
            ],
        )
    )
    board.with_panel(
        timeseries(
            17,
            "Readings written per measurement",
            "Points landed in InfluxDB per interval: a drop to zero means ingest or devices"
            " stopped.",
            (0, 52, 24, 7),
            Influx(
                'SELECT count("seq") FROM "temperature", "weight", "rfid" WHERE'
                f" {SITE} AND $timeFilter GROUP BY time($__interval) fill(0)"
            ).alias("$measurement"),
            decimals=0,
            bars=True,
        )
    )
