"""The simulated world is physically consistent with its own ground truth (synthetic data)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import datetime, timezone

import networkx as nx
import pytest

from roads.network import RoadNetwork, load_network
from sim.camera import Camera
from sim.fleet import BRAKE_MPS2, GpsConfig
from sim.local_scene import TRAFFIC_LIGHT_TRACKS
from sim.publish import in_delivery_order
from sim.truth import FrameTruth, GpsTruth
from sim.world import FrameEmission, GpsEmission, World, WorldConfig

NOISE_M = 5.0
START = datetime(2026, 11, 2, 6, 0, tzinfo=timezone.utc)  # Monday 08:00 in Helsinki


@pytest.fixture(scope="module")
def network() -> RoadNetwork:
    return load_network()


@pytest.fixture(scope="module")
def run(network: RoadNetwork) -> tuple[World, list[FrameEmission], list[GpsEmission]]:
    """Ten simulated minutes of 16 vehicles with frequent incidents (no rendering)."""
    config = WorldConfig(vehicles=16, incidents_per_vehicle_hour=120.0, gps=GpsConfig(noise_m=NOISE_M))
    world = World(network, config, seed=3, start=START)
    frames: list[FrameEmission] = []
    fixes: list[GpsEmission] = []
    for e in world.run(600):
        (frames if isinstance(e, FrameEmission) else fixes).append(e)  # type: ignore[arg-type]
    return world, frames, fixes


def _t(world: World, when: datetime) -> float:
    return (when - world.start).total_seconds()


def test_the_bundled_helsinki_network_is_a_strongly_connected_directed_graph(network: RoadNetwork):
    assert len(network.segments) > 300
    graph = nx.DiGraph((s.index, j) for s in network.segments for j in s.successors)
    assert nx.is_strongly_connected(graph)
    pairs = {(s.segment_id.split("-")[0], s.segment_id.split("-")[1]) for s in network.segments}
    assert sum((v, u) in pairs for u, v in pairs) > 100, "two-way roads appear once per direction"
    for s in network.segments:
        assert s.lanes >= 1 and s.speed_limit_kmh > 0 and s.out_degree >= 1
        x, y, _ = s.point_at(s.length_m)
        assert math.hypot(x - s.xy[-1][0], y - s.xy[-1][1]) < 1e-6


def test_gps_points_lie_within_the_noise_of_the_true_segment(run, network: RoadNetwork):
    world, _, fixes = run
    proj = network.projection
    errors = []
    for e in fixes:
        g: GpsTruth = e.truth
        seg = network.by_id(g.segment_id)
        tx, ty = proj.to_xy(g.true_lat, g.true_lon)
        assert seg.distance_to(tx, ty) < 0.5, "the true position is on the segment"
        x, y = proj.to_xy(g.lat, g.lon)
        assert seg.distance_to(x, y) < 5 * NOISE_M
        errors.append(math.hypot(x - tx, y - ty))
    # Radial error of 2-D Gaussian noise with sigma per axis has mean sigma * sqrt(pi / 2).
    assert statistics.fmean(errors) == pytest.approx(NOISE_M * math.sqrt(math.pi / 2), rel=0.1)
    assert len(fixes) > 0.9 * 16 * 600 * (1 - 0.02 - 0.05), "dropouts stay occasional"


def test_gps_fixes_drop_in_tunnels_and_some_arrive_late_and_out_of_order(run, network: RoadNetwork):
    _, _, fixes = run
    assert not any(network.by_id(e.truth.segment_id).tunnel for e in fixes)
    late = [e for e in fixes if e.delivered_t - e.t >= 5]
    assert 0.01 < len(late) / len(fixes) < 0.06
    delivered = [e.delivered_t for e in in_delivery_order(iter(sorted(fixes, key=lambda e: e.t)))]
    assert delivered == sorted(delivered)
    per_vehicle = defaultdict(list)
    for e in sorted(fixes, key=lambda e: e.delivered_t):
        per_vehicle[e.truth.vehicle_id].append(e.t)
    assert any(ts != sorted(ts) for ts in per_vehicle.values()), "a late fix arrives after newer ones"


def test_vehicles_never_drive_faster_than_their_segment_allows(run, network: RoadNetwork):
    world, frames, _ = run
    factor = {v.vehicle_id: v.speed_factor for v in world.vehicles}
    braking = 0
    for e in frames:
        ego = e.truth.ego
        seg = network.by_id(ego.segment_id)
        t = _t(world, e.truth.captured_at)
        # A driver reacts within one simulation step to a segment that has just slowed down.
        allowed = max(world.traffic.state(seg, s, ego.offset_m).speed_mps for s in (t, t - world.config.dt))
        allowed *= factor[e.truth.vehicle_id]
        if ego.accel_mps2 <= -BRAKE_MPS2 + 1e-9:
            braking += 1  # still shedding speed after the segment slowed down
            continue
        assert 0 <= ego.speed_mps <= allowed + 0.75, (e.truth.frame_id, ego, allowed)
    assert braking < 0.1 * len(frames)


def test_object_boxes_lie_inside_the_image_and_contain_the_projected_object(run):
    world, frames, _ = run
    cameras = {v.vehicle_id: v.camera for v in world.vehicles}
    for e in frames:
        f: FrameTruth = e.truth
        cam: Camera = cameras[f.vehicle_id]
        for o in f.objects:
            u1, v1, u2, v2 = o.box
            assert 0 <= u1 < u2 <= cam.width and 0 <= v1 < v2 <= cam.height
            assert o.x_m > 0
            u, v, depth = cam.project([o.x_m], [o.y_m], [0.0])
            if 0 <= u[0] < cam.width and 0 <= v[0] < cam.height:
                assert u1 - 1 <= u[0] <= u2 + 1 and v1 - 1 <= v[0] <= v2 + 1, "the ground point is in the box"


def test_the_anomaly_event_list_matches_the_frames_labelled_anomalous(run):
    world, frames, _ = run
    events = world.events
    incidents = {i.incident_id: i for i in world.incidents()}
    anomalous = [e.truth for e in frames if e.truth.anomaly]
    assert {f.anomaly for f in anomalous} == {
        "collision",
        "stopped_vehicle",
        "pedestrian_in_lane",
        "wrong_way",
        "obstacle",
    }
    for f in anomalous:
        matching = [
            ev for ev in events
            if ev.vehicle_id == f.vehicle_id and ev.incident_id == f.incident_id and ev.start <= f.captured_at <= ev.end
        ]  # fmt: skip
        assert len(matching) == 1 and matching[0].type == f.anomaly
    for ev in events:
        inc = incidents[ev.incident_id]
        assert inc.start <= ev.start <= ev.end <= inc.end and ev.type == inc.type
        inside = [
            e.truth for e in frames if e.truth.vehicle_id == ev.vehicle_id and ev.start <= e.truth.captured_at <= ev.end
        ]
        assert all(f.incident_id == ev.incident_id for f in inside)
    seen = [
        ev for ev in events if any(f.incident_id == ev.incident_id and f.vehicle_id == ev.vehicle_id for f in anomalous)
    ]
    assert len(seen) > 0.6 * len(events), "most events last long enough to be filmed"


def test_anomalous_frames_show_their_anomaly_and_relations_refer_to_objects_in_the_frame(run):
    _, frames, _ = run
    for e in frames:
        f = e.truth
        tracks = {o.track_id: o for o in f.objects}
        assert all(s in tracks and o in tracks and s != o for s, _, o in f.relations)
        classes = [o.cls for o in f.objects]
        if f.anomaly == "collision":
            assert any(p == "collides with" for _, p, _ in f.relations)
        if f.anomaly == "obstacle":
            assert "obstacle" in classes
        if f.anomaly == "wrong_way":
            assert any(o.cls == "car" and abs(o.heading_deg - 180) < 1 and o.state == "head" for o in f.objects)
        if f.anomaly is None:
            assert not any(p == "collides with" for _, p, _ in f.relations)


def test_tracked_objects_keep_their_id_and_move_consistently_between_frames(run):
    _, frames, _ = run
    by_vehicle = defaultdict(list)
    for e in frames:
        by_vehicle[e.truth.vehicle_id].append(e.truth)
    checked = 0
    for seq in by_vehicle.values():
        for a, b in zip(seq, seq[1:], strict=False):
            before = {o.track_id: o for o in a.objects if o.speed_mps == 0 and o.cls == "car"}
            for o in b.objects:
                if o.track_id in before and o.track_id < TRAFFIC_LIGHT_TRACKS:
                    # A parked car comes closer by the distance the camera travelled.
                    travelled = b.ego.odometer_m - a.ego.odometer_m
                    assert before[o.track_id].x_m - o.x_m == pytest.approx(travelled, abs=1e-6)
                    checked += 1
    assert checked > 100


def test_road_conditions_agree_with_the_fleet_and_the_incidents(run, network: RoadNetwork):
    world, _, fixes = run
    rows = world.road_conditions()
    assert len(rows) == len(network.segments) * (10 + 2)  # ten 60 s windows and two 300 s windows
    busy = [r for r in rows if r.vehicle_count > 0]
    assert busy and all(r.median_speed_mps is not None and r.trajectory_count >= r.vehicle_count for r in busy)
    incidents = world.incidents()
    for r in rows:
        end = r.window_start.timestamp() + r.window_seconds
        expected = sum(
            1
            for i in incidents
            if i.segment_id == r.segment_id
            and i.start.timestamp() < end
            and i.end.timestamp() > r.window_start.timestamp()
        )
        assert r.incidents >= expected
    # The median of true GPS speeds on a segment agrees with the window's median speed.
    row = max((r for r in rows if r.window_seconds == 300), key=lambda r: r.vehicle_count)
    t0, t1 = row.window_start, row.window_start.timestamp() + 300
    speeds = [
        f.truth.true_speed_mps
        for f in fixes
        if f.truth.segment_id == row.segment_id and t0 <= f.truth.ts and f.truth.ts.timestamp() < t1
    ]
    assert statistics.median(speeds) == pytest.approx(row.median_speed_mps, rel=0.1, abs=0.3)


def test_another_osm_extract_can_be_driven_and_a_missing_file_says_so(tmp_path):
    import pyrosm

    other = load_network(pyrosm.get_data("test_pbf"))  # bundled with pyrosm: another area, with a motorway
    assert {s.scene_type for s in other.segments} >= {"highway", "residential"}
    world = World(other, WorldConfig(vehicles=3), seed=1, start=START)
    frames = [e for e in world.run(10) if isinstance(e, FrameEmission)]
    assert len(frames) == 15 and all(other.by_id(f.truth.ego.segment_id) for f in frames)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_network(tmp_path / "nowhere.osm.pbf")
