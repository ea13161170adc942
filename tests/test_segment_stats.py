"""Segment windows through the real broker, Faust workers and PostgreSQL: one worker or two, same rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.settings import Settings
from infra.worker import WorkerProcess
from records.messages import GpsFix
from roads.network import load_network
from sim.fleet import GpsConfig
from sim.publish import gps_message, in_delivery_order
from sim.world import GpsEmission, World, WorldConfig
from streams.producer import FleetProducer
from streams.sinks.tables import segment_stats
from tests.worker_groups import metric, start_workers

T0 = datetime(2026, 11, 3, 7, 30, tzinfo=timezone.utc)


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


def fleet_gps(late_fraction: float = 0.03) -> list[GpsFix]:
    """Five minutes of a 40-vehicle fleet's GPS, in delivery order."""
    config = WorldConfig(vehicles=40, frames=False, gps=GpsConfig(late_fraction=late_fraction))
    world = World(load_network(), config, seed=11, start=T0)
    return [gps_message(e.truth) for e in in_delivery_order(world.run(300)) if isinstance(e, GpsEmission)]


def send(settings: Settings, fixes: list[GpsFix]) -> None:
    with FleetProducer(settings) as producer:
        for f in fixes:
            producer.send_gps(f)


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    with ExitStack() as stack:
        started = start_workers(stack, settings, tmp_path, ["one", "two", "two"])
        # The second worker of group "two" joined last: wait until the group has settled with both in it.
        deadline = time.monotonic() + 60
        while not all(metric(w, "fleetscope_worker_ready") == 1 for w in started[1:]):
            assert time.monotonic() < deadline, "group 'two' did not settle with both workers"
            time.sleep(0.5)
        yield started


def test_two_workers_in_one_group_write_the_same_segment_stats_as_one_worker(workers):
    alone, first, second = workers
    one, two = alone.settings, first.settings
    fixes = fleet_gps()
    for settings in (one, two):
        send(settings, fixes)

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


def test_a_restarted_worker_recovers_its_segment_windows_from_the_changelog(settings, tmp_path):
    # No late fixes: after the pause between the halves each vehicle's matcher starts a new chain in
    # both groups, so the only difference left is the restart (and its recovery of the window table).
    fixes = fleet_gps(late_fraction=0.0)
    half = len(fixes) // 2
    with ExitStack() as stack:
        steady, restarted = start_workers(stack, settings, tmp_path, ["steady", "restarted"])
        for w in (steady, restarted):
            send(w.settings, fixes[:half])
        first_half = settled_rows(restarted.settings)
        settled_rows(steady.settings)
        restarted.stop()
        restarted.start()
        for w in (steady, restarted):
            send(w.settings, fixes[half:])
        rows_steady, rows_restarted = settled_rows(steady.settings), settled_rows(restarted.settings)
        log = restarted.process.log_path.read_text()
    recovered = [line for line in log.splitlines() if "segment windows recovered" in line]
    assert len(recovered) >= 2 and not recovered[-1].endswith("recovered: 0 windows"), recovered
    # Windows that span the restart were updated after it: they hold fixes from before and after.
    assert len(rows_restarted) > len(first_half)
    assert rows_restarted == rows_steady
