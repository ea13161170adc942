"""What the fleet topics admit, and what a stage does with anything, however odd (property-based).

The property tests generate fleet messages, valid and invalid, and drive them through the worker's
real admission (decode, key, plausible time, JPEG) and then through the per-message work the
stages do with an admitted one (GPS history and join, map matching, segment windows, ST context):
an input is admitted or refused with a reason, and nothing else ever escapes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from faust.windows import _PyHoppingWindow
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.errors import InvalidMessage
from records.messages import Frame, GpsFix
from roads.network import load_network
from streams.context.gps_track import RecentFixes, nearest_fix
from streams.context.segment_windows import merged, window_stats
from streams.context.st_vector import cell_id, context_vector
from streams.context.vehicle_track import VehicleTracks
from streams.ingest.admission import Admission
from streams.windows import earliest_range, hopping_ranges, window_bounds
from tests.frames import sample_camera, sample_jpeg

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
ADMISSION = Admission(max_ahead_s=300, max_age_s=7 * 86400)
NETWORK = load_network()
TRACKS = VehicleTracks(NETWORK)
FIXES = RecentFixes(120)


def fix_bytes(ts: object, **fields: object) -> bytes:
    return json.dumps({"vehicle_id": "v1", "ts": ts, "lat": 60.1705, "lon": 24.94, **fields}).encode()


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("9999-12-31T00:00:00Z", "time_in_future"),
        ((NOW + timedelta(minutes=10)).isoformat(), "time_in_future"),
        ("1970-01-01T00:00:00Z", "time_too_old"),
        (-1, "time_too_old"),
        ((NOW - timedelta(days=8)).isoformat(), "time_too_old"),
    ],
)
def test_fixes_dated_far_from_when_they_reached_the_broker_are_refused_with_a_reason(ts, reason):
    with pytest.raises(InvalidMessage) as err:
        ADMISSION.admit(GpsFix, fix_bytes(ts), b"v1", NOW.timestamp())
    assert err.value.reason == reason
    assert "FLEETSCOPE_WORKER__MAX_TIME" in err.value.detail


def test_a_fix_a_little_ahead_or_some_days_late_is_admitted():
    for at in (NOW + timedelta(minutes=4), NOW - timedelta(days=6)):
        assert ADMISSION.admit(GpsFix, fix_bytes(at.isoformat()), b"v1", NOW.timestamp()).message.ts == at


def test_backfill_admits_old_data_from_its_start_but_not_before():
    backfill = Admission(max_ahead_s=300, max_age_s=86400, backfill_from=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert backfill.admit(GpsFix, fix_bytes("2026-03-01T08:00:00Z"), b"v1", NOW.timestamp())
    for ts in ("2025-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "9999-12-31T00:00:00Z"):
        with pytest.raises(InvalidMessage):
            backfill.admit(GpsFix, fix_bytes(ts), b"v1", NOW.timestamp())


def test_a_frame_is_checked_like_a_fix():
    frame = Frame(
        vehicle_id="v1",
        frame_id="f1",
        captured_at=datetime(9999, 12, 31, tzinfo=timezone.utc),
        jpeg=sample_jpeg(1),
        camera=sample_camera(1),
    )
    with pytest.raises(InvalidMessage) as err:
        ADMISSION.admit(Frame, frame.encode(), b"v1", NOW.timestamp())
    assert err.value.reason == "time_in_future"


def test_window_arithmetic_gives_faust_s_window_keys_and_stays_bounded_whatever_the_time():
    for size, step in ((60, 30), (300, 60), (60, 60)):
        python = _PyHoppingWindow(size, step)
        for t in (0.0, 1.5, 1_762_156_800.25, 4_102_444_800.0):
            assert hopping_ranges(t, size, step) == [tuple(r) for r in python.ranges(t)]
            assert earliest_range(t, size, step) == tuple(python.earliest(t))
        assert len(hopping_ranges(datetime(9999, 12, 31, tzinfo=timezone.utc).timestamp(), size, step)) == size // step


def test_faust_s_compiled_hopping_window_still_overflows_past_the_year_4000():
    """Why streams.windows does its own arithmetic. If this fails, Faust fixed it and the note there can go."""
    probe = (
        "import resource, faust; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "try:\n    faust.HoppingWindow(60, 30).ranges(253402214400.0)\nexcept MemoryError:\n    print('overflows')"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "overflows" in out.stdout, out.stderr[-500:]


# Values a field may take in a hostile or buggy fleet: right and wrong types, edges, junk.
times = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)).map(
        datetime.isoformat
    ),
    st.datetimes(min_value=NOW.replace(tzinfo=None) - timedelta(days=9), max_value=NOW.replace(tzinfo=None)).map(
        lambda d: d.isoformat() + "Z"
    ),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.none(),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.text(max_size=5),
)
coordinates = st.one_of(st.floats(min_value=60.16, max_value=60.18), numbers)
junk = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20), st.lists(st.integers(), max_size=3))


MISSING = object()


def usually(common: st.SearchStrategy, rare: st.SearchStrategy, odds: int = 4) -> st.SearchStrategy:
    """``common`` ``odds`` times in ``odds + 1`` (``st.one_of`` would weigh each branch of a nested one_of alike)."""
    return st.integers(0, odds).flatmap(lambda i: common if i else rare)


def message(valid: dict[str, object], hostile: dict[str, st.SearchStrategy]) -> st.SearchStrategy[bytes]:
    """A valid message with some fields replaced, dropped or added, or bytes that are no JSON object at all."""
    fields = {k: usually(st.just(v), st.one_of(hostile[k], st.just(MISSING)), odds=6) for k, v in valid.items()}
    extra = {"firmware": junk, "settings": st.dictionaries(st.text(max_size=5), junk, max_size=3)}
    objects = st.fixed_dictionaries(fields, optional=extra).map(
        lambda d: json.dumps({k: v for k, v in d.items() if v is not MISSING}, allow_nan=True).encode()
    )
    return usually(objects, st.one_of(st.binary(max_size=64), junk.map(lambda v: json.dumps(v).encode())))


VALID_FIX = json.loads(GpsFix(vehicle_id="v1", ts=NOW, lat=60.1705, lon=24.94, speed_mps=8.0, heading_deg=10).encode())
fixes = message(
    VALID_FIX,
    {
        "schema_version": st.sampled_from([1, 2, "1", None]),
        "vehicle_id": st.one_of(st.text(max_size=200), junk),
        "ts": times,
        "lat": coordinates,
        "lon": st.one_of(st.floats(min_value=24.93, max_value=24.95), numbers),
        "speed_mps": st.one_of(st.none(), numbers),
        "heading_deg": st.one_of(st.none(), numbers),
        "accuracy_m": st.one_of(st.none(), numbers),
    },
)
VALID_FRAME = json.loads(
    Frame(vehicle_id="v1", frame_id="f1", captured_at=NOW, jpeg=sample_jpeg(0), camera=sample_camera(0)).encode()
)
jpegs = st.one_of(
    st.sampled_from([sample_jpeg(1)[:300], b"\x89PNG\r\n\x1a\n", b""]).map(lambda b: base64.b64encode(b).decode()),
    st.text(max_size=20),
    junk,
)
cameras = st.fixed_dictionaries(
    {k: st.one_of(st.just(v), st.just(v), numbers) for k, v in VALID_FRAME["camera"].items()}
)
frames = message(
    VALID_FRAME,
    {
        "schema_version": st.sampled_from([1, 2, "1", None]),
        "vehicle_id": st.one_of(st.text(max_size=200), junk),
        "frame_id": st.one_of(st.text(max_size=10), junk),
        "captured_at": times,
        "jpeg": jpegs,
        "camera": st.one_of(cameras, junk),
    },
)
keys = usually(st.just(b"v1"), st.one_of(st.none(), st.binary(max_size=8)))
broker_times = usually(st.just(NOW.timestamp()), st.one_of(st.floats(min_value=-1e12, max_value=1e12), st.none()))
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def admitted(model: type[Frame] | type[GpsFix], raw: bytes, key: bytes | None, reached: float | None) -> Any:
    """The message if admitted, else None once it was refused with a reason (any other exception escapes)."""
    try:
        msg = ADMISSION.admit(model, raw, key, reached).message
    except InvalidMessage as exc:
        assert exc.reason and exc.detail is not None
        event(f"refused: {exc.reason}")
        return None
    event("admitted")
    return msg


@FAST
@given(raw=fixes, key=keys, reached=broker_times)
def test_any_fix_is_admitted_or_refused_with_a_reason_and_an_admitted_one_never_breaks_a_stage(raw, key, reached):
    if (fix := admitted(GpsFix, raw, key, reached)) is None:
        return
    FIXES.add(fix)
    assert nearest_fix(FIXES.history(fix.vehicle_id), fix.ts, 2.0) is not None
    for point in TRACKS.push_all([fix]) + TRACKS.flush_idle(0):
        for window in hopping_ranges(point.ts.timestamp(), 60, 30):
            window_stats(point.segment.segment_id, window, 60, merged({}, [point.observation()]))
    window_bounds(fix.ts, 3600)
    cell_id(fix.lat, fix.lon, 0.005)


@FAST
@given(raw=frames, key=keys, reached=broker_times)
def test_any_frame_is_admitted_or_refused_with_a_reason_and_an_admitted_one_gets_its_context(raw, key, reached):
    if (frame := admitted(Frame, raw, key, reached)) is None:
        return
    attached = nearest_fix(FIXES.history(frame.vehicle_id), frame.captured_at, 2.0)
    assert len(context_vector(frame.captured_at, attached, 2.0, None)) > 0
    earliest_range(frame.captured_at.timestamp(), 60, 30)
    window_bounds(frame.captured_at, 300)
