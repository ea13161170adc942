"""Faults in the middle of a stream, on a supervised stack of its own: kill -9 of the worker, kill -9
of tritonserver, PostgreSQL stopped for 20 s. Afterwards every frame sent is stored exactly once,
none is dead-lettered for the outage, and the stack is healthy again with no hand on it."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from infra.process import tail
from infra.stack import Stack
from records.messages import Frame, GpsFix
from streams import topics
from streams.producer import FleetProducer
from streams.sinks.tables import frame_observations
from tests.conftest import stack_settings
from tests.frames import sample_camera, sample_jpeg
from tests.kafka_reader import read_until

FRAMES = 24  # a third before the fault, two thirds while it lasts and after


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A worker whose consumer stops delivering a partition restarts itself (streams/liveness.py): sooner here.
    settings = stack_settings(tmp_path_factory.mktemp("chaos"), sink_linger_s=0.2, stall_timeout_s=20)
    st = Stack(settings, supervise=True)
    st.start()
    try:
        yield st
    finally:
        st.stop()


def service(stack: Stack, name: str):  # type: ignore[no-untyped-def]
    return next(s for s in stack.started if s.name == name)


def worker_metric(settings: Settings, name: str, **labels: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker.metrics_port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def wait_for(
    condition: Callable[[], bool], what: str, timeout_s: float = 120, settings: Settings | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout_s:.0f} s" + (
            f"; worker: {progress(settings)}" if settings else ""
        )
        time.sleep(0.25)


def progress(settings: Settings) -> str:
    """What the worker consumed and is behind by, to say where a stream stopped."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker.metrics_port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError as exc:
        return f"no metrics ({exc})"
    wanted = ("fleetscope_messages_in_total", "fleetscope_consumer_lag", "fleetscope_dependency_up")
    metrics = ", ".join(
        f"{sample.name}{sample.labels}={sample.value:g}"
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted
    )
    return f"{metrics}\n--- worker log ---\n{tail(settings.stack.run_dir / 'logs' / 'worker.log', 60)}"


def stored(settings: Settings, frame_ids: list[str]) -> list[str]:
    engine = sa.create_engine(settings.postgres.url("psycopg"))
    try:
        with engine.connect() as conn:
            query = sa.select(frame_observations.c.frame_id).where(frame_observations.c.frame_id.in_(frame_ids))
            return [row.frame_id for row in conn.execute(query)]
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def stream_through(stack: Stack, fault: Callable[[FleetProducer, Callable[[int], None]], None]) -> None:
    """Send a vehicle's frames and fixes; ``fault`` runs once the first third is stored, and may send more
    itself (``send(n)`` sends frame and fix ``n``) while its fault lasts. Then check nothing was lost."""
    settings = stack.settings
    vehicle = f"chaos-{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(timezone.utc) - timedelta(minutes=5)
    frames = [
        Frame(
            vehicle_id=vehicle,
            frame_id=f"{vehicle}-{n}",
            captured_at=t0 + timedelta(seconds=2 * n, milliseconds=200),
            jpeg=sample_jpeg(n),
            camera=sample_camera(n),
        )
        for n in range(FRAMES)
    ]
    ids = [f.frame_id for f in frames]
    sent: set[int] = set()
    with FleetProducer(settings) as producer:

        def send(n: int) -> None:
            fix = GpsFix(vehicle_id=vehicle, ts=t0 + timedelta(seconds=2 * n), lat=60.17 + n * 1e-4, lon=24.94)
            producer.send_gps(fix)
            producer.send_frame(frames[n])
            producer.flush()
            sent.add(n)

        for n in range(FRAMES // 3):
            send(n)
        wait_for(lambda: len(stored(settings, ids)) >= FRAMES // 3, "the first third stored")
        fault(producer, send)
        for n in range(FRAMES):
            if n not in sent:
                send(n)

    wait_for(lambda: len(stored(settings, ids)) == FRAMES, f"all {FRAMES} frames stored", 240, settings)
    rows = stored(settings, ids)
    assert sorted(rows) == sorted(ids)  # each once: frame_id is the table's key, and none is missing
    letters = read_until(settings, topics.DEADLETTER, lambda r: r.key == vehicle.encode(), 0, settle_s=2)
    assert letters == [], "frames were dead-lettered for an outage"
    wait_for(lambda: worker_metric(settings, "fleetscope_worker_ready") == 1, "the worker ready again")


def send_while_down(stack: Stack, send: Callable[[int], None], dependency: str) -> None:
    """Send the middle third, then wait until the worker reports ``dependency`` down and itself not ready."""
    for n in range(FRAMES // 3, 2 * FRAMES // 3):
        send(n)
    wait_for(
        lambda: worker_metric(stack.settings, "fleetscope_dependency_up", dependency=dependency) == 0,
        f"the worker seeing {dependency} down",
    )
    wait_for(lambda: worker_metric(stack.settings, "fleetscope_worker_ready") == 0, "the worker not ready")


def test_a_worker_killed_mid_stream_is_restarted_and_loses_nothing(stack):
    worker = service(stack, "worker")
    restarts = stack.restarts["worker"]

    def kill_worker(producer: FleetProducer, send: Callable[[int], None]) -> None:
        os.killpg(worker.process.pid, signal.SIGKILL)
        for n in range(FRAMES // 3, 2 * FRAMES // 3):  # sent while it is down
            send(n)

    stream_through(stack, kill_worker)
    assert stack.restarts["worker"] >= restarts + 1


def test_tritonserver_killed_mid_stream_is_restarted_and_the_worker_waits_for_it(stack):
    triton = service(stack, "triton")
    restarts = stack.restarts["triton"]
    outages = worker_metric(stack.settings, "fleetscope_dependency_outages_total", dependency="triton") or 0

    def kill_triton(producer: FleetProducer, send: Callable[[int], None]) -> None:
        os.killpg(triton.process.pid, signal.SIGKILL)
        send_while_down(stack, send, "triton")

    stream_through(stack, kill_triton)
    assert stack.restarts["triton"] == restarts + 1
    assert worker_metric(stack.settings, "fleetscope_dependency_outages_total", dependency="triton") == outages + 1
    assert worker_metric(stack.settings, "fleetscope_dependency_up", dependency="triton") == 1


def test_postgres_stopped_for_20_s_mid_stream_is_waited_out(stack):
    postgres = service(stack, "postgres")
    assert stack.supervisor is not None

    def stop_postgres(producer: FleetProducer, send: Callable[[int], None]) -> None:
        with stack.supervisor.held("postgres"):  # an operator's stop: the supervisor must not restart it
            postgres.stop()
            stopped = time.monotonic()
            send_while_down(stack, send, "postgres")
            # The outage this test is about lasts 20 s: no condition to wait for, the duration is the point.
            time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
            postgres.start()

    stream_through(stack, stop_postgres)
    assert worker_metric(stack.settings, "fleetscope_dependency_up", dependency="postgres") == 1
