"""Specifications of the YAML alert rules and incident tracking, without services."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alerts.rules import DEFAULT_RULES, KINEMATIC_EVENTS, load_rules
from core.errors import ConfigError
from fusion.incidents import IncidentTracker, alert_id
from models.vocab import ANOMALY_PROMPTS, ANOMALY_TYPES
from records.messages import AnomalyResult, AspectResult, KinematicEvent, Scene, SceneObject, Triplet

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)

RULES = """
rules:
  - type: collision
    any:
      - anomaly: {type: collision, min_score: 0.6}
      - triplet: {predicate: collides with, min_score: 0.5}
    persistence: {k: 2, n: 3, within_s: 10}
    severity: {critical: 0.9, major: 0.75}
"""


def rules_file(tmp_path: Path, text: str = RULES) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def scene(seconds: float, score: float = 0.0, kind: str = "collision", collides: float = 0.0, vehicle="v1") -> Scene:
    return Scene(
        frame_id=f"{vehicle}-f{seconds:g}",
        vehicle_id=vehicle,
        captured_at=T0 + timedelta(seconds=seconds),
        gps=None,
        cell_id=None,
        aspects={"congestion": AspectResult(label="free flow", probs={"free flow": 1.0})},
        anomaly=AnomalyResult(score=score, type=kind, relation_scores={t: 0.0 for t in ANOMALY_TYPES}),
        objects=[SceneObject(box=(0, 0, 0.5, 0.5), label="car", score=0.9)] * 2,
        triplets=[Triplet(subject=0, predicate="collides with", object=1, score=collides)] if collides else [],
        ingested_at=T0,
        inferred_at=T0,
    )


def test_the_shipped_rules_load_and_cover_every_anomaly_type_and_kinematic_event():
    rules = load_rules(DEFAULT_RULES)
    assert {r.type for r in rules.rules} >= set(ANOMALY_TYPES)
    events = {c.kinematic.event for r in rules.rules for c in r.any if c.kinematic is not None}
    assert events == set(KINEMATIC_EVENTS)


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        (RULES.replace("type: collision\n", "type: collision\n    colour: red\n"), "colour"),
        (RULES.replace("anomaly: {type: collision", "anomaly: {type: crash"), "crash"),
        (RULES.replace("triplet: {predicate: collides with", "kinematic: {event: skidding"), "skidding"),
        (RULES.replace("k: 2, n: 3", "k: 4, n: 3"), "k (4) cannot exceed n (3)"),
        (RULES.replace("critical: 0.9, major: 0.75", "critical: 0.7, major: 0.75"), "must not exceed critical"),
        (RULES + RULES.replace("rules:\n", ""), "repeated: collision"),
        (RULES.replace("min_score: 0.6}", "min_score: 0.6, min_share: 0.5}"), "min_share needs grouped_with"),
        (RULES.replace("min_score: 0.6}", "min_score: 0.6, grouped_with: [collision]}"), "repeats the condition's own"),
        ("rules: [", "not valid YAML"),
        (RULES.replace("triplet: {predicate: collides with", "object: {label: debris"), "debris"),
    ],
)
def test_a_mistake_in_the_rules_file_fails_with_a_message_saying_what(tmp_path, mistake, message):
    with pytest.raises(ConfigError, match="FLEETSCOPE_WORKER__ALERT_RULES") as err:
        load_rules(rules_file(tmp_path, mistake))
    assert message in str(err.value)


GROUPED_RULES = """
rules:
  - type: collision
    any: [{anomaly: {type: collision, grouped_with: [stopped_vehicle], min_score: 0.5, min_share: 0.35}}]
    severity: {critical: 0.9, major: 0.75}
  - type: stopped_vehicle
    any: [{anomaly: {type: stopped_vehicle, grouped_with: [collision], min_score: 0.5, min_share: 0.65}}]
    severity: {critical: 0.9, major: 0.75}
"""


def test_grouped_look_alike_relations_add_up_and_the_type_goes_by_its_share(tmp_path):
    rules = load_rules(rules_file(tmp_path, GROUPED_RULES))
    collision, stopped = (next(r for r in rules.rules if r.type == t) for t in ("collision", "stopped_vehicle"))

    def frame(collides: float, standing: float) -> Scene:
        relations = {ANOMALY_PROMPTS["collision"]: collides, ANOMALY_PROMPTS["stopped_vehicle"]: standing}
        # The most probable anomalous relation is neither: only the group's sum and split count.
        relations[ANOMALY_PROMPTS["obstacle"]] = 0.9
        return scene(0).model_copy(
            update={"anomaly": AnomalyResult(score=1.0, type="obstacle", relation_scores=relations)}
        )

    crash = frame(collides=0.3, standing=0.4)  # together 0.7, collision's share 0.43
    assert collision.score(crash) == pytest.approx(0.7) and stopped.score(crash) is None
    standstill = frame(collides=0.1, standing=0.6)  # together 0.7, collision's share 0.14
    assert stopped.score(standstill) == pytest.approx(0.7) and collision.score(standstill) is None
    faint = frame(collides=0.2, standing=0.2)  # together 0.4: below both rules' min_score
    assert collision.score(faint) is None and stopped.score(faint) is None
    # Scored each against the normal prompts alone, both look-alikes can be near 1: the group stays a probability.
    both = frame(collides=0.9, standing=0.8)
    assert collision.score(both) == 1.0 and stopped.score(both) is None  # collision's share 0.53


def test_a_missing_rules_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="cannot read .*nope.yaml"):
        load_rules(tmp_path / "nope.yaml")


def test_one_matching_frame_is_not_enough_but_two_of_three_are(tmp_path):
    tracker = IncidentTracker(load_rules(rules_file(tmp_path)), cooldown_s=60)
    assert tracker.observe(scene(0, score=0.8)) == []
    assert tracker.observe(scene(1, score=0.1)) == []  # below min_score: no match
    (alert,) = tracker.observe(scene(2, score=0.7))
    assert alert.type == "collision" and alert.score == pytest.approx(0.8)
    assert alert.evidence["frame_ids"] == ["v1-f0", "v1-f2"]
    assert (alert.window_start, alert.window_end) == (T0, T0 + timedelta(seconds=2))
    assert alert.alert_id == alert_id("v1", "collision", T0)


def test_matches_too_far_apart_do_not_persist(tmp_path):
    tracker = IncidentTracker(load_rules(rules_file(tmp_path)), cooldown_s=60)
    assert tracker.observe(scene(0, score=0.8)) == []
    assert tracker.observe(scene(11, score=0.8)) == []  # within_s is 10


def test_a_triplet_condition_counts_and_severity_is_graded_on_the_best_score(tmp_path):
    tracker = IncidentTracker(load_rules(rules_file(tmp_path)), cooldown_s=60)
    tracker.observe(scene(0, collides=0.95))
    (alert,) = tracker.observe(scene(1, score=0.7))
    assert alert.severity == "critical" and alert.score == pytest.approx(0.95)
    assert alert.evidence["triplets"] == []  # of the newest frame, which had none
    tracker = IncidentTracker(load_rules(rules_file(tmp_path)), cooldown_s=60)
    tracker.observe(scene(0, score=0.7))
    assert tracker.observe(scene(1, score=0.8))[0].severity == "major"


def test_one_incident_is_one_alert_updated_until_a_cooldown_passes(tmp_path):
    tracker = IncidentTracker(load_rules(rules_file(tmp_path)), cooldown_s=30)
    fired = [a for t in range(0, 20) for a in tracker.observe(scene(t, score=0.8))]
    assert len(fired) == 19 and len({a.alert_id for a in fired}) == 1
    assert fired[-1].window_end == T0 + timedelta(seconds=19)
    later = [a for t in range(60, 62) for a in tracker.observe(scene(t, score=0.8))]
    assert len(later) == 1 and later[0].alert_id != fired[0].alert_id


def test_vehicles_are_tracked_apart(tmp_path):
    tracker = IncidentTracker(load_rules(rules_file(tmp_path)), cooldown_s=30)
    assert tracker.observe(scene(0, score=0.8, vehicle="a")) == []
    assert tracker.observe(scene(1, score=0.8, vehicle="b")) == []


def test_replaying_frames_gives_the_same_alerts(tmp_path):
    frames = [scene(t, score=s) for t, s in enumerate([0.8, 0.2, 0.9, 0.7, 0.1, 0.65])]
    first = IncidentTracker(load_rules(rules_file(tmp_path)), cooldown_s=30)
    once = [a for f in frames for a in first.observe(f)]
    again = [a for f in frames for a in first.observe(f)]  # the same worker sees them twice
    fresh = IncidentTracker(load_rules(rules_file(tmp_path)), cooldown_s=30)
    replayed = [a for f in frames for a in fresh.observe(f)]  # a restarted worker

    def key(alerts):
        return [(a.alert_id, a.severity, a.score, a.evidence["frame_ids"]) for a in alerts]

    assert key(once) == key(replayed)
    assert {a.alert_id for a in again} == {a.alert_id for a in once}


def test_a_kinematic_condition_counts_the_events_of_the_frame_and_they_are_evidence(tmp_path):
    rules = (
        RULES
        + """
  - type: wrong_way
    any:
      - kinematic: {event: wrong_way, min_score: 0.5}
    persistence: {k: 2, n: 3, within_s: 10}
    severity: {critical: 0.9, major: 0.75}
"""
    )
    tracker = IncidentTracker(load_rules(rules_file(tmp_path, rules)), cooldown_s=60)
    event = KinematicEvent(type="wrong_way", score=0.8, track_id=3, detail="car 20 m ahead")
    weak = event.model_copy(update={"score": 0.4})
    braking = KinematicEvent(type="hard_braking", score=1.0, track_id=None, detail="-8.0 m/s²")
    assert tracker.observe(scene(0), [event]) == []
    assert tracker.observe(scene(1), [weak, braking]) == []  # below min_score, and another event type
    (alert,) = tracker.observe(scene(2), [event])
    assert alert.type == "wrong_way" and alert.score == pytest.approx(0.8) and alert.severity == "major"
    assert alert.evidence["frame_ids"] == ["v1-f0", "v1-f2"]
    assert alert.evidence["kinematics"] == [event.model_dump()]


def test_an_object_counts_only_when_it_stands_in_our_path_detected_well_enough(tmp_path):
    rules = """
rules:
  - type: obstacle
    any: [{object: {label: obstacle, min_score: 0.6, ahead_m: 35, lateral_m: 2.5}}]
    severity: {critical: 0.9, major: 0.75}
"""
    tracker = IncidentTracker(load_rules(rules_file(tmp_path, rules)), cooldown_s=60)

    def with_object(t: float, **fields: object) -> Scene:
        placed = {"box": (0.4, 0.5, 0.6, 0.7), "label": "obstacle", "score": 0.8, "x_m": 12.0, "y_m": 0.5} | fields
        return scene(t).model_copy(update={"objects": [SceneObject.model_validate(placed)]})

    assert tracker.observe(with_object(0, y_m=4.0)) == []  # on the pavement
    assert tracker.observe(with_object(1, x_m=40.0)) == []  # too far ahead
    assert tracker.observe(with_object(2, score=0.5)) == []  # detected too weakly
    assert tracker.observe(with_object(3, label="car")) == []  # another class
    assert tracker.observe(with_object(4, x_m=None, y_m=None)) == []  # not placed on the ground
    (alert,) = tracker.observe(with_object(5, y_m=-2.0))
    assert alert.type == "obstacle" and alert.score == pytest.approx(0.8)
    assert alert.evidence["frame_ids"] == ["v1-f5"]


def test_a_facing_condition_counts_only_cars_in_our_path_that_show_us_their_front(tmp_path):
    rules = """
rules:
  - type: wrong_way
    any: [{object: {label: car, min_score: 0.5, ahead_m: 40, lateral_m: 2.0, min_facing: 0.7}}]
    severity: {critical: 0.9, major: 0.75}
"""
    tracker = IncidentTracker(load_rules(rules_file(tmp_path, rules)), cooldown_s=60)

    def with_car(t: float, **fields: object) -> Scene:
        placed = {"box": (0.4, 0.5, 0.6, 0.7), "label": "car", "score": 0.9, "x_m": 15.0, "y_m": 0.2} | fields
        return scene(t).model_copy(update={"objects": [SceneObject.model_validate(placed)]})

    assert tracker.observe(with_car(0, facing=0.1)) == []  # driving ahead of us, as it should
    assert tracker.observe(with_car(1, facing=0.6)) == []  # not sure enough
    assert tracker.observe(with_car(2)) == []  # a model that gives no facing never counts
    assert tracker.observe(with_car(3, facing=0.95, y_m=-3.5)) == []  # oncoming, in its own lane
    (alert,) = tracker.observe(with_car(4, facing=0.9))
    assert alert.type == "wrong_way" and alert.score == pytest.approx(0.9)
