"""Fusion: scenes become frame observations, road conditions and alerts (Postgres, then ``fleet.alerts``).

Scenes arrive here keyed by vehicle, in order, and each enters ``fusion.Fusion`` once: it tracks the
vehicle's objects, names their kinematic events and applies the YAML rules (``alerts/rules.yaml``).
Each scene, with its tracks and kinematics, goes on to ``fleet.scenes`` once it is in PostgreSQL.

A batch is written in one transaction. While PostgreSQL is unreachable the agent waits it out
(``streams.health``) and holds the partition: nothing is dropped. When PostgreSQL rejects a batch
for its content, its scenes are written one by one, so that only the scene at fault is
dead-lettered; any other error is handled the same way, scene by scene (``one_by_one``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from faust.types import EventT
from sqlalchemy.exc import DBAPIError

from fusion.stage import Fused, Fusion
from records.messages import Alert, Scene
from streams import metrics, topics
from streams.deadletter import dead_letter, dead_letter_on_error, decode_batch, one_by_one
from streams.health import wait_out
from streams.runtime import Runtime
from streams.sinks.evidence import Evidence
from streams.sinks.postgres import PostgresSink, is_outage

log = logging.getLogger(__name__)
EVIDENCE_PRUNE_S = 3600.0


def register(rt: Runtime, sink: PostgresSink, fusion: Fusion, evidence: Evidence | None) -> None:
    """Define the fusion agent: scenes through ``fusion``, written through ``sink``, the frames alerts
    stand on kept by ``evidence`` (None: not kept)."""
    w = rt.settings.worker

    async def write(scenes: list[Scene], new_alerts: list[Alert]) -> list[Alert]:
        return await wait_out(rt.postgres, lambda: sink.write(scenes, new_alerts), is_outage)

    async def tracked(event: EventT, inferred: Scene) -> Fused | None:
        """The scene with its kinematics and the alerts it raises; the trackers see each scene once."""
        async with dead_letter_on_error(rt, event, "fusion"):
            return fusion.observe(inferred)
        return None

    async def store(batch: Sequence[tuple[EventT, Fused]]) -> None:
        """Write and publish; safe to repeat (``one_by_one``): the sinks upsert and nothing is tracked here."""
        scenes = [f.scene for _, f in batch]
        written = [f for _, f in batch]
        try:
            merged = await write(scenes, [a for _, f in batch for a in f.alerts])
        except DBAPIError as exc:  # not an outage (those are waited out): PostgreSQL rejected some scene
            metrics.SINK_ERRORS.labels("transaction").inc()
            log.warning("PostgreSQL rejected a batch of %d scenes (%s); writing them one by one", len(scenes), exc.orig)
            merged, written = [], []
            for event, fused in batch:
                try:
                    merged += await write([fused.scene], fused.alerts)
                    written.append(fused)
                except DBAPIError as one:
                    await dead_letter(rt, event, "fusion", "sink_rejected", str(one.orig))
        if evidence is not None:  # before the alerts go out, so that an operator can look at them at once
            await evidence.keep_frames([frame for f in written for frame in f.evidence])
        for fused in written:
            await rt.send(topics.SCENES, fused.scene.vehicle_id, fused.scene.encode())
        for alert in merged:
            await rt.send(topics.ALERTS, alert.alert_id, alert.encode())
            metrics.ALERTS.labels(alert.type, alert.severity).inc()

    @rt.agent(topics.SCENES_INFERRED, name="fuse")
    async def fuse(stream):  # type: ignore[no-untyped-def]
        async for events in stream.take_events(w.sink_batch_size, within=w.sink_linger_s):
            rt.received(topics.SCENES_INFERRED, *events)
            inferred, scene_events = await decode_batch(rt, events, Scene, "fusion")
            fused = [(e, await tracked(e, s)) for e, s in zip(scene_events, inferred, strict=True)]
            await one_by_one(rt, "fusion", [(e, f) for e, f in fused if f is not None], store)

    if evidence is not None:

        @rt.app.timer(EVIDENCE_PRUNE_S)
        async def prune_evidence() -> None:
            try:
                await evidence.prune()
            except Exception as exc:  # an exception would stop Faust's timer; the next tick tries again
                metrics.SINK_ERRORS.labels("evidence_prune").inc()
                log.warning("old evidence not deleted (%s); will retry", str(exc).splitlines()[0])
