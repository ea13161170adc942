"""SA-CLIP: CLIP fine-tuned for spatial and action relations, used for zero-shot anomaly scoring.

Each frame is matched against ``vocab.RELATION_PROMPTS`` (normal relations first, then one anomalous
relation per anomaly type); the anomaly score is the probability mass on the anomalous prompts.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from models.clip_backbone import CLIP, ClipModel, ImageCfg, tokenize
from models.vocab import NORMAL_PROMPTS, RELATION_PROMPTS


class SAClip(ClipModel):
    """forward(images [B,3,H,W]) -> (anomaly_score [B], relation_scores [B, len(RELATION_PROMPTS)])."""

    prompt_ids: torch.Tensor

    def __init__(self, clip: CLIP, arch: str, image_cfg: ImageCfg) -> None:
        super().__init__(clip, arch, image_cfg)
        self.clip = clip  # the whole CLIP is fine-tuned
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
        logits = self.clip.logit_scale.exp() * image @ self.prompt_embeddings().T
        relation_scores = logits.softmax(dim=-1)
        anomaly_score = relation_scores[:, self.n_normal :].sum(dim=-1)
        return anomaly_score, relation_scores
