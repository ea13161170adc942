"""Triton serves the shipped ST-CLIP and SA-CLIP checkpoints and answers as the models do in process."""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import torch

from models.checkpoints import BACKBONE_FILE, SHIPPED_DIR, load_checkpoint
from models.preprocess import to_tensor_batch
from models.sa_clip import SAClip
from models.st_clip import STClip
from models.vocab import ASPECTS, ST_CONTEXT_DIM
from roads.network import load_network
from sim.render import render_jpeg
from sim.samples import find_samples
from streams.inference.triton_client import TritonModels


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_embedded_stack_serves_the_shipped_checkpoints(settings) -> None:
    served = settings.triton.checkpoint_dir
    for name in ("st_clip.pt", "sa_clip.pt", BACKBONE_FILE):
        assert sha256(served / name) == sha256(SHIPPED_DIR / name), name
        assert load_checkpoint(SHIPPED_DIR / name).meta["trained"] is True


def test_triton_outputs_equal_in_process_outputs_on_the_same_frames(settings) -> None:
    jpegs = [render_jpeg(spec) for spec, _ in find_samples(load_network(), seed=7)[:6]]
    context = np.random.default_rng(0).random((len(jpegs), ST_CONTEXT_DIM), dtype=np.float32)

    async def served() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        models = TritonModels(settings.triton)
        try:
            st, sa, _ = await models.analyse(jpegs, context)
        finally:
            await models.close()
        return st, sa

    st_out, sa_out = asyncio.run(served())
    st = load_checkpoint(settings.triton.checkpoint_dir / "st_clip.pt")
    sa = load_checkpoint(settings.triton.checkpoint_dir / "sa_clip.pt")
    assert isinstance(st, STClip) and isinstance(sa, SAClip)

    def images(model: STClip | SAClip) -> torch.Tensor:  # each model as it is served: its own preprocessing
        cfg = model.image_cfg
        return to_tensor_batch(jpegs, cfg.size, cfg.mean, cfg.std)

    with torch.inference_mode():
        aspects = st(images(st), torch.from_numpy(context))
        anomaly, relations = sa(images(sa))
    for aspect in ASPECTS:
        np.testing.assert_allclose(st_out[f"ASPECT_{aspect.upper()}"], aspects[aspect].numpy(), atol=1e-4)
    np.testing.assert_allclose(sa_out["ANOMALY_SCORE"].reshape(-1), anomaly.numpy(), atol=1e-4)
    np.testing.assert_allclose(sa_out["RELATION_SCORES"], relations.numpy(), atol=1e-4)
