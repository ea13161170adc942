"""Triton python backend of the scene-graph model; interface in triton_repo/README.md."""

from __future__ import annotations

from typing import Any

import torch

from models.scene_graph import SceneGraphModel
from models.triton_backend import TorchModel


class TritonPythonModel(TorchModel):
    def infer(self, images: torch.Tensor, requests: list[Any]) -> dict[str, torch.Tensor]:
        out = SceneGraphModel.postprocess(self.forward(images))
        return {
            "BOXES": out["boxes"],
            "CLASS_IDS": out["class_ids"],
            "CLASS_SCORES": out["class_scores"],
            "FACING": out["facing"],
            "TRIPLETS": out["triplets"],
            "TRIPLET_SCORES": out["triplet_scores"],
        }
