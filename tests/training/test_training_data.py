"""What the CLIP models learn from: relation captions with hard negatives, and the pipeline's ST context."""

from __future__ import annotations

import itertools
import random
import re
from datetime import datetime, timezone

import pytest

from models.vocab import ANOMALY_PROMPTS, HELD_OUT_TYPES, ST_CONTEXT_FIELDS
from roads.network import ROAD_CLASSES, load_network
from sim.export import ExportConfig, episode_worlds, split_of
from sim.publish import gps_message
from sim.truth import FrameTruth
from sim.world import FrameEmission, GpsEmission, World, WorldConfig
from streams.context.replay import replay_contexts
from training.captions import alt_text, incident_captions, relation_captions, true_relations


@pytest.fixture(scope="module")
def network():
    return load_network()


@pytest.fixture(scope="module")
def dataset_frames(network) -> list[FrameTruth]:
    """Frames of a few dataset episodes, train and test (truth only, nothing rendered)."""
    config = ExportConfig(episode_s=30.0)
    wanted = {"train": 5, "test": 3}
    frames = []
    for world in itertools.islice(episode_worlds(network, config), 20):
        split = split_of(config.seed, world.episode, "", config.split_fractions, config.split_unit)
        if wanted.get(split, 0) > 0:
            wanted[split] -= 1
            frames += [e.truth for e in world.run(config.episode_s) if isinstance(e, FrameEmission)]
    return frames


def test_every_hard_negative_is_false_of_its_frame_and_every_caption_true(dataset_frames) -> None:
    checked = 0
    for frame in dataset_frames:
        pairs = relation_captions(frame)
        true = {t for t, _ in pairs}
        for _, negative in pairs:
            assert negative not in true, (frame.frame_id, negative)
        checked += len(pairs)
    assert checked > 10 * len(dataset_frames)


def test_grounded_hard_negatives_are_all_true_of_some_training_frame(dataset_frames) -> None:
    training = [f for f in dataset_frames if f.split in ("train", "val")]
    grounded = true_relations(training)
    kept = 0
    for frame in training:
        pairs = relation_captions(frame, grounded)
        assert all(negative in grounded for _, negative in pairs), frame.frame_id
        assert {t for t, _ in pairs} <= {t for t, _ in relation_captions(frame)}
        kept += len(pairs)
    ungrounded = sum(n not in grounded for f in training for _, n in relation_captions(f))
    assert kept > 5 * len(training) and ungrounded > 0  # the filter has something to do, and leaves plenty


def test_incident_captions_contrast_a_stopped_vehicle_with_a_collision(dataset_frames) -> None:
    collides = ANOMALY_PROMPTS["collision"]
    by_type: dict[str | None, list[FrameTruth]] = {}
    for frame in dataset_frames:
        by_type.setdefault(frame.anomaly, []).append(frame)
    assert by_type.get("stopped_vehicle"), "8 dataset episodes show a stopped vehicle"
    for frame in by_type["stopped_vehicle"]:
        about = incident_captions(frame)
        assert set(about) <= set(relation_captions(frame))
        standing = [n for t, n in about if t.endswith("with hazard lights is standing on our side of the road")]
        assert standing == [collides], frame.frame_id
    for frame in by_type.get("collision", []):
        assert collides in {t for t, _ in incident_captions(frame)}, frame.frame_id
    assert not any(incident_captions(f) for f in by_type[None])


def test_no_held_out_prompt_is_in_the_training_text(dataset_frames) -> None:
    """Neither as a true caption, a hard negative nor alt text, in any wording of its situation."""
    held_out = {ANOMALY_PROMPTS[t] for t in HELD_OUT_TYPES}
    situation = re.compile(r"a pedestrian is .*on our side|an? (car|truck|bus).* is coming towards us on our side")
    rng = random.Random(0)
    texts = 0
    for frame in (f for f in dataset_frames if f.split in ("train", "val")):
        sentences = [s for pair in relation_captions(frame) for s in pair] + [alt_text(frame, rng) for _ in range(5)]
        for sentence in sentences:
            assert not any(p in sentence for p in held_out), (frame.frame_id, sentence)
            assert not situation.search(sentence), (frame.frame_id, sentence)
        texts += len(sentences)
    assert texts > 5000


def test_held_out_anomaly_prompts_are_never_true_of_a_training_frame(dataset_frames) -> None:
    held_out = {ANOMALY_PROMPTS[t] for t in HELD_OUT_TYPES}
    training = [f for f in dataset_frames if f.split in ("train", "val")]
    seen_in_test = set()
    for frame in dataset_frames:
        true = {t for t, _ in relation_captions(frame)}
        if frame.split in ("train", "val"):
            assert not true & held_out, frame.frame_id
        else:
            seen_in_test |= true & held_out
    assert len(training) > 100
    assert seen_in_test, "the test split should show a held-out type in 3 episodes"


def test_replayed_st_context_locates_frames_on_their_true_segment_with_its_window(network) -> None:
    world = World(network, WorldConfig(vehicles=16), seed=3, start=datetime(2026, 3, 2, 8, tzinfo=timezone.utc))
    emissions = list(world.run(150.0))
    fixes = [(e.truth.delivered_at, gps_message(e.truth)) for e in emissions if isinstance(e, GpsEmission)]
    frames = [e.truth for e in emissions if isinstance(e, FrameEmission)]
    vectors = replay_contexts(network, fixes, [(f.vehicle_id, f.captured_at) for f in frames])
    field = {name: i for i, name in enumerate(ST_CONTEXT_FIELDS)}
    with_context = [(f, v) for f, v in zip(frames, vectors, strict=True) if v[field["has_context"]] == 1.0]
    assert len(with_context) >= 0.9 * len(frames)  # tunnels have no fix
    segments = {s.segment_id: s for s in network.segments}
    right_class = sum(
        v[field["road_class_norm"]]
        == pytest.approx((ROAD_CLASSES.index(segments[f.ego.segment_id].road_class) + 1) / len(ROAD_CLASSES))
        for f, v in with_context
    )
    assert right_class >= 0.9 * len(with_context)
    # The frame's own vehicle is in its segment's window once the matcher has committed a fix there.
    with_window = sum(v[field["window_vehicles_norm"]] > 0 for _, v in with_context)
    assert with_window >= 0.6 * len(with_context)
