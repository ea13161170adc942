"""The SRE dashboard: throughput, lag, latency, failures, Triton and health, from Prometheus."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
)

from infra.dashboards.panels import RATE, SRE_UID, PanelBuilder, assemble, prom, quantiles, series, up_stat


def sre_dashboard() -> dict:
    """The SRE dashboard: throughput, lag, latency, failures, Triton and health, from Prometheus."""
    rows: list[tuple[str, list[PanelBuilder]]] = [
        (
            "Health",
            [
                up_stat(
                    "Workers ready",
                    "1 when every scraped worker's fleetscope_worker_ready is 1 (partitions held, tables "
                    "recovered, Triton and PostgreSQL reachable); 0 while any one is not.",
                    prom("min(fleetscope_worker_ready)", "all ready"),
                ),
                up_stat(
                    "Dependencies up",
                    "Per service the worker needs: the lowest fleetscope_dependency_up over the workers (0 = down).",
                    prom("min by (dependency) (fleetscope_dependency_up)", "{{dependency}}"),
                ),
                series(
                    "Time waiting for dependencies",
                    "Share of time a worker spent waiting for an unreachable service, per service (mean of workers).",
                    units.PercentUnit,
                    [
                        prom(
                            f"avg by (dependency) (rate(fleetscope_dependency_down_seconds_total{RATE}))",
                            "{{dependency}}",
                        )
                    ],
                ),
            ],
        ),
        (
            "Flow",
            [
                series(
                    "Messages in by topic",
                    "Messages consumed per second, by topic, over all workers.",
                    units.MessagesPerSecond,
                    [prom(f"sum by (topic) (rate(fleetscope_messages_in_total{RATE}))", "{{topic}}")],
                ),
                series(
                    "Messages out by topic",
                    "Messages produced per second, by topic, over all workers.",
                    units.MessagesPerSecond,
                    [prom(f"sum by (topic) (rate(fleetscope_messages_out_total{RATE}))", "{{topic}}")],
                ),
                series(
                    "Consumer lag by topic",
                    "Highwater minus the next offset to process, summed over partitions and workers.",
                    units.Short,
                    [prom("sum by (topic) (fleetscope_consumer_lag)", "{{topic}}")],
                ),
                series(
                    "Frame latency, end to end",
                    "From a frame's produce time to its scene emitted (fleetscope_frame_latency_seconds).",
                    units.Seconds,
                    quantiles("fleetscope_frame_latency_seconds_bucket", "le", ""),
                ),
            ],
        ),
        (
            "Failures",
            [
                series(
                    "Dead letters by stage and reason",
                    "Messages sent to fleet.deadletter per second; `fleetscope dead-letters list` shows them.",
                    units.MessagesPerSecond,
                    [
                        prom(
                            f"sum by (stage, reason) (rate(fleetscope_dead_letters_total{RATE}))",
                            "{{stage}}: {{reason}}",
                        )
                    ],
                ),
                series(
                    "Agent crashes",
                    "Agent actors stopped by an exception in each interval (Faust restarts them).",
                    units.Short,
                    [prom(f"sum by (agent) (increase(fleetscope_agent_crashes_total{RATE}))", "{{agent}}")],
                ),
                series(
                    "Rows written to PostgreSQL by table",
                    "Rows the sinks wrote per second.",
                    units.RowsPerSecond,
                    [prom(f"sum by (table) (rate(fleetscope_sink_rows_total{RATE}))", "{{table}}")],
                ),
                series(
                    "Failed PostgreSQL transactions by table",
                    "Sink transactions that failed in each interval (they are retried).",
                    units.Short,
                    [prom(f"sum by (table) (increase(fleetscope_sink_errors_total{RATE}))", "{{table}}")],
                ),
            ],
        ),
        (
            "Triton",
            [
                series(
                    "Triton request latency by model",
                    "Seen by the worker, retries included (fleetscope_triton_request_seconds).",
                    units.Seconds,
                    quantiles("fleetscope_triton_request_seconds_bucket", "model, le", "{{model}} "),
                ),
                series(
                    "Batch sizes by model",
                    "Mean frames per request the worker sent (fleetscope_triton_batch_size), and per model"
                    " execution in Triton (nv_inference_count / nv_inference_exec_count; larger where Triton's"
                    " dynamic batcher merges requests).",
                    units.Short,
                    [
                        prom(
                            f"sum by (model) (rate(fleetscope_triton_batch_size_sum{RATE}))"
                            f" / sum by (model) (rate(fleetscope_triton_batch_size_count{RATE}))",
                            "{{model}} sent",
                        ),
                        prom(
                            f"sum by (model) (rate(nv_inference_count{RATE}))"
                            f" / sum by (model) (rate(nv_inference_exec_count{RATE}))",
                            "{{model}} executed",
                            "B",
                        ),
                    ],
                ),
                series(
                    "Triton queue and compute time per request",
                    "Seen by Triton: mean time a successful request waited in the queue, and spent in inference.",
                    units.Microseconds,
                    [
                        prom(
                            f"sum by (model) (rate(nv_inference_queue_duration_us{RATE}))"
                            f" / sum by (model) (rate(nv_inference_request_success{RATE}))",
                            "{{model}} queue",
                        ),
                        prom(
                            f"sum by (model) (rate(nv_inference_compute_infer_duration_us{RATE}))"
                            f" / sum by (model) (rate(nv_inference_request_success{RATE}))",
                            "{{model}} compute",
                            "B",
                        ),
                    ],
                ),
                series(
                    "Triton failures by model",
                    "Failed attempts seen by the worker (by kind) and failed requests seen by Triton (by reason).",
                    units.Short,
                    [
                        prom(
                            f"sum by (model, kind) (increase(fleetscope_triton_errors_total{RATE}))",
                            "{{model}} worker: {{kind}}",
                        ),
                        prom(
                            f"sum by (model, reason) (increase(nv_inference_request_failure{RATE}))",
                            "{{model}} triton: {{reason}}",
                            "B",
                        ),
                    ],
                ),
            ],
        ),
    ]
    builder = (
        dash.Dashboard("fleetscope: SRE")
        .uid(SRE_UID)
        .description("The fleetscope worker and Triton, from Prometheus: flow, lag, latency, failures, health.")
        .tags(["fleetscope"])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
    )
    return assemble(builder, rows)
