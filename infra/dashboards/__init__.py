"""Grafana dashboards as code: the SREs' on Prometheus, the city's on PostgreSQL (grafana-foundation-sdk).

``fleetscope deploy render`` (infra/deploy_files.py) writes them as the JSON files Grafana's file
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

from core.settings import REPO_ROOT
from infra.dashboards.city import city_dashboard
from infra.dashboards.city_sql import CITY_QUERIES, CityQuery
from infra.dashboards.panels import POSTGRES_UID, PROMETHEUS_UID
from infra.dashboards.sre import sre_dashboard

__all__ = [
    "CITY_QUERIES",
    "DASHBOARDS_DIR",
    "POSTGRES_UID",
    "PROMETHEUS_UID",
    "CityQuery",
    "city_dashboard",
    "dashboards",
    "render",
    "sre_dashboard",
]

DASHBOARDS_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"


def dashboards() -> dict[str, dict]:
    """Every dashboard by its file name."""
    return {"fleetscope-sre.json": sre_dashboard(), "fleetscope-city.json": city_dashboard()}


def render(dashboard: dict) -> str:
    """A dashboard as its file's text: sorted keys, indent 2, a trailing newline (stable diffs)."""
    return json.dumps(dashboard, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
