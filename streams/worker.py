"""``fleetscope worker``: run the Faust app against the configured services until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

import faust

from core.errors import ConfigError
from core.settings import Settings
from infra.broker import missing_topics
from streams import metrics
from streams.app import create_app

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Check the topics, serve metrics, then run the worker; Faust handles SIGINT/SIGTERM with a graceful stop."""
    missing = missing_topics(settings)
    if missing:
        raise ConfigError(
            f"{settings.kafka.servers} lacks the topics {', '.join(missing)}: run `fleetscope topics` "
            "against it (once per release; a release may add topics)"
        )
    rt = create_app(settings)
    metrics.serve(settings.worker.metrics_host, settings.worker.metrics_port)
    log.info(
        "worker %s: broker %s, Triton %s, metrics on :%s",
        settings.worker.app_id,
        settings.kafka.servers,
        settings.triton.grpc_url,
        settings.worker.metrics_port,
    )
    worker = faust.Worker(rt.app, loglevel=settings.log_level, quiet=True, override_logging=True)
    worker.execute_from_commandline()
