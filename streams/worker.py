"""``fleetscope worker``: run the Faust app against the configured services until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

import faust

from core.settings import Settings
from streams import metrics
from streams.app import create_app

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Serve metrics, then run the worker; Faust handles SIGINT/SIGTERM with a graceful stop.

    The caller checks the broker's topics first (``infra.broker.require_topics``, as ``fleetscope worker`` does):
    the worker package stays below the stack that runs it.
    """
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
