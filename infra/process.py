"""A local service process: started in its own process group, readiness waited on with a bound,
stopped gracefully then killed, its log kept in the run directory."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from core.errors import ServiceError

log = logging.getLogger(__name__)


def tail(path: Path, lines: int = 30) -> str:
    """Last lines of a log file (empty if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One child process that fleetscope started and must stop."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self,
        cmd: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        """Spawn ``cmd`` in a new session so the whole tree can be signalled at stop."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = self.log_path.open("ab")
        log.info("starting %s: %s (log %s)", self.name, " ".join(os.fspath(c) for c in cmd), self.log_path)
        try:
            self.proc = subprocess.Popen(
                [os.fspath(c) for c in cmd],
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                user=user,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServiceError(self.name, f"could not start {os.fspath(cmd[0])}: {exc}") from exc
        finally:
            logf.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, check: Callable[[], bool], timeout_s: float, what: str = "ready") -> float:
        """Poll ``check`` until it is true; fail with the log tail on exit or after ``timeout_s``."""
        t0 = time.monotonic()
        delay = 0.05
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceError(
                    self.name, f"exited with code {self.proc.returncode} before it was {what}", tail(self.log_path)
                )
            try:
                if check():
                    elapsed = time.monotonic() - t0
                    log.info("%s %s after %.1fs", self.name, what, elapsed)
                    return elapsed
            except Exception as exc:  # a check may fail in many ways while the service boots
                log.debug("%s not %s yet: %s", self.name, what, exc)
            if time.monotonic() - t0 > timeout_s:
                raise ServiceError(self.name, f"not {what} after {timeout_s:.0f}s", tail(self.log_path))
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def stop(self, timeout_s: float, sig: int = signal.SIGTERM) -> None:
        """Signal the process group, wait up to ``timeout_s``, then kill whatever is left."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            log.info("stopping %s (pid %d)", self.name, pgid)
            _signal_group(pgid, sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", self.name, timeout_s)
        # Children (Triton's python stubs, postgres backends) may outlive the leader briefly.
        _signal_group(pgid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) survived SIGKILL", self.name, pgid)
        self.proc = None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports that are free right now (for stacks of their own: tests, benchmarks)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        return s.connect_ex((host, port)) == 0


def require_free_port(component: str, port: int, setting: str) -> None:
    """Fail early, naming the setting to change, when an embedded service's port is taken."""
    if port_open("127.0.0.1", port):
        raise ServiceError(
            component, f"port {port} is already in use; stop what uses it or set {setting} to a free port"
        )
