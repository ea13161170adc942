"""Frames that show an incident raise its alert type: simulator frames go through the whole pipeline
(Kafka, the worker, Triton serving the shipped models), and the shipped alert rules are applied to the
scenes it publishes by the worker's own incident tracker (the test stack's worker runs rules that
alert on every frame, so that other tests see alerts whatever the models score)."""

from __future__ import annotations

from functools import cache

import pytest

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


# (alert type, vehicle of the demo's world, first and last capture second): a few ordinary frames, then
# the incident in view. The collision and the stopped vehicle also raise each other's type (SA-CLIP
# cannot tell them apart, models/README.md); the pedestrian in the lane raises nothing yet.
INCIDENTS = [
    ("wrong_way", "veh-003", 21, 31),  # a car driving towards us in our lane, 38, 27 and 15 m ahead
    ("stopped_vehicle", "veh-003", 97, 109),
    ("collision", "veh-001", 149.5, 161.5),
    ("obstacle", "veh-001", 323.5, 333.5),
]


@pytest.mark.parametrize(("kind", "vehicle", "first_s", "last_s"), INCIDENTS, ids=[i[0] for i in INCIDENTS])
def test_frames_that_show_an_incident_raise_its_alert_type_on_those_frames_alone(
    settings, producer, vehicle_id, kind, vehicle, first_s, last_s
):
    shown = [e for e in demo_world_frames(340) if e.truth.vehicle_id == vehicle and first_s <= e.t <= last_s]
    assert shown[0].truth.anomaly is None and any(e.truth.anomaly == kind for e in shown)
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
    raised: dict[str, list[str]] = {}
    for scene in scenes:
        for alert in tracker.observe(scene, scene.kinematics.events if scene.kinematics else ()):
            raised.setdefault(alert.type, []).extend(alert.evidence["frame_ids"])
    showing = {f.frame_id for f, e in zip(frames, shown, strict=True) if e.truth.anomaly == kind}
    assert kind in raised, f"alerts raised: {raised}"
    assert set(raised[kind]) <= showing, f"{kind} raised on frames that do not show it: {raised[kind]}"
    if kind == "wrong_way":
        cars = [o for s in scenes if s.frame_id in raised[kind] for o in s.objects if o.label == "car"]
        assert any(o.facing is not None and o.facing >= 0.8 for o in cars)
