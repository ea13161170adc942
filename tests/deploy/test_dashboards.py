"""The Grafana dashboards (infra/dashboards/) against what they show: the committed files are what
the code generates; every PromQL expression names a metric the real worker or Triton exposes and
parses; every SQL query runs as the dashboard login on the real database, returns the columns its
panel reads, and returns rows once a drive went through the pipeline; provisioning matches the dashboards.
"""

from __future__ import annotations

import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
import yaml

from core.settings import Settings
from infra import dashboards as fd
from infra.postgres import DATABASE, EMBEDDED_LOGINS
from streams.sinks.migrations import READER_ROLE
from tests.drives import SPEED_MPS, START, drive, quiet_segment, send
from tests.promql import metric_names
from tests.waiting import wait_until

GRAFANA = fd.DASHBOARDS_DIR.parent
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "fleetscope.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "fleetscope.yaml"
# Where the compose file mounts deploy/grafana/dashboards in the Grafana container.
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"
DASHBOARD_LOGIN = next(user for user, role in EMBEDDED_LOGINS.items() if role == READER_ROLE)
# The time range the city queries are run with: around the test drives (test data is old).
RANGE = (START - timedelta(hours=1), START + timedelta(hours=1))


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def targets(dashboard: dict) -> Iterator[tuple[dict, dict]]:
    for panel in panels(dashboard):
        for target in panel["targets"]:
            yield panel, target


def exposed_series(exposition: str) -> set[str]:
    """Series names a Prometheus text exposition offers, from its TYPE lines (a labelled family with no
    sample yet has only those) and its samples: a histogram's _bucket/_sum/_count, not its bare name."""
    names = set()
    suffixes = {"histogram": ("_bucket", "_sum", "_count", "_created"), "summary": ("", "_sum", "_count", "_created")}
    for line in exposition.splitlines():
        if typed := re.match(r"# TYPE (\S+) (\S+)", line):
            name, kind = typed.groups()
            names |= {name + s for s in suffixes.get(kind, ("",))}
            if kind == "counter":
                names.add(name.removesuffix("_total") + "_created")
        elif sample := re.match(r"[a-zA-Z_:][\w:]*", line):
            names.add(sample.group())
    return names


def unexposed(exprs: list[str], exposed: set[str]) -> set[str]:
    return {name for expr in exprs for name in metric_names(expr)} - exposed


# --- Files and provisioning (no services) -----------------------------------------------------


def test_the_committed_dashboards_are_what_the_code_generates():
    generated = fd.dashboards()
    assert sorted(p.name for p in fd.DASHBOARDS_DIR.glob("*.json")) == sorted(generated)
    for name, dashboard in generated.items():
        assert (fd.DASHBOARDS_DIR / name).read_text(encoding="utf-8") == fd.render(dashboard), (
            f"{name} differs from infra/dashboards/: regenerate it with `fleetscope deploy render`"
        )


def test_provisioned_data_sources_are_the_ones_the_dashboards_use():
    provisioned = {ds["uid"]: ds for ds in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    used = {
        (ref["uid"], ref["type"])
        for dashboard in fd.dashboards().values()
        for panel, target in targets(dashboard)
        for ref in (panel["datasource"], target["datasource"])
    }
    assert {(uid, ds["type"]) for uid, ds in provisioned.items()} == used
    postgres = provisioned[fd.POSTGRES_UID]
    assert postgres["user"] == DASHBOARD_LOGIN  # the login the SQL tests below run as
    assert postgres["jsonData"]["database"] == DATABASE
    assert postgres["secureJsonData"]["password"] == "$FLEETSCOPE_DASHBOARD_PASSWORD"


def test_the_dashboard_provider_loads_the_mounted_dashboard_folder():
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == DASHBOARDS_MOUNT
    assert provider["allowUiUpdates"] is False  # the files are generated: edits belong in the code


@pytest.mark.parametrize("name", sorted(fd.dashboards()))
def test_a_dashboard_has_what_grafana_needs(name):
    dashboard = fd.dashboards()[name]
    assert dashboard["uid"] and dashboard["title"] and dashboard["refresh"] and dashboard["time"]["from"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["title"] and panel["description"] and panel["gridPos"]["w"] > 0, panel.get("title")
        assert isinstance(panel["options"], dict) and isinstance(panel["fieldConfig"]["defaults"], dict), panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            if panel["datasource"]["uid"] == fd.PROMETHEUS_UID:
                assert target["expr"], panel["title"]
            else:
                assert target["rawQuery"] and target["format"] in ("table", "time_series"), panel["title"]


# --- PromQL against the real worker and Triton ------------------------------------------------


def scrape(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    text: list[str] = []

    def scraped() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text.append(response.read().decode())
        except (urllib.error.URLError, ConnectionError):
            return False
        return True

    wait_until(scraped, 30, f"scraped {url}")
    return text[-1]


@pytest.fixture(scope="module")
def exposed(settings: Settings) -> set[str]:
    """Series the stack's worker and Triton expose."""
    return exposed_series(scrape(settings.worker.metrics_port)) | exposed_series(
        scrape(settings.triton.embedded_metrics_port)
    )


def sre_exprs() -> list[str]:
    return [t["expr"] for _, t in targets(fd.sre_dashboard())]


def test_every_sre_expression_names_metrics_the_worker_or_triton_exposes(exposed):
    exprs = sre_exprs()
    assert {"fleetscope_worker_ready", "nv_inference_queue_duration_us"} <= {n for e in exprs for n in metric_names(e)}
    assert unexposed(exprs, exposed) == set()


def test_a_metric_name_nobody_exposes_is_found(exposed):
    exprs = [
        "sum(rate(fleetscope_messages_in_total[5m])) / sum(rate(fleetscope_frames_invented_total[5m]))",
        "histogram_quantile(0.5, rate(fleetscope_triton_request_seconds[5m]))",  # the family, not its _bucket
    ]
    assert unexposed(exprs, exposed) == {"fleetscope_frames_invented_total", "fleetscope_triton_request_seconds"}


def test_every_sre_expression_parses(tmp_path):
    rules = [
        {"record": f"dashboard:expr_{n}", "expr": expr.replace("$__rate_interval", "1m")}
        for n, expr in enumerate(sre_exprs())
    ]
    assert not any("$" in r["expr"] for r in rules), "a Grafana variable this test does not substitute"
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- SQL against the real PostgreSQL, as the dashboard login ----------------------------------

_MACRO = re.compile(r"\$__(\w+)\(([^)]*)\)")


def grafana_sql(sql: str, start: datetime, end: datetime) -> str:
    """``sql`` with Grafana's PostgreSQL macros expanded as Grafana does, for the range start..end."""
    frm, to = (f"'{t.isoformat()}'" for t in (start, end))

    def expand(macro: re.Match[str]) -> str:
        name, arg = macro.groups()
        expansions = {"timeFilter": f"{arg.strip()} BETWEEN {frm} AND {to}", "timeFrom": frm, "timeTo": to}
        assert name in expansions, f"no expansion for the Grafana macro $__{name}"
        return expansions[name]

    expanded = _MACRO.sub(expand, sql)
    assert "$" not in expanded, f"a Grafana variable or macro left: {expanded}"
    return expanded


@pytest.fixture(scope="module")
def dashboard_db(settings: Settings) -> Iterator[sa.Engine]:
    engine = sa.create_engine(
        f"postgresql+psycopg://{DASHBOARD_LOGIN}@127.0.0.1:{settings.postgres.embedded_port}/{DATABASE}"
    )
    yield engine
    engine.dispose()


def run_query(engine: sa.Engine, query: fd.CityQuery) -> tuple[list[str], list[dict]]:
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar_one() == DASHBOARD_LOGIN
        result = conn.execute(sa.text(grafana_sql(query.sql, *RANGE)))
        return list(result.keys()), [dict(r._mapping) for r in result]


def test_the_city_panels_run_exactly_the_module_queries():
    sql = {t["rawSql"] for _, t in targets(fd.city_dashboard())}
    assert sql == {q.sql for q in fd.CITY_QUERIES.values()}


def test_the_fields_city_panels_name_are_columns_of_their_query():
    by_sql = {q.sql: q for q in fd.CITY_QUERIES.values()}
    for panel in panels(fd.city_dashboard()):
        columns = {c for t in panel["targets"] for c in by_sql[t["rawSql"]].columns}
        named = {o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byName"}
        for layer in panel["options"].get("layers", []):
            named |= {layer["location"]["latitude"], layer["location"]["longitude"]}
            named.add(layer["config"]["style"]["color"]["field"])
        assert named <= columns, panel["title"]
        if any(t["format"] == "time_series" for t in panel["targets"]):
            assert "time" in columns, panel["title"]


@pytest.mark.parametrize("name", sorted(fd.CITY_QUERIES))
def test_a_city_query_runs_as_the_dashboard_login_with_its_columns(dashboard_db, name):
    query = fd.CITY_QUERIES[name]
    columns, _ = run_query(dashboard_db, query)
    assert tuple(columns) == query.columns


def test_after_a_drive_the_city_queries_show_its_segment_and_its_incident(settings, dashboard_db, vehicle_id):
    segment = quiet_segment(vehicle_id)
    fixes, frames = drive(vehicle_id, segment)
    send(settings, fixes, frames)
    rows: dict[str, list[dict]] = {}

    def of_segment(name: str) -> list[dict]:
        return [r for r in rows[name] if r["segment_id"] == segment.segment_id]

    def shown() -> bool:
        rows.update({name: run_query(dashboard_db, q)[1] for name, q in fd.CITY_QUERIES.items()})
        # The drive lasts under 30 s from a round five minutes: one window of each length holds all of it.
        return (
            [(r["frames"], r["median_speed_kmh"] is not None) for r in of_segment("road_conditions")]
            == [(len(frames), True)]
            and [r["fixes"] for r in of_segment("slowest_segments")] == [len(fixes)]
            and any(r["road_class"] == segment.road_class for r in rows["segment_speeds"])
            and any(vehicle_id in r["vehicles"].split(", ") for r in rows["open_incidents"])
        )

    wait_until(shown, 120, f"every frame and fix of the drive along {segment.segment_id} shown", poll_s=1)
    (condition,) = of_segment("road_conditions")
    # On the map where its frames were taken: the mean of fixes of the drive lies among them.
    assert min(f.lat for f in fixes) <= condition["lat"] <= max(f.lat for f in fixes)
    assert min(f.lon for f in fixes) <= condition["lon"] <= max(f.lon for f in fixes)
    assert condition["vehicles"] == 1
    (traffic,) = of_segment("slowest_segments")
    assert abs(traffic["median_speed_kmh"] - SPEED_MPS * 3.6) < 0.5  # every fix of the drive says 36 km/h
    assert rows["open_incident_count"][0]["open_incidents"] >= 1
    # The speed series: the ten segments slowest against their limit (the drive's among them if ten or fewer).
    with dashboard_db.connect() as conn:
        with_speeds = conn.execute(
            sa.text(
                "SELECT count(DISTINCT segment_id) FROM segment_stats WHERE window_start BETWEEN :a AND :b"
                " AND median_speed_kmh IS NOT NULL AND speed_limit_kmh > 0"
            ),
            {"a": RANGE[0], "b": RANGE[1]},
        ).scalar_one()
    series = {r["segment"] for r in rows["slowest_segment_speeds"]}
    assert len(series) == min(with_speeds, 10)
    if with_speeds <= 10:
        assert any(name.endswith(segment.segment_id) for name in series)
