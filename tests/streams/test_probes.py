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
    metrics.loop_ticked()
    assert get(port, "/live")[0] == 200
    monkeypatch.setattr(metrics, "LOOP_STALE_S", 0.0)
    assert get(port, "/live") == (503, "event loop stalled\n")


def test_lag_is_kept_only_for_the_partitions_the_worker_holds_now(port):
    metrics.report_lag("fleet.frames", 3, 42)
    metrics.report_lag("fleet.frames", 4, 7)
    assert 'fleetscope_consumer_lag{partition="3",topic="fleet.frames"} 42.0' in get(port, "/metrics")[1]
    metrics.keep_lag_of({("fleet.frames", 4)})  # partition 3 went to another worker
    text = get(port, "/metrics")[1]
    assert 'partition="3",topic="fleet.frames"' not in text and 'partition="4",topic="fleet.frames"} 7.0' in text
    metrics.keep_lag_of(set())
    assert 'topic="fleet.frames"' not in get(port, "/metrics")[1]
