"""Segment windows through the real broker, Faust workers and PostgreSQL: one worker or two, same rows."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from fleetscope.settings import Settings, load_settings
from infra.broker import ensure_topics
from infra.postgres import apply_schema
from infra.process import free_ports
from infra.worker import WorkerProcess
from sim.publish import in_delivery_order
from sim.world import GpsEmission, World, WorldConfig
from streams.context.road_network import load_network
from streams.producer import FleetProducer
from streams.schema import GpsFix
from streams.sinks.tables import segment_stats

T0 = datetime(2026, 11, 3, 7, 30, tzinfo=timezone.utc)


def consumer_group(base: Settings, name: str) -> dict:
    """Settings overrides for a consumer group of its own on the test stack: its topics, app id and database."""
    db = f"fleetscope_{name}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(base.postgres.url("psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return {
        "kafka": {
            "bootstrap_servers": base.kafka.servers,
            "partitions": base.kafka.partitions,
            "topic_prefix": f"{name}.",
        },
        "postgres": {"dsn": f"postgresql://postgres@127.0.0.1:{base.postgres.embedded_port}/{db}"},
        "triton": {"url": base.triton.grpc_url},
        "worker": {
            "app_id": f"fleetscope-{name}-{uuid.uuid4().hex[:6]}",
            "match_idle_flush_s": 2,
            "segment_flush_s": 0.5,
        },
    }


def worker_settings(group: dict, run_dir: Path) -> Settings:
    """One worker of the group: a metrics port and run directory of its own."""
    (port,) = free_ports(1)
    return load_settings(
        **{**group, "worker": {**group["worker"], "metrics_port": port}},
        stack={"run_dir": run_dir, "startup_timeout_s": 120},
    )


def metric(w: WorkerProcess, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{w.metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def stats_rows(settings: Settings) -> list[tuple]:
    engine = sa.create_engine(settings.postgres.url("psycopg"))
    cols = [c for c in segment_stats.c if c.name != "updated_at"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*cols).order_by(*segment_stats.primary_key.columns)).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def settled_rows(settings: Settings, timeout_s: float = 120, quiet_s: float = 5) -> list[tuple]:
    """segment_stats once it has stopped changing for ``quiet_s`` (bounded by ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        rows = stats_rows(settings)
        if rows != last:
            last, since = rows, time.monotonic()
        elif rows and time.monotonic() - since >= quiet_s:
            return rows
        time.sleep(0.5)
    raise AssertionError(f"segment_stats still changing after {timeout_s}s ({len(last or [])} rows)")


@pytest.fixture
def fixes() -> list[GpsFix]:
    """Five minutes of a 40-vehicle fleet's GPS, in delivery order (late fixes included)."""
    world = World(load_network(), WorldConfig(vehicles=40, frames=False), seed=11, start=T0)
    return [
        GpsFix(
            **e.truth.model_dump(include={"vehicle_id", "ts", "lat", "lon", "speed_mps", "heading_deg", "accuracy_m"})
        )
        for e in in_delivery_order(world.run(300))
        if isinstance(e, GpsEmission)
    ]


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Settings, list[WorkerProcess]]]:
    groups = {name: consumer_group(settings, name) for name in ("one", "two")}
    with ExitStack() as stack:
        started = []
        for n, name in enumerate(("one", "two", "two")):
            w = WorkerProcess(worker_settings(groups[name], tmp_path / f"worker{n}"))
            if n < 2:
                ensure_topics(w.settings)
                apply_schema(w.settings)
            stack.callback(w.stop)
            w.start()
            started.append(w)
        # The second worker of group "two" joined last: wait until the group has settled with both in it.
        deadline = time.monotonic() + 60
        while not all(metric(w, "fleetscope_worker_ready") == 1 for w in started[1:]):
            assert time.monotonic() < deadline, "group 'two' did not settle with both workers"
            time.sleep(0.5)
        yield started[0].settings, started[1].settings, started


def test_two_workers_in_one_group_write_the_same_segment_stats_as_one_worker(workers, fixes):
    one, two, (alone, first, second) = workers
    for settings in (one, two):
        with FleetProducer(settings) as producer:
            for f in fixes:
                producer.send_gps(f)

    rows_one, rows_two = settled_rows(one), settled_rows(two)
    gps_topic = two.topic("fleet.gps")
    split = [metric(w, "fleetscope_messages_in_total", topic=gps_topic) for w in (first, second)]
    assert all(n > 0 for n in split) and sum(split) == len(fixes), f"both workers consumed part of the GPS: {split}"
    assert metric(alone, "fleetscope_messages_in_total", topic=one.topic("fleet.gps")) == len(fixes)

    assert len(rows_one) > 100
    assert rows_two == rows_one
    # Every fix counts in the two overlapping windows that contain it; nearly all fixes are matched.
    counted = sum(r[3] for r in rows_one) / 2
    assert 0.95 * len(fixes) <= counted <= len(fixes)
