"""Alert response (uid ``stocksense-alert-response``): how many alerts of which type and
severity, how fast they are acknowledged and resolved, and how many within the route's
escalation time (``kpi_alerts``, docs/kpis.md)."""

# ruff: noqa: S608 - InfluxQL from this module's constants, never from input

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.kit import (
    SEVERITY_COLOURS,
    Influx,
    bargauge,
    colour_cells,
    dashboard,
    fixed_colour,
    prop,
    row,
    severity_mappings,
    stat,
    table,
    tag_variable,
    timeseries,
)

UID = "stocksense-alert-response"
ALERTS = (
    'FROM "kpi_alerts" WHERE "site" =~ /^$site$/ AND "type" =~ /^$type$/'
    ' AND "severity" =~ /^$severity$/ AND'
)
ROLLING = f"{ALERTS} \"period\" = 'rolling' AND $timeFilter"
DAY = f"{ALERTS} \"period\" = 'day' AND $timeFilter"
PER_GROUP = 'GROUP BY "type", "severity"'
GROUP_ALIAS = "$tag_type/$tag_severity"
# Figures of the latest rolling snapshot per type and severity, to be added up.
LATEST_COUNTS = (
    'SELECT last("count") AS "count", last("acked") AS "acked", last("resolved") AS'
    f' "resolved" {ROLLING} {PER_GROUP}'
)
SECONDS = ((None, "green"), (300, "orange"), (1800, "red"))
SHARE = ((None, "red"), (0.8, "orange"), (0.95, "green"))


def build() -> Dashboard:
    """The alert-response dashboard."""
    board = dashboard(
        UID,
        "Alert response",
        "Alerts by type and severity, mean and p90 time to acknowledge and to resolve, and the"
        " share acknowledged within the escalation time, from the pipeline's KPI snapshots.",
        ["alerts", "kpi"],
    ).time("now-30d", "now")
    board.with_variable(tag_variable("site", "Site", "kpi_site", "site", multi=False))
    board.with_variable(tag_variable("type", "Type", "kpi_alerts", "type", where=["site"]))
    board.with_variable(
        tag_variable("severity", "Severity", "kpi_alerts", "severity", where=["site"])
    )
    _rolling(board)
    _days(board)
    return board


def _rolling(board: Dashboard) -> None:
    board.with_row(row(1, "The rolling period (latest snapshot per type and severity)", 0))
    board.with_panel(
        stat(
            2,
            "Alerts raised, acknowledged and resolved",
            "Alerts raised in the rolling period, and how many of them were acknowledged and"
            " resolved.",
            (0, 1, 8, 6),
            Influx(
                'SELECT sum("count") AS "raised", sum("acked") AS "acknowledged",'
                f' sum("resolved") AS "resolved" FROM ({LATEST_COUNTS})'
            ).alias("$col"),
            names=True,
        )
    )
    board.with_panel(
        bargauge(
            3,
            "Alerts by type",
            "Alerts raised in the rolling period per type.",
            (8, 1, 8, 6),
            Influx(f'SELECT sum("count") FROM ({LATEST_COUNTS}) GROUP BY "type"').alias(
                "$tag_type"
            ),
        )
    )
    board.with_panel(
        bargauge(
            4,
            "Alerts by severity",
            "Alerts raised in the rolling period per severity.",
            (16, 1, 8, 6),
            Influx(f'SELECT sum("count") FROM ({LATEST_COUNTS}) GROUP BY "severity"').alias(
                "$tag_severity"
            ),
        )
    )
    answers = (
        (5, 0, "ack", "acknowledge", "acknowledged"),
        (6, 8, "resolve", "resolve", "resolved"),
    )
    for panel_id, x, figure, what, done in answers:
        board.with_panel(
            bargauge(
                panel_id,
                f"Time to {what}",
                f"Mean and 90th percentile time to {what} per type and severity, over the"
                f" alerts that were {done}.",
                (x, 7, 8, 8),
                Influx(f'SELECT last("{figure}_mean_s") {ROLLING} {PER_GROUP}').alias(
                    f"mean {GROUP_ALIAS}"
                ),
                Influx(f'SELECT last("{figure}_p90_s") {ROLLING} {PER_GROUP}').alias(
                    f"p90 {GROUP_ALIAS}"
                ),
                unit="s",
                steps=SECONDS,
            )
        )
    board.with_panel(
        bargauge(
            7,
            "Acknowledged within the escalation time",
            "Of the alerts whose route escalates, the share acknowledged before it did.",
            (16, 7, 8, 8),
            Influx(f'SELECT last("acked_in_time_share") {ROLLING} {PER_GROUP}').alias(GROUP_ALIAS),
            unit="percentunit",
            decimals=1,
            steps=SHARE,
        )
    )
    board.with_panel(
        table(
            8,
            "Response per type and severity",
            "Every figure of the latest rolling snapshot, per type and severity.",
            (0, 15, 24, 8),
            Influx(
                'SELECT "count", "acked", "resolved", "ack_mean_s", "ack_p90_s",'
                ' "resolve_mean_s", "resolve_p90_s", "acked_in_time_share"'
                f" {ROLLING} {PER_GROUP} ORDER BY time DESC LIMIT 1"
            ),
            decimals=0,
            overrides=[
                ("Time", [prop("custom.hidden", True)]),
                (
                    "severity",
                    [prop("mappings", severity_mappings()), colour_cells("color-background")],
                ),
                (
                    "acked_in_time_share",
                    [
                        prop("unit", "percentunit"),
                        prop("decimals", 1),
                        prop("displayName", "acknowledged in time"),
                    ],
                ),
            ],
            regex_overrides=[("(ack|resolve)_(mean|p90)_s", [prop("unit", "s")])],
        )
    )


def _days(board: Dashboard) -> None:
    board.with_row(row(9, "Per day (daily roll-ups)", 23))
    for panel_id, x, tag in ((10, 0, "severity"), (11, 12, "type")):
        board.with_panel(
            timeseries(
                panel_id,
                f"Alerts per day by {tag}",
                f"Alerts raised each local day, stacked by {tag}.",
                (x, 24, 12, 8),
                Influx(
                    f'SELECT sum("count") {DAY} GROUP BY time($__interval), "{tag}" fill(none)'
                ).alias(f"$tag_{tag}"),
                decimals=0,
                bars=True,
                overrides=(
                    [(s, [fixed_colour(c)]) for s, c in SEVERITY_COLOURS.items()]
                    if tag == "severity"
                    else []
                ),
            )
        )
    for panel_id, x, figure, what in ((12, 0, "ack", "acknowledge"), (13, 8, "resolve", "resolve")):
        board.with_panel(
            timeseries(
                panel_id,
                f"Time to {what} per day",
                f"Mean and 90th percentile time to {what} of each day's alerts, per type and"
                " severity.",
                (x, 32, 8, 8),
                Influx(f'SELECT "{figure}_mean_s" {DAY} {PER_GROUP}').alias(f"mean {GROUP_ALIAS}"),
                Influx(f'SELECT "{figure}_p90_s" {DAY} {PER_GROUP}').alias(f"p90 {GROUP_ALIAS}"),
                unit="s",
                minimum=0,
                points=True,
            )
        )
    board.with_panel(
        timeseries(
            14,
            "Acknowledged within the escalation time per day",
            "Each day's share of escalating alerts acknowledged in time, per type and severity.",
            (16, 32, 8, 8),
            Influx(f'SELECT "acked_in_time_share" {DAY} {PER_GROUP}').alias(GROUP_ALIAS),
            unit="percentunit",
            minimum=0,
            points=True,
        )
    )
