"""Shared parts of the dashboards: data sources, uids, panel builders and the SQL query type."""

from __future__ import annotations

import json

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
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    Threshold,
    ThresholdsMode,
)

from infra.dashboards.city_sql import CityQuery

PROMETHEUS_UID = "fleetscope-prometheus"
POSTGRES_UID = "fleetscope-postgres"
PROMETHEUS = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
POSTGRES = DataSourceRef(type_val="grafana-postgresql-datasource", uid=POSTGRES_UID)

SRE_UID = "fleetscope-sre"
CITY_UID = "fleetscope-city"
RATE = "[$__rate_interval]"  # Grafana's range for rate(): at least four scrape intervals


PanelBuilder = timeseries.Panel | stat.Panel | table.Panel | geomap.Panel


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
    """Builder of a ``SqlQuery``, so a panel's ``with_target`` takes it like the SDK's own queries."""

    def __init__(self, query: CityQuery, ref_id: str = "A") -> None:
        self._query = SqlQuery(query, ref_id)

    def build(self) -> cogvariants.Dataquery:
        return self._query


def prom(expr: str, legend: str, ref_id: str = "A") -> PromQuery:
    """A PromQL target on the fleetscope Prometheus data source."""
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
    """A time series panel on Prometheus with these targets."""
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


def assemble(builder: dash.Dashboard, rows: list[tuple[str, list[PanelBuilder]]]) -> dict:
    """Add rows and their panels with ids 1, 2, ... and return the dashboard as plain JSON data."""
    ids = iter(range(1, 1000))
    for title, panels in rows:
        builder.with_row(dash.Row(title).id(next(ids)))
        for panel in panels:
            builder.with_panel(panel.id(next(ids)))
    data: dict = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return data
