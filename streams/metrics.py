"""Prometheus metrics of the worker, served on ``worker.metrics_port`` (text exposition format).

The same port answers the orchestrator's probes: ``/ready`` (200 while the worker is ready, else 503)
and ``/live`` (503 once the worker's event loop has not ticked for ``LOOP_STALE_S``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

MESSAGES_IN = Counter("fleetscope_messages_in", "Messages consumed", ["topic"])
MESSAGES_OUT = Counter("fleetscope_messages_out", "Messages produced", ["topic"])
DEAD_LETTERS = Counter("fleetscope_dead_letters", "Messages sent to the dead-letter topic", ["stage", "reason"])
TRITON_LATENCY = Histogram(
    "fleetscope_triton_request_seconds",
    "Triton request latency, including retries",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRITON_BATCH = Histogram(
    "fleetscope_triton_batch_size", "Frames per Triton request", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64)
)
TRITON_ERRORS = Counter("fleetscope_triton_errors", "Failed Triton attempts", ["model", "kind"])
GPS_FIXES = Counter("fleetscope_gps_fixes", "GPS fixes map-matched, by outcome", ["outcome"])
EVIDENCE_FRAMES = Counter(
    "fleetscope_evidence_frames", "Frames alerts stand on, kept as evidence, by outcome", ["outcome"]
)
VEHICLES_FORGOTTEN = Counter(
    "fleetscope_vehicles_forgotten",
    "Vehicles whose map-matching state was committed and dropped: more than WORKER__MAX_VEHICLES held",
)
HARD_BRAKING = Counter("fleetscope_hard_braking", "Hard-braking events detected from GPS")
SEGMENT_FIXES_TOO_LATE = Counter(
    "fleetscope_segment_fixes_too_late", "Matched fixes older than the kept segment windows (ignored)"
)
FRAMES_WITHOUT_SEGMENT = Counter(
    "fleetscope_frames_without_segment", "Frames processed without a road segment (no fix, or off the network)"
)
FRAMES_WITHOUT_CONTEXT = Counter("fleetscope_frames_without_context", "Frames processed with no GPS fix attached")
ALERTS = Counter("fleetscope_alerts", "Alert updates raised", ["type", "severity"])
SINK_ROWS = Counter("fleetscope_sink_rows", "Rows written to PostgreSQL", ["table"])
SINK_ERRORS = Counter("fleetscope_sink_errors", "Failed PostgreSQL transactions", ["table"])
CONSUMER_LAG = Gauge("fleetscope_consumer_lag", "Highwater minus next offset to process", ["topic", "partition"])
WORKER_READY = Gauge(
    "fleetscope_worker_ready",
    "1 while the worker holds its partitions, its tables are recovered and Triton and PostgreSQL are reachable",
)
AGENT_STARTS = Counter("fleetscope_agent_starts", "Agent actors started (restarts after a crash included)", ["agent"])
AGENT_CRASHES = Counter(
    "fleetscope_agent_crashes", "Agent actors stopped by an exception (Faust restarts them)", ["agent"]
)
DEPENDENCY_UP = Gauge("fleetscope_dependency_up", "1 while a service the worker needs is reachable", ["dependency"])
DEPENDENCY_OUTAGES = Counter(
    "fleetscope_dependency_outages", "Times a service the worker needs became unreachable", ["dependency"]
)
DEPENDENCY_DOWN_SECONDS = Counter(
    "fleetscope_dependency_down_seconds", "Seconds spent waiting for an unreachable service", ["dependency"]
)
PARTITION_STALLS = Counter(
    "fleetscope_partition_stalls", "Worker stops because records waited on a partition no agent was taking"
)
UNKNOWN_FIELDS = Counter(
    "fleetscope_unknown_fields",
    "Fields a message carried that this schema version does not know (ignored)",
    ["topic", "field"],
)
END_TO_END = Histogram(
    "fleetscope_frame_latency_seconds",
    "Frame produce time to scene emitted",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


_lag_series: set[tuple[str, str]] = set()  # (topic, partition) with a lag series, touched by the event loop only


def report_lag(topic: str, partition: int, lag: int) -> None:
    """Set one partition's consumer lag."""
    CONSUMER_LAG.labels(topic, str(partition)).set(lag)
    _lag_series.add((topic, str(partition)))


def keep_lag_of(partitions: set[tuple[str, int]]) -> None:
    """Drop the lag series of every partition not in ``partitions`` (another worker reports those now)."""
    keep = {(topic, str(partition)) for topic, partition in partitions}
    for series in _lag_series - keep:
        CONSUMER_LAG.remove(*series)
    _lag_series.intersection_update(keep)


LOOP_STALE_S = 60.0  # the report timer ticks every second; a minute without one is a stuck loop


class _ProbeState:
    """Set from the event loop, read by the probe thread (single assignments: no lock needed)."""

    ready = False
    tick: float | None = None


_state = _ProbeState()


def set_ready(ready: bool) -> None:
    """Record readiness (the gauge and the /ready probe)."""
    WORKER_READY.set(1 if ready else 0)
    _state.ready = ready


def loop_ticked() -> None:
    """Record that the event loop is running (the /live probe); called by a 1 s timer."""
    _state.tick = time.monotonic()


def _probe(path: str) -> tuple[str, str] | None:
    """Status and body for a probe path; None for the metrics exposition."""
    if path == "/ready":
        return ("200 OK", "ready\n") if _state.ready else ("503 Service Unavailable", "not ready\n")
    if path == "/live":
        stale = _state.tick is not None and time.monotonic() - _state.tick > LOOP_STALE_S
        return ("503 Service Unavailable", "event loop stalled\n") if stale else ("200 OK", "live\n")
    return None


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # a scrape every few seconds is not news
        pass


def serve(host: str, port: int) -> None:
    """Start the metrics and probe HTTP endpoint in a background thread (no-op when port is 0)."""
    if not port:
        return
    exposition = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        probe = _probe(environ.get("PATH_INFO", "/"))
        if probe is None:
            return exposition(environ, start_response)
        status, body = probe
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [body.encode()]

    server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
