"""The Faust app: ingest -> context -> inference -> fusion, wired from one settings object."""

from __future__ import annotations

import logging
from typing import Any, cast

import faust
from faust.tables.manager import TableManager

from fleetscope.settings import Settings
from streams import metrics
from streams.context.gps_track import RecentFixes
from streams.fusion import agent as fusion
from streams.inference import agent as inference
from streams.ingest import frames, gps
from streams.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Runtime:
    """Build the app with every agent registered; nothing connects until the worker starts."""
    k = settings.kafka
    app = faust.App(
        settings.worker.app_id,
        broker=[f"kafka://{server.strip()}" for server in k.servers.split(",")],
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        consumer_auto_offset_reset="earliest",
        # Group joins take ~half the session timeout; the defaults mean a 30 s wait before a worker is ready.
        broker_session_timeout=6,
        broker_heartbeat_interval=2,
        producer_max_request_size=k.max_message_bytes,
        consumer_max_fetch_size=k.max_message_bytes,
    )
    rt = Runtime(settings=settings, app=app, gps=RecentFixes(settings.worker.gps_history))
    gps.register(rt)
    frames.register(rt)
    triton = inference.register(rt)
    sink = fusion.register(rt)

    @app.timer(1.0)
    async def report_lag_and_readiness() -> None:
        assignment = app.consumer.assignment()
        # Ready means partitions assigned and any table recovery done (none today; stays true when tables arrive).
        recovered = cast(TableManager, app.tables).recovery.completed.is_set() and not app.in_recovery
        metrics.WORKER_READY.set(1 if assignment and recovered and not app.rebalancing else 0)
        for tp in assignment:
            last = rt.read_offsets.get((tp.topic, tp.partition))
            highwater = app.consumer.highwater(tp)
            if highwater is not None:
                behind = highwater - (last + 1 if last is not None else 0)
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(behind, 0))

    # faust's Signal.connect annotation accepts no async handler, hence the ignores below.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def log_assignment(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        log.info("assigned %d partitions", len(assigned))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def not_ready_on_revoke(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        metrics.WORKER_READY.set(0)

    # Sent once the consumer has stopped, so no agent still uses the clients.
    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_clients(sender: Any, **kwargs: Any) -> None:
        await triton.close()
        await sink.close()
        log.info("worker stopped: Triton and PostgreSQL clients closed")

    return rt
