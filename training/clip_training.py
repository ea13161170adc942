"""Training the CLIP models on the simulator corpus (synthetic): base CLIP pretraining and SA-CLIP fine-tuning.

- ``pretrain_clip``: contrastive image-text pretraining from scratch on alt-text captions, as CLIP
  is pretrained on web alt text. Token-embedding rows of words that never occur stay exactly zero,
  so the checkpoint does not store them (``models.checkpoints``).
- ``lit_clip``: locked-image text tuning (LiT, Zhai et al. 2022): a pretrained image tower
  (``models.pretrained_tower``) stays as ImageNet left it, and the text tower, both projections and
  the temperature learn from the same captions, so zero-shot transfer rests on pretrained features.
- ``finetune_sa_clip``: SA-CLIP. The CLIP (on a pretrained tower, the tower's top and the text side)
  is fine-tuned contrastively on subject-relation-object captions, each image's text batch holding
  its true caption and that caption's hard negative (subject and object swapped, relation flipped),
  so the model must read the relation, not the nouns.
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
from training.captions import ZERO_SHOT_TEMPLATE, alt_text, incident_captions, relation_captions, true_relations
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
    """CLIP's symmetric InfoNCE loss: row i of normalised ``image`` matches row i of ``text``."""
    logits = scale * image @ text.T
    target = torch.arange(len(image))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def relation_loss(
    image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, target: torch.Tensor, true_of: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE over distinct sentences, with the batch's false negatives left out.

    Relation captions repeat across frames ("the road ahead is clear") and a frame has a dozen true
    ones, so with plain in-batch negatives an image is pushed away from sentences that are true of
    it, and the loss cannot fall far below ln(batch) however well the model reads relations. Here
    ``text`` [T, D] holds each sentence once, ``target`` [B] is image i's sampled sentence and
    ``true_of`` [B, T] says which sentences are true of which image: image i competes its sentence
    against every other sentence not true of it (its hard negative among them), and each image's
    sentence picks that image among the images it is not true of.
    """
    batch = len(image)
    logits = scale * image @ text.T
    rows = torch.arange(batch)
    others = true_of.clone()
    others[rows, target] = False
    image_to_text = logits.masked_fill(others, float("-inf"))
    text_to_image = logits[:, target].T  # [sentence of image b, image j]
    shares = true_of[:, target].T.clone()  # sentence of image b is true of image j
    shares[rows, rows] = False
    text_to_image = text_to_image.masked_fill(shares, float("-inf"))
    return (F.cross_entropy(image_to_text, target) + F.cross_entropy(text_to_image, rows)) / 2


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
    unlocked_stages: int = 1,
    seed: int = 0,
    log: Log = print,
) -> SAClip:
    """SA-CLIP: fine-tune ``base`` on relation captions with hard negatives (``relation_loss``).

    A from-scratch ViT base is fine-tuned whole and scores with one softmax over the prompts. On a
    pretrained tower (``models.pretrained_tower``) only its last ``unlocked_stages`` block stages and
    head convolution learn, with the text tower and projections, so the ImageNet features below stay
    as they are; the locked part's output of each frame is computed once. That model scores each
    anomaly against the normal prompts alone (``models.sa_clip``).

    Every hard negative is a sentence true of some training frame (``captions.true_relations``), so
    that telling it apart takes the image. Incidents are rare and a frame has a dozen captions, so
    sampled uniformly the sentences that tell one anomaly from another would make well under 1 % of
    the text seen. Frames showing an incident make ``incident_share`` of each batch instead, and half
    of their captions are about the incident's objects.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    pretrained = pretrained_tower_of(base.clip.visual) is not None
    model = SAClip(base.clip, base.arch, base.image_cfg, scoring="normals" if pretrained else "softmax")
    clip = model.clip
    train = corpus.split("train", "val")
    grounded = true_relations([corpus.truth[i] for i in train])
    captions = {int(i): c for i in train if (c := relation_captions(corpus.truth[i], grounded))}
    idx = np.array(sorted(captions))
    about_incident = {int(i): c for i in idx if (c := incident_captions(corpus.truth[i], grounded))}
    truths = {int(i): true_relations([corpus.truth[i]]) for i in idx}
    incident = torch.tensor([float(int(i) in about_incident) for i in idx])
    weights = incident * incident_share / max(1.0, float(incident.sum())) + (1 - incident) * (1 - incident_share) / max(
        1.0, float((1 - incident).sum())
    )
    log(
        f"fine-tuning SA-CLIP on {len(idx)} corpus frames with relation captions and grounded hard negatives"
        f" ({len(about_incident)} show an incident: {incident_share:.0%} of each batch)"
    )
    if pretrained:
        clip.visual.trunk = pretrained_tower.lock(clip.visual.trunk)
        bottom, top = pretrained_tower.split_top(clip.visual.trunk, unlocked_stages)
        for param in top.parameters():
            param.requires_grad = True
        locked = tower_features(bottom, corpus, idx, base.image_cfg, log=log)
        learning = sum(p.numel() for p in top.parameters())
        log(f"the top {unlocked_stages} stage(s) of the tower learn: {learning} weights")

        def images(pick: np.ndarray) -> torch.Tensor:
            return clip.visual.head(top(locked[pick]))
    else:

        def images(pick: np.ndarray) -> torch.Tensor:
            return clip.encode_image(corpus.images(idx[pick], base.image_cfg))

    opt = torch.optim.AdamW([p for p in clip.parameters() if p.requires_grad], lr=lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.monotonic()
    for step in range(1, steps + 1):
        _schedule(opt, step, steps, lr, warmup=min(50, steps // 10 + 1))
        pick = torch.multinomial(weights, batch, replacement=True, generator=gen).numpy()
        pairs = [
            rng.choice(about_incident[int(i)] if int(i) in about_incident and rng.random() < 0.5 else captions[int(i)])
            for i in idx[pick]
        ]
        sentences = list(dict.fromkeys(s for pair in pairs for s in pair))
        target = torch.tensor([sentences.index(p) for p, _ in pairs])
        true_of = torch.tensor([[s in truths[int(i)] for s in sentences] for i in idx[pick]])
        image = F.normalize(images(pick), dim=-1)
        text = F.normalize(clip.encode_text(tokenize(base.arch, sentences)), dim=-1)
        loss = relation_loss(image, text, clip.logit_scale.exp(), target, true_of)
        _update(opt, loss, clip)
        _report(log, "sa_clip", step, steps, loss.item(), t0)
    return model.eval()


def fresh_copy(base: BaseClip) -> BaseClip:
    """An independent copy of ``base`` (SA-CLIP fine-tunes its CLIP in place)."""
    clip, image_cfg = create_clip(base.arch, imagenet=False)
    clip.load_state_dict(base.clip.state_dict())
    return BaseClip(clip, base.arch, image_cfg).eval()
