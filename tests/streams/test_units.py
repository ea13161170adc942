"""Specifications of the pure parts of the stream: schema validation, the GPS join, alert rules."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import DBAPIError
from tritonclient.utils import InferenceServerException

from core.errors import InferenceError, InvalidMessage, ServiceUnavailable
from core.recent_vehicles import RecentVehicles
from core.settings import TritonSettings
from infra.process import free_ports
from models.vocab import ST_CONTEXT_DIM
from records.messages import Frame, GpsFix, decode, parse
from streams.context.gps_track import RecentFixes, add_fix, nearest_fix
from streams.context.st_vector import cell_id, context_vector
from streams.health import Dependency, wait_out
from streams.inference.triton_client import TritonModels
from streams.ingest.admission import check_jpeg
from streams.liveness import StallWatch
from streams.sinks.postgres import is_outage
from tests.frames import sample_camera, sample_jpeg

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)


def fix(seconds: float, lat: float = 60.17) -> GpsFix:
    return GpsFix(vehicle_id="v1", ts=T0 + timedelta(seconds=seconds), lat=lat, lon=24.9, speed_mps=10.0)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'{"schema_version": 2, "vehicle_id": "v"}', "unsupported_version"),
        (b'{"vehicle_id": "v", "ts": "2026-11-03T08:00:00Z", "lat": 91, "lon": 0}', "invalid_lat"),
        (b'{"vehicle_id": "v", "ts": "2026-11-03T08:00:00", "lat": 1, "lon": 0}', "invalid_ts"),
        (b'{"vehicle_id": "v", "ts": "2026-11-03T08:00:00Z", "lat": 1, "lon": Infinity}', "invalid_lon"),
    ],
)
def test_invalid_gps_messages_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(InvalidMessage) as err:
        decode(GpsFix, raw)
    assert err.value.reason == reason


def test_unknown_fields_of_this_schema_version_are_ignored_and_named():
    raw = b'{"vehicle_id": "v", "ts": "2026-11-03T08:00:00Z", "lat": 1, "lon": 0, "color": "red", "fw": {"v": 2}}'
    parsed = parse(GpsFix, raw)
    assert parsed.message == GpsFix(vehicle_id="v", ts=T0, lat=1, lon=0)
    assert parsed.unknown_fields == ("color", "fw")


def test_unknown_fields_inside_a_nested_part_are_ignored_but_its_known_fields_still_checked():
    frame = json.loads(
        Frame(vehicle_id="v", frame_id="f", captured_at=T0, jpeg=sample_jpeg(1), camera=sample_camera(1)).encode()
    )
    frame["camera"]["lens"] = "wide"
    assert parse(Frame, json.dumps(frame).encode()).unknown_fields == ("camera.lens",)
    frame["camera"]["fx"] = -1
    with pytest.raises(InvalidMessage) as err:
        parse(Frame, json.dumps(frame).encode())
    assert err.value.reason == "invalid_camera"


def test_a_new_major_version_is_still_refused():
    with pytest.raises(InvalidMessage) as err:
        parse(GpsFix, b'{"schema_version": 2, "vehicle_id": "v", "ts": "2026-11-03T08:00:00Z", "lat": 1, "lon": 0}')
    assert err.value.reason == "unsupported_version"


def test_a_frame_round_trips_through_its_json_encoding():
    frame = Frame(
        vehicle_id="v1",
        frame_id="f1",
        captured_at=T0,
        jpeg=sample_jpeg(),
        camera=sample_camera(),
    )
    assert decode(Frame, frame.encode()) == frame
    assert isinstance(json.loads(frame.encode())["jpeg"], str)


def test_jpeg_check_accepts_a_frame_and_rejects_truncated_or_other_images():
    import io

    from PIL import Image

    jpeg = sample_jpeg()
    assert check_jpeg(jpeg) == (224, 224)
    with pytest.raises(InvalidMessage, match="corrupt_jpeg"):
        check_jpeg(jpeg[: len(jpeg) // 2])
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    with pytest.raises(InvalidMessage, match="not_jpeg"):
        check_jpeg(png.getvalue())


def test_the_nearest_fix_within_tolerance_is_attached_even_when_fixes_arrive_out_of_order():
    history: list = []
    for seconds in (3, 0, 2, 1):
        history = add_fix(history, fix(seconds, lat=60 + seconds), keep=10)
    assert [r[0] for r in history] == sorted(r[0] for r in history)
    attached = nearest_fix(history, T0 + timedelta(seconds=1.8), tolerance_s=0.5)
    assert attached is not None and attached.lat == 62 and attached.offset_s == pytest.approx(0.2)
    assert nearest_fix(history, T0 + timedelta(seconds=10), tolerance_s=2) is None


def test_history_keeps_only_the_newest_fixes_and_a_repeated_fix_replaces_itself():
    history: list = []
    for seconds in range(10):
        history = add_fix(history, fix(seconds), keep=4)
    history = add_fix(history, fix(9, lat=61), keep=4)
    assert [r[0] - T0.timestamp() for r in history] == [6, 7, 8, 9]
    assert history[-1][1] == 61


def test_context_vector_is_explicitly_empty_without_a_fix():
    frame = Frame(vehicle_id="v1", frame_id="f", captured_at=T0, jpeg=b"x", camera=sample_camera())
    empty = context_vector(frame.captured_at, None, 2.0, None)
    assert empty == [0.0] * ST_CONTEXT_DIM
    history = add_fix([], fix(0.5), keep=5)
    full = context_vector(frame.captured_at, nearest_fix(history, T0, 2.0), 2.0, None)
    assert full[0] == 1.0 and full[1] == pytest.approx(10 / 30) and full[8] == pytest.approx(0.25)


def test_cells_group_nearby_positions_and_separate_distant_ones():
    assert cell_id(60.1701, 24.9401, 0.005) == cell_id(60.1702, 24.9402, 0.005)
    assert cell_id(60.1701, 24.9401, 0.005) != cell_id(60.1801, 24.9401, 0.005)


def test_an_unreachable_triton_is_waited_for_and_marked_down_not_failed():
    (port,) = free_ports(1)
    cfg = TritonSettings(url=f"127.0.0.1:{port}", max_retries=2, retry_backoff_s=0.05, request_timeout_s=2)
    health = Dependency(f"triton-{port}")
    models = TritonModels(cfg, health)

    async def call() -> bool:
        request = asyncio.ensure_future(
            models.infer("sa_clip", {"IMAGE_JPEG": np.array([[b"x"]], dtype=np.object_)}, ["ANOMALY_SCORE"])
        )
        try:
            # Well past the bounded retries of a rejected request: an outage holds the request instead.
            done, _ = await asyncio.wait([request], timeout=3)
            return not done
        finally:
            request.cancel()
            await models.close()

    assert asyncio.run(call()), "the request ended although Triton never answered"
    assert not health.up
    assert REGISTRY.get_sample_value("fleetscope_dependency_outages_total", {"dependency": health.name}) == 1


class FlakyTriton:
    """A Triton client stand-in, its model always ready, whose first requests fail with ``statuses``."""

    def __init__(self, *statuses: str) -> None:
        self.statuses, self.calls = list(statuses), 0

    async def infer(self, model: str, inputs: object, outputs: object, client_timeout: float) -> "FlakyTriton":
        self.calls += 1
        if self.statuses:
            raise InferenceServerException("cannot serve now", status=self.statuses.pop(0))
        return self

    def as_numpy(self, name: str) -> np.ndarray:
        return np.zeros(1, dtype=np.float32)

    async def is_model_ready(self, model: str, client_timeout: float) -> bool:
        return True


@pytest.mark.parametrize(
    ("statuses", "raised", "calls"),
    [
        (["StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED"], None, 3),
        (["StatusCode.DEADLINE_EXCEEDED"] * 3, InferenceError, 3),
        (["StatusCode.UNAVAILABLE"] * 3, ServiceUnavailable, 3),
        (["StatusCode.INVALID_ARGUMENT"], InferenceError, 1),
    ],
    ids=["recovers", "gives-up", "outage-after-retries", "rejected-at-once"],
)
def test_a_transient_triton_failure_is_retried_max_retries_times_with_growing_delays(statuses, raised, calls, caplog):
    cfg = TritonSettings(max_retries=2, retry_backoff_s=0.01)
    models = TritonModels(cfg, Dependency("triton-flaky"))
    fake = FlakyTriton(*statuses)
    models._client = fake  # type: ignore[assignment]
    request = models._infer_ready("sa_clip", {"IMAGE_JPEG": np.array([[b"x"]], dtype=np.object_)}, ["ANOMALY_SCORE"])
    if raised is None:
        assert asyncio.run(request)["ANOMALY_SCORE"].shape == (1,)
    else:
        with pytest.raises(raised, match="cannot serve now"):
            asyncio.run(request)
    assert fake.calls == calls
    delays = [r.getMessage().rsplit(" ", 1)[-1] for r in caplog.records if "retrying in" in r.getMessage()]
    assert delays == ["0.01s", "0.02s"][: calls - 1]


def test_per_vehicle_state_keeps_the_most_recently_seen_vehicles():
    states = RecentVehicles(list, limit=2)
    states.seen("a").append(1)
    states.seen("b").append(2)
    states.seen("a").append(3)  # "a" is now the most recently seen, "b" the least
    states.seen("c")
    assert len(states) == 2
    assert states.seen("a") == [1, 3]
    assert states.seen("b") == []  # forgotten when "c" came: a fresh state


def test_a_partition_stalls_only_when_records_wait_at_the_same_offset_for_the_whole_timeout():
    watch = StallWatch(timeout_s=20)
    assert not watch.stalled("p", position=4, highwater=24, now=0)
    assert not watch.stalled("p", position=4, highwater=24, now=19)
    assert watch.stalled("p", position=4, highwater=24, now=20)
    assert not watch.stalled("p", position=5, highwater=24, now=21)  # it moved: the clock starts again
    assert not watch.stalled("p", position=24, highwater=24, now=100)  # nothing waits: never stalled
    watch.reset()
    assert not watch.stalled("p", position=24, highwater=30, now=200)
    assert not StallWatch(timeout_s=0).stalled("p", position=0, highwater=9, now=1e9)  # disabled


def test_an_outage_is_waited_out_and_an_error_after_it_says_the_service_answered():
    health = Dependency("flaky-service")
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("down")
        if len(calls) == 3:
            raise ValueError("refused this request")
        return "ok"

    def is_outage(exc: BaseException) -> bool:
        return isinstance(exc, OSError)

    with pytest.raises(ValueError):
        asyncio.run(wait_out(health, call, is_outage, max_backoff_s=0.01))
    assert len(calls) == 3 and health.up  # two outage tries, then an answer: up again, the error raised
    assert asyncio.run(wait_out(health, call, is_outage)) == "ok"


@pytest.mark.parametrize(
    ("sqlstate", "outage"),
    [("08006", True), ("57P01", True), ("53300", True), ("28P01", True), ("40P01", True), ("23505", False)],
)
def test_postgres_errors_that_blame_the_server_are_outages_and_the_rest_the_data(sqlstate, outage):
    class Orig(Exception):
        pass

    orig = Orig("x")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    assert is_outage(DBAPIError("INSERT ...", {}, orig)) is outage


def test_recent_fixes_are_kept_for_the_vehicles_seen_most_recently_only():
    fixes = RecentFixes(keep=5, max_vehicles=2)
    for vehicle_id in ("a", "b", "a", "c"):  # "b" is the least recently seen when "c" comes
        fixes.add(GpsFix(vehicle_id=vehicle_id, ts=T0, lat=1, lon=0))
    assert len(fixes) == 2
    assert fixes.history("b") == [] and fixes.history("a") and fixes.history("c")
