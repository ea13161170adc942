"""Training the CLIP models on the simulator corpus (synthetic): base CLIP pretraining and SA-CLIP fine-tuning.

- ``pretrain_clip``: contrastive image-text pretraining from scratch on alt-text captions, as CLIP
  is pretrained on web alt text. Token-embedding rows of words that never occur stay exactly zero,
  so the checkpoint does not store them (``models.checkpoints``).
- ``lit_clip``: locked-image text tuning (LiT, Zhai et al. 2022): a pretrained image tower
  (``models.pretrained_tower``) stays as ImageNet left it, and the text tower, both projections and
  the temperature learn from the same captions, so zero-shot transfer rests on pretrained features.
- ``finetune_sa_clip``: SA-CLIP. The whole CLIP is fine-tuned contrastively on subject-relation-object
  captions, each image's text batch holding its true caption and that caption's hard negative
  (subject and object swapped, relation flipped), so the model must read the relation, not the nouns.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from models import pretrained_tower
from models.clip_backbone import CLIP, DEFAULT_ARCH, BaseClip, ImageCfg, create_clip, pretrained_tower_of, tokenize
from models.sa_clip import SAClip
from models.vocab import ASPECT_PHRASES, RELATION_PROMPTS
from training.captions import ZERO_SHOT_TEMPLATE, alt_text, incident_captions, relation_captions
from training.dataset import FrameSet

Log = Callable[[str], None]


def _schedule(opt: torch.optim.Optimizer, step: int, steps: int, lr: float, warmup: int) -> None:
    """Linear warm-up, then cosine decay to zero."""
    scale = step / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))
    for group in opt.param_groups:
        group["lr"] = lr * scale


def _report(log: Log, name: str, step: int, steps: int, loss: float, t0: float) -> None:
    if step % 50 == 0 or step == steps:
        log(f"{name} step {step}/{steps}  loss {loss:.3f}  {time.monotonic() - t0:.0f}s")


def zero_unused_words(clip: CLIP, arch: str, texts: list[str]) -> int:
    """Zero the token-embedding rows of every token not in ``texts``; return how many rows are kept."""
    used = torch.unique(tokenize(arch, texts))
    keep = torch.zeros(clip.token_embedding.num_embeddings, dtype=torch.bool)
    keep[used] = True
    with torch.no_grad():
        clip.token_embedding.weight[~keep] = 0.0
    return int(keep.sum())


def vocabulary_texts(corpus: FrameSet, idx: np.ndarray, seed: int) -> list[str]:
    """Every sentence the CLIP models are trained or prompted with (to find the words in use)."""
    rng = random.Random(seed)
    texts = [alt_text(corpus.truth[i], rng) for i in idx]
    texts += [c for i in idx for pair in relation_captions(corpus.truth[i]) for c in pair]
    texts += [ZERO_SHOT_TEMPLATE.format(p) for phrases in ASPECT_PHRASES.values() for p in phrases.values()]
    texts += list(RELATION_PROMPTS)
    return texts


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE loss: row i of normalised ``image`` matches row i of ``text``.

    ``text`` may have more rows than ``image`` (hard negatives after the true captions): they
    compete for each image, while each true caption is matched against the images only.
    """
    batch = len(image)
    logits = scale * image @ text.T
    target = torch.arange(batch)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, :batch].T, target)) / 2


def _update(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: CLIP) -> None:
    """One optimiser step; CLIP's temperature stays within its usual bound (logit scale <= 100)."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        clip.logit_scale.clamp_(0, math.log(100))


def pretrain_clip(
    corpus: FrameSet,
    *,
    arch: str = DEFAULT_ARCH,
    steps: int = 1500,
    batch: int = 64,
    lr: float = 5e-4,
    seed: int = 0,
    log: Log = print,
) -> BaseClip:
    """Pretrain a CLIP of ``arch`` from scratch on the corpus's train and val frames with alt-text captions."""
    torch.manual_seed(seed)
    clip, image_cfg = create_clip(arch)
    idx = corpus.split("train", "val")
    kept = zero_unused_words(clip, arch, vocabulary_texts(corpus, idx, seed))
    log(f"pretraining {arch} on {len(idx)} corpus frames; {kept} word embeddings in use")

    def images(pick: torch.Tensor) -> torch.Tensor:
        return clip.encode_image(corpus.images(idx[pick.numpy()], image_cfg))

    _train_on_alt_text(clip, arch, corpus, idx, images, "clip", steps=steps, batch=batch, lr=lr, seed=seed, log=log)
    return BaseClip(clip, arch, image_cfg).eval()


def _train_on_alt_text(
    clip: CLIP,
    arch: str,
    corpus: FrameSet,
    idx: np.ndarray,
    images: Callable[[torch.Tensor], torch.Tensor],
    name: str,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    log: Log,
) -> None:
    """Contrastive steps on alt-text captions of frames ``idx``: ``images(pick)`` embeds ``idx[pick]``.

    Only the parameters that require gradients learn."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW([p for p in clip.parameters() if p.requires_grad], lr=lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    clip.train()
    t0 = time.monotonic()
    for step in range(1, steps + 1):
        _schedule(opt, step, steps, lr, warmup=min(100, steps // 10 + 1))
        pick = torch.randint(0, len(idx), (batch,), generator=gen)
        texts = tokenize(arch, [alt_text(corpus.truth[i], rng) for i in idx[pick.numpy()]])
        image = F.normalize(images(pick), dim=-1)
        text = F.normalize(clip.encode_text(texts), dim=-1)
        loss = contrastive_loss(image, text, clip.logit_scale.exp())
        _update(opt, loss, clip)
        _report(log, name, step, steps, loss.item(), t0)


@torch.no_grad()
def tower_features(
    trunk: torch.nn.Module, frames: FrameSet, idx: np.ndarray, image_cfg: ImageCfg, batch: int = 64, log: Log = print
) -> torch.Tensor:
    """A locked tower's pooled features [len(idx), C] of frames ``idx``, with progress every few batches."""
    trunk.eval()
    out, t0 = [], time.monotonic()
    for start in range(0, len(idx), batch):
        out.append(trunk(frames.images(idx[start : start + batch], image_cfg)))
        done = min(start + batch, len(idx))
        if (start // batch) % 20 == 19 or done == len(idx):
            log(f"tower features {done}/{len(idx)} frames  {time.monotonic() - t0:.0f}s")
    return torch.cat(out)


def lit_clip(
    corpus: FrameSet,
    *,
    arch: str = "fleetscope-efficientnet-lite0",
    steps: int = 1500,
    batch: int = 64,
    lr: float = 5e-4,
    seed: int = 0,
    log: Log = print,
) -> BaseClip:
    """LiT: train the text tower, both projections and the temperature of ``arch`` against its locked
    pretrained image tower, on the corpus's train and val frames with alt-text captions.

    The tower is locked with its batch-norm statistics and frames are not augmented, so each frame's
    tower features are the same at every step: they are computed once, and a step costs the text
    tower and the image projection only."""
    torch.manual_seed(seed)
    clip, image_cfg = create_clip(arch)
    if pretrained_tower_of(clip.visual) is None:
        raise ValueError(f"{arch}: LiT needs a pretrained image tower (models.pretrained_tower)")
    clip.visual.trunk = pretrained_tower.lock(clip.visual.trunk)
    idx = corpus.split("train", "val")
    kept = zero_unused_words(clip, arch, vocabulary_texts(corpus, idx, seed))
    log(f"LiT on {arch}: {len(idx)} corpus frames at {image_cfg.size} px; {kept} word embeddings in use")
    features = tower_features(clip.visual.trunk, corpus, idx, image_cfg, log=log)

    def images(pick: torch.Tensor) -> torch.Tensor:
        return clip.visual.head(features[pick])  # the trunk is never run in the steps: its mode does not matter

    _train_on_alt_text(clip, arch, corpus, idx, images, "lit", steps=steps, batch=batch, lr=lr, seed=seed, log=log)
    return BaseClip(clip, arch, image_cfg).eval()


def finetune_sa_clip(
    base: BaseClip,
    corpus: FrameSet,
    *,
    steps: int = 400,
    batch: int = 64,
    lr: float = 1e-4,
    incident_share: float = 0.25,
    seed: int = 0,
    log: Log = print,
) -> SAClip:
    """SA-CLIP: fine-tune the whole of ``base`` on relation captions with hard negatives (NegCLIP-style loss).

    Incidents are rare and a frame has a dozen captions, so sampled uniformly the sentences that tell
    one anomaly from another would make well under 1 % of the text seen. Frames showing an incident
    make ``incident_share`` of each batch instead, and half of their captions are about the incident's
    objects.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SAClip(base.clip, base.arch, base.image_cfg)
    clip = model.clip
    idx = np.array([i for i in corpus.split("train", "val") if relation_captions(corpus.truth[i])])
    captions = {int(i): relation_captions(corpus.truth[i]) for i in idx}
    about_incident = {int(i): c for i in idx if (c := incident_captions(corpus.truth[i]))}
    incident = torch.tensor([float(int(i) in about_incident) for i in idx])
    weights = incident * incident_share / max(1.0, float(incident.sum())) + (1 - incident) * (1 - incident_share) / max(
        1.0, float((1 - incident).sum())
    )
    log(
        f"fine-tuning SA-CLIP on {len(idx)} corpus frames with relation captions and hard negatives"
        f" ({len(about_incident)} show an incident: {incident_share:.0%} of each batch)"
    )
    opt = torch.optim.AdamW(clip.parameters(), lr=lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.monotonic()
    for step in range(1, steps + 1):
        _schedule(opt, step, steps, lr, warmup=min(50, steps // 10 + 1))
        rows = idx[torch.multinomial(weights, batch, replacement=True, generator=gen).numpy()]
        pairs = [
            rng.choice(about_incident[int(i)] if int(i) in about_incident and rng.random() < 0.5 else captions[int(i)])
            for i in rows
        ]
        texts = tokenize(base.arch, [p for p, _ in pairs] + [n for _, n in pairs])
        image = F.normalize(clip.encode_image(corpus.images(rows, base.image_cfg)), dim=-1)
        text = F.normalize(clip.encode_text(texts), dim=-1)
        loss = contrastive_loss(image, text, clip.logit_scale.exp())  # text: true captions, then their negatives
        _update(opt, loss, clip)
        _report(log, "sa_clip", step, steps, loss.item(), t0)
    return model.eval()


def fresh_copy(base: BaseClip) -> BaseClip:
    """An independent copy of ``base`` (SA-CLIP fine-tunes its CLIP in place)."""
    clip, image_cfg = create_clip(base.arch)
    clip.load_state_dict(base.clip.state_dict())
    return BaseClip(clip, base.arch, image_cfg).eval()
