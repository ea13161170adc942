"""Triton python backend of ST-CLIP; interface in triton_repo/README.md."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models.triton_backend import TorchModel, input_array
from models.vocab import ASPECTS, ST_CONTEXT_DIM

ST_INPUT = "ST_CONTEXT"


class TritonPythonModel(TorchModel):
    def example_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return images, torch.zeros(len(images), ST_CONTEXT_DIM)

    def check(self, request: Any) -> None:
        if not np.isfinite(input_array(request, ST_INPUT)).all():
            raise ValueError(f"{ST_INPUT} has NaN or infinite values")

    def infer(self, images: torch.Tensor, requests: list[Any]) -> dict[str, torch.Tensor]:
        st_context = torch.from_numpy(np.concatenate([input_array(r, ST_INPUT) for r in requests]))
        probs = self.forward(images, st_context)
        return {f"ASPECT_{aspect.upper()}": probs[aspect] for aspect in ASPECTS}
