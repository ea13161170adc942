"""A supervised stack: a service killed with SIGKILL is reaped and restarted, a killed broker stops the stack."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from core.errors import ServiceError
from core.settings import load_settings
from infra.postgres import schema_revision
from infra.process import ManagedProcess
from infra.scrape import sample_value, scrape
from infra.stack import Stack
from infra.supervisor import backoff_s
from tests.conftest import stack_settings
from tests.waiting import wait_until


def reaped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # a reused pid is someone else
    except psutil.NoSuchProcess:
        return True


def process(stack: Stack, name: str) -> ManagedProcess:
    proc = next(svc for svc in stack.started if svc.name == name).process  # type: ignore[attr-defined]
    assert isinstance(proc, ManagedProcess)
    return proc


class Sleeper:
    """A stand-in service: a ``sleep`` process whose first ``failing`` restarts fail, or never become ready."""

    name = "sleeper"

    def __init__(self, log_dir: Path, failing: int = 0, hang: bool = False) -> None:
        self.process = ManagedProcess(self.name, log_dir / "sleeper.log")
        self.failing, self.hang = failing, hang
        self.starts: list[float] = []

    def start(self) -> None:
        self.starts.append(time.monotonic())
        if len(self.starts) > 1 and self.failing:
            self.failing -= 1
            raise ServiceError(self.name, "refused to start")
        self.process.start(["sleep", "120"])
        if self.hang and len(self.starts) > 1:
            self.process.wait_ready(lambda: False, 120)

    def stop(self) -> None:
        self.process.stop(5)


def supervised_sleeper(tmp_path: Path, sleeper: Sleeper) -> Stack:
    stack = Stack(load_settings(stack={"run_dir": tmp_path}), with_worker=False)
    stack._start(sleeper)
    stack.supervise()
    return stack


def test_failed_restarts_are_retried_with_growing_delays(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="infra.supervisor")
    sleeper = Sleeper(tmp_path, failing=2)
    stack = supervised_sleeper(tmp_path, sleeper)
    try:
        old_pid = sleeper.process.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        wait_until(lambda: stack.restarts["sleeper"] == 1, 30, "restarted")
    finally:
        stack.stop()
    # Killed soon after it started, so even the first restart waits; then each failure doubles the delay.
    gaps = [b - a for a, b in zip(sleeper.starts[1:], sleeper.starts[2:], strict=False)]
    assert len(sleeper.starts) == 4 and gaps[0] >= 2 and gaps[1] >= 4, gaps
    assert caplog.text.count("restarting sleeper failed") == 2 and "restarting sleeper (attempt 3)" in caplog.text
    assert reaped(old_pid)


def test_stop_cuts_a_restart_short(tmp_path):
    sleeper = Sleeper(tmp_path, hang=True)
    stack = supervised_sleeper(tmp_path, sleeper)
    try:
        assert sleeper.process.pid is not None
        os.kill(sleeper.process.pid, signal.SIGKILL)
        wait_until(lambda: len(sleeper.starts) == 2 and sleeper.process.running(), 10, "restarting")
    finally:
        t0 = time.monotonic()
        stack.stop()
    assert time.monotonic() - t0 < 5, "stop waited for the restart's readiness timeout"
    assert stack.restarts["sleeper"] == 0 and not sleeper.process.running()


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Stack]:
    """A GPS-only stack (no Triton: lighter) under supervision."""
    stack = Stack(stack_settings(tmp_path), with_triton=False, supervise=True)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_backoff_doubles_from_one_second_up_to_thirty():
    assert [backoff_s(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_a_killed_worker_is_reaped_and_restarted_until_ready(supervised, caplog):
    caplog.set_level(logging.WARNING, logger="infra.supervisor")
    worker = process(supervised, "worker")
    old_pid = worker.pid
    assert old_pid is not None

    os.killpg(old_pid, signal.SIGKILL)
    wait_until(lambda: supervised.restarts["worker"] == 1, 90, "restarted")

    assert worker.running() and worker.pid != old_pid
    assert reaped(old_pid)
    assert sample_value(scrape(supervised.settings.worker.metrics_port), "fleetscope_worker_ready") == 1
    pids = json.loads((supervised.settings.stack.run_dir / "pids.json").read_text())
    assert pids["worker"] == worker.pid
    assert f"worker (pid {old_pid}) was killed by SIGKILL" in caplog.text
    assert supervised.failure is None


def test_a_killed_postgres_restarts_on_its_data(supervised):
    postgres = process(supervised, "postgres")
    old_pid = postgres.pid
    assert old_pid is not None

    # Only the postmaster: its backends and its postmaster.pid are left behind, as after a crash.
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: supervised.restarts["postgres"] == 1, 60, "restarted")

    assert reaped(old_pid) and postgres.running()
    revision, head = schema_revision(supervised.settings)
    assert revision == head, "the restarted server lost the schema"


def test_a_killed_broker_stops_the_stack_and_says_why(supervised):
    broker = process(supervised, "broker")
    others = [process(supervised, name).pid for name in ("postgres", "worker")]
    assert broker.pid is not None

    os.killpg(broker.pid, signal.SIGKILL)
    failure = None
    deadline = time.monotonic() + 60
    while failure is None and time.monotonic() < deadline:
        failure = supervised.wait_failure(1)

    assert failure is not None, "the supervisor did not stop the stack"
    assert "memory://" in str(failure) and "fleetscope stack up" in str(failure)
    assert supervised.started == [] and supervised.restarts["broker"] == 0
    assert all(pid is not None and reaped(pid) for pid in others)
    assert not (supervised.settings.stack.run_dir / "pids.json").exists()
