"""End to end through the real broker, Faust worker, tritonserver and PostgreSQL."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from records.messages import Alert, DeadLetter, EnrichedFrame, Frame, GpsFix, Scene, decode, utcnow
from streams import topics
from streams.deadletter_replay import LetterFilter, read_letters, replay
from streams.producer import FleetProducer
from streams.sinks.tables import alerts, frame_observations, road_conditions
from tests.frames import sample_camera, sample_jpeg
from tests.kafka_reader import read_until

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)


def make_frame(vehicle_id: str, n: int, seed: int = 1) -> Frame:
    return Frame(
        vehicle_id=vehicle_id,
        frame_id=f"{vehicle_id}-f{n}",
        captured_at=T0 + timedelta(seconds=2 * n, milliseconds=200),
        jpeg=sample_jpeg(seed + n),
        camera=sample_camera(seed + n),
    )


def make_fix(vehicle_id: str, n: int) -> GpsFix:
    return GpsFix(
        vehicle_id=vehicle_id,
        ts=T0 + timedelta(seconds=2 * n),
        lat=60.17 + n * 1e-4,
        lon=24.94,
        speed_mps=12.0,
        heading_deg=0.0,
        accuracy_m=5.0,
    )


def reported_by(alert: bytes, vehicle_id: str) -> bool:
    """Whether an alert message lists ``vehicle_id`` among the vehicles that reported the incident."""
    return vehicle_id in decode(Alert, alert).vehicles


def scenes_of(settings: Settings, frame_ids: set[str], count: int, settle_s: float = 0.0) -> list[Scene]:
    records = read_until(
        settings, topics.SCENES, lambda r: decode(Scene, r.value).frame_id in frame_ids, count, settle_s=settle_s
    )
    return [decode(Scene, r.value) for r in records]


def engine(settings: Settings) -> sa.Engine:
    return sa.create_engine(settings.postgres.url("psycopg"))


def wait_rows(settings: Settings, query: sa.Select, count: int, timeout_s: float = 60) -> list[sa.Row]:
    eng = engine(settings)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            with eng.connect() as conn:
                rows = conn.execute(query).all()
            if len(rows) >= count or time.monotonic() > deadline:
                assert len(rows) >= count, f"{len(rows)} of {count} rows within {timeout_s}s"
                return rows
            time.sleep(0.3)
    finally:
        eng.dispose()


def test_a_frame_with_gps_produces_a_scene_an_alert_and_road_conditions(settings, producer, vehicle_id):
    producer.send_gps(make_fix(vehicle_id, 0))
    producer.flush()
    frame = make_frame(vehicle_id, 0)
    producer.send_frame(frame)
    producer.flush()

    (scene,) = scenes_of(settings, {frame.frame_id}, 1)
    assert scene.vehicle_id == vehicle_id
    assert scene.gps is not None and abs(scene.gps.offset_s + 0.2) < 1e-6
    assert scene.cell_id is not None
    assert set(scene.aspects) == {
        "scene_type",
        "surface",
        "road_width",
        "accessibility",
        "weather_lighting",
        "congestion",
    }
    for aspect in scene.aspects.values():
        assert abs(sum(aspect.probs.values()) - 1) < 1e-3 and aspect.label in aspect.probs
    assert 0.0 <= scene.anomaly.score <= 1.0
    # fleet.scenes carries the vehicle's tracks: every object placed on the ground has a track.
    assert scene.kinematics is not None
    on_ground = [i for i, o in enumerate(scene.objects) if o.x_m is not None]
    assert [m.object for m in scene.kinematics.objects] == on_ground

    # The test stack's rules alert on every frame, so it must raise an alert on the topic and in Postgres.
    # Other tests' vehicles drive the same road at the same time: the alert may be theirs too.
    (record,) = read_until(settings, topics.ALERTS, lambda r: reported_by(r.value, vehicle_id), 1)
    alert = decode(Alert, record.value)
    assert record.key == alert.alert_id.encode() and frame.frame_id in alert.evidence["frame_ids"]
    assert alert.location is not None and alert.window_start <= frame.captured_at <= alert.window_end
    (row,) = wait_rows(settings, sa.select(alerts).where(alerts.c.vehicles.any(vehicle_id)), 1)
    assert row.alert_id == alert.alert_id and frame.frame_id in row.frame_ids

    (rc,) = wait_rows(settings, sa.select(road_conditions).where(road_conditions.c.cell_id == scene.cell_id), 1)
    assert rc.frames >= 1 and rc.window_seconds == settings.worker.road_window_s
    assert rc.mean_speed_kmh is not None and abs(rc.mean_speed_kmh - 12.0 * 3.6) < 1e-6


def test_a_frame_without_gps_is_processed_with_no_context(settings, producer, vehicle_id):
    frame = make_frame(vehicle_id, 3)
    producer.send_frame(frame)
    producer.flush()
    (scene,) = scenes_of(settings, {frame.frame_id}, 1)
    assert scene.gps is None and scene.cell_id is None


def test_bad_input_is_dead_lettered_with_its_reason_and_good_input_keeps_flowing(settings, producer, vehicle_id):
    good = make_frame(vehicle_id, 1)
    corrupt = make_frame(vehicle_id, 2)
    corrupt = corrupt.model_copy(update={"jpeg": corrupt.jpeg[:200]})
    nan_fix = json.dumps({**json.loads(make_fix(vehicle_id, 1).encode()), "lat": float("nan")}).encode()
    assert b'"lat": NaN' in nan_fix

    producer.send_raw(topics.FRAMES, vehicle_id, b"{not json")
    producer.send_frame(corrupt)
    producer.send_raw(topics.GPS, vehicle_id, nan_fix)
    producer.send_frame(good)
    producer.flush()

    letters = [
        decode(DeadLetter, r.value)
        for r in read_until(settings, topics.DEADLETTER, lambda r: r.key == vehicle_id.encode(), 3)
    ]
    by_reason = {letter.reason: letter for letter in letters}
    assert set(by_reason) == {"not_json", "corrupt_jpeg", "invalid_lat"}
    assert by_reason["not_json"].payload == b"{not json"
    assert by_reason["invalid_lat"].source_topic == settings.topic(topics.GPS)
    assert decode(Frame, by_reason["corrupt_jpeg"].payload).frame_id == corrupt.frame_id
    assert all(letter.stage == "ingest" for letter in letters)

    (scene,) = scenes_of(settings, {good.frame_id}, 1)
    assert scene.frame_id == good.frame_id


def with_fields(message: Frame | GpsFix, **fields: object) -> bytes:
    """The message's JSON with ``fields`` set (values the schema's own types would not let through)."""
    return json.dumps({**json.loads(message.encode()), **fields}).encode()


def test_implausible_times_are_dead_lettered_and_the_good_messages_between_them_are_stored(
    settings, stack, producer, vehicle_id
):
    from infra.worker import WorkerProcess

    worker = psutil.Process(next(s for s in stack.started if isinstance(s, WorkerProcess)).process.pid)
    rss_before = worker.memory_info().rss
    bad = {"9999": ("9999-12-31T00:00:00Z", "time_in_future"), "1970": ("1970-01-01T00:00:00Z", "time_too_old")}
    bad["minus-one"] = (-1, "time_too_old")  # seconds since the epoch: 1969-12-31 23:59:59
    good = [make_frame(vehicle_id, n) for n in range(len(bad) + 1)]
    for n, (name, (when, _)) in enumerate(bad.items()):
        producer.send_raw(topics.GPS, vehicle_id, with_fields(make_fix(vehicle_id, 50 + n), ts=when))
        producer.send_raw(
            topics.FRAMES, vehicle_id, with_fields(make_frame(vehicle_id, 50 + n), captured_at=when, frame_id=name)
        )
        # The good frame's fix comes just after it: the join waits for it unless a future-dated fix in
        # the vehicle's history says GPS has moved past the frame (frames then went without context).
        producer.send_frame(good[n])
        producer.flush()
        producer.send_gps(make_fix(vehicle_id, n))
    # A firmware that adds a field: ignored and counted, the fix is used.
    producer.send_raw(topics.GPS, vehicle_id, with_fields(make_fix(vehicle_id, len(bad)), firmware="2.1"))
    producer.send_frame(good[-1])
    producer.flush()

    letters = [
        decode(DeadLetter, r.value)
        for r in read_until(settings, topics.DEADLETTER, lambda r: r.key == vehicle_id.encode(), 2 * len(bad))
    ]
    assert sorted((letter.source_topic, letter.reason) for letter in letters) == sorted(
        (settings.topic(topic), reason) for _, reason in bad.values() for topic in (topics.GPS, topics.FRAMES)
    )
    assert all(letter.stage == "ingest" for letter in letters)
    ids = [f.frame_id for f in good]
    rows = wait_rows(settings, sa.select(frame_observations).where(frame_observations.c.frame_id.in_(ids)), len(ids))
    assert all(row.lat is not None for row in rows), "a good frame was stored without its GPS fix"
    assert (
        metric_values(settings)[
            ("fleetscope_unknown_fields_total", (("field", "firmware"), ("topic", settings.topic(topics.GPS))))
        ]
        >= 1
    )
    # A fix dated 9999 took the worker to 22 GB before windows were bounded whatever the time.
    assert worker.memory_info().rss - rss_before < 200 * 2**20


def test_a_scene_postgres_rejects_is_dead_lettered_alone_and_its_batch_is_stored(settings, producer, vehicle_id):
    frame = make_frame(vehicle_id, 4)
    producer.send_frame(frame)
    producer.flush()
    (scene,) = scenes_of(settings, {frame.frame_id}, 1)
    # Valid for the schema, refused by PostgreSQL: JSONB cannot hold a NUL character.
    label = scene.aspects["surface"].model_copy(update={"label": "dry\u0000"})
    batch = [
        scene.model_copy(
            update={"frame_id": f"{frame.frame_id}-{n}", "captured_at": scene.captured_at + timedelta(seconds=n)}
        )
        for n in range(1, 4)
    ]
    batch[1] = batch[1].model_copy(update={"aspects": scene.aspects | {"surface": label}})
    for s in batch:
        producer.send_raw(topics.SCENES_INFERRED, vehicle_id, s.encode())
    producer.flush()

    (letter,) = [
        decode(DeadLetter, r.value)
        for r in read_until(settings, topics.DEADLETTER, lambda r: r.key == vehicle_id.encode(), 1)
    ]
    assert (letter.stage, letter.reason) == ("fusion", "sink_rejected")
    assert decode(Scene, letter.payload).frame_id == batch[1].frame_id
    good = [batch[0].frame_id, batch[2].frame_id]
    rows = wait_rows(
        settings, sa.select(frame_observations.c.frame_id).where(frame_observations.c.frame_id.in_(good)), 2
    )
    assert sorted(r.frame_id for r in rows) == good
    assert sorted(s.frame_id for s in scenes_of(settings, set(good) | {batch[1].frame_id}, 2, settle_s=2.0)) == good


def test_a_replayed_dead_letter_is_processed_again_and_stored_once(settings, producer, vehicle_id):
    producer.send_gps(make_fix(vehicle_id, 5))
    frame = make_frame(vehicle_id, 5)
    producer.send_frame(frame)
    producer.flush()
    scenes_of(settings, {frame.frame_id}, 1)
    # The letter inference would have written had Triton been down: the enriched frame, whole.
    (enriched,) = read_until(
        settings, topics.FRAMES_ENRICHED, lambda r: decode(EnrichedFrame, r.value).frame.frame_id == frame.frame_id, 1
    )
    letter = DeadLetter(
        source_topic=enriched.topic,
        partition=enriched.partition,
        offset=enriched.offset,
        key=enriched.key.decode() if enriched.key else None,
        stage="inference",
        reason="inference_failed",
        error="Triton unavailable",
        payload=enriched.value,
        failed_at=utcnow(),
    )
    producer.send_raw(topics.DEADLETTER, vehicle_id, letter.encode())
    producer.flush()

    mine = LetterFilter(stage="inference", reason="inference_failed", since=letter.failed_at)
    chosen = [x for x in read_letters(settings) if mine(x.letter) and x.letter.payload == enriched.value]
    assert [x.letter for x in chosen] == [letter]
    assert replay(settings, chosen).sent == 1
    assert len(scenes_of(settings, {frame.frame_id}, 2)) == 2  # inferred again ...
    rows = wait_rows(settings, sa.select(frame_observations).where(frame_observations.c.frame_id == frame.frame_id), 1)
    assert len(rows) == 1  # ... and upserted, not stored twice


def metric_values(settings: Settings) -> dict[tuple[str, tuple], float]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker.metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_parse_as_prometheus_text_and_count_what_was_sent(settings, producer, vehicle_id):
    def frames_in() -> float:
        return metric_values(settings).get(
            ("fleetscope_messages_in_total", (("topic", settings.topic(topics.FRAMES)),)), 0.0
        )

    def not_json_letters() -> float:
        return metric_values(settings).get(
            ("fleetscope_dead_letters_total", (("reason", "not_json"), ("stage", "ingest"))), 0.0
        )

    before_in, before_dl = frames_in(), not_json_letters()
    frames = [make_frame(vehicle_id, n) for n in range(3)]
    for f in frames:
        producer.send_frame(f)
    producer.send_raw(topics.FRAMES, vehicle_id, b"\x00\x01 not json")
    producer.flush()
    scenes_of(settings, {f.frame_id for f in frames}, 3)

    assert frames_in() - before_in == 4
    assert not_json_letters() - before_dl == 1
    values = metric_values(settings)
    assert values[("fleetscope_worker_ready", ())] == 1.0
    assert values[("fleetscope_triton_request_seconds_count", (("model", "st_clip"),))] >= 1
    assert any(name == "fleetscope_consumer_lag" for name, _ in values)

    # Drained: every partition an agent reads reads 0 (Tansu's high watermark lags the true end, and a
    # table's changelog or Faust's own topics are assigned but never read by an agent: neither counts).
    deadline = time.monotonic() + 60
    while lag := {k: v for k, v in metric_values(settings).items() if k[0] == "fleetscope_consumer_lag" and v}:
        assert time.monotonic() < deadline, f"lag after the drain: {lag}"
        time.sleep(0.5)

    import urllib.request

    triton = f"http://127.0.0.1:{settings.triton.embedded_metrics_port}/metrics"
    with urllib.request.urlopen(triton, timeout=5) as resp:
        families = {f.name for f in text_string_to_metric_families(resp.read().decode())}
    assert "nv_inference_request_success" in families


def table_snapshot(settings: Settings, vehicle_id: str, frame_ids: list[str]) -> dict[str, list]:
    eng = engine(settings)
    try:
        with eng.connect() as conn:
            obs = conn.execute(
                sa.select(frame_observations)
                .where(frame_observations.c.frame_id.in_(frame_ids))
                .order_by(frame_observations.c.frame_id)
            ).all()
            alert_rows = conn.execute(
                sa.select(alerts).where(alerts.c.vehicles.any(vehicle_id)).order_by(alerts.c.alert_id)
            ).all()
            cells = sorted({o.cell_id for o in obs if o.cell_id})
            rc = conn.execute(
                sa.select(road_conditions)
                .where(road_conditions.c.cell_id.in_(cells))
                .order_by(road_conditions.c.cell_id, road_conditions.c.window_start)
            ).all()
    finally:
        eng.dispose()
    drop = {"inserted_at", "created_at", "updated_at"}
    return {
        name: [
            json.dumps({k: v for k, v in r._mapping.items() if k not in drop}, default=str, sort_keys=True)
            for r in rows
        ]
        for name, rows in (("frame_observations", obs), ("alerts", alert_rows), ("road_conditions", rc))
    }


def settled_snapshot(settings: Settings, vehicle_id: str, frame_ids: list[str], timeout_s: float = 60) -> dict:
    """``table_snapshot`` once two readings a second apart agree (the last batch's writes are in)."""
    deadline = time.monotonic() + timeout_s
    before = table_snapshot(settings, vehicle_id, frame_ids)
    while True:
        time.sleep(1)
        now = table_snapshot(settings, vehicle_id, frame_ids)
        if now == before:
            return now
        assert time.monotonic() < deadline, "the tables kept changing"
        before = now


def test_replaying_the_same_input_leaves_no_duplicate_rows(settings, producer, vehicle_id):
    # A unique cell for this test, so other tests' frames do not change its road conditions.
    lat = 61.0 + random.Random(vehicle_id).random()
    fixes = [make_fix(vehicle_id, n).model_copy(update={"lat": lat}) for n in range(4)]
    frames = [make_frame(vehicle_id, n) for n in range(4)]
    ids = [f.frame_id for f in frames]

    def send_all() -> None:
        for fix in fixes:
            producer.send_gps(fix)
        producer.flush()
        for f in frames:
            producer.send_frame(f)
        producer.flush()

    send_all()
    scenes_of(settings, set(ids), 4)
    wait_rows(settings, sa.select(frame_observations).where(frame_observations.c.frame_id.in_(ids)), 4)
    first = settled_snapshot(settings, vehicle_id, ids)
    assert len(first["frame_observations"]) == 4 and first["alerts"] and first["road_conditions"]

    send_all()
    scenes_of(settings, set(ids), 8)  # every frame went through the pipeline twice
    # The second round's alerts reaching the topic means its transaction committed.
    read_until(settings, topics.ALERTS, lambda r: reported_by(r.value, vehicle_id), 2 * len(first["alerts"]))
    assert table_snapshot(settings, vehicle_id, ids) == first


FAULTS = Path(__file__).with_name("faults")  # sitecustomize.py: faults injected into a worker started here


def test_a_restarted_worker_resumes_from_committed_offsets_without_duplicates(settings, stack, vehicle_id, monkeypatch):
    from infra.worker import WorkerProcess

    worker = next(s for s in stack.started if isinstance(s, WorkerProcess))
    with FleetProducer(settings) as producer:
        for n in range(6):  # a segment window, so that the restarted worker has a table to recover
            producer.send_gps(make_fix(vehicle_id, n))
        producer.flush()
        before = [make_frame(vehicle_id, n) for n in range(2)]
        for f in before:
            producer.send_frame(f)
    scenes_of(settings, {f.frame_id for f in before}, 2)

    worker.stop()
    with FleetProducer(settings) as producer:
        after = [make_frame(vehicle_id, n) for n in range(2, 4)]
        for f in after:
            producer.send_frame(f)
    # Faust used to resume the partitions before seeking them to their committed offsets once the
    # table was recovered, so frames waiting for the worker could be read twice (streams/recovery_seek.py);
    # a slow seek turns that window of a broker round trip into seconds.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FAULT_SLOW_SEEK_S", "1.5")
    worker.start()
    try:
        ids = {f.frame_id for f in before + after}
        scenes = scenes_of(settings, ids, 4, settle_s=5)
        # Frames seen before the restart are not processed again; those sent while it was down are, once.
        assert sorted(s.frame_id for s in scenes) == sorted(ids)
        wait_rows(settings, sa.select(frame_observations).where(frame_observations.c.frame_id.in_(ids)), 4)
    finally:
        monkeypatch.undo()
        worker.stop()
        worker.start()  # without the fault, for the tests after this one


def test_simulate_streams_the_fleet_into_kafka_and_the_pipeline_processes_it(settings, tmp_path):
    cmd = [sys.executable, "-m", "fleetscope", "simulate", "--to-kafka", "--duration", "6", "--vehicles", "2"]
    cmd += ["--speed", "0", "--seed", "5", "--start", "2026-01-05T10:00:00+00:00", "--truth", str(tmp_path)]
    out = subprocess.run(cmd, env=settings.process_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    truth = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    frame_ids = {f["frame_id"] for f in truth}
    assert summary["frames"] == len(frame_ids) == 6, "two vehicles, a frame every 2 s for 6 s"
    assert summary["gps"] >= 10 and (tmp_path / "road_conditions.jsonl").stat().st_size > 0

    sim_vehicles = {b"veh-000", b"veh-001"}
    records = read_until(settings, topics.FRAMES, lambda r: r.key in sim_vehicles, 6)
    assert {decode(Frame, r.value).frame_id for r in records} == frame_ids
    assert {s.frame_id for s in scenes_of(settings, frame_ids, 6)} == frame_ids


def test_a_worker_pointed_at_a_broker_without_its_topics_says_to_create_them(settings):
    # A production broker after an upgrade that added a topic: the worker must not start half-wired.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEETSCOPE_")}
    env = {
        **clean,
        "FLEETSCOPE_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.servers,
        "FLEETSCOPE_KAFKA__TOPIC_PREFIX": "unmade.",
    }
    out = subprocess.run(
        [sys.executable, "-m", "fleetscope", "worker"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert "unmade.fleet.scenes.inferred" in out.stderr and "fleetscope topics" in out.stderr
