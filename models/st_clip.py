"""ST-CLIP: multi-aspect traffic-scene classification with spatio-temporal context-aware prompts.

SCAMP (arXiv 2511.08978) on a frozen CLIP:
1. the ST context vector (``vocab.ST_CONTEXT_FIELDS``) is split into tokens (ego motion and time,
   static segment attributes, segment window dynamics) that a small transformer encodes into one
   context vector;
2. each aspect has learnable prompt words (CoOp); a per-aspect projection of the context vector is
   added to them (like CoCoOp's meta-net, but driven by ST context instead of the image), and the
   frozen text tower turns "<ctx_1..ctx_n> <class name>." into one class embedding per sample;
3. the image side is bi-level: the CLIP image embedding plus a projection of pooled low-level
   tokens from the middle of the ViT.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.clip_backbone import (
    CLIP,
    ClipModel,
    ImageCfg,
    encode_image_tokens,
    encode_text_embeds,
    middle_layer,
    tokenize,
    trim_prompts,
)
from models.vocab import ASPECTS, ST_CONTEXT_DIM, ST_CONTEXT_FIELDS

# Token groups of the ST context vector; every field belongs to exactly one group.
ST_TOKEN_GROUPS: dict[str, tuple[str, ...]] = {
    "ego": ST_CONTEXT_FIELDS[:9],
    "segment_static": ST_CONTEXT_FIELDS[9:14],
    "segment_window": ST_CONTEXT_FIELDS[14:],
}
assert sum(map(len, ST_TOKEN_GROUPS.values())) == ST_CONTEXT_DIM


class STContextEncoder(nn.Module):
    """ST context vector [B, ST_CONTEXT_DIM] -> context vector [B, dim] via one token per field group."""

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.groups = [[ST_CONTEXT_FIELDS.index(f) for f in fields] for fields in ST_TOKEN_GROUPS.values()]
        self.embed = nn.ModuleList(nn.Linear(len(idx), dim) for idx in self.groups)
        self.type_embed = nn.Parameter(torch.randn(len(self.groups), dim) * 0.02)
        # A summary token, as BERT's [CLS]: its output is the context vector.
        self.summary = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, st_context: torch.Tensor) -> torch.Tensor:
        tokens = torch.stack([emb(st_context[:, idx]) for emb, idx in zip(self.embed, self.groups, strict=True)], dim=1)
        tokens = tokens + self.type_embed
        x = torch.cat([self.summary.expand(len(st_context), -1, -1), tokens], dim=1)
        return self.norm(self.encoder(x)[:, 0])


class STClip(ClipModel):
    """forward(images [B,3,H,W], st_context [B,16]) -> {aspect: class probabilities [B, n_classes]}."""

    prompt_ids: torch.Tensor
    aspect_of_prompt: torch.Tensor

    def __init__(self, clip: CLIP, arch: str, image_cfg: ImageCfg, n_ctx: int = 4, ctx_dim: int = 64) -> None:
        super().__init__(clip, arch, image_cfg, n_ctx=n_ctx, ctx_dim=ctx_dim)
        self.clip = clip.requires_grad_(False)  # frozen backbone: only prompts and adapters learn
        width = clip.token_embedding.embedding_dim
        embed_dim = clip.visual.output_dim
        self.n_ctx = n_ctx
        self.layer = middle_layer(clip.visual)

        # One prompt per (aspect, class), all aspects in one text batch; "X" words are placeholders
        # whose embeddings are replaced by the learned context (position 0 is start-of-text).
        names = [(a, c) for a, classes in ASPECTS.items() for c in classes]
        prefix = " ".join(["X"] * n_ctx)
        ids = trim_prompts(clip, tokenize(arch, [f"{prefix} {c}." for _, c in names]))
        self.register_buffer("prompt_ids", ids, persistent=False)
        aspect_of_prompt = [list(ASPECTS).index(a) for a, _ in names]
        self.register_buffer("aspect_of_prompt", torch.tensor(aspect_of_prompt), persistent=False)

        self.prompt_ctx = nn.Parameter(torch.randn(len(ASPECTS), n_ctx, width) * 0.02)  # CoOp init
        self.st_encoder = STContextEncoder(ctx_dim)
        self.meta_net = nn.ModuleList(nn.Linear(ctx_dim, width) for _ in ASPECTS)

        grid_width = clip.visual.transformer.width
        low_level_proj = nn.Linear(grid_width, embed_dim)
        # Zero-init: an untrained adapter leaves CLIP's image embedding (and its zero-shot alignment) intact.
        nn.init.zeros_(low_level_proj.weight)
        nn.init.zeros_(low_level_proj.bias)
        self.low_level = nn.Sequential(nn.LayerNorm(grid_width), low_level_proj)

    def class_embeddings(self, st_context: torch.Tensor) -> torch.Tensor:
        """Normalised class embeddings [B, n_prompts, embed_dim] conditioned on each sample's ST context."""
        ctx = self.st_encoder(st_context)
        shift = torch.stack([net(ctx) for net in self.meta_net], dim=1)  # [B, n_aspects, width]
        prompt_ctx = self.prompt_ctx[None] + shift[:, :, None]  # [B, n_aspects, n_ctx, width]
        prompt_ctx = prompt_ctx[:, self.aspect_of_prompt]  # [B, n_prompts, n_ctx, width]

        batch, n_prompts = prompt_ctx.shape[:2]
        words = self.clip.token_embedding(self.prompt_ids).expand(batch, -1, -1, -1)
        embeds = torch.cat([words[:, :, :1], prompt_ctx, words[:, :, 1 + self.n_ctx :]], dim=2)
        ids = self.prompt_ids.repeat(batch, 1)
        feats = encode_text_embeds(self.clip, embeds.flatten(0, 1), ids)
        return F.normalize(feats, dim=-1).view(batch, n_prompts, -1)

    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised bi-level image embeddings [B, embed_dim]."""
        image_emb, tokens = encode_image_tokens(self.clip.visual, images, self.layer)
        fused = F.normalize(image_emb, dim=-1) + self.low_level(tokens.mean(dim=1))
        return F.normalize(fused, dim=-1)

    def forward(self, images: torch.Tensor, st_context: torch.Tensor) -> dict[str, torch.Tensor]:
        image = self.image_embeddings(images)
        classes = self.class_embeddings(st_context)
        logits = self.clip.logit_scale.exp() * torch.einsum("bd,bkd->bk", image, classes)
        out: dict[str, torch.Tensor] = {}
        start = 0
        for aspect, names in ASPECTS.items():
            out[aspect] = logits[:, start : start + len(names)].softmax(dim=-1)
            start += len(names)
        return out
