"""What the three Triton python-backend models in ``triton_repo/`` share.

Importable only inside Triton's python backend (it needs ``triton_python_backend_utils``). Each
``triton_repo/<name>/1/model.py`` subclasses ``TorchModel`` and writes only ``infer``, calling
``self.forward``: the checkpoint's module, or its ONNX Runtime twin when ``triton.runtime`` says so.

One ``execute`` call runs one forward pass over the images of all its requests: that is what makes
Triton's dynamic batching pay. A request whose input is bad gets an error response; the others in
the same batch are still answered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from core.errors import MissingCheckpoint
from core.settings import get_settings
from models.checkpoints import load_checkpoint
from models.clip_backbone import ClipModel
from models.preprocess import to_tensor_batch

IMAGE_INPUT = "IMAGE_JPEG"


def input_array(request: Any, name: str) -> np.ndarray:
    """The numpy value of input ``name`` of ``request``, batch dimension first."""
    return pb_utils.get_input_tensor_by_name(request, name).as_numpy()


def error_response(message: str) -> Any:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))


class TorchModel:
    """A fleetscope checkpoint served by Triton: loads it once, batches requests, answers each."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        settings = get_settings().triton
        torch.set_num_threads(settings.torch_threads)
        path = settings.checkpoint_dir / config["parameters"]["checkpoint"]["string_value"]
        try:
            model: ClipModel = load_checkpoint(path)
        except MissingCheckpoint as exc:
            raise pb_utils.TritonModelException(str(exc)) from exc
        self.output_dtypes = {
            out["name"]: pb_utils.triton_string_to_numpy(out["data_type"]) for out in config["output"]
        }
        self.image_cfg = model.image_cfg
        self.forward: Callable[..., Any] = model
        if settings.runtime == "onnxruntime":
            from models.onnx_runtime import OnnxForward

            example = self.example_inputs(torch.zeros(2, 3, self.image_cfg.size, self.image_cfg.size))
            # Only the export is kept: the torch module's weights would be a second copy in memory.
            self.forward = OnnxForward(model, example, settings.torch_threads)
        if not model.meta.get("trained"):
            pb_utils.Logger.log_warn(f"{config['name']}: serving the UNTRAINED checkpoint {path}")

    def example_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What ``self.forward`` takes for ``images`` (the ONNX export traces the model on it)."""
        return (images,)

    def check(self, request: Any) -> None:
        """Raise ValueError when a request's inputs other than the images are unusable."""

    def infer(self, images: torch.Tensor, requests: list[Any]) -> dict[str, torch.Tensor]:
        """Outputs (name -> tensor, batch first) for ``images`` [N,3,H,W] of ``requests`` in order."""
        raise NotImplementedError

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        batches, good = [], []
        cfg = self.image_cfg
        for i, request in enumerate(requests):
            try:
                self.check(request)
                jpegs = [bytes(x) for x in input_array(request, IMAGE_INPUT).reshape(-1)]
                batches.append(to_tensor_batch(jpegs, cfg.size, cfg.mean, cfg.std))
            except ValueError as exc:
                responses[i] = error_response(str(exc))
                continue
            good.append(i)
        if good:
            with torch.inference_mode():
                outputs = self.infer(torch.cat(batches), [requests[i] for i in good])
            start = 0
            for i, batch in zip(good, batches, strict=True):
                end = start + len(batch)
                tensors = [
                    pb_utils.Tensor(name, value[start:end].numpy().astype(self.output_dtypes[name]))
                    for name, value in outputs.items()
                ]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start = end
        return responses
