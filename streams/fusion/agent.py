"""Fusion: scenes become frame observations, road conditions and alerts (Postgres, then ``fleet.alerts``).

Scenes arrive here keyed by vehicle, in order, so this is where a vehicle's frames are tracked
(``kinematics.events``). Alerts come from the YAML rules (``alerts/rules.yaml``) through
``alerts.incidents``, with the kinematic events of the tracked objects. Each scene, with its tracks
and kinematics, goes on to ``fleet.scenes`` once it is in PostgreSQL.

A batch is written in one transaction. While PostgreSQL is unreachable the agent retries with
backoff and holds the partition (backpressure: nothing is dropped). When PostgreSQL rejects a batch
for its content, its scenes are written one by one, so that only the scene at fault is
dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from alerts.incidents import IncidentTracker
from kinematics.events import KinematicWatch
from streams import metrics, topics
from streams.deadletter import dead_letter, decode_batch
from streams.runtime import Runtime
from streams.schema import Alert, Scene
from streams.sinks.postgres import PostgresSink

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


def register(rt: Runtime, sink: PostgresSink, incidents: IncidentTracker) -> None:
    """Define the fusion agent: alerts from ``incidents``, written through ``sink``."""
    w = rt.settings.worker
    watch = KinematicWatch()

    async def write_with_retry(scenes: list[Scene], new_alerts: list[Alert]) -> list[Alert]:
        delay = 0.5
        while True:
            try:
                return await sink.write(scenes, new_alerts)
            except (OperationalError, InterfaceError, OSError) as exc:
                metrics.SINK_ERRORS.labels("transaction").inc()
                log.warning("PostgreSQL unavailable (%s); retrying in %.1fs", str(exc).splitlines()[0], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    @rt.app.agent(rt.topic(topics.SCENES_INFERRED), name="fuse")
    async def fuse(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_events(w.sink_batch_size, within=w.sink_linger_s):
            rt.received(topics.SCENES_INFERRED, *events)
            inferred, scene_events = await decode_batch(rt, events, Scene, "fusion")
            scenes = [s.model_copy(update={"kinematics": watch.observe(s)}) for s in inferred]
            raised = [incidents.observe(s, s.kinematics.events if s.kinematics else ()) for s in scenes]
            written = scenes
            try:
                merged = await write_with_retry(scenes, [a for alerts in raised for a in alerts])
            except DBAPIError as exc:
                metrics.SINK_ERRORS.labels("transaction").inc()
                log.warning(
                    "PostgreSQL rejected a batch of %d scenes (%s); writing them one by one", len(scenes), exc.orig
                )
                merged, written = [], []
                for scene, event, alerts in zip(scenes, scene_events, raised, strict=True):
                    try:
                        merged += await write_with_retry([scene], alerts)
                        written.append(scene)
                    except DBAPIError as one:
                        await dead_letter(rt, event, "fusion", "sink_rejected", str(one.orig))
            for scene in written:
                await rt.send(topics.SCENES, scene.vehicle_id, scene.encode())
            for alert in merged:
                await rt.send(topics.ALERTS, alert.alert_id, alert.encode())
                metrics.ALERTS.labels(alert.type, alert.severity).inc()
