"""deploy/prometheus: the scrape config and the alerting rules, checked by promtool and by a real Prometheus
scraping the embedded stack.

promtool and prometheus come from Debian's ``prometheus`` package (``make ops-tools`` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import REGISTRY

from core.settings import REPO_ROOT, Settings
from infra.process import free_ports, tail
from streams import metrics
from tests.promql import metric_names
from tests.waiting import wait_until

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# What an identifier in an expression can be besides a metric name.


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *map(str, args)], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def worker_series() -> dict[str, set[str]]:
    """Every series name the worker's registry can expose, with its label names (a counter is scraped
    as ``_total``, a histogram as ``_bucket``/``_sum``/``_count``)."""
    series: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, Counter):
            series[f"{metric._name}_total"] = set(metric._labelnames)
        elif isinstance(metric, Histogram):
            for suffix in ("_bucket", "_sum", "_count"):
                series[metric._name + suffix] = set(metric._labelnames) | ({"le"} if suffix == "_bucket" else set())
        elif isinstance(metric, Gauge):
            series[metric._name] = set(metric._labelnames)
    # The default registry's own collectors (process_*, python_*): their samples carry their labels.
    for family in REGISTRY.collect():
        for sample in family.samples:
            series.setdefault(sample.name, set(sample.labels))
    return series


@pytest.fixture(scope="module")
def triton_series(settings: Settings) -> dict[str, set[str]]:
    """Series the embedded Triton really serves, with their label names, named as Prometheus stores them.

    Read as text: prometheus_client's parser (infra.scrape) adds ``_total`` to counters that lack it, and
    Triton's (nv_inference_request_failure) do lack it.
    """
    url = f"http://127.0.0.1:{settings.triton.embedded_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    series: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            assert name, f"not a sample line: {line!r}"
            labels = re.findall(r'(\w+)="(?:[^"\\]|\\.)*"', line[name.end() :])
            series.setdefault(name.group(), set()).update(labels)
    assert any(name.startswith("nv_") for name in series), f"Triton serves no nv_ metric: {sorted(series)}"
    return series


def test_promtool_accepts_the_config_and_the_rules() -> None:
    config = promtool("check", "config", CONFIG)
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", ALERTS)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout


def test_alert_unit_tests_pass() -> None:
    result = promtool("test", "rules", ALERT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = [rule["alert"] for rule in alert_rules()]
    assert len(alerts) == len(set(alerts)), f"alert names repeat: {alerts}"
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for case in group["alert_rule_test"]:
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert not set(alerts) - firing, f"alerts without a case where they fire: {sorted(set(alerts) - firing)}"
    assert not set(alerts) - quiet, f"alerts without a case where they must not fire: {sorted(set(alerts) - quiet)}"
    assert not (firing | quiet) - set(alerts), f"cases for no alert: {sorted((firing | quiet) - set(alerts))}"


def test_every_alert_has_severity_and_its_annotations() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]


def test_alerts_select_only_metrics_that_exist(triton_series: dict[str, set[str]]) -> None:
    known = set(worker_series()) | {name for name in triton_series if name.startswith("nv_")} | {"up"}
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        unknown = names - known
        assert not unknown, f"{rule['alert']} selects {sorted(unknown)}, which neither the worker nor Triton exports"


def test_unit_test_series_look_like_real_ones(triton_series: dict[str, set[str]]) -> None:
    """An input series with a label the real metric lacks would make a rule pass its test and never fire."""
    real = worker_series() | triton_series | {"up": set()}
    for group in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for item in group["input_series"]:
            name, _, matchers = item["series"].partition("{")
            labels = set(re.findall(r"(\w+)\s*=", matchers))
            assert name in real, f"{group['name']}: {name} is no metric the worker or Triton exports"
            extra = labels - real[name] - TARGET_LABELS
            assert not extra, f"{group['name']}: {name} has no label {sorted(extra)} (it has {sorted(real[name])})"


def _api(port: int, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}{query}", timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return body["data"]


def _answers(port: int) -> bool:
    try:
        _api(port, "status/buildinfo")
    except OSError:
        return False
    return True


def _values(port: int, query: str) -> list[float]:
    return [float(item["value"][1]) for item in _api(port, "query", query=query)["result"]]


@pytest.fixture
def prometheus(settings: Settings, tmp_path: Path) -> Iterator[int]:
    """A real Prometheus with deploy/prometheus's config and rules, scraping the embedded stack every second."""
    (port,) = free_ports(1)
    config = yaml.safe_load(CONFIG.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERTS)]
    targets = {
        "fleetscope-worker": f"127.0.0.1:{settings.worker.metrics_port}",
        "triton": f"127.0.0.1:{settings.triton.embedded_metrics_port}",
        "prometheus": f"127.0.0.1:{port}",
    }
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until(lambda: proc.poll() is not None or _answers(port), 60, "Prometheus answering")
        assert proc.poll() is None, f"Prometheus exited with {proc.returncode}:\n{tail(log_path)}"
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_a_real_prometheus_scrapes_the_stack_and_loads_the_rules(prometheus: int) -> None:
    port = prometheus
    wait_until(
        lambda: _values(port, 'fleetscope_worker_ready{job="fleetscope-worker"}') == [1.0],
        90,
        "fleetscope_worker_ready == 1 scraped from the worker",
        poll_s=0.5,
    )
    wait_until(
        lambda: _values(port, 'count({job="triton", __name__=~"nv_inference_.+"})') != [],
        60,
        "a Triton nv_inference_ metric scraped",
        poll_s=0.5,
    )

    def rules() -> dict[str, str]:
        groups = _api(port, "rules")["groups"]
        return {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}

    expected = {rule["alert"] for rule in alert_rules()}
    wait_until(lambda: set(rules()) == expected, 30, "every rule of alerts.yml loaded", poll_s=0.5)
    # A rule is "unknown" until first evaluated; "err" means Prometheus could not evaluate it.
    wait_until(lambda: all(h != "unknown" for h in rules().values()), 30, "every rule evaluated", poll_s=0.5)
    assert {name for name, health in rules().items() if health != "ok"} == set()

    def targets() -> dict[str, str]:
        return {t["labels"]["job"]: t["health"] for t in _api(port, "targets")["activeTargets"]}

    # Each target is "unknown" until its first scrape (Prometheus' own may come last under load).
    wait_until(lambda: "unknown" not in targets().values(), 30, "every target scraped once", poll_s=0.5)
    assert targets() == {"fleetscope-worker": "up", "triton": "up", "prometheus": "up"}
