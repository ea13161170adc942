"""A configuration mistake fails at start-up with a message saying what to fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.errors import ConfigError
from core.settings import load_settings


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEETSCOPE_")}
    return subprocess.run(
        [sys.executable, "-m", "fleetscope", *args], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_a_bad_value_names_the_variable_to_fix():
    out = run_cli("config", FLEETSCOPE_KAFKA__PARTITIONS="many")
    assert out.returncode == 2
    assert "FLEETSCOPE_KAFKA__PARTITIONS" in out.stderr and "integer" in out.stderr


def test_an_unknown_setting_is_rejected_rather_than_ignored():
    out = run_cli("config", FLEETSCOPE_TRITON__URLL="127.0.0.1:8001")
    assert out.returncode == 2 and "FLEETSCOPE_TRITON__URLL" in out.stderr


def test_two_embedded_services_on_one_port_fail_with_both_names():
    with pytest.raises(
        ConfigError, match="kafka.embedded_port and .*15432|postgres.embedded_port and kafka.embedded_port"
    ):
        load_settings(kafka={"embedded_port": 15432}, postgres={"embedded_port": 15432})


def test_secrets_are_masked_when_printed():
    out = run_cli("config", FLEETSCOPE_POSTGRES__DSN="postgresql://u:hunter2@db:5432/fleet")
    assert out.returncode == 0 and "hunter2" not in out.stdout and "**********" in out.stdout


def test_a_non_postgres_dsn_is_a_config_error():
    settings = load_settings(postgres={"dsn": "mysql://u@h/db"})
    with pytest.raises(ConfigError, match="FLEETSCOPE_POSTGRES__DSN"):
        settings.postgres.url()


def test_help_explains_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("demo", "worker", "stack", "topics", "schema", "config"):
        assert command in out.stdout


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    from core.settings import REPO_ROOT, reference_table

    page = (REPO_ROOT / "docs" / "configuration.md").read_text()
    table = reference_table()
    assert table in page, "docs/configuration.md is out of date: regenerate its table with reference_table()"
    assert not [row for row in table.splitlines() if row.endswith("|  |")], "every setting needs a description"
