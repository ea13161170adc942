"""When a silent vehicle's pending fixes are committed: by the data, never by how fast a worker reads it."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cache

import pytest

from core.settings import WorkerSettings
from records.messages import GpsFix
from roads.network import load_network
from sim.fleet import GpsConfig
from sim.publish import gps_message, in_delivery_order
from sim.world import GpsEmission, World, WorldConfig
from streams.context import vehicle_track
from streams.context.vehicle_track import TrackPoint, VehicleTracks

T0 = datetime(2026, 11, 3, 7, 30, tzinfo=timezone.utc)
IDLE_S = 2.0
WARMUP_S = WorkerSettings().match_warmup_s


@cache
def fleet() -> tuple[GpsFix, ...]:
    """Two minutes of an 8-vehicle fleet's GPS, in delivery order (some fixes late)."""
    world = World(load_network(), WorldConfig(vehicles=8, frames=False, gps=GpsConfig(late_fraction=0.03)), 5, T0)
    return tuple(gps_message(e.truth) for e in in_delivery_order(world.run(120)) if isinstance(e, GpsEmission))


def partition(fix: GpsFix) -> int:
    return int(fix.vehicle_id[-1]) % 2


def matched(points: list[TrackPoint]) -> list[tuple[str, datetime, str]]:
    return sorted((p.vehicle_id, p.ts, p.segment.segment_id) for p in points)


def test_a_vehicle_that_stops_sending_is_committed_as_its_partition_moves_on():
    fixes = [f for f in fleet() if partition(f) == 0]
    parked = fixes[0].vehicle_id
    last = max(f.ts for f in fixes if f.vehicle_id == parked and (f.ts - T0).total_seconds() < 30)
    fixes = [f for f in fixes if f.vehicle_id != parked or f.ts <= last]
    tracks = VehicleTracks(load_network(), idle_s=IDLE_S)

    points = tracks.push_all(fixes, [0] * len(fixes))
    # No idle timer ran: the others' fixes, IDLE_S past its newest, committed the parked vehicle's.
    assert max(p.ts for p in points if p.vehicle_id == parked) == last


def test_a_worker_too_slow_for_its_stream_commits_what_a_fast_one_does(monkeypatch: pytest.MonkeyPatch):
    fixes = list(fleet())
    network = load_network()
    fast = VehicleTracks(network, idle_s=IDLE_S)
    reference = fast.push_all(fixes, [partition(f) for f in fixes]) + fast.flush_idle(0)

    # The slow worker reads in batches and stalls a minute before each, with records waiting on both
    # partitions; its idle timer runs after every stall.
    clock = [0.0]
    monkeypatch.setattr(vehicle_track.time, "monotonic", lambda: clock[0])
    slow = VehicleTracks(network, idle_s=IDLE_S)
    points = []
    for start in range(0, len(fixes), 150):
        clock[0] += 60
        points += slow.flush_idle(IDLE_S, busy={0, 1})
        batch = fixes[start : start + 150]
        points += slow.push_all(batch, [partition(f) for f in batch])
    clock[0] += 60
    points += slow.flush_idle(IDLE_S)  # the data has ended: both partitions quiet, nothing waiting

    assert matched(points) == matched(reference)
    assert len(reference) >= 0.95 * len(fixes)


def test_a_partition_taken_over_and_warmed_on_its_history_commits_what_its_old_owner_would_have():
    fixes = [f for f in fleet() if partition(f) == 0]
    network = load_network()
    cold_differs = 0
    for cut in range(len(fixes) // 4, len(fixes), len(fixes) // 8):
        owner = VehicleTracks(network, idle_s=IDLE_S)
        owner.push_all(fixes[:cut], [0] * cut)
        reference = owner.push_all(fixes[cut:], [0] * (len(fixes) - cut)) + owner.flush_idle(0)

        # The heir reads back what the worker's default warm-up reads: 30 s of fix time before the cut.
        since = fixes[cut - 1].ts.timestamp() - WARMUP_S
        history = [f for f in fixes[:cut] if f.ts.timestamp() >= since]
        heir = VehicleTracks(network, idle_s=IDLE_S)
        assert heir.warm(history, 0) == len(history) < cut
        taken_over = heir.push_all(fixes[cut:], [0] * (len(fixes) - cut)) + heir.flush_idle(0)
        assert matched(taken_over) == matched(reference), f"taken over at fix {cut}"

        cold = VehicleTracks(network, idle_s=IDLE_S)
        cold_differs += matched(cold.push_all(fixes[cut:], [0] * (len(fixes) - cut)) + cold.flush_idle(0)) != matched(
            reference
        )
    assert cold_differs, "a cold start commits something else (else this test shows nothing)"


def test_fixes_delivered_again_are_skipped_not_matched_again_on_their_own():
    fixes = [f for f in fleet() if partition(f) == 0]
    tracks = VehicleTracks(load_network(), idle_s=IDLE_S)
    tracks.push_all(fixes, [0] * len(fixes))
    again = fixes[-60:]  # what a rebalance delivers again: read since the last committed offset

    assert tracks.push_all(again, [0] * len(again)) == []
    assert tracks.repeated == len(again)


def test_a_warm_up_leaves_vehicles_already_held_alone_and_forgets_partitions_given_up():
    fixes = list(fleet())
    tracks = VehicleTracks(load_network(), idle_s=IDLE_S)
    kept = [f for f in fixes if partition(f) == 0]
    tracks.push_all(kept, [0] * len(kept))

    assert tracks.warm(kept, 0) == 0  # every vehicle of it is held: nothing replayed
    tracks.keep_sources({1})
    assert tracks.sources() == set()
    assert tracks.located(kept[0].vehicle_id, kept[0].ts) is None


def test_a_warm_up_commits_where_the_stream_went_quiet_as_its_owner_did():
    fixes = [f for f in fleet() if partition(f) == 0]
    cut = len(fixes) // 2
    owner = VehicleTracks(load_network(), idle_s=IDLE_S)
    owner.push_all(fixes[:cut], [0] * cut)
    owner.flush_idle(0)  # the stream paused: the owner committed every pending fix
    reference = owner.push_all(fixes[cut:], [0] * (len(fixes) - cut)) + owner.flush_idle(0)

    heir = VehicleTracks(load_network(), idle_s=IDLE_S)
    heir.warm(fixes[:cut], 0, quiet_after=[cut - 1])
    assert matched(heir.push_all(fixes[cut:], [0] * (len(fixes) - cut)) + heir.flush_idle(0)) == matched(reference)


def test_a_warm_up_in_steps_replays_what_one_in_one_go_does():
    fixes = [f for f in fleet() if partition(f) == 0]
    cut = len(fixes) // 2
    history, rest = fixes[:cut], fixes[cut:]
    # Pauses inside steps of 50, on their edges, and at the end (the one the live fixes notice).
    quiet = [*range(37, cut - 1, 61), 99, cut - 1]

    # What a replay in one go does: the runs between pauses pushed, each pause flushed.
    whole = VehicleTracks(load_network(), idle_s=IDLE_S)
    start = 0
    for q in sorted(quiet):
        whole.push_all(history[start : q + 1], [0] * (q + 1 - start))
        whole.flush_source(0)
        start = q + 1
    reference = matched(whole.push_all(rest, [0] * len(rest)) + whole.flush_idle(0))

    stepped = VehicleTracks(load_network(), idle_s=IDLE_S)
    steps = list(stepped.warm_steps(history, 0, quiet_after=quiet, step=50))
    assert len(steps) >= cut // 50 and steps == sorted(steps) and steps[-1] == cut
    assert matched(stepped.push_all(rest, [0] * len(rest)) + stepped.flush_idle(0)) == reference

    unpaused = VehicleTracks(load_network(), idle_s=IDLE_S)
    list(unpaused.warm_steps(history, 0, step=50))
    assert matched(unpaused.push_all(rest, [0] * len(rest)) + unpaused.flush_idle(0)) != reference, (
        "the pause at the end changes what the live fixes commit (else this test shows nothing)"
    )


def test_a_worker_holds_at_most_max_vehicles_and_commits_the_ones_it_forgets():
    fixes = [f for f in fleet() if partition(f) == 0]
    vehicles = sorted({f.vehicle_id for f in fixes})
    unbounded = VehicleTracks(load_network(), idle_s=IDLE_S)
    reference = unbounded.push_all(fixes, [0] * len(fixes)) + unbounded.flush_idle(0)

    bounded = VehicleTracks(load_network(), idle_s=IDLE_S, max_vehicles=len(vehicles) - 1)
    points = []
    for start in range(0, len(fixes), 10):  # batches as the agent takes them: forgotten vehicles come back
        batch = fixes[start : start + 10]
        points += bounded.push_all(batch, [0] * len(batch))
    points += bounded.flush_idle(0)
    assert bounded.forgotten > len(vehicles) and len(bounded._tracks) == len(vehicles) - 1
    # A vehicle forgotten mid-drive starts afresh: every fix is still committed, once.
    assert sorted((p.vehicle_id, p.ts) for p in points) == sorted((p.vehicle_id, p.ts) for p in reference)
    assert len({(p.vehicle_id, p.ts) for p in points}) == len(points)


def test_a_warm_up_forgets_no_live_vehicle_until_it_is_done_and_then_loses_none_of_their_fixes():
    live = [f for f in fleet() if partition(f) == 1]
    live_vehicles = {f.vehicle_id for f in live}
    half = len(live) // 2
    unbounded = VehicleTracks(load_network(), idle_s=IDLE_S)
    reference = unbounded.push_all(live[:half], [1] * half) + unbounded.flush_idle(0)

    # The worker holds partition 1's vehicles, as many as it may, and takes partition 0 over.
    tracks = VehicleTracks(load_network(), idle_s=IDLE_S, max_vehicles=len(live_vehicles))
    points = tracks.push_all(live[:half], [1] * half)
    taken_over = [f for f in fleet() if partition(f) == 0]
    tracks.warm(taken_over, 0)
    assert tracks.forgotten == 0 and live_vehicles <= set(tracks._tracks)
    points += tracks.trim() + tracks.flush_idle(0)
    assert tracks.forgotten > 0
    committed = {(p.vehicle_id, p.ts) for p in points if p.vehicle_id in live_vehicles}
    assert committed == {(p.vehicle_id, p.ts) for p in reference}
