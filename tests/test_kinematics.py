"""Kinematics from the calibrated camera and GPS: ground-plane geometry, tracking, answers, and scene-graph recall."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from evaluation.scene_graph import ranked_triplets, recalled
from fusion.events import KinematicWatch
from kinematics.ground import ground_points, object_positions
from kinematics.questions import answers
from kinematics.tracking import VehicleTracker, direction_label, facing_corrected
from records.messages import AnomalyResult, AttachedFix, Scene, SceneObject, Triplet
from sim.camera import Camera
from training.scene_graph_training import GraphTruth

CAMERA = Camera(width=224, height=224, fx=160.0, fy=160.0, cx=112.0, cy=112.0, mounting_height_m=1.5, pitch_deg=3.0)
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


def test_ground_points_invert_the_camera_projection() -> None:
    x, y = np.array([5.0, 12.0, 30.0, 60.0]), np.array([0.0, 2.5, -3.0, 6.0])
    u, v, _ = CAMERA.project(x, y, np.zeros_like(x))
    np.testing.assert_allclose(ground_points(CAMERA.calibration(), u, v), np.stack([x, y], -1), rtol=1e-9)
    above_horizon = ground_points(CAMERA.calibration(), np.array([112.0]), np.array([CAMERA.horizon_v - 1]))
    assert np.isnan(above_horizon).all()


def _boxes(objects: list[tuple[float, float, float]]) -> np.ndarray:
    """Normalised boxes of cars at (x, y, heading) in the ego frame."""
    boxes = [CAMERA.box(x, y, heading, 4.5, 1.8, 1.5) for x, y, heading in objects]
    assert all(b is not None for b in boxes)
    return np.array(boxes) / 224


def test_tracker_recovers_speeds_and_directions_of_cars_around_a_moving_ego_vehicle() -> None:
    # Ego heads north at 15 m/s. Ahead in our lane a car at 10 m/s; oncoming in the next lane one at
    # 12 m/s; a parked car on the right. Frames 2 s apart, as the fleet's dashcams send them.
    ego_speed, dt = 15.0, 2.0
    tracker = VehicleTracker()
    tracked = []
    for k in range(3):
        t = k * dt
        ahead = (25.0 + (10.0 - ego_speed) * t, 0.0, 0.0)
        oncoming = (120.0 - (12.0 + ego_speed) * t, 3.5, math.pi)
        parked = (70.0 - ego_speed * t, -3.0, 0.0)
        positions = object_positions(CAMERA.calibration(), _boxes([ahead, oncoming, parked]), ["car"] * 3)
        tracked = tracker.update(T0 + timedelta(seconds=t), positions, ["car"] * 3, 15.0, 0.0)
    assert [t.track_id for t in tracked] == [1, 2, 3]  # the same three tracks from the first frame on
    ahead, oncoming, parked = tracked
    assert ahead.speed_mps == pytest.approx(10.0, abs=0.5)
    assert oncoming.speed_mps == pytest.approx(12.0, abs=0.5)
    assert parked.speed_mps == pytest.approx(0.0, abs=0.5)
    assert direction_label(ahead.direction_deg, ahead.speed_mps) == "the same way as us"
    assert direction_label(oncoming.direction_deg, oncoming.speed_mps) == "towards us"
    assert direction_label(parked.direction_deg, parked.speed_mps) == "stationary"
    assert oncoming.closing_mps == pytest.approx(27.0, abs=1.5)
    assert ahead.distance_m == pytest.approx(5.0, abs=0.3)  # its centre, not its rear 2.25 m nearer
    assert tracker.travelled_m == pytest.approx(2 * dt * ego_speed)

    said = answers(tracked, tracker.travelled_m, 2 * dt)
    assert said["travelled distance"][0] == "We travelled 60 m in 4 s."
    assert said["speed"][0] == "The car (track 1) moves at 36 km/h."
    assert said["distance comparison"] == ["The car (track 1) is closer: 5 m, against 10 m for the car (track 3)."]
    assert said["relative direction"] == ["The car (track 3) is standing still."]
    later = answers([ahead, oncoming], tracker.travelled_m, 2 * dt)
    assert later["relative direction"] == ["The car (track 1) and the car (track 2) move opposite ways."]


def test_a_vehicle_moving_along_the_road_against_its_facing_is_turned_round_and_nothing_else() -> None:
    assert facing_corrected(10.0, facing=0.9) == pytest.approx(-170.0)  # "same way", but it faces us
    assert facing_corrected(-170.0, facing=0.1) == pytest.approx(10.0)  # "towards us", but it shows its back
    assert facing_corrected(10.0, facing=0.1) == 10.0  # agrees
    assert facing_corrected(175.0, facing=0.95) == 175.0
    assert facing_corrected(90.0, facing=0.9) == 90.0  # crossing: facing says nothing about it


def test_the_tracker_takes_a_car_s_facing_over_a_track_that_moves_it_backwards() -> None:
    # An oncoming car seen at the same place relative to us for three frames, as a wrong association
    # can make it look: its track moves our way at our speed. Only its facing says otherwise.
    for facing in ([None], [0.95]):
        tracked = []
        tracker = VehicleTracker()
        for k in range(3):
            positions = object_positions(CAMERA.calibration(), _boxes([(30.0, 3.5, math.pi)]), ["car"])
            tracked = tracker.update(T0 + timedelta(seconds=2 * k), positions, ["car"], 15.0, 0.0, facing)
        (car,) = tracked
        expected = "the same way as us" if facing == [None] else "towards us"
        assert direction_label(car.direction_deg, car.speed_mps) == expected
    with pytest.raises(ValueError, match="2 facings but 1 labels"):
        tracker.update(T0 + timedelta(seconds=9), positions, ["car"], 15.0, 0.0, [0.5, 0.5])


def test_recall_counts_a_triplet_only_with_both_boxes_classes_and_predicate_right() -> None:
    truth = GraphTruth(
        boxes=np.array([[0.1, 0.5, 0.2, 0.6], [0.5, 0.5, 0.6, 0.6], [0.7, 0.5, 0.8, 0.6]], dtype=np.float32),
        classes=np.array([0, 0, 4]),
        relations=np.array([[0, 0, 1], [2, 2, 1]]),  # car in front of car; pedestrian right of car
    )
    boxes, classes = truth.boxes.copy(), truth.classes.copy()
    probs = np.zeros((3, 3, 7))
    probs[0, 1, 0] = 0.9  # right
    probs[2, 1, 1] = 0.8  # wrong predicate (left of)
    probs[2, 1, 2] = 0.7  # right, but second best for its pair
    scores = np.ones(3)
    with_constraint = ranked_triplets(scores, probs, constraint=True, k=10)
    without = ranked_triplets(scores, probs, constraint=False, k=10)
    assert recalled(with_constraint, boxes, classes, truth, truth.relations).tolist() == [True, False]
    assert recalled(without, boxes, classes, truth, truth.relations).tolist() == [True, True]
    assert recalled(without[:1], boxes, classes, truth, truth.relations).tolist() == [True, False]
    shifted = boxes + np.array([0.06, 0, 0.06, 0], dtype=np.float32)  # IoU 0.25 with the truth
    assert not recalled(without, shifted, classes, truth, truth.relations).any()
    wrong_class = np.array([0, 1, 4])
    assert not recalled(without, boxes, wrong_class, truth, truth.relations).any()


def _scene(t: float, speed: float, objects: list[tuple[float, float]]) -> Scene:
    return Scene(
        frame_id=f"f{t:g}",
        vehicle_id="v1",
        captured_at=T0 + timedelta(seconds=t),
        gps=AttachedFix(
            ts=T0 + timedelta(seconds=t), lat=60.17, lon=24.94, speed_mps=speed, heading_deg=0.0, offset_s=0
        ),
        cell_id=None,
        aspects={},
        anomaly=AnomalyResult(score=0.0, type="collision", relation_scores={}),
        objects=[SceneObject(box=(0, 0, 0.1, 0.1), label="car", score=0.9, x_m=x, y_m=y) for x, y in objects],
        triplets=[],
        ingested_at=T0,
        inferred_at=T0,
    )


def test_kinematic_events_name_hard_braking_a_wrong_way_car_and_closing_fast_on_a_stopped_one() -> None:
    watch = KinematicWatch()
    # At 15 m/s: a car 110 m ahead in our lane coming towards us at 10 m/s; a parked car on the right.
    first = watch.observe(_scene(0, 15.0, [(110.0, 0.0), (70.0, -3.0)]))
    assert first is not None and first.events == [] and [m.speed_mps for m in first.objects] == [None, None]
    # Seen twice, the tracks have a velocity but are not confirmed: no speed, no direction, no wrong way yet.
    second = watch.observe(_scene(2, 15.0, [(110.0 - 25 * 2, 0.2), (70.0 - 30, -3.0)]))
    assert second is not None and [m.speed_mps for m in second.objects] == [None, None]
    assert not [e for e in second.events if e.type == "wrong_way"]
    third = watch.observe(_scene(4, 15.0, [(110.0 - 25 * 4, 0.1), (70.0 - 60, -3.0)]))
    assert third is not None
    (wrong_way,) = [e for e in third.events if e.type == "wrong_way"]
    assert wrong_way.track_id == 1 and wrong_way.score == pytest.approx(1.0)
    (closing,) = [e for e in third.events if e.type == "closing_fast"]
    assert closing.track_id == 1  # 10 m ahead closing at 25 m/s
    assert not [e for e in third.events if e.track_id == 2]  # the parked car is not in our path
    # Then we brake from 15 to 3 m/s in 2 s (6 m/s²) towards a stopped car 20 m ahead.
    fourth = watch.observe(_scene(6, 3.0, [(20.0, 0.0)]))
    assert fourth is not None
    (braking,) = [e for e in fourth.events if e.type == "hard_braking"]
    assert braking.track_id is None and braking.score == pytest.approx(6.0 / 8.0)
    # A frame older than the newest is late: it is not tracked.
    assert watch.observe(_scene(5, 15.0, [(30.0, 0.0)])) is None


def test_a_triplet_between_the_same_two_tracks_is_one_linked_triplet_with_a_start_and_an_end() -> None:
    watch = KinematicWatch()
    objects = [(20.0, 0.0), (30.0, 0.0)]
    for t in (0, 2, 4):
        scene = _scene(t, 10.0, objects)  # both keep their place ahead of us
        following = Triplet(subject=0, predicate="following", object=1, score=0.9)
        kinematics = watch.observe(scene.model_copy(update={"triplets": [following]}))
        assert kinematics is not None
    (triplet,) = kinematics.triplets
    assert (triplet.subject_track, triplet.predicate, triplet.object_track) == (1, "following", 2)
    assert (triplet.start, triplet.end) == (T0, T0 + timedelta(seconds=4))
