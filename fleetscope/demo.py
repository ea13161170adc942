"""The embedded demo: start the stack, stream a small fleet through it, wait for every frame, summarise.

The stream comes from the simulator (``sim``, synthetic, deterministic from the seed) and includes bad input on purpose:
corrupt JPEGs, a message that is not JSON and a GPS fix with NaN coordinates, all of which must
land in the dead-letter topic while everything else is processed.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

import sqlalchemy as sa

from alerts.rules import load_rules
from core.errors import FleetscopeError
from core.settings import Settings
from evaluation.alerts import AlertReport, RaisedAlert, TypeScore, score_alerts
from evaluation.road_conditions import ConditionReport, ConditionRow, FrameObservation, score_conditions
from records.messages import DeadLetter, Frame, GpsFix, Scene, decode
from sim import seeds
from sim.truth import AnomalyEvent, FrameTruth
from streams import topics
from streams.producer import FleetProducer
from streams.reader import topic_reader
from streams.sinks.tables import alerts, frame_observations, road_conditions, segment_road_conditions, segment_stats

log = logging.getLogger(__name__)

# A Monday morning rush hour in Helsinki; incidents are frequent so that a minute shows several.
START = datetime(2026, 11, 2, 6, 0, tzinfo=timezone.utc)
DEMO_INCIDENT_RATE = 600.0


def recorded_morning(settings: Settings) -> Settings:
    """``settings`` that admit the demo's recorded morning, which is older than the worker admits by default."""
    worker = settings.worker.model_copy(update={"backfill_from": START})
    return settings.model_copy(update={"worker": worker})


@dataclass
class Summary:
    """What one demo run produced and what came out of the pipeline."""

    vehicles: int
    speed: float
    frames_produced: int
    gps_produced: int
    true_anomaly_frames: int = 0
    frames_processed: int = 0
    frame_dead_letters: int = 0
    gps_dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    alerts: int = 0
    alert_types: dict[str, int] = field(default_factory=dict)
    road_condition_rows: int = 0
    segment_condition_rows: int = 0
    frames_on_segment: int = 0
    segment_stats_rows: int = 0
    frames_per_s: float = 0.0
    latency_p50_s: float = 0.0
    latency_p99_s: float = 0.0
    stack_start_s: float = 0.0
    wall_s: float = 0.0
    complete: bool = False

    def text(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.dead_letter_reasons.items())) or "none"
        types = ", ".join(f"{k} {v}" for k, v in sorted(self.alert_types.items())) or "none"
        return "\n".join(
            [
                "fleetscope demo summary (simulated fleet, synthetic data; the shipped models, trained on"
                " simulator frames: models/README.md)",
                f"  vehicles                 {self.vehicles} (stream at {self.speed:g}x real time; 0 = unpaced)",
                f"  frames produced          {self.frames_produced}  (showing an anomaly: {self.true_anomaly_frames})",
                f"  frames processed         {self.frames_processed}",
                f"  frame dead letters       {self.frame_dead_letters}",
                f"  GPS fixes produced       {self.gps_produced}  (dead letters {self.gps_dead_letters})",
                f"  dead-letter reasons      {reasons}",
                f"  alerts (Postgres)        {self.alerts}  ({types})",
                f"  road_conditions rows     {self.road_condition_rows}  (per grid cell)",
                f"  segment_road_conditions  {self.segment_condition_rows}  (per road segment and window length)",
                f"  frames on a road segment {self.frames_on_segment}  (map-matched; the rest had no fix or segment)",
                f"  segment_stats rows       {self.segment_stats_rows}",
                f"  throughput               {self.frames_per_s:.1f} frames/s",
                f"  end-to-end latency       p50 {self.latency_p50_s * 1000:.0f} ms, "
                f"p99 {self.latency_p99_s * 1000:.0f} ms",
                f"  stack start / total      {self.stack_start_s:.1f} s / {self.wall_s:.1f} s",
                f"  all frames accounted for {'yes' if self.complete else 'NO'}",
            ]
        )


@dataclass(frozen=True)
class RunTruth:
    """What the simulator knows about one demo stream: every intact frame sent, and who saw which incident."""

    frames: dict[str, FrameTruth]  # by frame id; the frames corrupted on purpose are not here
    events: list[AnomalyEvent]
    vehicle_ids: list[str]


def produce(settings: Settings, vehicles: int, duration_s: int, seed: int, speed: float) -> tuple[Summary, RunTruth]:
    """Stream the simulated fleet plus deliberate bad input; return the summary so far and the truth of what was sent.

    ``speed`` is simulated seconds per wall second (0 = as fast as possible).
    """
    from roads.network import load_network
    from sim.publish import publish
    from sim.render import render_jpeg
    from sim.world import World, WorldConfig

    world = World(
        load_network(), WorldConfig(vehicles=vehicles, incidents_per_vehicle_hour=DEMO_INCIDENT_RATE), seed, START
    )
    corrupted: set[str] = set()
    sent = {"messages": 0, "frames": 0}

    def sabotage(message: Frame | GpsFix, _: object) -> Frame | GpsFix:
        # Deliberately bad input: it must be dead-lettered, never crash the worker or block good frames.
        sent["messages"] += 1
        if sent["messages"] == 10:
            producer.send_raw(topics.FRAMES, message.vehicle_id, b"this is not JSON")
            bad = GpsFix(vehicle_id=message.vehicle_id, ts=START, lat=0, lon=0).encode()
            producer.send_raw(topics.GPS, message.vehicle_id, bad.replace(b'"lat":0.0', b'"lat":NaN'))
        if isinstance(message, Frame):
            sent["frames"] += 1
            if sent["frames"] % 25 == 0:
                corrupted.add(message.frame_id)
                return message.model_copy(update={"jpeg": message.jpeg[: len(message.jpeg) // 3]})
        return message

    with FleetProducer(settings) as producer:
        done = publish(world, duration_s, producer, render_jpeg, speed, on_message=sabotage)
    summary = Summary(
        vehicles=vehicles,
        speed=speed,
        frames_produced=len(done.frames) + 1,
        gps_produced=done.gps + 1,
        true_anomaly_frames=sum(1 for f in done.frames if f.anomaly and f.frame_id not in corrupted),
    )
    truth = RunTruth(
        frames={f.frame_id: f for f in done.frames if f.frame_id not in corrupted},
        events=list(world.events),
        vehicle_ids=sorted({v.vehicle_id for v in world.vehicles}),
    )
    return summary, truth


def collect(
    settings: Settings,
    summary: Summary,
    frame_ids: set[str],
    since: datetime,
    timeout_s: float,
    progress: Callable[[str], None],
    keep: list[Scene] | None = None,
) -> None:
    """Read fleet.scenes and fleet.deadletter until every produced frame is accounted for (bounded); the
    run's scenes are appended to ``keep`` when given."""
    consumer = topic_reader(settings, topics.SCENES, topics.DEADLETTER)
    latencies: list[float] = []
    seen: set[str] = set()
    first_produced, last_scene = float("inf"), 0.0
    deadline = time.monotonic() + timeout_s
    last_report = 0.0
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    if rec.topic == settings.topic(topics.SCENES):
                        scene = decode(Scene, rec.value)
                        if scene.frame_id in frame_ids and scene.frame_id not in seen:
                            seen.add(scene.frame_id)
                            if keep is not None:
                                keep.append(scene)
                            if scene.produced_at:
                                produced = scene.produced_at.timestamp()
                                first_produced = min(first_produced, produced)
                                last_scene = max(last_scene, rec.timestamp / 1000)
                                latencies.append(rec.timestamp / 1000 - produced)
                    else:
                        letter = decode(DeadLetter, rec.value)
                        if letter.failed_at < since:
                            continue
                        if letter.source_topic == settings.topic(topics.FRAMES):
                            summary.frame_dead_letters += 1
                        elif letter.source_topic == settings.topic(topics.GPS):
                            summary.gps_dead_letters += 1
                        summary.dead_letter_reasons[letter.reason] = (
                            summary.dead_letter_reasons.get(letter.reason, 0) + 1
                        )
            summary.frames_processed = len(seen)
            done = summary.frames_processed + summary.frame_dead_letters
            if time.monotonic() - last_report > 5:
                progress(
                    f"processed {summary.frames_processed}/{summary.frames_produced} frames, "
                    f"{summary.frame_dead_letters} dead-lettered"
                )
                last_report = time.monotonic()
            if done >= summary.frames_produced:
                summary.complete = True
                break
    finally:
        consumer.close()
    if latencies:
        latencies.sort()
        summary.latency_p50_s = statistics.median(latencies)
        summary.latency_p99_s = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        summary.frames_per_s = len(latencies) / max(last_scene - first_produced, 1e-6)


def count_outputs(settings: Settings, summary: Summary, truth: RunTruth, since: datetime, timeout_s: float) -> None:
    """Count this run's rows in PostgreSQL, once every processed frame is there (bounded wait).

    Rows count when this run wrote them (``updated_at`` since it started), so that a database kept from
    earlier runs does not inflate the figures.
    """
    frame_ids = sorted(truth.frames)
    engine = sa.create_engine(settings.postgres.url("psycopg"))
    deadline = time.monotonic() + timeout_s
    try:
        with engine.connect() as conn:
            while True:
                stored = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(frame_observations)
                    .where(frame_observations.c.frame_id.in_(frame_ids))
                ).scalar_one()
                conn.rollback()
                if stored >= summary.frames_processed or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            rows = conn.execute(
                sa.select(alerts.c.type, sa.func.count())
                .where(alerts.c.vehicle_id.in_(truth.vehicle_ids), alerts.c.updated_at >= since)
                .group_by(alerts.c.type)
            ).all()
            summary.alert_types = {t: n for t, n in rows}
            summary.alerts = sum(summary.alert_types.values())
            summary.road_condition_rows = conn.execute(
                sa.select(sa.func.count())
                .select_from(road_conditions)
                .where(road_conditions.c.window_start >= START, road_conditions.c.updated_at >= since)
            ).scalar_one()
            summary.segment_condition_rows = conn.execute(
                sa.select(sa.func.count())
                .select_from(segment_road_conditions)
                .where(segment_road_conditions.c.window_start >= START, segment_road_conditions.c.updated_at >= since)
            ).scalar_one()
            summary.frames_on_segment = conn.execute(
                sa.select(sa.func.count())
                .select_from(frame_observations)
                .where(frame_observations.c.frame_id.in_(frame_ids), frame_observations.c.segment_id.is_not(None))
            ).scalar_one()
            summary.segment_stats_rows = conn.execute(
                sa.select(sa.func.count())
                .select_from(segment_stats)
                .where(segment_stats.c.window_start >= START, segment_stats.c.updated_at >= since)
            ).scalar_one()
    finally:
        engine.dispose()


@dataclass
class Evaluation:
    """A demo run scored against the simulator's truth."""

    alerts: AlertReport
    conditions: ConditionReport

    def text(self) -> str:
        return self.alerts.text() + "\n" + self.conditions.text()

    def as_dict(self) -> dict[str, object]:
        def figures(s: TypeScore) -> dict[str, object]:
            return asdict(s) | {"precision": s.precision, "recall": s.recall, "median_latency_s": s.median_latency_s}

        return {
            "alerts": {name: figures(s) for name, s in self.alerts.by_type.items()},
            "alerts_any_type": figures(self.alerts.any_type),
            "conditions": asdict(self.conditions),
        }


def evaluate(settings: Settings, truth: RunTruth, since: datetime) -> Evaluation:
    """Score this run's alerts and road-condition rows in PostgreSQL against the truth of what was sent."""
    engine = sa.create_engine(settings.postgres.url("psycopg"))
    try:
        with engine.connect() as conn:
            observations = [
                FrameObservation(r.frame_id, r.segment_id, r.captured_at, r.aspects)
                for r in conn.execute(
                    sa.select(
                        frame_observations.c.frame_id,
                        frame_observations.c.segment_id,
                        frame_observations.c.captured_at,
                        frame_observations.c.aspects,
                    ).where(frame_observations.c.frame_id.in_(sorted(truth.frames)))
                )
            ]
            processed = {o.frame_id: truth.frames[o.frame_id] for o in observations}
            raised = [
                RaisedAlert(r.alert_id, r.type, tuple(r.frame_ids))
                for r in conn.execute(
                    sa.select(alerts.c.alert_id, alerts.c.type, alerts.c.frame_ids).where(
                        alerts.c.vehicle_id.in_(truth.vehicle_ids), alerts.c.updated_at >= since
                    )
                )
            ]
            rows = [
                ConditionRow(r.segment_id, r.window_start, r.window_seconds, r.aspects)
                for r in conn.execute(
                    sa.select(segment_road_conditions).where(
                        segment_road_conditions.c.window_start >= START, segment_road_conditions.c.updated_at >= since
                    )
                )
            ]
    finally:
        engine.dispose()
    k = {rule.type: rule.persistence.k for rule in load_rules(settings.worker.alert_rules).rules}
    return Evaluation(
        alerts=score_alerts(raised, processed, truth.events, k),
        conditions=score_conditions(observations, rows, processed),
    )


def run(
    settings: Settings,
    vehicles: int = 6,
    duration_s: int = 60,
    seed: int = seeds.DEMO,
    timeout_s: float = 600,
    speed: float = 5.0,
    progress: Callable[[str], None] = print,
    score: bool = False,
) -> tuple[Summary, Evaluation | None]:
    """Run the demo on an already started stack; return its summary and, with ``score``, its evaluation."""
    t0 = time.monotonic()
    since = datetime.now(timezone.utc)
    pace = f"at {speed:g}x real time" if speed > 0 else "as fast as possible"
    progress(f"producing {duration_s} s of a {vehicles}-vehicle fleet {pace} ...")
    summary, truth = produce(settings, vehicles, duration_s, seed, speed)
    progress(
        f"produced {summary.frames_produced} frames and {summary.gps_produced} GPS fixes; waiting for the pipeline"
    )
    collect(settings, summary, set(truth.frames), since, timeout_s, progress)
    if not summary.complete:
        raise FleetscopeError(
            f"timed out after {timeout_s:.0f}s with {summary.frames_processed + summary.frame_dead_letters}"
            f"/{summary.frames_produced} frames accounted for; see the worker log in {settings.stack.run_dir / 'logs'}"
        )
    count_outputs(settings, summary, truth, since, timeout_s=60)
    summary.wall_s = time.monotonic() - t0
    return summary, evaluate(settings, truth, since) if score else None


def as_json(summary: Summary, evaluation: Evaluation | None = None) -> str:
    out: dict[str, object] = asdict(summary)
    if evaluation is not None:
        out["evaluation"] = evaluation.as_dict()
    return json.dumps(out, sort_keys=True)
