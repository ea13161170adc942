"""The alert rules replayed on recorded pipeline scenes, and the choice of object conditions on a
tuning world: given scenes and the simulator's truth, the tracker's alerts are scored, and a condition
that finds nothing is left out rather than tuned into false alerts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

from alerts.rules import load_rules
from evaluation.alert_rules import replay_scenes, tune_object_conditions
from records.messages import AnomalyResult, Scene, SceneObject
from roads.network import load_network
from sim.truth import AnomalyEvent, FrameTruth
from sim.world import FrameEmission, World, WorldConfig

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)
RULES = """
rules:
  - type: obstacle
    any: [{object: {label: obstacle, min_score: 0.9, ahead_m: 10, lateral_m: 1.0}}]
    persistence: {k: 2, n: 4, within_s: 15}
    severity: {critical: 0.9, major: 0.75}
  - type: pedestrian_in_lane
    any:
      - anomaly: {type: pedestrian_in_lane, min_score: 0.99}
      - object: {label: pedestrian, min_score: 0.5, ahead_m: 35, lateral_m: 2.5}
    persistence: {k: 2, n: 3, within_s: 10}
    severity: {critical: 0.9, major: 0.75}
"""


@cache
def a_frame_truth() -> FrameTruth:
    """A real simulator frame's truth, to copy with other ids, times and incidents."""
    sim = World(load_network(), WorldConfig(vehicles=1), seed=3, start=T0)
    return next(e.truth for e in sim.run(4) if isinstance(e, FrameEmission))


def frame(n: int, incident: bool, objects: list[SceneObject], kind: str = "obstacle") -> tuple[Scene, FrameTruth]:
    at = T0 + timedelta(seconds=2 * n)
    scene = Scene(
        frame_id=f"v1-f{n}",
        vehicle_id="v1",
        captured_at=at,
        gps=None,
        cell_id=None,
        aspects={},
        anomaly=AnomalyResult(score=0.1, type="collision", relation_scores={}),
        objects=objects,
        triplets=[],
        ingested_at=at,
        inferred_at=at,
    )
    truth = a_frame_truth().model_copy(
        update={
            "frame_id": scene.frame_id,
            "vehicle_id": "v1",
            "captured_at": at,
            "anomaly": kind if incident else None,
            "incident_id": "inc-1" if incident else None,
        }
    )
    return scene, truth


def world() -> tuple[list[Scene], dict[str, FrameTruth], list[AnomalyEvent]]:
    """An obstacle 14 m ahead, 1.5 m to the left, seen in frames 5-9 (detected at 0.7); pedestrians on
    the pavement in every frame."""
    pavement = SceneObject(box=(0.0, 0.5, 0.1, 0.7), label="pedestrian", score=0.9, x_m=12.0, y_m=4.0)
    obstacle = SceneObject(box=(0.4, 0.5, 0.6, 0.7), label="obstacle", score=0.7, x_m=14.0, y_m=1.5)
    made = [frame(n, 5 <= n <= 9, [pavement, *([obstacle] if 5 <= n <= 9 else [])]) for n in range(20)]
    return [s for s, _ in made], {t.frame_id: t for _, t in made}, [incident("obstacle")]


def incident(kind: str) -> AnomalyEvent:
    """The incident of frames 5-9."""
    return AnomalyEvent(
        event_id="e1",
        incident_id="inc-1",
        vehicle_id="v1",
        type=kind,
        start=T0 + timedelta(seconds=10),
        end=T0 + timedelta(seconds=18),
        lat=60.17,
        lon=24.94,
        segment_id="s",
    )


def test_an_object_condition_too_strict_for_the_detections_finds_nothing_and_tuning_finds_it(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    rules = load_rules(path)
    scenes, frames, events = world()

    before = replay_scenes(scenes, frames, events, rules, cooldown_s=60)
    assert before.by_type["obstacle"].incidents == 1 and before.by_type["obstacle"].detected == 0

    tuned, f1 = tune_object_conditions(scenes, frames, events, rules, cooldown_s=60)
    after = replay_scenes(scenes, frames, events, tuned, cooldown_s=60)
    assert f1["obstacle"] == 1.0
    assert after.by_type["obstacle"].detected == 1 and after.by_type["obstacle"].precision == 1.0
    obstacle = next(r for r in tuned.rules if r.type == "obstacle").any[0].object
    assert obstacle is not None and obstacle.min_score <= 0.7 and obstacle.ahead_m >= 14 and obstacle.lateral_m >= 1.5

    # No setting finds a pedestrian in our path (they are all on the pavement): the condition is left out.
    assert f1["pedestrian_in_lane"] == 0
    pedestrian = next(r for r in tuned.rules if r.type == "pedestrian_in_lane")
    assert [c.object for c in pedestrian.any] == [None]
    assert after.by_type["pedestrian_in_lane"].alerts == 0


def test_tuning_a_facing_condition_picks_a_facing_that_leaves_out_the_car_we_follow(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text("""
rules:
  - type: wrong_way
    any: [{object: {label: car, min_score: 0.5, ahead_m: 35, lateral_m: 2.5, min_facing: 0.5}}]
    persistence: {k: 2, n: 3, within_s: 10}
    severity: {critical: 0.9, major: 0.75}
""")
    rules = load_rules(path)
    # The car we follow, 10 m ahead in our lane, in every frame: the head is unsure of its facing (0.6).
    # Frames 5-9: a car coming at us in our lane, facing us at 0.93.
    followed = SceneObject(box=(0.45, 0.5, 0.55, 0.6), label="car", score=0.9, x_m=10.0, y_m=0.2, facing=0.6)
    oncoming = SceneObject(box=(0.4, 0.45, 0.5, 0.55), label="car", score=0.8, x_m=25.0, y_m=-0.5, facing=0.93)
    made = [frame(n, 5 <= n <= 9, [followed, *([oncoming] if 5 <= n <= 9 else [])], "wrong_way") for n in range(20)]
    scenes, frames, events = [s for s, _ in made], {t.frame_id: t for _, t in made}, [incident("wrong_way")]

    before = replay_scenes(scenes, frames, events, rules, cooldown_s=60)
    assert (before.by_type["wrong_way"].precision or 0) < 1  # the followed car raises alerts of its own

    tuned, f1 = tune_object_conditions(scenes, frames, events, rules, cooldown_s=60)
    after = replay_scenes(scenes, frames, events, tuned, cooldown_s=60)
    assert f1["wrong_way"] == 1.0
    assert after.by_type["wrong_way"].detected == 1 and after.by_type["wrong_way"].precision == 1.0
    condition = next(r for r in tuned.rules if r.type == "wrong_way").any[0].object
    assert condition is not None and condition.min_facing is not None and 0.6 < condition.min_facing <= 0.93
