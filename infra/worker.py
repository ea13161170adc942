"""The Faust worker as a managed child process of the embedded stack."""

from __future__ import annotations

import signal
import sys

from core.settings import Settings
from infra.process import ManagedProcess, require_free_port
from infra.scrape import sample_value, scrape


class WorkerProcess:
    """``fleetscope worker`` with the stack's settings; ready once it reports partitions assigned and recovered."""

    name = "worker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics_port = settings.worker.metrics_port
        self.process = ManagedProcess(self.name, settings.stack.run_dir / "logs" / "worker.log")

    def start(self) -> None:
        if self.metrics_port:
            require_free_port(self.name, self.metrics_port, "FLEETSCOPE_WORKER__METRICS_PORT")
        env = self.settings.process_env()
        env["PYTHONUNBUFFERED"] = "1"
        self.process.start([sys.executable, "-m", "fleetscope", "worker"], env=env)
        if self.metrics_port:
            self.process.wait_ready(self._ready, self.settings.stack.startup_timeout_s, "assigned its partitions")

    def _ready(self) -> bool:
        return sample_value(scrape(self.metrics_port, timeout_s=2), "fleetscope_worker_ready") == 1

    def stop(self) -> None:
        # SIGTERM lets Faust commit offsets and leave the group before exiting.
        self.process.stop(self.settings.stack.shutdown_timeout_s, sig=signal.SIGTERM)
