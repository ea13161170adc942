"""Specifications of segment windows and the frame join, without services: window values, stats, ST context."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from models.vocab import ST_CONTEXT_FIELDS
from sim.fleet import GpsConfig
from sim.publish import gps_message
from sim.world import GpsEmission, World, WorldConfig
from streams.context.road_network import load_network
from streams.context.segment_windows import merged, partition_of, window_stats
from streams.context.st_vector import context_vector, with_window
from streams.context.vehicle_track import VehicleTracks
from streams.schema import AttachedFix, Frame, ObservedFix
from tests.frames import sample_camera

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)
FIELD = {name: i for i, name in enumerate(ST_CONTEXT_FIELDS)}


def observed(vehicle: str, seconds: float, speed: float | None, braking: bool = False) -> ObservedFix:
    return ObservedFix(vehicle_id=vehicle, ts=T0 + timedelta(seconds=seconds), speed_mps=speed, hard_braking=braking)


def test_a_window_counts_fixes_vehicles_passes_median_speed_and_hard_brakes():
    value = merged({}, [observed("a", 0, 10.0), observed("a", 1, 12.0), observed("b", 5, 4.0, braking=True)])
    value = merged(value, [observed("a", 45, 8.0), observed("c", 50, None)])  # "a" comes back after 44 s
    stats = window_stats("s1", (T0.timestamp(), T0.timestamp() + 59.9), 60, value)
    assert (stats.fixes, stats.vehicles, stats.trajectories, stats.hard_brakes) == (5, 3, 4, 1)
    assert stats.median_speed_mps == pytest.approx(9.0)  # of 10, 12, 4, 8; a fix without speed has none
    assert stats.window_start == T0


def test_folding_the_same_fixes_in_twice_changes_nothing():
    fixes = [observed("a", 0, 10.0), observed("b", 3, 7.0)]
    once = merged({}, fixes)
    assert merged(once, fixes) == once
    assert window_stats("s", (0.0, 59.9), 60, merged(once, fixes)) == window_stats("s", (0.0, 59.9), 60, once)


def test_segments_are_spread_over_partitions_the_way_kafka_keys_them():
    # murmur2 of the key, as Kafka's Java client and aiokafka's default partitioner do.
    from aiokafka.partitioner import DefaultPartitioner

    for segment_id in ("123-456", "789-1011-1", "a"):
        expected = DefaultPartitioner()(segment_id.encode(), [0, 1, 2, 3], [0, 1, 2, 3])
        assert partition_of(segment_id, 4) == expected


def test_tracks_locate_a_vehicle_on_its_true_segment_before_and_after_commit():
    network = load_network()
    world = World(network, WorldConfig(vehicles=4, gps=GpsConfig(noise_m=5.0, late_fraction=0.0), frames=False), 3, T0)
    tracks = VehicleTracks(network)
    located = right = committed = 0
    for e in world.run(120):
        if not isinstance(e, GpsEmission):
            continue
        g = e.truth
        tracks.push_all([gps_message(g)])
        where = tracks.located(g.vehicle_id, g.ts)  # the newest fix: tentative
        if where is not None:
            located += 1
            right += where.segment.segment_id == g.segment_id
            committed += where.committed
    assert located > 300 and committed == 0
    assert right / located > 0.85, "tentative positions are right most of the time"


def test_the_st_context_carries_the_segment_and_its_window():
    network = load_network()
    segment = max(network.segments, key=lambda s: s.lanes)
    frame = Frame(vehicle_id="v", frame_id="f", captured_at=T0, jpeg=b"x", camera=sample_camera())
    fix = AttachedFix(ts=T0, lat=60.17, lon=24.94, speed_mps=8.0, heading_deg=90.0, accuracy_m=5.0, offset_s=0.0)
    vec = context_vector(frame, fix, 2.0, segment)
    assert vec[FIELD["lanes_norm"]] == pytest.approx(min(segment.lanes / 4, 2.0))
    assert vec[FIELD["segment_length_norm"]] > 0 and vec[FIELD["window_vehicles_norm"]] == 0
    value = merged({}, [observed("a", 0, 6.0), observed("b", 1, 12.0)])
    joined = with_window(vec, window_stats(segment.segment_id, (0.0, 59.9), 60, value))
    assert joined[FIELD["window_vehicles_norm"]] == pytest.approx(2 / 20)
    assert joined[FIELD["window_median_speed_norm"]] == pytest.approx(9.0 / 30)
    assert with_window(vec, None) == vec
    assert context_vector(frame, None, 2.0, segment) == [0.0] * len(ST_CONTEXT_FIELDS)
