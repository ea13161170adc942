"""Evidence an operator can look at: the frames an alert stands on are kept, each once and a bounded
number per incident, with what was detected on them; ``fleetscope alerts show`` prints the incident
and draws them."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from PIL import Image

from alerts.rules import load_rules
from fleetscope.evidence_image import BOX, RELATION, draw, object_label
from fusion.stage import Fusion
from records.messages import AnomalyResult, AspectResult, FramePosition, Scene, SceneObject
from streams.sinks.evidence import DirectoryEvidence, StoredFrame, frame_file
from streams.sinks.tables import alert_evidence, alerts
from tests.frames import sample_jpeg
from tests.test_pipeline import make_fix, make_frame, wait_rows

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone.utc)
RULES = """
rules:
  - type: collision
    any: [{anomaly: {type: collision, min_score: 0.6}}]
    persistence: {k: 2, n: 3, within_s: 10}
    severity: {critical: 0.9, major: 0.75}
"""


def scene(n: int, score: float, source: bool = True) -> Scene:
    return Scene(
        frame_id=f"v1-f{n}",
        vehicle_id="v1",
        captured_at=T0 + timedelta(seconds=n),
        gps=None,
        cell_id=None,
        aspects={"congestion": AspectResult(label="free flow", probs={"free flow": 1.0})},
        anomaly=AnomalyResult(score=score, type="collision", relation_scores={"collision": score}),
        objects=[SceneObject(box=(0.1, 0.5, 0.4, 0.9), label="car", score=0.9, facing=0.97)],
        triplets=[],
        source=FramePosition(partition=0, offset=100 + n) if source else None,
        ingested_at=T0,
        inferred_at=T0,
    )


def fusion(tmp_path: Path, per_incident: int = 6) -> Fusion:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return Fusion(load_rules(rules), cooldown_s=60, evidence_frames=per_incident)


def test_a_firing_rule_keeps_every_frame_it_matched_including_those_before_it_fired(tmp_path):
    f = fusion(tmp_path)
    assert f.observe(scene(0, 0.8)).evidence == []  # one match of the two needed: no alert yet
    fired = f.observe(scene(1, 0.7))
    assert [a.type for a in fired.alerts] == ["collision"]
    assert [(e.frame_id, e.source.offset, e.incident_id) for e in fired.evidence] == [
        ("v1-f0", 100, fired.alerts[0].alert_id),
        ("v1-f1", 101, fired.alerts[0].alert_id),
    ]
    assert fired.evidence[0].drawing["objects"][0]["label"] == "car"
    assert object_label(fired.evidence[0].drawing["objects"][0]) == "car 0.90, facing us 0.97"
    assert fired.evidence[0].drawing["rule_score"] == 0.8
    # The incident goes on: only the new frame is added.
    assert [e.frame_id for e in f.observe(scene(2, 0.9)).evidence] == ["v1-f2"]


def test_an_incident_keeps_at_most_its_share_of_frames_and_none_without_a_place_in_kafka(tmp_path):
    f = fusion(tmp_path, per_incident=3)
    kept = [e.frame_id for n in range(8) for e in f.observe(scene(n, 0.9, source=n != 1)).evidence]
    assert kept == ["v1-f0", "v1-f2", "v1-f3"]


def stored(jpeg: bytes, drawing: dict) -> StoredFrame:
    return StoredFrame("i1", "v1-f0", "collision", "v1", T0, jpeg, drawing)


def test_the_directory_store_prunes_old_incidents_and_nothing_else_in_its_folder(tmp_path):
    store = DirectoryEvidence(tmp_path)
    asyncio.run(store.put([stored(b"old", {}), StoredFrame("i2", "v1-f1", "collision", "v1", T0, b"new", {})]))
    old = frame_file(tmp_path, "i1", "v1-f0").parent
    for f in old.iterdir():
        os.utime(f, (0, 0))
    (tmp_path / "notes").mkdir()  # an operator's folder on the same share, as old as the old incident
    (tmp_path / "notes" / "todo.txt").write_text("look at incident i1")
    os.utime(tmp_path / "notes" / "todo.txt", (0, 0))
    (tmp_path / ("0" * 32)).mkdir()  # an incident folder still empty (a frame being written)

    assert asyncio.run(store.prune(datetime.now(timezone.utc) - timedelta(days=1))) == 1
    assert not old.exists()
    assert frame_file(tmp_path, "i2", "v1-f1").with_suffix(".jpg").read_bytes() == b"new"
    assert (tmp_path / "notes").is_dir() and (tmp_path / ("0" * 32)).is_dir()


def test_a_box_says_facing_us_only_where_the_scene_graph_says_so():
    assert object_label({"label": "car", "score": 0.8, "facing": 0.2}) == "car 0.80"
    assert object_label({"label": "car", "score": 0.8, "facing": None}) == "car 0.80"
    assert object_label({"label": "car", "score": 0.8}) == "car 0.80"  # stored before facing existed
    assert object_label({"label": "bus", "score": 0.7, "facing": 0.5}) == "bus 0.70, facing us 0.50"


def test_an_evidence_frame_is_drawn_with_its_boxes_relations_and_a_caption():
    drawing = {
        "objects": [
            {"box": (0.1, 0.5, 0.4, 0.9), "label": "car", "score": 0.9},
            {"box": (0.6, 0.5, 0.9, 0.9), "label": "car", "score": 0.8},
        ],
        "relations": [{"subject": 0, "predicate": "collides with", "object": 1, "score": 0.7}],
        "anomaly": {"type": "collision", "score": 0.81},
        "rule": "collision",
        "rule_score": 0.81,
    }
    plain = draw(stored(sample_jpeg(0), {}))
    image = draw(stored(sample_jpeg(0), drawing))
    assert image.size == plain.size and image.width >= 640 and image.height > image.width  # a caption band on top
    pixels = image.load()
    band = image.height - image.width  # the frames are square
    w = image.width
    # The first box's left edge, and the link between the two boxes' centres at mid-height of the boxes.
    assert pixels[int(0.1 * w), band + int(0.7 * w)] == BOX
    assert pixels[int(0.5 * w), band + int(0.7 * w)] == RELATION
    assert plain.load()[int(0.5 * w), band + int(0.7 * w)] != RELATION


def test_an_alert_is_stored_with_its_frames_as_sent_and_alerts_show_writes_them_drawn(
    settings, producer, vehicle_id, tmp_path
):
    # The test stack's rules alert on every frame: each of these frames is an alert's evidence.
    frames = [make_frame(vehicle_id, n) for n in range(3)]
    for n, frame in enumerate(frames):
        producer.send_gps(make_fix(vehicle_id, n))
        producer.flush()
        producer.send_frame(frame)
    producer.flush()

    rows = wait_rows(settings, sa.select(alert_evidence).where(alert_evidence.c.vehicle_id == vehicle_id), 3)
    assert {r.frame_id: bytes(r.jpeg) for r in rows} == {f.frame_id: f.jpeg for f in frames}
    # Each frame alerts on its most probable anomaly type: one alert per type seen, each with its frames.
    raised = wait_rows(settings, sa.select(alerts).where(alerts.c.vehicles.any(vehicle_id)), 1)
    assert {r.incident_id for r in rows} <= {i for a in raised for i in a.vehicle_incidents}
    alert = max(raised, key=lambda a: len(a.frame_ids))
    shown = [r.frame_id for r in rows if r.incident_id in alert.vehicle_incidents]

    cmd = [sys.executable, "-m", "fleetscope", "alerts", "show", alert.alert_id, "--save", str(tmp_path)]
    out = subprocess.run(cmd, env=settings.process_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"alert {alert.alert_id}: {alert.type}" in out.stdout
    assert shown and all(frame_id in out.stdout for frame_id in shown), out.stdout
    saved = sorted((tmp_path / alert.alert_id).glob("*.jpg"))
    assert len(saved) >= len(shown)
    with Image.open(saved[0]) as first, Image.open(io.BytesIO(frames[0].jpeg)) as sent:
        assert first.format == "JPEG" and first.width >= max(sent.width, 640)


def test_alerts_show_names_an_alert_that_does_not_exist(settings):
    cmd = [sys.executable, "-m", "fleetscope", "alerts", "show", "no-such-alert"]
    out = subprocess.run(cmd, env=settings.process_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "no alert no-such-alert" in out.stderr
