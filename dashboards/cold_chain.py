"""Cold chain (uid ``stocksense-cold-chain``): temperature against the band, time out of band,
MKT and excursion alerts."""

# ruff: noqa: S608 - InfluxQL from this module's constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models.common import BarGaugeDisplayMode

from dashboards.kit import (
    Influx,
    Steps,
    bargauge,
    colour_cells,
    dashboard,
    influx_annotation,
    prop,
    severity_mappings,
    stat,
    table,
    tag_variable,
    textbox_variable,
    timeseries,
)

UID = "stocksense-cold-chain"
SENSORS = (
    'FROM "temperature" WHERE "site" =~ /^$site$/ AND "device" =~ /^$device$/'
    ' AND "sensor" =~ /^$sensor$/ AND $timeFilter'
)
PER_SENSOR = '"device", "sensor"'
ALIAS = "$tag_device/$tag_sensor"
BAND: Steps = ((None, "blue"), (2, "green"), (8, "red"))
COLD_ALERTS = 'FROM "alerts" WHERE "site" =~ /^$site$/ AND "type" = \'cold_chain_excursion\''


def build() -> Dashboard:
    """The cold-chain dashboard."""
    board = dashboard(
        UID,
        "Cold chain",
        "Temperature per sensor against the cold-chain band, time out of band, MKT and"
        " excursion alerts.",
        ["cold-chain"],
    )
    board.with_variable(tag_variable("site", "Site", "temperature", "site", multi=False))
    board.with_variable(tag_variable("device", "Device", "temperature", "device", where=["site"]))
    board.with_variable(
        tag_variable("sensor", "Sensor", "temperature", "sensor", where=["site", "device"])
    )
    board.with_variable(textbox_variable("band_low", "Band low (°C)", "2"))
    board.with_variable(textbox_variable("band_high", "Band high (°C)", "8"))
    board.annotation(
        influx_annotation(
            "Cold-chain alerts",
            "red",
            f'SELECT "title", "message", "severity", "zone", "event" {COLD_ALERTS} AND $timeFilter',
            title="title",
            text="message",
            tags=["severity", "zone", "event"],
        )
    )
    board.with_panel(
        timeseries(
            1,
            "Temperature per sensor",
            "Mean °C per interval for every device/sensor. Shaded bands: below 2 °C (blue),"
            " 2–8 °C (green), above 8 °C (red). Cold-chain alerts are shown as annotations.",
            (0, 0, 16, 10),
            Influx(
                f'SELECT mean("celsius") {SENSORS} GROUP BY time($__interval), {PER_SENSOR}'
                " fill(none)"
            ).alias(ALIAS),
            unit="celsius",
            band=BAND,
        )
    )
    board.with_panel(
        stat(
            2,
            "Current temperature",
            "Latest reading per sensor, coloured by the 2–8 °C band.",
            (16, 0, 8, 10),
            Influx(f'SELECT last("celsius") {SENSORS} GROUP BY {PER_SENSOR}').alias(ALIAS),
            unit="celsius",
            decimals=1,
            steps=BAND,
            background=True,
            names=True,
        )
    )
    board.with_panel(
        bargauge(
            3,
            "Time out of band",
            "Cumulative time in the selected range whose one-minute mean lies outside"
            " [$band_low, $band_high] °C (set the band in the variables above).",
            (0, 10, 8, 8),
            Influx(
                f'SELECT count("celsius") * 60 FROM (SELECT mean("celsius") AS "celsius" {SENSORS}'
                f' GROUP BY time(1m), {PER_SENSOR} fill(none)) WHERE "celsius" < $band_low'
                f' OR "celsius" > $band_high GROUP BY {PER_SENSOR}'
            ).alias(ALIAS),
            unit="s",
            decimals=None,
            steps=((None, "green"), (60, "orange"), (900, "red")),
            mode=BarGaugeDisplayMode.GRADIENT,
        )
    )
    board.with_panel(
        table(
            4,
            "Sensor summary",
            "Minimum, maximum and mean temperature per sensor in the range.",
            (8, 10, 8, 8),
            Influx(
                'SELECT min("celsius") AS "min", max("celsius") AS "max", mean("celsius") AS'
                f' "mean", count("celsius") AS "readings" {SENSORS} GROUP BY {PER_SENSOR}'
            ),
            unit="celsius",
            decimals=1,
            steps=BAND,
            overrides=[
                ("readings", [prop("unit", "none"), prop("decimals", 0)]),
                ("Time", [prop("custom.hidden", True)]),
                *((name, [colour_cells("color-text")]) for name in ("min", "max", "mean")),
            ],
        )
    )
    board.with_panel(
        stat(
            5,
            "Mean kinetic temperature",
            "MKT over the selected range with ΔH/R = 10,000 K (USP <1079>).",
            (16, 10, 8, 8),
            Influx(
                'SELECT 10000 / -ln(mean("k")) - 273.15 AS "mkt" FROM (SELECT exp(-10000 /'
                f' ("celsius" + 273.15)) AS "k" {SENSORS}) GROUP BY {PER_SENSOR}'
            ).alias(ALIAS),
            unit="celsius",
            decimals=2,
            steps=BAND,
            names=True,
        )
    )
    board.with_panel(
        timeseries(
            6,
            "Relative humidity",
            "Mean relative humidity per interval, where sensors report it.",
            (0, 18, 12, 8),
            Influx(
                f'SELECT mean("humidity") {SENSORS} GROUP BY time($__interval), {PER_SENSOR}'
                " fill(none)"
            ).alias(ALIAS),
            unit="humidity",
            minimum=0,
        )
    )
    board.with_panel(
        table(
            7,
            "Cold-chain alert events",
            "Excursions raised and cleared by the rules engine.",
            (12, 18, 12, 8),
            Influx(
                'SELECT "event", "severity", "zone", "title", "message", "value", "threshold"'
                f" {COLD_ALERTS} AND $timeFilter ORDER BY time DESC LIMIT 200"
            ),
            overrides=[
                (
                    "severity",
                    [prop("mappings", severity_mappings()), colour_cells("color-background")],
                )
            ],
            regex_overrides=[("value|threshold", [prop("unit", "celsius")])],
            newest_first=True,
        )
    )
    return board
