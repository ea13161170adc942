"""SA-CLIP: CLIP fine-tuned for spatial and action relations, used for zero-shot anomaly scoring.

Each frame is matched against ``vocab.RELATION_PROMPTS`` (normal relations first, then one anomalous
relation per anomaly type). Two ways to turn the matches into scores, fixed per checkpoint:

- ``softmax`` (the from-scratch ViT SA-CLIP): one softmax over every prompt; the anomaly score is the
  probability mass on the anomalous prompts.
- ``normals`` (SA-CLIP on a pretrained tower): each anomaly prompt against the normal prompts alone (a
  softmax over them and it), never against the other anomalies, so that anomalies alike in words
  (a crash and a stopped car) do not split one score between them and a type never trained on does
  not compete with the trained ones; each normal prompt is one anomaly's normal counterpart (the same
  sentence without the anomalous fact), and "the road ahead is clear" keeps a frame with nothing in
  our path low on every type. The anomaly score is the highest of them; the normal prompts' scores
  are a softmax over the normal prompts (which normal relation the frame shows).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.nn import functional as F

from models.clip_backbone import CLIP, ClipModel, ImageCfg, tokenize
from models.vocab import NORMAL_PROMPTS, RELATION_PROMPTS

Scoring = Literal["softmax", "normals"]
SCORINGS: tuple[Scoring, ...] = ("softmax", "normals")


class SAClip(ClipModel):
    """forward(images [B,3,H,W]) -> (anomaly_score [B], relation_scores [B, len(RELATION_PROMPTS)])."""

    prompt_ids: torch.Tensor

    def __init__(self, clip: CLIP, arch: str, image_cfg: ImageCfg, scoring: Scoring = "softmax") -> None:
        if scoring not in SCORINGS:
            raise ValueError(f"unknown SA-CLIP scoring {scoring!r}; known: {', '.join(SCORINGS)}")
        # The default is left out of the options, so checkpoints saved before scoring existed stay equal.
        super().__init__(clip, arch, image_cfg, **({} if scoring == "softmax" else {"scoring": scoring}))
        self.clip = clip  # the whole CLIP is fine-tuned (or, on a pretrained tower, its top)
        self.scoring = scoring
        self.n_normal = len(NORMAL_PROMPTS)
        self.register_buffer("prompt_ids", tokenize(arch, RELATION_PROMPTS), persistent=False)
        self._prompt_cache: torch.Tensor | None = None
        # New weights make cached prompt embeddings stale.
        self.register_load_state_dict_post_hook(lambda module, _keys: module._drop_cache())

    def _drop_cache(self) -> None:
        self._prompt_cache = None

    def train(self, mode: bool = True) -> SAClip:
        self._drop_cache()
        return super().train(mode)

    def prompt_embeddings(self) -> torch.Tensor:
        """Normalised text embeddings of the relation prompts [n_prompts, embed_dim].

        In eval mode the prompts and weights are fixed, so they are encoded once and reused.
        """
        if self.training:
            return F.normalize(self.clip.encode_text(self.prompt_ids), dim=-1)
        cache = self._prompt_cache
        # A tensor made under inference_mode cannot join autograd later; re-encode in that case.
        if cache is None or (cache.is_inference() and not torch.is_inference_mode_enabled()):
            with torch.no_grad():
                cache = F.normalize(self.clip.encode_text(self.prompt_ids), dim=-1)
            self._prompt_cache = cache
        return cache

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = F.normalize(self.clip.encode_image(images), dim=-1)
        return self.scores(image)

    def scores(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(anomaly_score [B], relation_scores [B, n_prompts]) of normalised image embeddings [B, embed_dim]."""
        logits = self.clip.logit_scale.exp() * image @ self.prompt_embeddings().T
        if self.scoring == "softmax":
            relation_scores = logits.softmax(dim=-1)
            return relation_scores[:, self.n_normal :].sum(dim=-1), relation_scores
        normal, anomalous = logits[:, : self.n_normal], logits[:, self.n_normal :]
        # softmax over (normal prompts, one anomaly prompt), the anomaly's share: sigmoid(s_a - logsumexp(s_n))
        against = torch.sigmoid(anomalous - normal.logsumexp(dim=-1, keepdim=True))
        return against.max(dim=-1).values, torch.cat([normal.softmax(dim=-1), against], dim=-1)
