"""Frames that show an incident raise its alert type: simulator frames go through the whole pipeline
(Kafka, the worker, Triton serving the shipped models), and the shipped alert rules are applied to the
scenes it publishes by the worker's own incident tracker (the test stack's worker runs rules that
alert on every frame, so that other tests see alerts whatever the models score)."""

from __future__ import annotations

from functools import cache

from alerts.rules import load_rules
from fleetscope.demo import DEMO_INCIDENT_RATE, START
from fusion.incidents import IncidentTracker
from records.messages import Frame
from roads.network import load_network
from sim import seeds
from sim.publish import as_message
from sim.render import render_jpeg
from sim.world import FrameEmission, World, WorldConfig
from tests.test_pipeline import scenes_of


@cache
def demo_world_frames(until_s: float) -> tuple[FrameEmission, ...]:
    """The frames of the default demo's world (seed 23) in its first ``until_s`` simulated seconds."""
    world = World(
        load_network(), WorldConfig(vehicles=6, incidents_per_vehicle_hour=DEMO_INCIDENT_RATE), seeds.DEMO, START
    )
    return tuple(e for e in world.run(until_s) if isinstance(e, FrameEmission))


def test_a_car_coming_at_us_in_our_lane_raises_a_wrong_way_alert_on_its_frames_alone(settings, producer, vehicle_id):
    # veh-003 of the demo's world: three ordinary frames, then a car driving towards it in its lane,
    # 38, 27 and 15 m ahead (t = 27, 29 and 31 s).
    shown = [e for e in demo_world_frames(32) if e.truth.vehicle_id == "veh-003" and 21 <= e.t <= 31]
    assert [e.truth.anomaly for e in shown] == [None] * 3 + ["wrong_way"] * 3
    frames = []
    for e in shown:
        frame = as_message(e, render_jpeg)
        assert isinstance(frame, Frame)
        frames.append(frame.model_copy(update={"vehicle_id": vehicle_id, "frame_id": f"{vehicle_id}-{e.t:g}s"}))
    for frame in frames:
        producer.send_frame(frame)
    producer.flush()

    scenes = sorted(scenes_of(settings, {f.frame_id for f in frames}, len(frames)), key=lambda s: s.captured_at)
    tracker = IncidentTracker(load_rules(), settings.worker.alert_cooldown_s)
    raised = {}
    for scene in scenes:
        for alert in tracker.observe(scene, scene.kinematics.events if scene.kinematics else ()):
            raised.setdefault(alert.type, []).append(scene.frame_id)
    incident_frames = {f.frame_id for f, e in zip(frames, shown, strict=True) if e.truth.anomaly}
    assert "wrong_way" in raised, f"alerts raised: {raised}"
    assert set(raised["wrong_way"]) <= incident_frames  # never on the ordinary frames before the car
    wrong_way = [o for s in scenes if s.frame_id in raised["wrong_way"] for o in s.objects if o.label == "car"]
    assert any(o.facing is not None and o.facing >= 0.8 for o in wrong_way)
