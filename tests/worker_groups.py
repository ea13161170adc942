"""Consumer groups of workers on the test stack: each group its own topics, app id and database."""

from __future__ import annotations

import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings, load_settings
from infra.broker import ensure_topics
from infra.postgres import apply_schema
from infra.process import free_ports
from infra.worker import WorkerProcess


def consumer_group(base: Settings, name: str, partitions: int | None = None, **worker: object) -> dict:
    """Settings overrides for a consumer group of its own on the test stack: its topics, app id and
    database; ``worker`` settings on top."""
    db = f"fleetscope_{name}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(base.postgres.admin_url("psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return {
        "kafka": {
            "bootstrap_servers": base.kafka.servers,
            "partitions": partitions or base.kafka.partitions,
            "topic_prefix": f"{name}.",
            "exact_changelog_ends": True,  # the test stack's broker is Tansu, given by its address
        },
        "postgres": {"dsn": f"postgresql://postgres@127.0.0.1:{base.postgres.embedded_port}/{db}"},
        "triton": {"url": base.triton.grpc_url},
        "worker": {
            "app_id": f"fleetscope-{name}-{uuid.uuid4().hex[:6]}",
            "match_idle_flush_s": 2,
            "segment_flush_s": 0.5,
            "backfill_from": base.worker.backfill_from,
            **worker,
        },
    }


def worker_settings(group: dict, run_dir: Path) -> Settings:
    """One worker of the group: a metrics port and run directory of its own."""
    (port,) = free_ports(1)
    return load_settings(
        **{**group, "worker": {**group["worker"], "metrics_port": port}},
        stack={"run_dir": run_dir, "startup_timeout_s": 120},
    )


def metric(w: WorkerProcess, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{w.metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def start_workers(
    stack: ExitStack,
    base: Settings,
    tmp_path: Path,
    names: list[str],
    partitions: int | None = None,
    **worker: object,
) -> list[WorkerProcess]:
    """One worker per name; workers with the same name share a consumer group (and topics and database)."""
    groups = {name: consumer_group(base, name, partitions, **worker) for name in dict.fromkeys(names)}
    started = []
    for n, name in enumerate(names):
        w = WorkerProcess(worker_settings(groups[name], tmp_path / f"worker{n}"))
        if names.index(name) == n:
            ensure_topics(w.settings)
            apply_schema(w.settings)
        stack.callback(w.stop)
        w.start()
        started.append(w)
    return started
