"""Grafana dashboards as code: the SREs' on Prometheus, the city's on PostgreSQL (grafana-foundation-sdk).

``fleetscope deploy render`` (fleetscope/deploy_files.py) writes them as the JSON files Grafana's file
provisioning loads (``deploy/grafana/dashboards``, beside the provisioning files that define the two data sources with
the uids used here). The SQL of every city panel is a module constant (``CITY_QUERIES``), so the
tests run it, as the dashboard login, on a real database; they also check every PromQL expression
against the metrics the worker and Triton really expose.

Road segments have no coordinates in the database (``segment_id`` names two OSM nodes; the geometry
lives in the worker's road network only), so the map places a segment at the mean GPS position of
the frames its current window was computed from (``frame_observations.lat``/``lon``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap, stat, table, timeseries
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    FrameGeometrySourceMode,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    DynamicConfigValue,
    FieldColorModeId,
    GridPos,
    Threshold,
    ThresholdsMode,
)
from grafana_foundation_sdk.models.geomap import TooltipMode

from core.settings import REPO_ROOT

DASHBOARDS_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"

PROMETHEUS_UID = "fleetscope-prometheus"
POSTGRES_UID = "fleetscope-postgres"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
POSTGRES = DataSourceRef(type_val="grafana-postgresql-datasource", uid=POSTGRES_UID)

SRE_UID = "fleetscope-sre"
CITY_UID = "fleetscope-city"
RATE = "[$__rate_interval]"  # Grafana's range for rate(): at least four scrape intervals


PanelBuilder = timeseries.Panel | stat.Panel | table.Panel | geomap.Panel


@dataclass(frozen=True)
class CityQuery:
    """One city panel's SQL, its Grafana result format and the columns the panel reads, in order."""

    sql: str
    format: Literal["table", "time_series"]
    columns: tuple[str, ...]


ROAD_CONDITIONS = CityQuery(
    """
SELECT c.segment_id,
       c.window_start AS "time",
       c.window_seconds,
       c.frames,
       c.vehicles,
       c.anomaly_frames,
       c.dominant_surface,
       c.dominant_weather,
       c.dominant_congestion,
       c.congestion_level,
       c.median_speed_kmh,
       p.lat,
       p.lon
FROM current_road_conditions c
CROSS JOIN LATERAL (
    SELECT avg(f.lat) AS lat, avg(f.lon) AS lon
    FROM frame_observations f
    WHERE f.segment_id = c.segment_id
      AND f.captured_at >= c.window_start AND f.captured_at < c.window_end
) p
WHERE c.window_seconds = (SELECT min(window_seconds) FROM segment_road_conditions)
  AND c.window_end > $__timeFrom() AND c.window_start < $__timeTo()
  AND p.lat IS NOT NULL
ORDER BY c.congestion_level DESC, c.segment_id
""".strip(),
    "table",
    (
        "segment_id",
        "time",
        "window_seconds",
        "frames",
        "vehicles",
        "anomaly_frames",
        "dominant_surface",
        "dominant_weather",
        "dominant_congestion",
        "congestion_level",
        "median_speed_kmh",
        "lat",
        "lon",
    ),
)

OPEN_INCIDENT_COUNT = CityQuery("SELECT count(*) AS open_incidents FROM open_incidents", "table", ("open_incidents",))

OPEN_INCIDENTS = CityQuery(
    """
SELECT o.window_start AS "time",
       o.type,
       o.severity,
       o.confidence,
       o.vehicle_count,
       array_to_string(a.vehicles, ', ') AS vehicles,
       o.segment_id,
       o.frames,
       o.window_end,
       o.updated_at
FROM open_incidents o
JOIN alerts a ON a.alert_id = o.alert_id
ORDER BY o.updated_at DESC, o.alert_id
LIMIT 500
""".strip(),
    "table",
    (
        "time",
        "type",
        "severity",
        "confidence",
        "vehicle_count",
        "vehicles",
        "segment_id",
        "frames",
        "window_end",
        "updated_at",
    ),
)

SEGMENT_SPEEDS = CityQuery(
    """
SELECT window_start AS "time",
       road_class,
       sum(median_speed_kmh * fixes) / sum(fixes) AS speed_kmh
FROM segment_stats
WHERE $__timeFilter(window_start) AND median_speed_kmh IS NOT NULL
GROUP BY window_start, road_class
ORDER BY 1, 2
""".strip(),
    "time_series",
    ("time", "road_class", "speed_kmh"),
)

SLOWEST_SEGMENTS = CityQuery(
    """
SELECT segment_id,
       name,
       road_class,
       median_speed_kmh,
       speed_limit_kmh,
       median_speed_kmh / speed_limit_kmh AS share_of_limit,
       fixes,
       vehicles,
       hard_brakes,
       window_end
FROM current_segment_conditions
WHERE $__timeFilter(window_start) AND median_speed_kmh IS NOT NULL AND speed_limit_kmh > 0
ORDER BY share_of_limit, segment_id
LIMIT 50
""".strip(),
    "table",
    (
        "segment_id",
        "name",
        "road_class",
        "median_speed_kmh",
        "speed_limit_kmh",
        "share_of_limit",
        "fixes",
        "vehicles",
        "hard_brakes",
        "window_end",
    ),
)

CITY_QUERIES = {
    "road_conditions": ROAD_CONDITIONS,
    "open_incident_count": OPEN_INCIDENT_COUNT,
    "open_incidents": OPEN_INCIDENTS,
    "segment_speeds": SEGMENT_SPEEDS,
    "slowest_segments": SLOWEST_SEGMENTS,
}


class SqlQuery(cogvariants.Dataquery):
    """A target of Grafana's PostgreSQL data source, raw SQL in code mode.

    The SDK types the queries of Prometheus and other data sources but not of the SQL ones; this is
    its documented way to add a query type (a ``Dataquery`` variant with ``to_json``).
    """

    def __init__(self, query: CityQuery, ref_id: str) -> None:
        self.query = query
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": POSTGRES.to_json(),
            "editorMode": "code",
            "format": self.query.format,
            "rawQuery": True,
            "rawSql": self.query.sql,
            "refId": self.ref_id,
        }


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, query: CityQuery, ref_id: str = "A") -> None:
        self._query = SqlQuery(query, ref_id)

    def build(self) -> cogvariants.Dataquery:
        return self._query


def prom(expr: str, legend: str, ref_id: str = "A") -> PromQuery:
    return PromQuery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(PROMETHEUS)


def quantiles(bucket: str, by: str, legend: str) -> list[PromQuery]:
    """p50 and p99 of a histogram, per ``by`` label set (``le`` added)."""
    return [
        prom(
            f"histogram_quantile({q}, sum by ({by}) (rate({bucket}{RATE})))",
            f"{legend}p{int(q * 100)}",
            ref_id,
        )
        for ref_id, q in (("A", 0.5), ("B", 0.99))
    ]


def graph(title: str, description: str, unit: str, datasource: DataSourceRef) -> timeseries.Panel:
    """A time series panel from 0 up, its legend a table with each series' mean and maximum."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .unit(unit)
        .min(0)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .calcs(["mean", "max"])
        )
        .tooltip(common_builders.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
        .grid_pos(GridPos(h=8, w=12))
    )


def series(title: str, description: str, unit: str, targets: list[PromQuery]) -> timeseries.Panel:
    panel = graph(title, description, unit, PROMETHEUS)
    for target in targets:
        panel.with_target(target)
    return panel


def up_stat(title: str, description: str, target: PromQuery) -> stat.Panel:
    """A stat that is red below 1 and green at 1 (readiness, reachability)."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .with_target(target)
        .unit(units.NoUnit)
        .thresholds(
            dash.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=None, color="red"), Threshold(value=1, color="green")])
        )
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .grid_pos(GridPos(h=5, w=6))
    )


def sre_dashboard() -> dict:
    """The SRE dashboard: throughput, lag, latency, failures, Triton and health, from Prometheus."""
    rows: list[tuple[str, list[PanelBuilder]]] = [
        (
            "Health",
            [
                up_stat(
                    "Workers ready",
                    "1 when every scraped worker's fleetscope_worker_ready is 1 (partitions held, tables "
                    "recovered, Triton and PostgreSQL reachable); 0 while any one is not.",
                    prom("min(fleetscope_worker_ready)", "all ready"),
                ),
                up_stat(
                    "Dependencies up",
                    "Per service the worker needs: the lowest fleetscope_dependency_up over the workers (0 = down).",
                    prom("min by (dependency) (fleetscope_dependency_up)", "{{dependency}}"),
                ),
                series(
                    "Time waiting for dependencies",
                    "Share of time a worker spent waiting for an unreachable service, per service (mean of workers).",
                    units.PercentUnit,
                    [
                        prom(
                            f"avg by (dependency) (rate(fleetscope_dependency_down_seconds_total{RATE}))",
                            "{{dependency}}",
                        )
                    ],
                ),
            ],
        ),
        (
            "Flow",
            [
                series(
                    "Messages in by topic",
                    "Messages consumed per second, by topic, over all workers.",
                    units.MessagesPerSecond,
                    [prom(f"sum by (topic) (rate(fleetscope_messages_in_total{RATE}))", "{{topic}}")],
                ),
                series(
                    "Messages out by topic",
                    "Messages produced per second, by topic, over all workers.",
                    units.MessagesPerSecond,
                    [prom(f"sum by (topic) (rate(fleetscope_messages_out_total{RATE}))", "{{topic}}")],
                ),
                series(
                    "Consumer lag by topic",
                    "Highwater minus the next offset to process, summed over partitions and workers.",
                    units.Short,
                    [prom("sum by (topic) (fleetscope_consumer_lag)", "{{topic}}")],
                ),
                series(
                    "Frame latency, end to end",
                    "From a frame's produce time to its scene emitted (fleetscope_frame_latency_seconds).",
                    units.Seconds,
                    quantiles("fleetscope_frame_latency_seconds_bucket", "le", ""),
                ),
            ],
        ),
        (
            "Failures",
            [
                series(
                    "Dead letters by stage and reason",
                    "Messages sent to fleet.deadletter per second; `fleetscope dead-letters list` shows them.",
                    units.MessagesPerSecond,
                    [
                        prom(
                            f"sum by (stage, reason) (rate(fleetscope_dead_letters_total{RATE}))",
                            "{{stage}}: {{reason}}",
                        )
                    ],
                ),
                series(
                    "Agent crashes",
                    "Agent actors stopped by an exception in each interval (Faust restarts them).",
                    units.Short,
                    [prom(f"sum by (agent) (increase(fleetscope_agent_crashes_total{RATE}))", "{{agent}}")],
                ),
                series(
                    "Rows written to PostgreSQL by table",
                    "Rows the sinks wrote per second.",
                    units.RowsPerSecond,
                    [prom(f"sum by (table) (rate(fleetscope_sink_rows_total{RATE}))", "{{table}}")],
                ),
                series(
                    "Failed PostgreSQL transactions by table",
                    "Sink transactions that failed in each interval (they are retried).",
                    units.Short,
                    [prom(f"sum by (table) (increase(fleetscope_sink_errors_total{RATE}))", "{{table}}")],
                ),
            ],
        ),
        (
            "Triton",
            [
                series(
                    "Triton request latency by model",
                    "Seen by the worker, retries included (fleetscope_triton_request_seconds).",
                    units.Seconds,
                    quantiles("fleetscope_triton_request_seconds_bucket", "model, le", "{{model}} "),
                ),
                series(
                    "Frames per Triton request by model",
                    "Mean batch size the worker sent (fleetscope_triton_batch_size).",
                    units.Short,
                    [
                        prom(
                            f"sum by (model) (rate(fleetscope_triton_batch_size_sum{RATE}))"
                            f" / sum by (model) (rate(fleetscope_triton_batch_size_count{RATE}))",
                            "{{model}}",
                        )
                    ],
                ),
                series(
                    "Triton queue and compute time per request",
                    "Seen by Triton: mean time a successful request waited in the queue, and spent in inference.",
                    units.Microseconds,
                    [
                        prom(
                            f"sum by (model) (rate(nv_inference_queue_duration_us{RATE}))"
                            f" / sum by (model) (rate(nv_inference_request_success{RATE}))",
                            "{{model}} queue",
                        ),
                        prom(
                            f"sum by (model) (rate(nv_inference_compute_infer_duration_us{RATE}))"
                            f" / sum by (model) (rate(nv_inference_request_success{RATE}))",
                            "{{model}} compute",
                            "B",
                        ),
                    ],
                ),
                series(
                    "Triton failures by model",
                    "Failed attempts seen by the worker (by kind) and failed requests seen by Triton (by reason).",
                    units.Short,
                    [
                        prom(
                            f"sum by (model, kind) (increase(fleetscope_triton_errors_total{RATE}))",
                            "{{model}} worker: {{kind}}",
                        ),
                        prom(
                            f"sum by (model, reason) (increase(nv_inference_request_failure{RATE}))",
                            "{{model}} triton: {{reason}}",
                            "B",
                        ),
                    ],
                ),
            ],
        ),
    ]
    builder = (
        dash.Dashboard("fleetscope: SRE")
        .uid(SRE_UID)
        .description("The fleetscope worker and Triton, from Prometheus: flow, lag, latency, failures, health.")
        .tags(["fleetscope"])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
    )
    return _assemble(builder, rows)


def road_conditions_map() -> geomap.Panel:
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
                graph(
                    "Speed by road class",
                    "Median GPS speed of each segment's 60 s traffic window, weighted by its fixes, per road class.",
                    units.KilometersPerHour,
                    POSTGRES,
                )
                .with_target(Sql(SEGMENT_SPEEDS))
                .display_name("${__field.labels.road_class}")
                .grid_pos(GridPos(h=9, w=12)),
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
    return _assemble(builder, rows)


def _assemble(builder: dash.Dashboard, rows: list[tuple[str, list[PanelBuilder]]]) -> dict:
    """Add rows and their panels with ids 1, 2, ... and return the dashboard as plain JSON data."""
    ids = iter(range(1, 1000))
    for title, panels in rows:
        builder.with_row(dash.Row(title).id(next(ids)))
        for panel in panels:
            builder.with_panel(panel.id(next(ids)))
    data: dict = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return data


def dashboards() -> dict[str, dict]:
    """Every dashboard by its file name."""
    return {"fleetscope-sre.json": sre_dashboard(), "fleetscope-city.json": city_dashboard()}


def render(dashboard: dict) -> str:
    """A dashboard as its file's text: sorted keys, indent 2, a trailing newline (stable diffs)."""
    return json.dumps(dashboard, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
