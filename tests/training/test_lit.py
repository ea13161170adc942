"""Training on the pretrained tower: LiT leaves the tower exactly as ImageNet trained it and teaches the text side;
SA-CLIP unlocks only the tower's top."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from models.clip_backbone import create_clip
from models.vocab import NORMAL_PROMPTS, ST_CONTEXT_FIELDS
from roads.network import load_network
from sim.export import ExportConfig, episode_worlds
from sim.world import FrameEmission
from training.clip_training import contrastive_loss, finetune_sa_clip, fresh_copy, lit_clip, relation_loss
from training.dataset import FrameSet


def small_corpus(size: int) -> FrameSet:
    """Frames of two simulated episodes with their truth, as training frames, on random pixels."""
    truth = []
    for world in itertools.islice(episode_worlds(load_network(), ExportConfig(episode_s=10.0)), 2):
        frames = [e.truth for e in world.run(10.0) if isinstance(e, FrameEmission)]
        truth += [f.model_copy(update={"split": "train"}) for f in frames]
    pixels = np.random.default_rng(0).integers(0, 256, (len(truth), size, size, 3), dtype=np.uint8)
    return FrameSet(Path("."), truth, pixels, np.zeros((len(truth), len(ST_CONTEXT_FIELDS)), np.float32))


def test_lit_trains_the_text_side_against_an_untouched_imagenet_tower() -> None:
    corpus = small_corpus(224)
    assert len(corpus.truth) >= 8
    base = lit_clip(corpus, steps=3, batch=8, log=lambda _: None)
    imagenet, cfg = create_clip("fleetscope-efficientnet-lite0")
    with torch.no_grad():
        images = corpus.images(np.arange(4), cfg)
        torch.testing.assert_close(base.clip.visual.trunk(images), imagenet.visual.trunk.eval()(images))
    fresh = lit_clip(corpus, steps=0, batch=8, log=lambda _: None)
    assert not torch.equal(base.clip.text_projection, fresh.clip.text_projection), "the text side learned"
    assert not torch.equal(base.clip.visual.head.proj.weight, fresh.clip.visual.head.proj.weight)


def test_sa_clip_on_a_pretrained_tower_learns_only_its_top_and_scores_against_the_normals() -> None:
    corpus = small_corpus(128)
    base = lit_clip(corpus, arch="fleetscope-efficientnet-lite0-128", steps=0, batch=8, log=lambda _: None)
    before = {k: v.clone() for k, v in base.clip.visual.trunk.state_dict().items()}
    sa = finetune_sa_clip(fresh_copy(base), corpus, steps=3, batch=8, lr=1e-3, log=lambda _: None)
    after = sa.clip.visual.trunk.state_dict()
    changed = {k.split(".")[0] + "." + k.split(".")[1] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"blocks.6", "conv_head.weight"}, changed  # the last stage and the head convolution
    assert sa.scoring == "normals"
    with torch.no_grad():
        anomaly, relations = sa(corpus.images(np.arange(2), sa.image_cfg))
    torch.testing.assert_close(anomaly, relations[:, len(NORMAL_PROMPTS) :].max(dim=1).values)


def test_the_relation_loss_leaves_out_sentences_true_of_the_image() -> None:
    """Four images, two of them showing the same thing: with each image on its sentence, the loss is near zero,
    where plain in-batch InfoNCE cannot go below what the repeated sentence costs."""
    sentences = torch.eye(3)  # "clear road", "a car ahead", "a pedestrian beside the road"
    image = sentences[[0, 0, 1, 2]]
    target = torch.tensor([0, 0, 1, 2])
    true_of = torch.tensor([[1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=torch.bool)
    scale = torch.tensor(50.0)
    assert relation_loss(image, sentences, scale, target, true_of) < 1e-3
    assert contrastive_loss(image, sentences[target], scale) > 0.3
    looks_wrong = sentences[[1, 0, 1, 2]]  # the first image looks like "a car ahead", which is false of it
    assert relation_loss(looks_wrong, sentences, scale, target, true_of) > 5
