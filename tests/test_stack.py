"""The embedded stack as a user runs it: ``fleetscope stack up``, then SIGTERM, leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from infra.stack import reap_leftovers
from tests.conftest import stack_settings
from tests.waiting import wait_until


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def all_descendants_by_session(sessions: set[int]) -> list[psutil.Process]:
    """Processes still alive in the sessions the stack created (its services run in their own)."""
    alive = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) in sessions and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            pass
    return alive


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# SIGINT is sent to a process that inherited it ignored, as a shell's background job does.
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_every_service_it_started(tmp_path, sig):
    settings = stack_settings(tmp_path)
    env = settings.process_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetscope", "stack", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint if sig == signal.SIGINT else None,
    )
    try:
        lines = []
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("stack up"):
                break
        assert any(line.startswith("stack up") for line in lines), "".join(lines[-40:])

        children = descendants(proc.pid)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for expected in ("tansu", "postgres", "tritonserver", "triton_python_backend_stub", "fleetscope worker"):
            assert expected in names, f"{expected} not running: {names}"
        sessions = {os.getsid(c.pid) for c in children}

        proc.send_signal(sig)
        assert proc.wait(timeout=120) == 0, "".join(lines[-40:])
        # Children that the stop killed (Triton's python stubs) may take a moment to be reaped.
        wait_until(lambda: all_descendants_by_session(sessions) == [], 10, "every service process gone")
        assert not (settings.stack.run_dir / "pids.json").exists()
    finally:
        # A failed run must not leave its stack behind for the tests that follow.
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        reap_leftovers(settings)
