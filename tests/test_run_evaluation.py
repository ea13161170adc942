"""Scoring a run against the simulator's truth: which alerts are right, which incidents are found, how fast."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import evaluation.alerts
from alerts.rules import load_rules
from evaluation.alert_rules import replay_rules
from evaluation.alerts import RaisedAlert, score_alerts
from evaluation.road_conditions import ConditionRow, FrameObservation, score_conditions
from sim.truth import AnomalyEvent, FrameTruth
from tests.conftest import EVERY_FRAME_RULES

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)
ASPECTS = {
    "scene_type": "urban street",
    "surface": "dry",
    "road_width": "medium",
    "accessibility": "open",
    "weather_lighting": "clear day",
    "congestion": "free flow",
}


def frame(frame_id: str, vehicle: str, at_s: float, anomaly: str | None = None, **aspects: str) -> FrameTruth:
    # Only the fields the scoring reads; the rest of a frame's truth plays no part here.
    return FrameTruth.model_construct(
        frame_id=frame_id,
        vehicle_id=vehicle,
        captured_at=T0 + timedelta(seconds=at_s),
        anomaly=anomaly,
        incident_id=f"inc-{anomaly}" if anomaly else None,
        aspects=ASPECTS | aspects,
    )


def event(incident_type: str, vehicle: str, start_s: float) -> AnomalyEvent:
    return AnomalyEvent(
        event_id=f"inc-{incident_type}/{vehicle}",
        incident_id=f"inc-{incident_type}",
        vehicle_id=vehicle,
        type=incident_type,
        start=T0 + timedelta(seconds=start_s),
        end=T0 + timedelta(seconds=start_s + 30),
        lat=60.17,
        lon=24.94,
        segment_id="s1",
    )


def test_alerts_are_scored_by_their_evidence_frames_and_latency_counts_from_first_sight():
    frames = {
        f.frame_id: f
        for f in [
            frame("a0", "v1", 0, "collision"),
            frame("a2", "v1", 2, "collision"),
            frame("a4", "v1", 4, "collision"),
            frame("b0", "v2", 0),
            frame("b2", "v2", 2),
            frame("c0", "v3", 10, "stopped_vehicle"),
        ]
    }
    # The collision was in v1's view from t = -1 s; the stopped vehicle was seen by v3 only.
    events = [event("collision", "v1", -1), event("stopped_vehicle", "v3", 9)]
    alerts = [
        RaisedAlert("right", "collision", ("a2", "a4")),  # fires on its 2nd frame, a4 at t = 4 s
        RaisedAlert("false", "collision", ("b0", "b2")),  # no collision in these frames
        RaisedAlert("wrong type", "obstacle", ("c0",)),
        RaisedAlert("unscored", "hard_braking", ("b2",)),
    ]
    report = score_alerts(alerts, frames, events, persistence_k={"collision": 2, "obstacle": 1})

    collision = report.by_type["collision"]
    assert (collision.alerts, collision.correct, collision.precision) == (2, 1, 0.5)
    assert (collision.incidents, collision.detected, collision.recall) == (1, 1, 1.0)
    assert collision.latencies_s == [5.0]
    stopped = report.by_type["stopped_vehicle"]
    assert (stopped.alerts, stopped.incidents, stopped.recall, stopped.median_latency_s) == (0, 1, 0.0, None)
    assert report.by_type["obstacle"].precision == 0.0
    # Whatever the type: the obstacle alert did stand on the stopped vehicle, 1 s after it came into view.
    found = report.any_type
    assert (found.alerts, found.correct, found.incidents, found.detected) == (3, 2, 2, 2)
    assert sorted(found.latencies_s) == [1.0, 5.0]
    assert report.by_type["hard_braking"].alerts == 1
    text = report.text()
    assert "hard_braking" in text and "no ground truth" in text
    assert "pedestrian_in_lane" in text, "every anomaly type has a row, even without alerts or incidents"


def test_an_alert_that_stands_mostly_on_normal_driving_is_false_whatever_incident_it_grew_over():
    normal = [frame(f"n{i}", "v1", 2 * i) for i in range(6)]
    frames = {f.frame_id: f for f in [*normal, frame("p0", "v1", 12, "pedestrian_in_lane")]}
    events = [event("pedestrian_in_lane", "v1", 11)]
    always_on = RaisedAlert("always on", "pedestrian_in_lane", tuple(frames))  # 1 incident frame of 7
    on_it = RaisedAlert("on it", "pedestrian_in_lane", ("n5", "p0"))  # half its frames show the incident

    wrong = score_alerts([always_on], frames, events, persistence_k={"pedestrian_in_lane": 1})
    assert (wrong.by_type["pedestrian_in_lane"].correct, wrong.by_type["pedestrian_in_lane"].detected) == (0, 0)
    assert (wrong.any_type.correct, wrong.any_type.detected) == (0, 0)
    right = score_alerts([on_it], frames, events, persistence_k={"pedestrian_in_lane": 1})
    assert (right.by_type["pedestrian_in_lane"].correct, right.by_type["pedestrian_in_lane"].detected) == (1, 1)


def test_condition_rows_are_scored_against_the_frames_they_hold():
    truth = {
        f.frame_id: f
        for f in [
            frame("f1", "v1", 10, surface="wet"),
            frame("f2", "v2", 20, surface="wet"),
            frame("f3", "v1", 30, surface="dry"),
            frame("g1", "v1", 400, surface="snow"),
        ]
    }
    said = {"f1": "wet", "f2": "dry", "f3": "dry", "g1": "dry"}
    observations = [
        FrameObservation(f.frame_id, "s1", f.captured_at, ASPECTS | {"surface": said[f.frame_id]})
        for f in truth.values()
    ]
    rows = [
        # Two of the three frames in the first window are truly wet: the row saying mostly "wet" is right.
        ConditionRow("s1", T0, 300, {"surface": {"wet": 0.67, "dry": 0.33}}),
        # The second window's only frame is snowy: "dry" is wrong.
        ConditionRow("s1", T0 + timedelta(seconds=300), 300, {"surface": {"dry": 1.0}}),
        ConditionRow("s9", T0, 300, {"surface": {"dry": 1.0}}),  # no frame of this run: not scored
    ]
    report = score_conditions(observations, rows, truth)

    assert report.frames == 4 and report.frame_accuracy["surface"] == 0.5
    assert report.frame_accuracy["congestion"] == 1.0
    assert report.rows == 2 and report.row_accuracy["surface"] == 0.5


def test_rules_replayed_on_dataset_frames_find_every_incident_when_every_frame_alerts(tmp_path, monkeypatch):
    from models.checkpoints import load_checkpoint
    from models.shipped import SHIPPED_DIR
    from sim.export import ExportConfig
    from training.dataset import ensure_export, load_frames

    sa = load_checkpoint(SHIPPED_DIR / "sa_clip.pt")
    frames = load_frames(ensure_export(ExportConfig(seed=5, frames=600), root=tmp_path / "dataset"), sa.image_cfg.size)
    # These rules raise an alert of the most probable anomaly type on every frame, so every incident
    # a frame shows must end up in some alert's evidence, whatever SA-CLIP scores. They alert on normal
    # driving as much, which the scoring calls false (MIN_INCIDENT_SHARE): here only the evidence counts.
    monkeypatch.setattr(evaluation.alerts, "MIN_INCIDENT_SHARE", 0.0)
    report = replay_rules(sa, frames, frames.split("train", "val", "test"), load_rules(EVERY_FRAME_RULES), 60, print)

    incidents = {f.incident_id for f in frames.truth if f.incident_id is not None}
    assert len(incidents) >= 1, "600 dataset frames show an incident"
    found = report.any_type
    assert found.incidents == found.detected == len(incidents)
    assert found.alerts == sum(s.alerts for s in report.by_type.values()) >= len(incidents)
    assert all(0 <= latency <= 60 for latency in found.latencies_s)
