"""The worker's probe endpoints, served beside /metrics on one port (what Kubernetes probes call)."""

from __future__ import annotations

import pytest

from infra.process import free_ports
from streams import metrics
from tests.http_get import get


@pytest.fixture(scope="module")
def port() -> int:
    (p,) = free_ports(1)
    metrics.serve("127.0.0.1", p)
    return p


def test_ready_follows_the_worker_readiness_and_metrics_still_serve(port):
    metrics.set_ready(False)
    assert get(port, "/ready") == (503, "not ready\n")
    metrics.set_ready(True)
    assert get(port, "/ready") == (200, "ready\n")
    status, text = get(port, "/metrics")
    assert status == 200 and "fleetscope_worker_ready 1.0" in text


def test_live_fails_once_the_event_loop_stops_ticking(port, monkeypatch):
    metrics.set_ready(True)
    assert get(port, "/live")[0] == 200
    monkeypatch.setattr(metrics, "LOOP_STALE_S", 0.0)
    assert get(port, "/live") == (503, "event loop stalled\n")


def test_a_revoked_partition_stops_reporting_lag(port):
    metrics.CONSUMER_LAG.labels("fleet.frames", "3").set(42)
    assert 'fleetscope_consumer_lag{partition="3",topic="fleet.frames"} 42.0' in get(port, "/metrics")[1]
    metrics.forget_partition("fleet.frames", 3)
    metrics.forget_partition("fleet.frames", 3)  # twice, or never reported: no error
    assert 'partition="3",topic="fleet.frames"' not in get(port, "/metrics")[1]
