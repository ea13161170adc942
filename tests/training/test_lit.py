"""Locked-image text tuning: the pretrained tower is left exactly as ImageNet trained it, the text side learns."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from models.clip_backbone import create_clip
from models.vocab import ST_CONTEXT_FIELDS
from roads.network import load_network
from sim.export import ExportConfig, episode_worlds
from sim.world import FrameEmission
from training.clip_training import lit_clip
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
