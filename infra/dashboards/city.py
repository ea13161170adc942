"""The city dashboard: road conditions on a map, open incidents, segment speeds, from PostgreSQL."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap, stat, table, timeseries
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.common import (
    BigValueGraphMode,
    FrameGeometrySourceMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DynamicConfigValue,
    FieldColorModeId,
    GridPos,
)
from grafana_foundation_sdk.models.geomap import TooltipMode

from infra.dashboards.city_sql import (
    OPEN_INCIDENT_COUNT,
    OPEN_INCIDENTS,
    ROAD_CONDITIONS,
    SEGMENT_SPEEDS,
    SLOWEST_SEGMENT_SPEEDS,
    SLOWEST_SEGMENTS,
    CityQuery,
)
from infra.dashboards.panels import CITY_UID, POSTGRES, PanelBuilder, Sql, assemble, graph


def road_conditions_map() -> geomap.Panel:
    """Current road conditions per segment on a map, coloured by congestion level."""
    markers = (
        common_builders.MapLayerOptions()
        .type("markers")
        .name("Road segments")
        .location(
            common_builders.FrameGeometrySource().mode(FrameGeometrySourceMode.COORDS).latitude("lat").longitude("lon")
        )
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": "congestion_level", "fixed": "green"},
                    "opacity": 0.8,
                    "size": {"fixed": 7},
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                },
            }
        )
    )
    return (
        geomap.Panel()
        .title("Road conditions by segment")
        .description(
            "Per road segment, its newest window of the shortest length (5 min by default) overlapping the time"
            " range: colour = congestion level 0..1. Segments have no coordinates in the database, so each is"
            " placed at the mean GPS position of the window's frames."
        )
        .datasource(POSTGRES)
        .with_target(Sql(ROAD_CONDITIONS))
        .view(geomap.MapViewConfig().id("fit").zoom(13))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True))
        .basemap(common_builders.MapLayerOptions().type("default").name("Basemap"))
        .layers([markers])
        .tooltip(geomap.TooltipOptions().mode(TooltipMode.DETAILS))
        .override_by_name(
            "congestion_level",
            [
                DynamicConfigValue(id_val="min", value=0),
                DynamicConfigValue(id_val="max", value=1),
                DynamicConfigValue(id_val="color", value={"mode": FieldColorModeId.CONTINUOUS_GR_YL_RD}),
            ],
        )
        .override_by_name("median_speed_kmh", [DynamicConfigValue(id_val="unit", value=units.KilometersPerHour)])
        .grid_pos(GridPos(h=14, w=16))
    )


def speed_series(title: str, description: str, query: CityQuery, label: str) -> timeseries.Panel:
    """Speeds over time from a city ``query``, one line per value of its ``label`` column."""
    return (
        graph(title, description, units.KilometersPerHour, POSTGRES)
        .with_target(Sql(query))
        .display_name(f"${{__field.labels.{label}}}")
    )


def city_dashboard() -> dict:
    """The city dashboard: road conditions on a map, open incidents, segment speeds, from PostgreSQL."""
    rows: list[tuple[str, list[PanelBuilder]]] = [
        (
            "Now",
            [
                road_conditions_map(),
                stat.Panel()
                .title("Open incidents")
                .description("Alerts whose window ended or that were updated in the last 15 minutes.")
                .datasource(POSTGRES)
                .with_target(Sql(OPEN_INCIDENT_COUNT))
                .unit(units.Short)
                .graph_mode(BigValueGraphMode.NONE)
                .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
                .grid_pos(GridPos(h=14, w=8)),
                table.Panel()
                .title("Open incidents")
                .show_header(True)
                .description(
                    "Most recently reported first. Per incident: every vehicle that reported it, and the confidence"
                    " that it is real (1 - product over vehicles of 1 - their best score)."
                )
                .datasource(POSTGRES)
                .with_target(Sql(OPEN_INCIDENTS))
                .override_by_name("confidence", [DynamicConfigValue(id_val="unit", value=units.PercentUnit)])
                .grid_pos(GridPos(h=10, w=24)),
            ],
        ),
        (
            "Traffic",
            [
                speed_series(
                    "Speed by road class",
                    "Median GPS speed of each segment's 60 s traffic window, weighted by its fixes, per road class.",
                    SEGMENT_SPEEDS,
                    "road_class",
                ).grid_pos(GridPos(h=9, w=12)),
                table.Panel()
                .title("Slowest segments")
                .show_header(True)
                .description(
                    "Segments whose newest traffic window starts in the time range, slowest first"
                    " relative to their speed limit."
                )
                .datasource(POSTGRES)
                .with_target(Sql(SLOWEST_SEGMENTS))
                .override_by_name("share_of_limit", [DynamicConfigValue(id_val="unit", value=units.PercentUnit)])
                .override_by_regexp(".*_kmh", [DynamicConfigValue(id_val="unit", value=units.KilometersPerHour)])
                .grid_pos(GridPos(h=9, w=12)),
                speed_series(
                    "Speed of the slowest segments",
                    "Median GPS speed of each traffic window of the ten segments slowest relative to their speed"
                    " limit over the time range (mean share of the limit).",
                    SLOWEST_SEGMENT_SPEEDS,
                    "segment",
                ).grid_pos(GridPos(h=9, w=24)),
            ],
        ),
    ]
    builder = (
        dash.Dashboard("fleetscope: city")
        .uid(CITY_UID)
        .description(
            "Road conditions, incidents and traffic from fleetscope's PostgreSQL views, read as the dashboard login."
        )
        .tags(["fleetscope"])
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
    )
    return assemble(builder, rows)
