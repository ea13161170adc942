"""Supervision of a running stack: a service process that exits is logged, reaped and restarted with backoff.

A background thread polls each service's process (polling also reaps it, so no zombie is left). A restart
that fails, or a service that exits again soon after one, waits 1, 2, 4 ... up to 30 s before the next
attempt; the delay resets once the service has stayed up for a while. A service whose exit a restart
cannot repair stops the whole stack instead, with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import ServiceError
from infra.process import ManagedProcess, tail

if TYPE_CHECKING:
    from infra.stack import Service, Stack

log = logging.getLogger(__name__)

# Services whose exit loses state that a restart cannot bring back, with what is lost.
UNRECOVERABLE = {
    "broker": "its memory:// storage went with it: every topic, offset, consumer group and table changelog is gone",
}
MAX_BACKOFF_S = 30.0


@dataclass
class _Watch:
    service: Service
    process: ManagedProcess
    started_at: float  # monotonic time of its last (re)start
    failures: int = 0  # consecutive restarts that failed or did not stay up
    attempts: int = 0  # restart attempts since the stack started, for the log
    retry_at: float | None = None  # when the next restart attempt is due; None while the service runs
    held: bool = False  # stopped and started by hand (``Supervisor.held``): left alone


def backoff_s(failures: int) -> float:
    """Delay before the next restart: none after a service that stayed up, then 1, 2, 4 ... capped."""
    return 0.0 if failures == 0 else min(MAX_BACKOFF_S, 2.0 ** (failures - 1))


def describe_exit(returncode: int) -> str:
    """How a process ended, from its Popen return code (negative: the signal that killed it)."""
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


class Supervisor:
    """Watches the started services of ``stack`` from a daemon thread until stopped."""

    def __init__(self, stack: Stack, *, interval_s: float = 0.5, stable_s: float = 60.0) -> None:
        self.stack = stack
        self.interval_s = interval_s
        self.stable_s = stable_s  # up this long after a restart: the backoff starts again from zero
        self.failure: ServiceError | None = None
        self.gave_up = threading.Event()  # set once the stack was stopped because a restart cannot help
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # orders a restart's start against stop(): one sees the other
        self._restarting: _Watch | None = None
        self._thread = threading.Thread(target=self._run, name="fleetscope-supervisor", daemon=True)
        now = time.monotonic()
        self._watches = [
            _Watch(svc, proc, now)
            for svc in stack.started
            if isinstance(proc := getattr(svc, "process", None), ManagedProcess)
        ]

    def start(self) -> None:
        log.info("supervising %s", ", ".join(w.service.name for w in self._watches))
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; a restart under way is cut short so its readiness wait ends now, not at its timeout."""
        self._stopping.set()
        with self._lock:
            watch = self._restarting
        if watch is not None and watch.process.proc is not None:
            watch.process.proc.kill()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            s = self.stack.settings.stack
            timeout_s = s.startup_timeout_s + s.shutdown_timeout_s
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("supervisor still busy after %.0fs; stopping the stack anyway", timeout_s)

    @contextlib.contextmanager
    def held(self, name: str) -> Iterator[None]:
        """Leave service ``name`` alone while the block runs: its operator stops and starts it (maintenance)."""
        watch = next(w for w in self._watches if w.service.name == name)
        with self._lock:
            watch.held = True
        try:
            yield
        finally:
            with self._lock:
                watch.held, watch.started_at = False, time.monotonic()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self._check()
            except Exception:  # the thread must outlive any one bad check
                log.exception("supervisor check failed")

    def _check(self) -> None:
        now = time.monotonic()
        exited = []
        for w in self._watches:
            proc = w.process.proc
            if w.held:
                continue
            if w.retry_at is None and proc is not None and (code := proc.poll()) is not None:
                log.error(
                    "%s (pid %d) %s; last lines of %s:\n%s",
                    w.service.name, proc.pid, describe_exit(code), w.process.log_path, tail(w.process.log_path, 20),
                )  # fmt: skip
                exited.append((w, code))
        for w, code in exited:
            if w.service.name in UNRECOVERABLE:
                self._give_up(w, code)
                return
        for w, _ in exited:
            w.failures = 0 if now - w.started_at >= self.stable_s else w.failures + 1
            w.retry_at = now + backoff_s(w.failures)
        for w in self._watches:
            if w.retry_at is not None and time.monotonic() >= w.retry_at and not self._stopping.is_set():
                self._restart(w)

    def _restart(self, w: _Watch) -> None:
        name = w.service.name
        with self._lock:
            if self._stopping.is_set():
                return
            self._restarting = w
        w.attempts += 1
        log.warning("restarting %s (attempt %d)", name, w.attempts)
        t0 = time.monotonic()
        try:
            w.service.stop()  # reaps what is left of its process group (Triton's python stubs, postgres backends)
            w.service.start()
        except Exception as exc:
            if self._stopping.is_set():
                return
            w.failures += 1
            log.error("restarting %s failed: %s; next attempt in %.0fs", name, exc, backoff_s(w.failures))
            w.retry_at = time.monotonic() + backoff_s(w.failures)
            w.service.stop()  # a process that never became ready must not wait for the next attempt to be reaped
            return
        finally:
            with self._lock:
                self._restarting = None
        w.started_at, w.retry_at = time.monotonic(), None
        with self._lock:
            if self._stopping.is_set():
                return
            self.stack.restarts[name] += 1
            self.stack._write_pids()
        log.warning(
            "%s restarted in %.1fs (pid %s, restart %d)",
            name,
            w.started_at - t0,
            w.process.pid,
            self.stack.restarts[name],
        )

    def _give_up(self, w: _Watch, code: int) -> None:
        name = w.service.name
        self.failure = ServiceError(
            name,
            f"the process {describe_exit(code)}; {UNRECOVERABLE[name]}, so restarting it cannot help."
            " Stopped the whole stack: start it again with `fleetscope stack up`",
        )
        log.error("%s cannot be restarted: stopping the stack", name)
        self._stopping.set()
        try:
            self.stack.stop()
        finally:
            self.gave_up.set()  # whatever happened, the caller waiting on it must not wait forever
