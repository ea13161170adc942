"""Online map matching and GPS kinematics against the simulator's ground truth (synthetic data)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from evaluation.map_matching import evaluate
from roads.network import RoadNetwork, load_network
from streams.context.kinematics import VehicleKinematics
from streams.context.map_matching import Fix, RouteDistances, SegmentIndex, VehicleMatcher

T0 = datetime(2026, 11, 2, 6, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def network() -> RoadNetwork:
    return load_network()


def _matcher(network: RoadNetwork) -> VehicleMatcher:
    return VehicleMatcher(SegmentIndex(network), RouteDistances(network))


def _drive(network: RoadNetwork, segment_index: int, speed: float, seconds: int) -> list[Fix]:
    seg = network.segments[segment_index]
    fixes = []
    for i in range(seconds):
        x, y, bearing = seg.point_at(min(i * speed, seg.length_m - 0.1))
        fixes.append(Fix(T0 + timedelta(seconds=i), x, y, speed, bearing))
    return fixes


def test_noisy_simulated_gps_is_matched_to_the_true_segment(network: RoadNetwork):
    report = evaluate(network, vehicles=8, duration_s=120, seed=5, start=T0, gps_noise_m=5.0)
    assert report.fixes > 800 and report.matched == report.fixes
    assert report.accuracy >= 0.93
    assert report.late_fixes > 0 and report.late_correct >= 0.8 * report.late_fixes


def test_the_direction_of_a_two_way_road_comes_from_heading_and_motion(network: RoadNetwork):
    by_ends = {(s.key[0], s.key[1]): s for s in network.segments}
    forward = next(s for s in network.segments if (s.key[1], s.key[0]) in by_ends and s.length_m > 80)
    backward = by_ends[(forward.key[1], forward.key[0])]
    for seg in (forward, backward):
        matcher = _matcher(network)
        matches = [m for f in _drive(network, seg.index, 8.0, 10) for m in matcher.push(f)] + matcher.flush()
        assert len(matches) == 10 and {m.segment.segment_id for m in matches} == {seg.segment_id}


def test_a_late_fix_is_matched_on_its_own_and_flagged(network: RoadNetwork):
    seg = max(network.segments, key=lambda s: s.length_m)
    matcher = _matcher(network)
    fixes = _drive(network, seg.index, 8.0, 6)
    committed = [m for f in fixes[:3] + fixes[4:] for m in matcher.push(f)]
    (late,) = matcher.push(fixes[3])
    assert not late.in_order and late.segment.segment_id == seg.segment_id
    assert all(m.in_order for m in committed)


def test_kinematics_give_speed_from_positions_and_flag_hard_braking(network: RoadNetwork):
    seg = max(network.segments, key=lambda s: s.length_m)
    routes = RouteDistances(network)
    tracker = VehicleKinematics(routes)
    matcher = _matcher(network)
    # No receiver speed: 10 m per second along the segment, then a stop from 10 m/s to 2 m/s in one second.
    plain = [Fix(f.ts, f.x, f.y, None, None) for f in _drive(network, seg.index, 10.0, 5)]
    ks = [tracker.update(m) for f in plain for m in matcher.push(f)] + [tracker.update(m) for m in matcher.flush()]
    assert [round(k.speed_mps, 1) for k in ks[1:]] == [10.0] * 4
    assert ks[2].accel_mps2 == pytest.approx(0.0, abs=0.05) and not any(k.hard_braking for k in ks)
    x, y, bearing = seg.point_at(42.0)
    stop = tracker.update(matcher.match_alone(Fix(plain[-1].ts + timedelta(seconds=1), x, y, 2.0, bearing)))
    assert stop.accel_mps2 == pytest.approx(-8.0, abs=0.1) and stop.hard_braking


def _distance_to_polyline(xy: np.ndarray, x: float, y: float) -> float:
    a, b = xy[:-1], xy[1:]
    ab = b - a
    t = np.clip(((np.array([x, y]) - a) * ab).sum(1) / np.maximum((ab**2).sum(1), 1e-12), 0.0, 1.0)
    return float(np.hypot(*(a + t[:, None] * ab - [x, y]).T).min())


def test_the_segment_index_finds_every_segment_within_the_radius_at_its_true_distance(network: RoadNetwork):
    index = SegmentIndex(network)
    rng = random.Random(3)
    for _ in range(1000):
        seg = rng.choice(network.segments)
        x, y, _ = seg.point_at(rng.uniform(0, seg.length_m))
        x, y = x + rng.uniform(-40, 40), y + rng.uniform(-40, 40)
        found = {c.segment: c.distance_m for c in index.candidates(x, y, 25.0, limit=len(network.segments))}
        truth = [_distance_to_polyline(s.xy, x, y) for s in network.segments]
        assert all(d <= 25.0 and d == pytest.approx(truth[i], abs=1e-6) for i, d in found.items())
        assert all(i in found for i, d in enumerate(truth) if d < 25.0 - 1e-6)
