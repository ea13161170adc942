"""ST-CLIP: multi-aspect traffic-scene classification with spatio-temporal context-aware prompts.

SCAMP (arXiv 2511.08978) on a frozen CLIP:
1. the ST context vector (``vocab.ST_CONTEXT_FIELDS``) is split into tokens (ego motion and time,
   static segment attributes, segment window dynamics) that a small transformer encodes into one
   context vector;
2. each aspect has learnable prompt words (CoOp); a per-aspect projection of the context vector is
   added to them (like CoCoOp's meta-net, but driven by ST context instead of the image), and the
   frozen text tower turns "<ctx_1..ctx_n> <class name>." into one class embedding per sample;
3. optionally (``st_residual``) the context vector also moves each class's logit directly, through a
   zero-initialised linear map: the shift in 2. is the same for every class of an aspect and can
   hardly reorder them, while scene type and road width follow almost directly from the segment's
   road class and lanes. With the residual alone (``condition="none"``) the prompts are CoOp's, the
   same for every frame, so the text tower runs once per batch instead of once per frame;
4. the image side is the CLIP image embedding, on a ViT optionally (``low_level``) plus a projection
   of pooled low-level tokens from its middle block.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.clip_backbone import (
    CLIP,
    ClipModel,
    ImageCfg,
    VisionTransformer,
    encode_image_tokens,
    encode_text_embeds,
    middle_layer,
    tokenize,
    trim_prompts,
)
from models.vocab import ASPECT_PHRASES, ASPECTS, ST_CONTEXT_DIM, ST_CONTEXT_FIELDS

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
        # shape[0], not len(): an ONNX export (models/onnx_runtime.py) traces len() as a constant batch size.
        x = torch.cat([self.summary.expand(st_context.shape[0], -1, -1), tokens], dim=1)
        return self.norm(self.encoder(x)[:, 0])


CONDITIONS = ("st", "image", "none")


class STClip(ClipModel):
    """forward(images [B,3,H,W], st_context [B,16]) -> {aspect: class probabilities [B, n_classes]}.

    ``condition`` says what shifts the prompt words: ``"st"`` the ST context (ST-CLIP), ``"image"``
    the image embedding (the CoCoOp baseline) or ``"none"`` (CoOp). ``st_residual`` (with ``"st"`` or
    ``"none"``) adds a per-class logit from the ST context. ``low_level`` adds the pooled middle-layer ViT tokens
    to the image embedding (ST-CLIP's bi-level visual side; a ViT backbone only). The baselines are
    this class with those options changed, so every method trains and runs the same way.
    """

    prompt_ids: torch.Tensor
    aspect_of_prompt: torch.Tensor

    def __init__(
        self,
        clip: CLIP,
        arch: str,
        image_cfg: ImageCfg,
        n_ctx: int = 4,
        ctx_dim: int = 64,
        condition: str = "st",
        low_level: bool = False,
        st_residual: bool = False,
    ) -> None:
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, not {condition!r}")
        if st_residual and condition == "image":
            raise ValueError("st_residual needs condition 'st' or 'none' (it maps the ST context to logits)")
        vit = isinstance(clip.visual, VisionTransformer)
        if low_level and not vit:
            raise ValueError(f"{arch}: low-level tokens need a ViT image tower")
        # st_residual is left out of the options when off, so checkpoints saved before it existed stay equal.
        extra = {"st_residual": True} if st_residual else {}
        options = {"n_ctx": n_ctx, "ctx_dim": ctx_dim, "condition": condition, "low_level": low_level, **extra}
        super().__init__(clip, arch, image_cfg, **options)
        self.clip = clip.requires_grad_(False)  # frozen backbone: only prompts and adapters learn
        width = clip.token_embedding.embedding_dim
        proj = clip.text_projection  # the joint embedding's width, whatever the image tower
        embed_dim = proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1]
        self.n_ctx = n_ctx
        self.condition = condition
        self.layer = middle_layer(clip.visual) if vit else None

        # One prompt per (aspect, class), all aspects in one text batch; "X" words are placeholders
        # whose embeddings are replaced by the learned context (position 0 is start-of-text).
        names = [(a, c) for a, classes in ASPECTS.items() for c in classes]
        prefix = " ".join(["X"] * n_ctx)
        ids = trim_prompts(clip, tokenize(arch, [f"{prefix} {ASPECT_PHRASES[a][c]}." for a, c in names]))
        self.register_buffer("prompt_ids", ids, persistent=False)
        aspect_of_prompt = [list(ASPECTS).index(a) for a, _ in names]
        self.register_buffer("aspect_of_prompt", torch.tensor(aspect_of_prompt), persistent=False)

        self.prompt_ctx = nn.Parameter(torch.randn(len(ASPECTS), n_ctx, width) * 0.02)  # CoOp init
        self.st_encoder = STContextEncoder(ctx_dim) if condition == "st" or st_residual else None
        if condition == "none":
            self.meta_net = None
        else:
            source = ctx_dim if condition == "st" else embed_dim
            nets = []
            for _ in ASPECTS:
                hidden, out = nn.Linear(source, source // 2), nn.Linear(source // 2, width)
                # Zero-init output: a conditional learner starts exactly as CoOp and learns only the shift
                # the shots support (random init put the prompts off CoOp's and cost F1 on the val split).
                nn.init.zeros_(out.weight)
                nn.init.zeros_(out.bias)
                nets.append(nn.Sequential(hidden, nn.ReLU(), out))
            self.meta_net = nn.ModuleList(nets)
        self.st_residual: nn.Linear | None = None
        if st_residual:
            self.st_residual = nn.Linear(ctx_dim, len(names))
            # Zero-init, as the meta-net: an untrained residual leaves the prompts' logits as they are.
            nn.init.zeros_(self.st_residual.weight)
            nn.init.zeros_(self.st_residual.bias)

        self.low_level: nn.Sequential | None = None
        if low_level:
            grid_width = clip.visual.transformer.width
            low_level_proj = nn.Linear(grid_width, embed_dim)
            # Zero-init: an untrained adapter leaves CLIP's image embedding (and its zero-shot alignment) intact.
            nn.init.zeros_(low_level_proj.weight)
            nn.init.zeros_(low_level_proj.bias)
            self.low_level = nn.Sequential(nn.LayerNorm(grid_width), low_level_proj)

    def class_embeddings(self, condition: torch.Tensor | None) -> torch.Tensor:
        """Normalised class embeddings [B, n_prompts, embed_dim].

        ``condition`` is the ST context [B, 16] or the image embedding [B, embed_dim] (per
        ``self.condition``); without conditioning the class embeddings are shared ([1, ...]).
        """
        prompt_ctx = self.prompt_ctx[None]  # [1, n_aspects, n_ctx, width]
        if self.meta_net is not None:
            assert condition is not None
            source = self.st_encoder(condition) if self.st_encoder is not None else condition
            shift = torch.stack([net(source) for net in self.meta_net], dim=1)  # [B, n_aspects, width]
            prompt_ctx = prompt_ctx + shift[:, :, None]
        prompt_ctx = prompt_ctx[:, self.aspect_of_prompt]  # [B or 1, n_prompts, n_ctx, width]

        rows, n_prompts = prompt_ctx.shape[:2]
        words = self.clip.token_embedding(self.prompt_ids).expand(rows, -1, -1, -1)
        embeds = torch.cat([words[:, :, :1], prompt_ctx, words[:, :, 1 + self.n_ctx :]], dim=2)
        ids = self.prompt_ids.repeat(rows, 1)
        feats = encode_text_embeds(self.clip, embeds.flatten(0, 1), ids)
        return F.normalize(feats, dim=-1).view(rows, n_prompts, -1)

    @torch.no_grad()
    def frozen_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the frozen CLIP gives for ``images``: normalised image embedding, pooled middle-layer tokens
        (none, [B, 0], on a tower that is not a ViT)."""
        if self.layer is None:
            return F.normalize(self.clip.encode_image(images), dim=-1), images.new_zeros(images.shape[0], 0)
        image_emb, tokens = encode_image_tokens(self.clip.visual, images, self.layer)
        return F.normalize(image_emb, dim=-1), tokens.mean(dim=1)

    def aspect_logits(self, image_emb: torch.Tensor, low: torch.Tensor, st_context: torch.Tensor) -> torch.Tensor:
        """Logits over all (aspect, class) prompts [B, n_prompts] from the frozen features of a batch."""
        image = image_emb if self.low_level is None else F.normalize(image_emb + self.low_level(low), dim=-1)
        condition = st_context if self.condition == "st" else image_emb if self.condition == "image" else None
        classes = self.class_embeddings(condition)
        logits = self.clip.logit_scale.exp() * torch.einsum("bd,bkd->bk", image, classes.expand(image.shape[0], -1, -1))
        if self.st_residual is not None:
            assert self.st_encoder is not None
            logits = logits + self.st_residual(self.st_encoder(st_context))
        return logits

    def forward(self, images: torch.Tensor, st_context: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.aspect_logits(*self.frozen_features(images), st_context)
        out: dict[str, torch.Tensor] = {}
        start = 0
        for aspect, names in ASPECTS.items():
            out[aspect] = logits[:, start : start + len(names)].softmax(dim=-1)
            start += len(names)
        return out
