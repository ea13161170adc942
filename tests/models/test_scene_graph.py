"""Scene graph v2: the locked pretrained trunk, its cached features, set matching, text prompts the
base CLIP can read, and the facing head."""

from __future__ import annotations

import models.torchvision_compat  # noqa: F401  (before open_clip, which imports torchvision)

# isort: split
import numpy as np
import open_clip
import torch

from models.checkpoints import SHIPPED_DIR, load_checkpoint
from models.scene_graph import (
    CLASS_PROMPTS,
    CROP_H,
    CROP_W,
    PREDICATE_PROMPTS,
    FacingHead,
    PretrainedBackbone,
    SceneGraphModel,
)
from models.shipped import BACKBONE_FILE
from models.vocab import NUM_QUERIES, OBJECT_CLASSES, PREDICATES
from tests.training.test_lit import small_corpus
from training.scene_graph_training import (
    QUERY_MODES,
    GraphTruth,
    batch_loss,
    match,
    train_scene_graph,
    trunk_taps,
)

torch.set_num_threads(2)


def test_every_word_of_the_text_banks_was_learnt_by_the_shipped_base_clip() -> None:
    base = load_checkpoint(SHIPPED_DIR / BACKBONE_FILE)
    tokenizer = open_clip.get_tokenizer(base.arch)
    embedding = base.clip.token_embedding.weight.detach()
    assert set(PREDICATE_PROMPTS) == set(PREDICATES)
    for prompt in (*CLASS_PROMPTS, *PREDICATE_PROMPTS.values()):
        ids = tokenizer([prompt])[0]
        ids = ids[(ids > 0) & (ids < tokenizer.sot_token_id)]
        zero = [int(i) for i in ids if not embedding[i].abs().sum() > 0]
        assert not zero, f"{prompt!r}: tokens {zero} were never trained"


def test_set_matching_pairs_each_object_with_the_query_that_fits_it_best() -> None:
    truth = GraphTruth(
        boxes=np.array([[0.1, 0.1, 0.2, 0.2], [0.6, 0.5, 0.8, 0.9]], dtype=np.float32),
        classes=np.array([0, 4]),
        relations=np.zeros((0, 3), dtype=np.int64),
    )
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.61, 0.5, 0.8, 0.88], [0.5, 0.5, 0.6, 0.6], [0.1, 0.1, 0.21, 0.2]])
    logits = torch.zeros(4, len(OBJECT_CLASSES) + 1)
    queries, objects = match(logits, boxes, truth)
    assert dict(zip(objects.tolist(), queries.tolist(), strict=True)) == {0: 3, 1: 1}


def test_the_cached_trunk_features_train_what_the_images_would(tmp_path) -> None:
    corpus = small_corpus(224)
    corpus = type(corpus)(tmp_path, corpus.truth, corpus.pixels, corpus.st_context)
    base = load_checkpoint(SHIPPED_DIR / BACKBONE_FILE)
    model = SceneGraphModel(base.clip, base.arch, base.image_cfg, backbone="lite0")
    model.backbone.load_imagenet()
    assert isinstance(model.backbone, PretrainedBackbone)
    idx = np.arange(6)
    taps = trunk_taps(model.backbone, corpus, idx)
    again = trunk_taps(model.backbone, corpus, idx)
    assert isinstance(again[0], np.memmap), "the second call reads the cache"
    with torch.no_grad():
        direct = model.backbone.taps(corpus.images(idx, model.image_cfg))
    for cached, tap in zip(taps, direct, strict=True):
        torch.testing.assert_close(torch.from_numpy(np.asarray(cached, dtype=np.float32)), tap, atol=2e-2, rtol=1e-2)

    truths = [GraphTruth.of(corpus.truth[i]) for i in idx]
    features = model.backbone.neck([torch.from_numpy(np.asarray(t, dtype=np.float32)) for t in taps])
    for queries in QUERY_MODES:
        losses = batch_loss(model, features, truths, queries)
        assert {"heatmap", "size", "class", "box", "predicate", "total"} <= losses.keys(), queries
        assert all(torch.isfinite(v) for v in losses.values()), queries

    trunk_before = {k: v.clone() for k, v in model.backbone.trunk.state_dict().items()}
    head_before = model.heatmap_head[-1].weight.clone()
    train_scene_graph(model, corpus, idx, steps=2, batch_size=3, queries="matched", log=lambda _: None)
    assert all(torch.equal(v, model.backbone.trunk.state_dict()[k]) for k, v in trunk_before.items()), "trunk locked"
    assert not torch.equal(head_before, model.heatmap_head[-1].weight), "the heads learned"
    out = model(corpus.images(idx[:2], model.image_cfg))
    assert out["boxes"].shape == (2, NUM_QUERIES, 4)


def test_the_facing_head_reads_the_pixels_inside_each_box_and_nothing_else() -> None:
    images = torch.zeros(1, 3, 64, 64)
    images[0, 0, 16:32, 32:64] = 1.0  # a red patch: rows 16-31, columns 32-63
    images[0, 2, 40:64, 0:16] = 1.0  # a blue patch
    boxes = torch.tensor([[[0.5, 0.25, 1.0, 0.5], [0.0, 0.625, 0.25, 1.0], [0.0, 0.0, 0.25, 0.25]]])
    crops = FacingHead.crops(images, boxes).reshape(1, 3, 3, CROP_H, CROP_W)
    red, blue, empty = crops[0]
    torch.testing.assert_close(red[0], torch.ones(CROP_H, CROP_W))
    assert red[1:].abs().max() == 0
    torch.testing.assert_close(blue[2], torch.ones(CROP_H, CROP_W))
    assert blue[:2].abs().max() == 0
    assert empty.abs().max() == 0


def test_the_shipped_scene_graphs_carry_a_trained_facing_head() -> None:
    for name in ("scene_graph.pt", "scene_graph_ablation.pt"):
        model = load_checkpoint(SHIPPED_DIR / name)
        assert isinstance(model, SceneGraphModel)
        assert model.facing_head.mlp[2].weight.abs().sum() > 0, f"{name}: the facing head was never trained"
        val = model.meta["facing"]["val"]
        assert val["towards"] > 0.8 and val["away"] > 0.8, val
