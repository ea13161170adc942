"""Specifications of segment windows and the frame join, without services: window values, stats, ST context."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from models.vocab import ST_CONTEXT_FIELDS
from records.messages import AttachedFix, Frame, ObservedFix
from roads.network import load_network
from sim.fleet import GpsConfig
from sim.publish import gps_message
from sim.world import GpsEmission, World, WorldConfig
from streams.context.kinematics import smoothed_speeds
from streams.context.segment_windows import as_of, merged, partition_of, window_stats
from streams.context.st_vector import context_vector, with_window
from streams.context.vehicle_track import VehicleTracks
from tests.frames import sample_camera

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)
FIELD = {name: i for i, name in enumerate(ST_CONTEXT_FIELDS)}


def observed(vehicle: str, seconds: float, speed: float | None, braking: bool = False) -> ObservedFix:
    return ObservedFix(vehicle_id=vehicle, ts=T0 + timedelta(seconds=seconds), speed_mps=speed, hard_braking=braking)


def test_a_window_counts_fixes_vehicles_passes_median_speed_and_hard_brakes():
    value = merged({}, [observed("a", 0, 10.0), observed("a", 1, 10.0), observed("b", 5, 4.0, braking=True)])
    value = merged(value, [observed("a", 45, 10.0), observed("c", 50, None), observed("d", 52, 12.0)])
    stats = window_stats("s1", (T0.timestamp(), T0.timestamp() + 59.9), 60, value)  # "a" comes back after 44 s
    assert (stats.fixes, stats.vehicles, stats.trajectories, stats.hard_brakes) == (6, 4, 5, 1)
    assert stats.median_speed_mps == pytest.approx(10.0)  # of 10, 10, 10, 4, 12; a fix without speed has none
    assert stats.window_start == T0


@pytest.mark.parametrize("seed", range(5))
def test_the_median_speed_of_a_crawling_queue_is_not_inflated_by_speed_noise(seed):
    # Five vehicles crawl at 0.7-0.9 m/s and four pass at 3 m/s: the true median is 0.9 m/s. Receiver
    # noise of 0.3 m/s smears the crawl speeds, so a median of the raw speeds lands far above it.
    rng = np.random.default_rng(seed)
    fixes = [
        observed(f"v{v}", t, max(0.0, speed + rng.normal(0, 0.3)))
        for v, speed in enumerate([0.7, 0.75, 0.8, 0.85, 0.9, 3.0, 3.0, 3.0, 3.0])
        for t in range(60)
    ]
    raw = statistics.median(f.speed_mps for f in fixes)
    smoothed = window_stats("s", (0.0, 59.9), 60, merged({}, fixes)).median_speed_mps
    assert smoothed is not None
    assert abs(smoothed - 0.9) < abs(raw - 0.9) / 2


@pytest.mark.parametrize("seed", range(5))
def test_a_queue_clearing_from_the_front_keeps_its_crawl_median(seed):
    # 16 vehicles crawl at 0.8 m/s and leave the queue one a second from t=26 s, speeding up to 2.4 m/s.
    # Just over half of the minute's fixes crawl, so the true median sits at the top edge of the crawl:
    # noise there moves a median of raw speeds to about 1.1 m/s (and the earlier smoothing to 0.92-0.96).
    rng = np.random.default_rng(seed)
    fixes = []
    for v in range(16):
        leaves = 26 + v
        for t in range(60):
            speed = 0.8 if t < leaves else min(2.4, 0.8 + 0.8 * (t - leaves))
            fixes.append(observed(f"v{v}", t, max(0.0, speed + rng.normal(0, 0.3))))
    median = window_stats("s", (0.0, 59.9), 60, merged({}, fixes)).median_speed_mps
    assert median is not None
    assert abs(median - 0.8) <= 0.1


@pytest.mark.parametrize("seed", range(5))
def test_smoothed_speeds_average_out_noise_but_follow_hard_braking(seed):
    truth = [15.0 if t < 30 else max(2.0, 15.0 - 6.0 * (t - 30)) for t in range(60)]
    rng = np.random.default_rng(seed)
    smoothed = smoothed_speeds([[v + rng.normal(0, 0.3) for v in truth]])
    steady = [abs(s - v) for t, (s, v) in enumerate(zip(smoothed, truth, strict=True)) if not 29 <= t <= 34]
    assert statistics.mean(steady) < 0.15  # raw speeds: 0.24 (the mean absolute value of the noise)
    assert max(steady) < 1.5  # a running mean over 9 fixes would be several m/s off beside the drop


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
    vec = context_vector(frame.captured_at, fix, 2.0, segment)
    assert vec[FIELD["lanes_norm"]] == pytest.approx(min(segment.lanes / 4, 2.0))
    assert vec[FIELD["segment_length_norm"]] > 0 and vec[FIELD["window_vehicles_norm"]] == 0
    value = merged({}, [observed("a", 0, 6.0), observed("b", 1, 12.0)])
    joined = with_window(vec, window_stats(segment.segment_id, (0.0, 59.9), 60, value))
    assert joined[FIELD["window_vehicles_norm"]] == pytest.approx(2 / 20)
    assert joined[FIELD["window_median_speed_norm"]] == pytest.approx(9.0 / 30)
    assert with_window(vec, None) == vec
    assert context_vector(frame.captured_at, None, 2.0, segment) == [0.0] * len(ST_CONTEXT_FIELDS)


def test_a_vehicle_without_reported_speeds_leaves_the_median_to_the_others():
    import warnings

    fixes = [observed("no-speed", t, None) for t in range(5)] + [observed("v", t, 8.0) for t in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by an empty track
        stats = window_stats("s", (0.0, 59.9), 60, merged({}, fixes))
    assert stats.vehicles == 2 and stats.median_speed_mps == pytest.approx(8.0)


def test_a_window_as_of_a_time_holds_only_the_fixes_taken_by_then():
    value = {"a": {"100.000": [10.0, 0], "130.000": [12.0, 1]}, "b": {"140.000": [5.0, 0]}}
    assert as_of(value, 130.0) == {"a": {"100.000": [10.0, 0], "130.000": [12.0, 1]}}
    assert as_of(value, 99.0) == {}
    assert as_of(value, 1e12) == value
