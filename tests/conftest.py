"""Fixtures that start real services: the Tansu broker, PostgreSQL, tritonserver and a Faust worker.

Every wait is bounded; a service that cannot start fails the test run (never skips it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings, load_settings
from infra.process import free_ports
from infra.stack import Stack
from streams.producer import FleetProducer

EVERY_FRAME_RULES = Path(__file__).with_name("alert_rules_every_frame.yaml")


# The tests' data is dated from this day on (older than the worker admits by default).
TEST_DATA_FROM = "2026-01-01T00:00:00+00:00"


def stack_settings(run_dir: Path, **worker: object) -> Settings:
    """Settings for an embedded stack of its own: fresh ports and run directory; test data admitted."""
    kafka, pg, http, grpc, tmetrics, metrics = free_ports(6)
    return load_settings(
        kafka={"embedded_port": kafka, "partitions": 2},
        postgres={"embedded_port": pg},
        triton={
            "embedded_http_port": http,
            "embedded_grpc_port": grpc,
            "embedded_metrics_port": tmetrics,
            "request_timeout_s": 30,
        },
        worker={"metrics_port": metrics, "backfill_from": TEST_DATA_FROM, **worker},
        stack={"run_dir": run_dir, "startup_timeout_s": 120},
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole embedded stack. Its alert rules raise an alert for every frame (and the anomaly
    threshold is 0): the alert path is then exercised deterministically whatever the (untrained)
    weights score."""
    settings = stack_settings(
        tmp_path_factory.mktemp("stack"), alert_rules=EVERY_FRAME_RULES, anomaly_threshold=0.0, sink_linger_s=0.2
    )
    st = Stack(settings)
    st.start()
    try:
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="session")
def settings(stack: Stack) -> Settings:
    return stack.settings


@pytest.fixture
def producer(settings: Settings) -> Iterator[FleetProducer]:
    with FleetProducer(settings) as p:
        yield p


@pytest.fixture
def vehicle_id() -> str:
    """A vehicle id no other test uses, so tests can share topics and tables."""
    return f"test-{uuid.uuid4().hex[:10]}"
