"""Alerts (uid ``stocksense-alerts``): alert events with severity colours, counts over time."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.kit import (
    SEVERITY_COLOURS,
    Influx,
    bargauge,
    colour_cells,
    dashboard,
    fixed_colour,
    influx_annotation,
    prop,
    severity_mappings,
    stat,
    table,
    tag_variable,
    timeseries,
    value_colours,
)

UID = "stocksense-alerts"
FILTER = (
    'FROM "alerts" WHERE "site" =~ /^$site$/ AND "severity" =~ /^$severity$/'
    ' AND "type" =~ /^$type$/ AND $timeFilter'
)
RAISED = f'SELECT count("alert_id") {FILTER} AND "event" = \'raised\''


def build() -> Dashboard:
    """The alerts dashboard."""
    board = dashboard(
        UID,
        "Alerts",
        "Alert events written by the rules engine: table with severity colours and counts"
        " over time.",
        ["alerts"],
    ).time("now-24h", "now")
    board.with_variable(tag_variable("site", "Site", "alerts", "site", multi=False))
    board.with_variable(tag_variable("severity", "Severity", "alerts", "severity", where=["site"]))
    board.with_variable(tag_variable("type", "Type", "alerts", "type", where=["site"]))
    board.annotation(
        influx_annotation(
            "Alerts",
            "orange",
            f'SELECT "title", "message", "severity", "type", "event" {FILTER}',
            title="title",
            text="message",
            tags=["severity", "type", "event"],
        )
    )
    board.with_panel(
        stat(1, "Alerts raised", "Alert raise events in the range.", (0, 0, 6, 5), Influx(RAISED))
    )
    board.with_panel(
        stat(
            2,
            "Critical alerts raised",
            "Critical raise events in the range.",
            (6, 0, 6, 5),
            Influx(f"{RAISED} AND \"severity\" = 'critical'"),
            steps=((None, "green"), (1, "dark-red")),
            background=True,
        )
    )
    board.with_panel(
        stat(
            3,
            "Alerts cleared",
            "Alerts that returned to normal in the range.",
            (12, 0, 6, 5),
            Influx(f'SELECT count("alert_id") {FILTER} AND "event" = \'cleared\''),
        )
    )
    board.with_panel(
        bargauge(
            4,
            "Raised per type",
            "Raise events per alert type in the range.",
            (18, 0, 6, 5),
            Influx(f'{RAISED} GROUP BY "type"').alias("$tag_type"),
            min_height=10,
        )
    )
    board.with_panel(
        timeseries(
            5,
            "Alerts raised by severity",
            "Raise events per interval, stacked by severity.",
            (0, 5, 12, 8),
            Influx(f'{RAISED} GROUP BY time($__interval), "severity" fill(none)').alias(
                "$tag_severity"
            ),
            decimals=0,
            bars=True,
            overrides=[(s, [fixed_colour(c)]) for s, c in SEVERITY_COLOURS.items()],
        )
    )
    board.with_panel(
        timeseries(
            6,
            "Alerts raised by type",
            "Raise events per interval, stacked by type.",
            (12, 5, 12, 8),
            Influx(f'{RAISED} GROUP BY time($__interval), "type" fill(none)').alias("$tag_type"),
            decimals=0,
            bars=True,
        )
    )
    columns = '"severity", "event", "type", "zone", "title", "message", "source", "value"'
    board.with_panel(
        table(
            7,
            "Alert events",
            "Every raise and clear, newest first (ack and silence in the ops console).",
            (0, 13, 24, 12),
            Influx(
                f'SELECT {columns}, "threshold", "alert_id" {FILTER} ORDER BY time DESC LIMIT 500'
            ),
            overrides=[
                (
                    "severity",
                    [
                        prop("mappings", severity_mappings()),
                        colour_cells("color-background"),
                        prop("custom.width", 100),
                    ],
                ),
                (
                    "event",
                    [
                        prop(
                            "mappings",
                            value_colours(
                                {"raised": ("raised", "red"), "cleared": ("cleared", "green")}
                            ),
                        ),
                        colour_cells("color-text"),
                        prop("custom.width", 90),
                    ],
                ),
                ("alert_id", [prop("displayName", "id"), prop("custom.width", 70)]),
            ],
            newest_first=True,
            filterable=True,
        )
    )
    return board
