"""The embedded stack: start, health-check and stop every service fleetscope needs.

Order: broker (then topics), PostgreSQL (then schema), Triton, worker. A service configured with an
external address is health-checked instead of started. Stopping runs in reverse order and always
reaches every service that was started, so Ctrl-C or SIGTERM leaves no process behind. With
``supervise=True`` a service that exits is restarted (infra.supervisor).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Protocol

from core.errors import ServiceError
from core.retrying import NotYet, retry_until
from core.settings import Settings
from infra.broker import EmbeddedBroker, ensure_topics
from infra.postgres import EmbeddedPostgres, apply_schema
from infra.supervisor import Supervisor
from infra.triton import MODELS, EmbeddedTriton
from infra.worker import WorkerProcess

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...


class Stack:
    """The services of one fleetscope deployment, started in dependency order."""

    def __init__(
        self,
        settings: Settings,
        *,
        with_worker: bool | None = None,
        with_triton: bool = True,
        supervise: bool = False,
    ) -> None:
        self.settings = settings
        self.with_worker = settings.worker.embedded if with_worker is None else with_worker
        self.with_triton = with_triton  # False: a GPS-only stack (the worker's frame path then has no server)
        self.with_supervisor = supervise
        self.started: list[Service] = []
        self.timings: dict[str, float] = {}
        self.restarts: Counter[str] = Counter()  # per service: restarts by the supervisor that became ready
        self.supervisor: Supervisor | None = None
        self._stop_lock = threading.Lock()  # the supervisor may stop the stack while the caller does

    def start(self) -> None:
        """Bring every service up; on failure stop what was started and re-raise."""
        s = self.settings
        s.stack.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if s.kafka.embedded:
                self._start(EmbeddedBroker(s))
            self._step("topics", lambda: ensure_topics(s))
            if s.postgres.embedded:
                self._start(EmbeddedPostgres(s))
            self._step("schema", lambda: apply_schema(s))
            if self.with_triton and s.triton.embedded:
                self._start(EmbeddedTriton(s))
            elif self.with_triton:
                self._step("triton", lambda: wait_triton_ready(s))
            if self.with_worker:
                self._start(WorkerProcess(s))
        except BaseException:
            self.stop()
            raise
        self._write_pids()
        log.info("stack up: %s", ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        if self.with_supervisor:
            self.supervise()

    def supervise(self) -> None:
        """Restart the started services when they exit, from a background thread, until ``stop()``."""
        if self.supervisor is None:
            self.supervisor = Supervisor(self)
            self.supervisor.start()

    @property
    def failure(self) -> ServiceError | None:
        """Why the supervisor stopped the stack (a service that a restart cannot bring back), if it did."""
        return self.supervisor.failure if self.supervisor else None

    def wait_failure(self, timeout_s: float) -> ServiceError | None:
        """Wait up to ``timeout_s`` for the supervisor to stop the stack; the reason, or None while it runs."""
        if self.supervisor is None:
            time.sleep(timeout_s)
            return None
        self.supervisor.gave_up.wait(timeout_s)
        return self.supervisor.failure if self.supervisor.gave_up.is_set() else None

    def _start(self, service: Service) -> None:
        t0 = time.monotonic()
        self.started.append(service)
        service.start()
        self.timings[service.name] = time.monotonic() - t0

    def _step(self, name: str, fn: Callable[[], object]) -> None:
        t0 = time.monotonic()
        fn()
        self.timings[name] = time.monotonic() - t0

    def stop(self) -> None:
        """Stop the supervisor (so nothing restarts behind it), then every started service, newest first;
        never raises for one so the others still stop."""
        if self.supervisor is not None:
            self.supervisor.stop()
        with self._stop_lock:
            while self.started:
                service = self.started.pop()
                try:
                    service.stop()
                except Exception:
                    log.exception("stopping %s failed", service.name)
            pid_file = self.settings.stack.run_dir / "pids.json"
            pid_file.unlink(missing_ok=True)

    def _write_pids(self) -> None:
        pids = {svc.name: svc.process.pid for svc in self.started if getattr(svc, "process", None)}  # type: ignore[attr-defined]
        (self.settings.stack.run_dir / "pids.json").write_text(json.dumps(pids))

    def __enter__(self) -> "Stack":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_triton_ready(settings: Settings) -> None:
    """Bounded wait until an external Triton reports itself and fleetscope's models ready."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(settings.triton.grpc_url)
    missing: list[str] = list(MODELS)

    def ready() -> None:
        if not client.is_server_ready(client_timeout=2):
            raise NotYet("server not ready")
        missing[:] = [m for m in MODELS if not client.is_model_ready(m, client_timeout=2)]
        if missing:
            raise NotYet(f"models not ready: {', '.join(missing)}")

    retry_until(
        ready,
        settings.stack.startup_timeout_s,
        pause_s=1,
        failure=lambda _: ServiceError(
            "triton",
            f"{settings.triton.grpc_url} not ready with models {', '.join(missing)}; check FLEETSCOPE_TRITON__URL",
        ),
    )


def reap_leftovers(settings: Settings) -> list[str]:
    """Kill the services of a previous stack in this run directory that did not stop (e.g. after kill -9)."""
    pid_file = settings.stack.run_dir / "pids.json"
    if not pid_file.exists():
        return []
    killed = []
    for name, pid in json.loads(pid_file.read_text()).items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
            killed.append(f"{name} ({pid})")
    pid_file.unlink()
    if killed:
        log.warning("killed leftovers of an earlier stack: %s", ", ".join(killed))
        time.sleep(1)
    return killed


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Raise KeyboardInterrupt on SIGINT and SIGTERM so ``finally`` blocks stop the stack either way.

    SIGINT is set explicitly too: a process started in the background by a shell inherits it ignored.
    """

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
