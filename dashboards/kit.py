"""Building blocks for the StockSense dashboards on grafana-foundation-sdk's typed builders.

The SDK has no InfluxDB query type, so :class:`InfluxQuery` and :class:`InfluxAnnotation` are
the custom query types its documentation describes for such datasources: raw InfluxQL with
``$timeFilter`` and ``$__interval``. The panel helpers give every panel of a kind the same
look, so a dashboard module states only what differs: title, query, unit, thresholds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, Self, TypeVar

from grafana_foundation_sdk.builders import barchart as barchart_builder
from grafana_foundation_sdk.builders import bargauge as bargauge_builder
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat as stat_builder
from grafana_foundation_sdk.builders import statetimeline as statetimeline_builder
from grafana_foundation_sdk.builders import table as table_builder
from grafana_foundation_sdk.builders import timeseries as timeseries_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import DATASOURCE_UID, DATASOURCE_VARIABLE

DS = dm.DataSourceRef(type_val="influxdb", uid=f"${{{DATASOURCE_VARIABLE}}}")
ResultFormat = Literal["time_series", "table"]
Grid = tuple[int, int, int, int]  # x, y, w, h
Steps = Sequence[tuple[float | None, str]]  # (from value, colour); the first from None

SEVERITY_COLOURS = {
    "critical": "dark-red",
    "major": "red",
    "minor": "orange",
    "warning": "yellow",
    "info": "blue",
}
ONLINE = {"true": ("online", "green"), "false": ("offline", "red")}
GREEN: Steps = ((None, "green"),)


# ------------------------------------------------------------------------------ queries


class InfluxQuery(cogvariants.Dataquery):
    """A raw InfluxQL panel query on the StockSense datasource."""

    def __init__(
        self,
        query: str,
        *,
        ref_id: str = "A",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> dict[str, object]:
        """The target as Grafana's InfluxDB datasource stores it."""
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": DS,
            "rawQuery": True,
            "query": self.query,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload


class Influx(cogbuilder.Builder[InfluxQuery]):
    """Builder of :class:`InfluxQuery`."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQuery(query)

    def build(self) -> InfluxQuery:
        """The query."""
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        """Its reference (A, B, ...)."""
        self._internal.ref_id = ref_id
        return self

    def table(self) -> Self:
        """Rows and columns instead of series."""
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> Self:
        """Series name, with ``$tag_x`` and ``$measurement``."""
        self._internal.alias = alias
        return self


class InfluxAnnotation(dm.AnnotationTarget):
    """An annotation query in InfluxQL: the columns become title, text and tags."""

    def __init__(self, query: str, *, title: str, text: str, tags: Sequence[str]) -> None:
        super().__init__()
        self.query = query
        self.title_column = title
        self.text_column = text
        self.tags_column = ",".join(tags)

    def to_json(self) -> dict[str, object]:
        """The target as Grafana's InfluxDB datasource stores it."""
        return {
            "refId": "Anno",
            "rawQuery": True,
            "fromAnnotations": True,
            "textEditor": True,
            "query": self.query,
            "titleColumn": self.title_column,
            "textColumn": self.text_column,
            "tagsColumn": self.tags_column,
        }


class _Built(cogbuilder.Builder[dm.AnnotationTarget]):
    def __init__(self, target: dm.AnnotationTarget) -> None:
        self._target = target

    def build(self) -> dm.AnnotationTarget:
        return self._target


def influx_annotation(
    name: str, colour: str, query: str, *, title: str, text: str, tags: Sequence[str]
) -> db.AnnotationQuery:
    """Annotations from an InfluxQL query on the StockSense datasource."""
    target = InfluxAnnotation(query, title=title, text=text, tags=tags)
    return (
        db.AnnotationQuery()
        .name(name)
        .datasource(DS)
        .enable(True)
        .hide(False)
        .icon_color(colour)
        .target(_Built(target))
    )


def builtin_annotation() -> db.AnnotationQuery:
    """Grafana's own annotations and alerts, hidden as in a new dashboard."""
    return (
        db.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )


# ------------------------------------------------------------------------------ variables


def datasource_variable() -> db.DatasourceVariable:
    """``DS_STOCKSENSE``: an InfluxDB datasource, the provisioned one by default."""
    return (
        db.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Data source")
        .hide(dm.VariableHide.DONT_HIDE)
        .type("influxdb")
        .current(
            dm.VariableOption(selected=False, text="StockSense InfluxDB", value=DATASOURCE_UID)
        )
    )


def tag_variable(
    name: str,
    label: str,
    measurement: str,
    key: str,
    *,
    where: Sequence[str] = (),
    multi: bool = True,
) -> db.QueryVariable:
    """Tag values of ``measurement``; multi-value ones offer *All* as the regex ``.*``."""
    query = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"'
    if where:
        query += " WHERE " + " AND ".join(f'"{v}" =~ /^${v}$/' for v in where)
    variable = (
        db.QueryVariable(name)
        .label(label)
        .hide(dm.VariableHide.DONT_HIDE)
        .datasource(DS)
        .query(query)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        variable.all_value(".*").current(
            dm.VariableOption(selected=True, text=["All"], value=["$__all"])
        )
    return variable


def textbox_variable(name: str, label: str, default: str) -> db.TextBoxVariable:
    """A free-text variable with a default."""
    return (
        db.TextBoxVariable(name)
        .label(label)
        .hide(dm.VariableHide.DONT_HIDE)
        .default_value(default)
        .current(dm.VariableOption(selected=False, text=default, value=default))
    )


# ------------------------------------------------------------------------------ dashboard


def dashboard(uid: str, title: str, description: str, tags: Sequence[str]) -> db.Dashboard:
    """A StockSense dashboard: shared crosshair, 30 s refresh, links to the others."""
    return (
        db.Dashboard(f"StockSense · {title}")
        .uid(uid)
        .description(description)
        .tags(["stocksense", *tags])
        .timezone(cm.TimeZoneBrowser)
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .live_now(False)
        .week_start("")
        .time("now-6h", "now")
        .timepicker(db.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m", "1h"]))
        .link(
            db.DashboardLink("StockSense")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["stocksense"])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
            .icon("external link")
        )
        .with_variable(datasource_variable())
        .annotation(builtin_annotation())
    )


def model(board: db.Dashboard) -> dict[str, Any]:
    """The dashboard as its JSON model."""
    encoded: dict[str, Any] = json.loads(JSONEncoder().encode(board.build()))
    return encoded


def row(panel_id: int, title: str, y: int) -> db.Row:
    """A row across the width of the dashboard."""
    return db.Row(title).id(panel_id).grid_pos(dm.GridPos(h=1, w=24, x=0, y=y))


# ------------------------------------------------------------------------------ field config


def thresholds(steps: Steps) -> db.ThresholdsConfig:
    """Absolute thresholds from (from value, colour) pairs."""
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=colour) for value, colour in steps])
    )


def value_colours(colours: dict[str, tuple[str, str]]) -> list[dm.ValueMapping]:
    """Value -> (text, colour) mappings, in order."""
    return [
        dm.ValueMap(
            options={
                value: dm.ValueMappingResult(text=text, color=colour, index=i)
                for i, (value, (text, colour)) in enumerate(colours.items())
            }
        )
    ]


def severity_mappings() -> list[dm.ValueMapping]:
    """Each severity in its colour."""
    return value_colours({s: (s, c) for s, c in SEVERITY_COLOURS.items()})


def prop(prop_id: str, value: object) -> dm.DynamicConfigValue:
    """One override property."""
    return dm.DynamicConfigValue(id_val=prop_id, value=value)


def colour_cells(kind: Literal["color-text", "color-background"]) -> dm.DynamicConfigValue:
    """Table cells coloured by their thresholds or mappings."""
    options: object = (
        cm.TableColorTextCellOptions()
        if kind == "color-text"
        else cm.TableColoredBackgroundCellOptions()
    )
    return prop("custom.cellOptions", options)


def fixed_colour(colour: str) -> dm.DynamicConfigValue:
    """A series in one colour."""
    return prop("color", {"mode": "fixed", "fixedColor": colour})


Override = tuple[str, Sequence[dm.DynamicConfigValue]]  # field name, properties


# ------------------------------------------------------------------------------ panels

PanelBuilder = (
    timeseries_builder.Panel
    | stat_builder.Panel
    | bargauge_builder.Panel
    | table_builder.Panel
    | statetimeline_builder.Panel
    | barchart_builder.Panel
)
P = TypeVar("P", bound=PanelBuilder)


def _common(
    panel: P,
    panel_id: int,
    title: str,
    description: str,
    grid: Grid,
    *,
    queries: Sequence[Influx],
    unit: str | None,
    decimals: int | None,
    steps: Steps | None,
    overrides: Sequence[Override],
    regex_overrides: Sequence[Override] = (),
) -> P:
    x, y, w, h = grid
    panel.id(panel_id).title(title).description(description).datasource(DS)
    panel.grid_pos(dm.GridPos(h=h, w=w, x=x, y=y))
    for i, query in enumerate(queries):
        panel.with_target(query.ref_id(chr(ord("A") + i)))
    if unit is not None:
        panel.unit(unit)
    if decimals is not None:
        panel.decimals(decimals)
    if steps is not None:
        panel.thresholds(thresholds(steps))
    for name, properties in overrides:
        panel.override_by_name(name, list(properties))
    for regex, properties in regex_overrides:
        panel.override_by_regexp(regex, list(properties))
    return panel


def _legend() -> cb.VizLegendOptions:
    return (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.RIGHT)
        .show_legend(True)
        .calcs(["lastNotNull", "min", "max"])
    )


def timeseries(
    panel_id: int,
    title: str,
    description: str,
    grid: Grid,
    *queries: Influx,
    unit: str = "none",
    decimals: int | None = None,
    bars: bool = False,
    band: Steps | None = None,
    minimum: float | None = None,
    points: bool = False,
    overrides: Sequence[Override] = (),
) -> timeseries_builder.Panel:
    """Series over time: lines, or stacked bars for counts; ``band`` shades thresholds."""
    panel = _common(
        timeseries_builder.Panel(),
        panel_id,
        title,
        description,
        grid,
        queries=queries,
        unit=unit,
        decimals=decimals,
        steps=band or GREEN,
        overrides=overrides,
    )
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
    panel.draw_style(cm.GraphDrawStyle.BARS if bars else cm.GraphDrawStyle.LINE)
    panel.line_width(1).fill_opacity(80 if bars else 10)
    panel.show_points(cm.VisibilityMode.ALWAYS if points else cm.VisibilityMode.NEVER)
    panel.point_size(4).span_nulls(points)
    panel.stacking(
        cb.StackingConfig()
        .mode(cm.StackingMode.NORMAL if bars else cm.StackingMode.NONE)
        .group("A")
    )
    style = cm.GraphThresholdsStyleMode.LINE_AND_AREA if band else cm.GraphThresholdsStyleMode.OFF
    panel.thresholds_style(cb.GraphThresholdsStyleConfig().mode(style))
    panel.axis_placement(cm.AxisPlacement.AUTO).line_interpolation(cm.LineInterpolation.LINEAR)
    if minimum is not None:
        panel.min(minimum)
    panel.legend(_legend())
    panel.tooltip(
        cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
    )
    return panel


def _reduce() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def stat(
    panel_id: int,
    title: str,
    description: str,
    grid: Grid,
    *queries: Influx,
    unit: str = "none",
    decimals: int | None = 0,
    steps: Steps = GREEN,
    background: bool = False,
    names: bool = False,
) -> stat_builder.Panel:
    """Big numbers, the last value of each series; ``names`` shows the series name too."""
    panel = _common(
        stat_builder.Panel(),
        panel_id,
        title,
        description,
        grid,
        queries=queries,
        unit=unit,
        decimals=decimals,
        steps=steps,
        overrides=(),
    )
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)).mappings([])
    panel.reduce_options(_reduce())
    panel.color_mode(cm.BigValueColorMode.BACKGROUND if background else cm.BigValueColorMode.VALUE)
    panel.graph_mode(cm.BigValueGraphMode.NONE).justify_mode(cm.BigValueJustifyMode.AUTO)
    panel.orientation(cm.VizOrientation.AUTO)
    panel.text_mode(cm.BigValueTextMode.VALUE_AND_NAME if names else cm.BigValueTextMode.VALUE)
    return panel.show_percent_change(False)


def bargauge(
    panel_id: int,
    title: str,
    description: str,
    grid: Grid,
    *queries: Influx,
    unit: str = "none",
    decimals: int | None = 0,
    steps: Steps = GREEN,
    mode: cm.BarGaugeDisplayMode = cm.BarGaugeDisplayMode.BASIC,
    min_height: int = 16,
) -> bargauge_builder.Panel:
    """Horizontal bars, the last value of each series."""
    panel = _common(
        bargauge_builder.Panel(),
        panel_id,
        title,
        description,
        grid,
        queries=queries,
        unit=unit,
        decimals=decimals,
        steps=steps,
        overrides=(),
    )
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)).mappings([])
    panel.reduce_options(_reduce()).orientation(cm.VizOrientation.HORIZONTAL)
    panel.display_mode(mode).show_unfilled(True).value_mode(cm.BarGaugeValueMode.COLOR)
    panel.name_placement(cm.BarGaugeNamePlacement.AUTO).sizing(cm.BarGaugeSizing.AUTO)
    return panel.min_viz_height(min_height).min_viz_width(8).max_viz_height(300)


def table(
    panel_id: int,
    title: str,
    description: str,
    grid: Grid,
    *queries: Influx,
    unit: str | None = None,
    decimals: int | None = None,
    steps: Steps | None = None,
    overrides: Sequence[Override] = (),
    regex_overrides: Sequence[Override] = (),
    newest_first: bool = False,
    filterable: bool = False,
) -> table_builder.Panel:
    """Rows of a table-format query."""
    panel = _common(
        table_builder.Panel(),
        panel_id,
        title,
        description,
        grid,
        queries=[q.table() for q in queries],
        unit=unit,
        decimals=decimals,
        steps=steps,
        overrides=overrides,
        regex_overrides=regex_overrides,
    )
    if steps is not None:
        panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    panel.align(cm.FieldTextAlignment.AUTO).mappings([])
    if filterable:
        panel.filterable(True)
    panel.show_header(True).cell_height(cm.TableCellHeight.SM)
    panel.footer(cb.TableFooterOptions().show(False))
    if newest_first:
        panel.sort_by([cb.TableSortByFieldState().display_name("Time").desc(True)])
    return panel


def state_timeline(
    panel_id: int,
    title: str,
    description: str,
    grid: Grid,
    *queries: Influx,
    mappings: dict[str, tuple[str, str]],
) -> statetimeline_builder.Panel:
    """One band per series, coloured by value."""
    panel = _common(
        statetimeline_builder.Panel(),
        panel_id,
        title,
        description,
        grid,
        queries=queries,
        unit=None,
        decimals=None,
        steps=GREEN,
        overrides=(),
    )
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    panel.mappings(value_colours(mappings)).fill_opacity(80).line_width(0)
    panel.merge_values(True).show_value(cm.VisibilityMode.NEVER)
    panel.align_value(cm.TimelineValueAlignment.LEFT).row_height(0.8)
    panel.legend(
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(False)
    )
    return panel.tooltip(
        cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE).sort(cm.SortOrder.NONE)
    )


def barchart(
    panel_id: int,
    title: str,
    description: str,
    grid: Grid,
    *queries: Influx,
    x_field: str,
    unit: str = "none",
    decimals: int | None = None,
    overrides: Sequence[Override] = (),
) -> barchart_builder.Panel:
    """Grouped bars of a table-format query, one group per ``x_field`` value."""
    panel = _common(
        barchart_builder.Panel(),
        panel_id,
        title,
        description,
        grid,
        queries=[q.table() for q in queries],
        unit=unit,
        decimals=decimals,
        steps=GREEN,
        overrides=overrides,
    )
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
    # The table's time column is the snapshot's; only the bucket and the figures are drawn.
    panel.with_transformation(
        dm.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}})
    )
    panel.x_field(x_field).orientation(cm.VizOrientation.VERTICAL)
    panel.show_value(cm.VisibilityMode.AUTO).stacking(cm.StackingMode.NONE)
    panel.group_width(0.7).bar_width(0.9).fill_opacity(80).line_width(1)
    panel.legend(
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
    )
    return panel.tooltip(
        cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.NONE)
    )


def data_link(title: str, url: str) -> db.DashboardLink:
    """A link on a value (``${__value.raw}``, ``${__data.fields.x}``, ``${var}``)."""
    return db.DashboardLink(title).url(url).type(dm.DashboardLinkType.LINK)
