"""deploy/compose: the single-host deployment, validated offline by docker-compose (no Docker daemon needed)
and against fleetscope's settings, the Prometheus config and a real PostgreSQL.

docker-compose comes from Debian's ``docker-compose`` package (``make ops-tools`` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml

from core.settings import REPO_ROOT, Section, Settings, load_settings
from infra.postgres import EmbeddedPostgres, _bin, apply_schema
from infra.process import free_ports
from streams.sinks.migrations import READER_ROLE, WRITER_ROLE

COMPOSE_DIR = REPO_ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ROLES_SCRIPT = COMPOSE_DIR / "postgres-init" / "10-fleetscope-roles.sh"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning"
DOCKER_COMPOSE = shutil.which("docker-compose") or "/usr/bin/docker-compose"

REQUIRED = sorted(set(re.findall(r"\$\{(\w+):\?", COMPOSE_FILE.read_text())))
PASSWORDS = {name: f"test-{name.lower().replace('_', '-')}" for name in REQUIRED}


def compose_config(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with only ``env`` (an empty env file: a developer's .env must not count)."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    clean = {k: v for k, v in os.environ.items() if k not in PASSWORDS and not k.startswith("FLEETSCOPE_")}
    return subprocess.run(
        [DOCKER_COMPOSE, "--env-file", str(empty), "-f", str(COMPOSE_FILE), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as docker-compose resolves it: variables filled in, relative paths made absolute."""
    result = compose_config(PASSWORDS, tmp_path_factory.mktemp("compose"))
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def fleetscope_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run a fleetscope command."""
    return {name: svc for name, svc in config["services"].items() if svc.get("entrypoint") == ["fleetscope"]}


def fleetscope_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items() if k.startswith("FLEETSCOPE_")}


def test_the_passwords_are_required(tmp_path: Path) -> None:
    assert {"POSTGRES_PASSWORD", "PIPELINE_DB_PASSWORD", "DASHBOARD_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= set(
        REQUIRED
    )
    for name in REQUIRED:
        result = compose_config({k: v for k, v in PASSWORDS.items() if k != name}, tmp_path)
        assert result.returncode != 0, f"docker-compose config accepted the file without {name}"
        assert f"set {name}" in result.stderr, result.stderr


def test_env_example_names_every_required_variable() -> None:
    example = (COMPOSE_DIR / ".env.example").read_text()
    assigned = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert set(REQUIRED) <= assigned, f".env.example lacks {sorted(set(REQUIRED) - assigned)}"


def test_fleetscope_variables_are_settings(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    services = fleetscope_services(config)
    assert set(services) == {"topics", "schema", "worker"}
    for name, service in services.items():
        env = fleetscope_env(service)
        for variable in env:
            section, _, field = variable.removeprefix("FLEETSCOPE_").lower().partition("__")
            assert section in Settings.model_fields, f"{name}: {variable} names no settings section"
            if field:
                section_type = Settings.model_fields[section].annotation
                assert isinstance(section_type, type) and issubclass(section_type, Section)
                assert field in section_type.model_fields, f"{name}: {variable} is no field of [{section}]"
        for variable in [k for k in os.environ if k.startswith("FLEETSCOPE_")]:
            monkeypatch.delenv(variable)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        settings = load_settings()  # raises, naming the variable, on any value the settings refuse
        services_here = set(config["services"])
        assert settings.kafka.bootstrap_servers is not None
        assert {s.split(":")[0] for s in settings.kafka.bootstrap_servers.split(",")} <= services_here
        assert settings.triton.url is not None and settings.triton.url.split(":")[0] in services_here
        assert not settings.postgres.embedded and urlsplit(settings.postgres.url()).hostname in services_here


def test_the_worker_waits_for_topics_schema_and_services(config: dict[str, Any]) -> None:
    services = config["services"]
    depends = services["worker"]["depends_on"]
    assert set(depends) <= set(services)
    assert depends["topics"]["condition"] == "service_completed_successfully"
    assert depends["schema"]["condition"] == "service_completed_successfully"
    for service in ("kafka", "postgres", "triton"):
        assert depends[service]["condition"] == "service_healthy"
        assert "healthcheck" in services[service], f"{service} has no healthcheck to wait for"
    assert services["topics"]["command"] == ["topics"]
    assert services["schema"]["command"] == ["schema"]
    assert services["worker"]["command"] == ["worker"]
    for one_shot in ("topics", "schema"):
        assert set(services[one_shot]["depends_on"]) <= set(services)


def test_the_roles_are_the_ones_the_schema_grants_to(config: dict[str, Any]) -> None:
    services = config["services"]
    pipeline = urlsplit(fleetscope_env(services["worker"])["FLEETSCOPE_POSTGRES__DSN"])
    admin = urlsplit(fleetscope_env(services["schema"])["FLEETSCOPE_POSTGRES__ADMIN_DSN"])
    postgres = services["postgres"]["environment"]
    assert admin.username == postgres["POSTGRES_USER"] and admin.password == postgres["POSTGRES_PASSWORD"]
    assert pipeline.path == admin.path == f"/{postgres['POSTGRES_DB']}"
    assert pipeline.password == postgres["PIPELINE_DB_PASSWORD"]
    script = ROLES_SCRIPT.read_text()
    assert f"CREATE ROLE {pipeline.username} LOGIN PASSWORD :'pipeline_password' IN ROLE {WRITER_ROLE};" in script
    assert f"IN ROLE {READER_ROLE};" in script


def test_worker_metrics_match_its_healthcheck_and_prometheus(config: dict[str, Any]) -> None:
    worker = config["services"]["worker"]
    env = fleetscope_env(worker)
    port = int(env["FLEETSCOPE_WORKER__METRICS_PORT"])
    assert env["FLEETSCOPE_WORKER__METRICS_HOST"] == "0.0.0.0"  # Prometheus scrapes it from another container
    assert f"http://localhost:{port}/ready" in " ".join(worker["healthcheck"]["test"])
    scrape = {job["job_name"]: job for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]}
    assert scrape["fleetscope-worker"]["static_configs"][0]["targets"] == [f"worker:{port}"]
    triton_host = scrape["triton"]["static_configs"][0]["targets"][0].split(":")[0]
    assert triton_host in config["services"]


def test_kafka_takes_the_largest_message_fleetscope_sends(config: dict[str, Any]) -> None:
    kafka = config["services"]["kafka"]["environment"]
    assert int(kafka["KAFKA_MESSAGE_MAX_BYTES"]) > Settings().kafka.max_message_bytes
    advertised = dict(item.split("://") for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    servers = fleetscope_env(config["services"]["worker"])["FLEETSCOPE_KAFKA__BOOTSTRAP_SERVERS"]
    assert advertised["INTERNAL"] == servers, "the worker must bootstrap from the listener Kafka advertises inside"


def test_images_are_pinned(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"


def test_mounted_and_built_paths_exist(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("/"):  # a bind mount (named volumes have no slash)
                assert Path(source).exists(), f"{name} mounts {source}, which does not exist"
        if "build" in service:
            context = Path(service["build"]["context"])
            assert context == REPO_ROOT, f"{name} builds from {context}, not the repository root"
            assert (context / service["build"]["dockerfile"]).is_file(), f"{name}: no {service['build']['dockerfile']}"
    prometheus_mounts = {v.split(":")[1] for v in config["services"]["prometheus"]["volumes"]}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= prometheus_mounts


def test_grafana_gets_every_variable_its_provisioning_reads(config: dict[str, Any]) -> None:
    referenced = {
        name
        for path in GRAFANA_PROVISIONING.rglob("*.y*ml")
        for name in re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", path.read_text())
    }
    assert referenced, f"no variable found in {GRAFANA_PROVISIONING}"
    missing = referenced - set(config["services"]["grafana"]["environment"])
    assert not missing, f"the grafana service does not set {sorted(missing)}"


def test_the_roles_script_and_the_schema_give_the_pipeline_its_rights(tmp_path: Path) -> None:
    """On a fresh server, as the postgres image would: the init script, then `fleetscope schema` as the owner."""
    (port,) = free_ports(1)
    settings = load_settings(
        postgres={
            "embedded_port": port,
            "dsn": f"postgresql://fleetscope_pipeline:pw@127.0.0.1:{port}/fleetscope",
            "admin_dsn": f"postgresql://postgres@127.0.0.1:{port}/fleetscope",
        },
        stack={"run_dir": tmp_path, "startup_timeout_s": 60},
    )
    server = EmbeddedPostgres(settings)
    server.start()
    try:
        script = subprocess.run(
            ["sh", str(ROLES_SCRIPT)],
            env={
                "PATH": f"{_bin('psql').parent}:{os.environ['PATH']}",
                "PGHOST": "127.0.0.1",
                "PGPORT": str(port),
                "POSTGRES_USER": "postgres",
                "POSTGRES_DB": "fleetscope",
                "PIPELINE_DB_PASSWORD": "it's a test",  # a quote must not break the SQL
                "DASHBOARD_DB_PASSWORD": "dashboard",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert script.returncode == 0, script.stdout + script.stderr
        apply_schema(settings)
        engine = sa.create_engine(settings.postgres.admin_url("psycopg"))
        try:
            with engine.connect() as conn:

                def can(role: str, privilege: str, table: str) -> bool:
                    query = sa.text("SELECT has_table_privilege(:r, :t, :p)")
                    return bool(conn.execute(query, {"r": role, "t": table, "p": privilege}).scalar())

                for table in ("alerts", "frame_observations", "road_conditions", "segment_stats"):
                    assert can("fleetscope_pipeline", "INSERT", table) and can("fleetscope_pipeline", "UPDATE", table)
                    assert can("fleetscope_dashboard", "SELECT", table)
                    assert not can("fleetscope_dashboard", "INSERT", table)
                ddl = sa.text("SELECT has_schema_privilege('fleetscope_pipeline', 'public', 'CREATE')")
                assert not conn.execute(ddl).scalar()
                logins = conn.execute(
                    sa.text("SELECT rolname FROM pg_roles WHERE rolcanlogin AND rolname LIKE 'fleetscope%' ORDER BY 1")
                ).scalars()
                assert list(logins) == ["fleetscope_dashboard", "fleetscope_pipeline"]
        finally:
            engine.dispose()
    finally:
        server.stop()
