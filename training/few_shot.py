"""Few-shot prompt learning on a frozen CLIP: ST-CLIP and its baselines (CoOp, CoCoOp, zero-shot prompts).

All learned methods are ``models.st_clip.STClip`` with different options (``METHODS``), trained the
same way on the same shots: k frames per class of every aspect, drawn from the benchmark's train
split, each labelled with all of its aspects. The CLIP is frozen, so its image features are computed
once per frame and training touches only prompts and adapters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from models.clip_backbone import BaseClip, text_embeddings
from models.st_clip import STClip
from models.vocab import ASPECT_PHRASES, ASPECTS
from training.captions import ZERO_SHOT_TEMPLATE
from training.clip_training import Log
from training.dataset import FrameSet

# ST-CLIP's configuration was chosen on the benchmark's val episodes (``fleetscope eval clip --choose``,
# 4 shots, mean macro-F1 over aspects and 3 draws of shots). 2026-12-03, on the LiT base at 128 px:
# the ST-to-logit residual alone 0.758, with the prompt shift as well 0.740, the shift alone 0.710,
# CoOp 0.693. The residual alone also leaves the prompts the same for every frame, so serving runs the
# text tower once per batch, not once per frame. Low-level tokens (a ViT base only) lost on 2026-12-02:
# 0.537 against 0.604 without them.
METHODS: dict[str, dict[str, object]] = {
    "coop": {"condition": "none", "low_level": False},
    "cocoop": {"condition": "image", "low_level": False},
    "st_clip": {"condition": "none", "low_level": False, "st_residual": True},
}
# Configurations weighed against the shipped ones on val (``evaluation.clip.choose_configuration``).
CANDIDATES: dict[str, dict[str, object]] = {
    **METHODS,
    # st_clip.pt's configuration from 2026-12-02 (evening) to 2026-12-04.
    "st_clip_shift_and_residual": {"condition": "st", "low_level": False, "st_residual": True},
    "st_clip_shift_only": {"condition": "st", "low_level": False},  # st_clip.pt's before 2026-12-02 (evening)
    "st_clip_low_level": {"condition": "st", "low_level": True},  # a ViT backbone only
}
# Share of training rows whose ST context is replaced by the all-zero "no context" vector, so that a
# frame without a GPS fix gets the answers of a model that learned to do without one.
CONTEXT_DROPOUT: dict[str, float] = {"st_clip": 0.25, "st_clip_shift_and_residual": 0.25}
SHOTS = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class Features:
    """What the frozen CLIP and the pipeline give for a set of frames, and their aspect labels."""

    image: torch.Tensor  # normalised image embeddings [N, embed_dim]
    low: torch.Tensor  # pooled middle-layer tokens [N, width]
    st_context: torch.Tensor  # [N, ST_CONTEXT_DIM]
    labels: torch.Tensor  # class index per aspect [N, n_aspects]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray | torch.Tensor) -> Features:
        i = torch.as_tensor(idx)
        return Features(self.image[i], self.low[i], self.st_context[i], self.labels[i])


def aspect_labels(frames: FrameSet, idx: np.ndarray) -> torch.Tensor:
    """Class index of every aspect for frames ``idx`` [len(idx), n_aspects]."""
    return torch.tensor([[ASPECTS[a].index(frames.truth[i].aspects[a]) for a in ASPECTS] for i in idx])


@torch.no_grad()
def frozen_features(base: BaseClip, frames: FrameSet, idx: np.ndarray, batch: int = 256) -> Features:
    """Frozen-CLIP features of frames ``idx`` (one pass through the image tower)."""
    probe = STClip(base.clip, base.arch, base.image_cfg, condition="none", low_level=False)
    image, low = [], []
    for start in range(0, len(idx), batch):
        e, t = probe.frozen_features(frames.images(idx[start : start + batch], base.image_cfg))
        image.append(e)
        low.append(t)
    st = torch.from_numpy(frames.st_context[idx])
    return Features(torch.cat(image), torch.cat(low), st, aspect_labels(frames, idx))


@torch.no_grad()
def image_features(base: BaseClip, frames: FrameSet, idx: np.ndarray, batch: int = 128) -> Features:
    """Image embeddings of frames ``idx`` for any base CLIP (a ViT or a pretrained tower); no low-level tokens."""
    image = [
        F.normalize(base.clip.encode_image(frames.images(idx[start : start + batch], base.image_cfg)), dim=-1)
        for start in range(0, len(idx), batch)
    ]
    st = torch.from_numpy(frames.st_context[idx])
    return Features(torch.cat(image), torch.zeros(len(idx), 0), st, aspect_labels(frames, idx))


def sample_shots(labels: torch.Tensor, k: int, seed: int) -> np.ndarray:
    """Row indices of a k-shot training set: k rows per class of every aspect (fewer where fewer exist)."""
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    for a, classes in enumerate(ASPECTS.values()):
        for c in range(len(classes)):
            rows = np.flatnonzero(labels[:, a].numpy() == c)
            chosen.update(int(r) for r in rng.permutation(rows)[:k])
    return np.array(sorted(chosen))


def aspect_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over aspects of the cross-entropy within each aspect's classes."""
    loss = logits.new_zeros(())
    start = 0
    for a, classes in enumerate(ASPECTS.values()):
        loss = loss + F.cross_entropy(logits[:, start : start + len(classes)], labels[:, a])
        start += len(classes)
    return loss


def train_prompts(
    base: BaseClip,
    method: str,
    shots: Features,
    *,
    steps: int = 150,
    batch: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    log: Log | None = None,
) -> STClip:
    """Learn ``method``'s prompts and adapters on ``shots`` with the CLIP of ``base`` frozen (with the method's
    ``CONTEXT_DROPOUT``)."""
    torch.manual_seed(seed)
    dropout = CONTEXT_DROPOUT.get(method, 0.0)
    model = STClip(base.clip, base.arch, base.image_cfg, **CANDIDATES[method])  # type: ignore[arg-type]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.monotonic()
    for step in range(1, steps + 1):
        rows = torch.randint(0, len(shots), (min(batch, len(shots)),), generator=gen)
        b = shots.take(rows)
        context = b.st_context
        if dropout:
            context = context * (torch.rand(len(context), 1, generator=gen) >= dropout)
        loss = aspect_loss(model.aspect_logits(b.image, b.low, context), b.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log is not None and (step % 100 == 0 or step == steps):
            log(f"{method} step {step}/{steps}  loss {loss.item():.3f}  {time.monotonic() - t0:.0f}s")
    return model.eval()


@torch.no_grad()
def predict(model: STClip, feats: Features, batch: int = 128) -> torch.Tensor:
    """Predicted class per aspect [N, n_aspects]."""
    logits = torch.cat(
        [
            model.aspect_logits(f.image, f.low, f.st_context)
            for f in (feats.take(torch.arange(s, min(s + batch, len(feats)))) for s in range(0, len(feats), batch))
        ]
    )
    return _argmax_per_aspect(logits)


@torch.no_grad()
def predict_zero_shot(base: BaseClip, feats: Features) -> torch.Tensor:
    """Zero-shot CLIP: each class's hand-written prompt (``captions.ASPECT_PHRASES``), the nearest wins."""
    return zero_shot_classes(base, feats.image)


def zero_shot_classes(base: BaseClip, image: torch.Tensor) -> torch.Tensor:
    """Class index per aspect [N, n_aspects] of normalised image embeddings ``image``, by zero-shot prompts."""
    prompts = [ZERO_SHOT_TEMPLATE.format(ASPECT_PHRASES[a][c]) for a, classes in ASPECTS.items() for c in classes]
    return _argmax_per_aspect(image @ text_embeddings(base.clip, base.arch, prompts).T)


def _argmax_per_aspect(logits: torch.Tensor) -> torch.Tensor:
    out, start = [], 0
    for classes in ASPECTS.values():
        out.append(logits[:, start : start + len(classes)].argmax(dim=1))
        start += len(classes)
    return torch.stack(out, dim=1)


def macro_f1(pred: np.ndarray, true: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes that occur in ``true`` or ``pred``."""
    scores = []
    for c in range(n_classes):
        tp = int(((pred == c) & (true == c)).sum())
        fp = int(((pred == c) & (true != c)).sum())
        fn = int(((pred != c) & (true == c)).sum())
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def aspect_scores(pred: torch.Tensor, labels: torch.Tensor) -> dict[str, tuple[float, float]]:
    """{aspect: (accuracy, macro-F1)}."""
    out = {}
    for a, (aspect, classes) in enumerate(ASPECTS.items()):
        p, t = pred[:, a].numpy(), labels[:, a].numpy()
        out[aspect] = (float((p == t).mean()), macro_f1(p, t, len(classes)))
    return out
