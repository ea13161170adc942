"""The Faust app: ingest -> context -> inference -> fusion, wired from one settings object."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import faust
from faust.tables.manager import TableManager

from alerts.rules import load_rules
from core.errors import ConfigError
from core.settings import Settings
from fusion.stage import Fusion
from roads.network import load_network
from streams import changelog_flush, changelog_recovery, fetch_partitions, fetch_wait, metrics, recovery_seek
from streams.context import agent as map_matching
from streams.context import segment_windows
from streams.context.gps_track import RecentFixes
from streams.context.vehicle_track import VehicleTracks
from streams.fusion import agent as fusion_agent
from streams.inference import agent as inference
from streams.ingest import frames
from streams.liveness import StallWatch, restart_stalled_worker
from streams.runtime import Runtime
from streams.sinks.evidence import Evidence, evidence_store
from streams.sinks.postgres import PostgresSink

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Runtime:
    """Build the app with every agent registered; nothing connects until the worker starts."""
    k = settings.kafka
    if k.embedded if k.exact_changelog_ends is None else k.exact_changelog_ends:
        changelog_recovery.install()  # Tansu reports a changelog's end short of the truth; Apache Kafka does not
    fetch_wait.install(k.fetch_max_wait_ms)
    fetch_partitions.install()  # Faust lets aiokafka read paused partitions' records, then drops them
    recovery_seek.install()  # Faust resumes stream partitions before it seeks them: records read twice
    changelog_flush.install()  # Faust commits offsets while table changelog records are still buffered
    app = faust.App(
        settings.worker.app_id,
        broker=[f"kafka://{server.strip()}" for server in k.servers.split(",")],
        store="memory://",
        # Faust makes its data folder even for in-memory tables; by default in the working directory.
        datadir=str(settings.stack.run_dir / f"faust-{settings.worker.app_id}"),
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
        # Faust takes every fetched record per poll by default; capping polls at 2,000 records (and
        # map matching 2,000 fixes per batch) took `fleetscope bench gps` from about 3,600 to
        # 4,600-5,400 fixes/s, measured side by side; the cap alone gave 4,200-4,400 (that bench's absolute
        # figures were about 15 % high, docs/benchmarks.md; the comparison stands).
        broker_max_poll_records=k.max_poll_records,
    )
    w = settings.worker
    rules = load_rules(w.alert_rules)
    log.info("alert rules %s: %s", w.alert_rules, ", ".join(r.type for r in rules.rules))
    try:
        network = load_network(w.road_network)
    except Exception as exc:
        raise ConfigError(
            f"cannot read the road network {w.road_network}: {exc}; check FLEETSCOPE_WORKER__ROAD_NETWORK"
        ) from exc
    log.info("road network %s: %d segments", network.source, len(network.segments))
    rt = Runtime(
        settings=settings, app=app, gps=RecentFixes(w.gps_history, w.max_vehicles), stalls=StallWatch(w.stall_timeout_s)
    )
    tracks = VehicleTracks(
        network, sigma_m=w.gps_noise_m, keep=w.gps_history, idle_s=w.match_idle_flush_s, max_vehicles=w.max_vehicles
    )
    sink = PostgresSink(settings)
    map_matching.register(rt, tracks)
    windows = segment_windows.register(rt, network, sink)
    frames.register(rt, tracks)
    triton = inference.register(rt, windows)
    store = evidence_store(settings, sink.engine)
    evidence = Evidence(settings, app, store) if store is not None else None
    log.info("alert evidence: %s", settings.evidence.store)
    fusion_agent.register(
        rt, sink, Fusion(rules, w.alert_cooldown_s, settings.evidence.frames_per_alert, w.max_vehicles), evidence
    )

    @app.timer(1.0)
    async def report_lag_and_readiness() -> None:
        metrics.loop_ticked()  # first: /live must not depend on the report below succeeding
        try:
            await _report(rt)
        except Exception:  # an exception would stop Faust's timer, and with it readiness and lag
            log.exception("reporting lag and readiness failed")

    # faust's Signal.connect annotation accepts no async handler, hence the ignores below.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def log_assignment(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        log.info("assigned %d partitions", len(assigned))
        rt.read_offsets.clear()  # a partition may be read again from its committed offset

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def not_ready_on_revoke(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        metrics.set_ready(False)
        metrics.keep_lag_of(set())  # the new assignment reports its own partitions again

    # Sent once the consumer has stopped, so no agent still uses the clients.
    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def close_clients(sender: Any, **kwargs: Any) -> None:
        await triton.close()
        if evidence is not None:
            await evidence.close()
        try:
            flushed = await windows.flush()
            log.info("segment_stats: %d changed windows written at shutdown", flushed)
        except Exception as exc:
            log.warning("segment_stats not written at shutdown (%s)", str(exc).splitlines()[0])
        await sink.close()
        log.info("worker stopped: Triton and PostgreSQL clients closed")

    return rt


async def _report(rt: Runtime) -> None:
    """Set readiness and each consumed partition's lag."""
    app = rt.app
    assignment = app.consumer.assignment()
    # Ready means partitions assigned, the segment-window table recovered and Triton and PostgreSQL reachable.
    recovered = cast(TableManager, app.tables).recovery.completed.is_set() and not app.in_recovery
    reachable = rt.triton.up and rt.postgres.up
    ready = bool(assignment) and recovered and reachable and not app.rebalancing
    metrics.set_ready(ready)
    if not ready:
        rt.stalls.reset()
    if app.rebalancing:  # the consumer still lists the partitions it is giving up
        return
    # Only topics agents read: a table's changelog and Faust's own topics are assigned but read otherwise.
    consumed = [tp for tp in assignment if tp.topic in rt.consumed]
    metrics.keep_lag_of({(tp.topic, tp.partition) for tp in consumed})
    now, stalled = time.monotonic(), []
    for tp in consumed:
        position, highwater = await rt.reading(tp)
        if highwater is not None and position is not None:
            metrics.report_lag(tp.topic, tp.partition, max(highwater - position, 0))
            if ready and rt.stalls.stalled(tp, position, highwater, now):
                stalled.append(f"{tp.topic}[{tp.partition}]@{position}")
    # While a stage is at work, waiting records are its backlog, not a consumer that stopped delivering.
    if stalled and not rt.stopping and not rt.in_flight:
        rt.stopping = True
        restart_stalled_worker(stalled, rt.settings.stack.shutdown_timeout_s)
