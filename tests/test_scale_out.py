"""Scale-out: three workers in one consumer group share the fleet's partitions; one is killed with
SIGKILL mid-stream and the two left take its partitions over. Every frame is stored once; the traffic
windows and every frame's image outputs are what a single worker stores from the same input.

The kill comes at the worst moment for the GPS path: the group has committed the offsets of every fix
sent so far while the victim still holds its vehicles' newest fixes pending in their map matchers, and
the stream pauses longer than the idle commit's wait before it goes on."""

from __future__ import annotations

import math
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, closing
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from core.settings import Settings
from records.messages import Frame, GpsFix, Scene, decode
from roads.network import load_network
from sim.publish import as_message, in_delivery_order
from sim.render import render_jpeg
from sim.world import World, WorldConfig
from streams import topics
from streams.context.segment_windows import partition_of
from streams.producer import FleetProducer
from streams.sinks import tables
from tests.kafka_reader import read_until
from tests.waiting import wait_until
from tests.worker_groups import metric, start_workers

T0 = datetime(2026, 11, 4, 8, 0, tzinfo=timezone.utc)
PARTITIONS = 6  # two per worker of three
# Written when a row is (re)written, so they differ between any two runs; every other column must not.
WRITE_TIMES = {"inserted_at", "created_at", "updated_at"}
# Per-frame columns that follow from the frame alone, whatever the order fixes and frames are read in.
IMAGE_ONLY = ("frame_id", "vehicle_id", "captured_at", "anomaly_score", "anomaly_type")
# CPU inference is not bit-identical across batch compositions: scores may differ in the 6th digit.
SCORE_TOLERANCE = 1e-4
# The groups' match_idle_flush_s: a victim killed as soon as its offsets are committed has not made its idle commit.
IDLE_S = 6


def fleet_messages() -> list[Frame | GpsFix]:
    """A minute of a six-vehicle fleet (frames every 2 s, GPS every second), in delivery order."""
    world = World(load_network(), WorldConfig(vehicles=6, frame_interval_s=2.0), seed=23, start=T0)
    return [as_message(e, render_jpeg) for e in in_delivery_order(world.run(60))]


def send(settings: Settings, messages: list[Frame | GpsFix]) -> None:
    with FleetProducer(settings) as producer:
        for m in messages:
            if isinstance(m, Frame):
                producer.send_frame(m)
            else:
                producer.send_gps(m)


def gps_committed(probe: KafkaConsumer, settings: Settings, sent: list[Frame | GpsFix]) -> bool:
    """Whether the group has committed the offsets of every GPS fix in ``sent`` (the topics held nothing before).

    Counted from the messages, not read as end offsets: Tansu's can lag the last record batch."""
    per_partition = Counter(partition_of(m.vehicle_id, PARTITIONS) for m in sent if isinstance(m, GpsFix))
    topic = settings.topic(topics.GPS)
    return all((probe.committed(TopicPartition(topic, p)) or 0) >= n for p, n in per_partition.items())


def count_frames(settings: Settings) -> int:
    engine = sa.create_engine(settings.postgres.url("psycopg"))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(tables.frame_observations)).scalar_one()
    finally:
        engine.dispose()


def snapshot(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every pipeline table's rows (without write times), ordered by primary key."""
    engine = sa.create_engine(settings.postgres.url("psycopg"))
    out = {}
    try:
        with engine.connect() as conn:
            for table in (
                tables.frame_observations,
                tables.alerts,
                tables.road_conditions,
                tables.segment_road_conditions,
                tables.segment_stats,
            ):
                cols = [c for c in table.c if c.name not in WRITE_TIMES]
                query = sa.select(*cols).order_by(*table.primary_key.columns)
                out[table.name] = [dict(row._mapping) for row in conn.execute(query)]
    finally:
        engine.dispose()
    return out


def settled_snapshot(settings: Settings, timeout_s: float = 120, quiet_s: float = 5) -> dict[str, list]:
    """The tables once they have stopped changing for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while True:
        now = snapshot(settings)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
        assert time.monotonic() < deadline, f"tables still changing after {timeout_s:.0f} s"
        time.sleep(0.5)


def differences(a: Any, b: Any, where: str = "") -> Iterator[str]:
    """Where ``a`` and ``b`` differ, floats compared to SCORE_TOLERANCE."""
    if isinstance(a, float) and isinstance(b, float):
        if not math.isclose(a, b, abs_tol=SCORE_TOLERANCE):
            yield f"{where}: {a} != {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            yield f"{where}: keys {sorted(a)} != {sorted(b)}"
        else:
            for k in a:
                yield from differences(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            yield f"{where}: {len(a)} items != {len(b)}"
        else:
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                yield from differences(x, y, f"{where}[{i}]")
    elif a != b:
        yield f"{where}: {a!r} != {b!r}"


def test_differences_compare_scores_to_the_tolerance_and_everything_else_exactly():
    assert list(differences({"s": [0.5, "a"]}, {"s": [0.5 + SCORE_TOLERANCE / 2, "a"]})) == []
    assert list(differences({"s": [0.5]}, {"s": [0.51]})) == [".s[0]: 0.5 != 0.51"]
    assert list(differences([{"t": "x"}], [{"t": "y"}])) == ["[0].t: 'x' != 'y'"]
    assert list(differences([1], [1, 2])) == [": 1 items != 2"]


def test_three_workers_with_one_killed_mid_stream_store_every_frame_once_as_one_worker_does(settings, tmp_path):
    messages = fleet_messages()
    frame_ids = {m.frame_id for m in messages if isinstance(m, Frame)}
    with ExitStack() as stack:
        names = ["solo", "trio", "trio", "trio"]
        solo, *trio = start_workers(stack, settings, tmp_path, names, PARTITIONS, match_idle_flush_s=IDLE_S)
        wait_until(lambda: all(metric(w, "fleetscope_worker_ready") == 1 for w in trio), 90, "all three ready")
        group = trio[0].settings
        half = len(messages) // 2
        send(solo.settings, messages)
        send(group, messages[:half])

        frames_topic = group.topic(topics.FRAMES)
        probe = stack.enter_context(
            closing(
                KafkaConsumer(
                    bootstrap_servers=group.kafka.servers, group_id=group.worker.app_id, enable_auto_commit=False
                )
            )
        )
        wait_until(
            lambda: (
                gps_committed(probe, group, messages[:half])
                and all(metric(w, "fleetscope_messages_in_total", topic=frames_topic) > 0 for w in trio)
            ),
            120,
            "the first half's GPS offsets committed and each worker reading frames",
        )
        consumed = [metric(w, "fleetscope_messages_in_total", topic=frames_topic) for w in trio]
        victim, survivors = trio[-1], trio[:-1]
        os.killpg(victim.process.pid, signal.SIGKILL)
        # The input pauses (this sleep is the data's, not a wait for a condition): the old owner would
        # have made its idle commit here, so the worker that takes its partitions over makes it.
        time.sleep(IDLE_S + 3)
        # The second half includes later frames of the killed worker's vehicles: only a survivor can store them.
        send(group, messages[half:])

        wait_until(lambda: count_frames(group) == len(frame_ids), 300, f"all {len(frame_ids)} frames stored")
        wait_until(lambda: count_frames(solo.settings) == len(frame_ids), 300, "the single worker done")
        alone, shared = settled_snapshot(solo.settings), settled_snapshot(group)
        assert not victim.process.running(), "the killed worker stayed dead"
        taken_over = sum(metric(w, "fleetscope_messages_in_total", topic=frames_topic) for w in survivors)

    stored = [row["frame_id"] for row in shared["frame_observations"]]
    assert sorted(stored) == sorted(frame_ids)  # none lost; frame_id is the key, so none twice either
    assert taken_over >= len(frame_ids) - consumed[-1], "the survivors consumed every frame the killed one did not"
    # GPS-derived tables and image-derived columns are what one worker stores.
    assert alone["segment_stats"] and list(differences(alone["segment_stats"], shared["segment_stats"])) == []
    image_only = [{c: r[c] for c in IMAGE_ONLY} for r in alone["frame_observations"]]
    assert list(differences(image_only, [{c: r[c] for c in IMAGE_ONLY} for r in shared["frame_observations"]])) == []
    # The ST context is joined by arrival (the nearest fix read so far, the segment window as read so
    # far), so its aspects differ a little between any two runs, one worker each included.
    pairs = list(zip(alone["frame_observations"], shared["frame_observations"], strict=True))
    agree = sum(a["aspects"][k] == b["aspects"][k] for a, b in pairs for k in a["aspects"]) / sum(
        len(a["aspects"]) for a, _ in pairs
    )
    print(f"scale-out: ST-CLIP aspect labels agree with one worker's on {agree:.1%} of frame-aspects")
    assert agree >= 0.9
    # The output topic is at-least-once: frames the killed worker processed after its last commit are
    # emitted again by the worker that took them over; each frame is there, none is missing.
    records = read_until(group, topics.SCENES, bool, len(frame_ids), settle_s=3)
    scenes = [decode(Scene, r.value).frame_id for r in records]
    assert set(scenes) == frame_ids
    print(f"scale-out: {len(frame_ids)} frames; {len(scenes) - len(frame_ids)} scenes emitted again after the kill")
