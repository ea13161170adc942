"""The embedded stack's contract: bounded waits, errors that name the component, external services untouched."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from core.errors import ServiceError
from core.settings import default_settings, load_settings
from infra.process import ManagedProcess
from infra.stack import Stack
from infra.triton import triton_env
from tests.conftest import stack_settings


def test_a_service_that_exits_fails_with_its_exit_code_and_log_tail(tmp_path):
    proc = ManagedProcess("toy", tmp_path / "toy.log")
    proc.start([sys.executable, "-c", "print('cannot open the widget'); raise SystemExit(3)"])
    with pytest.raises(ServiceError) as err:
        proc.wait_ready(lambda: False, timeout_s=30)
    text = str(err.value)
    assert text.startswith("toy: exited with code 3") and "cannot open the widget" in text


def test_a_service_that_never_gets_ready_fails_after_the_bound(tmp_path):
    proc = ManagedProcess("sleeper", tmp_path / "sleeper.log")
    proc.start([sys.executable, "-c", "import time; print('still booting', flush=True); time.sleep(60)"])
    try:
        with pytest.raises(ServiceError, match="sleeper: not ready after 1s") as err:
            proc.wait_ready(lambda: False, timeout_s=1)
        assert "still booting" in str(err.value)
    finally:
        proc.stop(5)
    assert not proc.running()


def test_an_embedded_port_in_use_names_the_setting_to_change(tmp_path):
    settings = stack_settings(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.kafka.embedded_port))
        taken.listen()
        with pytest.raises(ServiceError, match="broker: port .* in use.*FLEETSCOPE_KAFKA__EMBEDDED_PORT"):
            Stack(settings).start()


def test_services_given_an_address_are_checked_not_started(settings, tmp_path):
    external = load_settings(
        kafka={"bootstrap_servers": settings.kafka.servers},
        postgres={"dsn": settings.postgres.url("psycopg").replace("postgresql+psycopg", "postgresql")},
        triton={"url": settings.triton.grpc_url},
        stack={"run_dir": tmp_path, "startup_timeout_s": 20},
    )
    stack = Stack(external, with_worker=False)
    stack.start()
    try:
        assert stack.started == []
        assert set(stack.timings) == {"topics", "schema", "triton"}
    finally:
        stack.stop()


def test_an_unreachable_external_triton_fails_naming_the_setting(tmp_path):
    from infra.process import free_ports

    (port,) = free_ports(1)
    settings = load_settings(
        kafka={"bootstrap_servers": "127.0.0.1:1"}, stack={"run_dir": tmp_path, "startup_timeout_s": 2}
    )
    began = time.monotonic()
    with pytest.raises(ServiceError, match="broker"):
        Stack(settings, with_worker=False).start()
    # Bounded by the startup timeout, not by kafka-python's own 30 s wait for a first connection.
    assert time.monotonic() - began < 10
    settings = load_settings(triton={"url": f"127.0.0.1:{port}"}, stack={"startup_timeout_s": 2})
    from infra.stack import wait_triton_ready

    with pytest.raises(ServiceError, match="FLEETSCOPE_TRITON__URL"):
        wait_triton_ready(settings)


def test_the_embedded_triton_gets_the_settings_its_models_read():
    settings = default_settings(triton={"runtime": "torch", "torch_threads": 3, "checkpoint_dir": "/srv/ckpt"})

    env = triton_env(settings)

    # The python backend's models read these through core.settings.get_settings() in their own process.
    assert env["FLEETSCOPE_TRITON__RUNTIME"] == "torch"
    assert env["FLEETSCOPE_TRITON__TORCH_THREADS"] == "3" and env["OMP_NUM_THREADS"] == "3"
    assert env["FLEETSCOPE_TRITON__CHECKPOINT_DIR"] == "/srv/ckpt"
