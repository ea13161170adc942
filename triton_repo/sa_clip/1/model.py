"""Triton python backend of SA-CLIP; interface in triton_repo/README.md."""

from __future__ import annotations

from typing import Any

import torch

from models.triton_backend import TorchModel


class TritonPythonModel(TorchModel):
    def infer(self, images: torch.Tensor, requests: list[Any]) -> dict[str, torch.Tensor]:
        anomaly_score, relation_scores = self.forward(images)
        return {"ANOMALY_SCORE": anomaly_score[:, None], "RELATION_SCORES": relation_scores}
