"""A checkpoint's forward pass run by ONNX Runtime instead of eager torch (Triton's ``runtime`` choice).

The module is exported at load time (TorchScript-based exporter, dynamic batch), so the checkpoint
stays the one artefact that is trained, shipped and checksummed; ``OnnxForward`` returns what the
module returns (a tensor, a tuple or a dict of tensors), so the serving code is the same for both
runtimes. Measured side by side with eager torch in docs/benchmarks.md.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

OPSET = 17


class OnnxForward:
    """``module(*inputs)`` computed by an ONNX Runtime session on CPU, with ``threads`` intra-op threads."""

    def __init__(self, module: nn.Module, example: tuple[torch.Tensor, ...], threads: int = 1) -> None:
        module = module.eval()
        with torch.inference_mode():
            reference = module(*example)
        if isinstance(reference, dict):
            self._keys: list[str] | None = list(reference)
            self._kind = "dict"
        elif isinstance(reference, tuple):
            self._keys, self._kind = None, "tuple"
        else:
            self._keys, self._kind = None, "tensor"
        self.input_names = [f"input_{i}" for i in range(len(example))]
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            path = Path(tmp) / "model.onnx"
            warnings.simplefilter("ignore")  # the exporter's notes on traced control flow and its own deprecation
            torch.onnx.export(
                module,
                example,
                path,
                input_names=self.input_names,
                dynamic_axes={name: {0: "batch"} for name in self.input_names},
                opset_version=OPSET,
                dynamo=False,
            )
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, *inputs: torch.Tensor) -> Any:
        arrays = (np.ascontiguousarray(x.detach().numpy()) for x in inputs)
        feed = dict(zip(self.input_names, arrays, strict=True))
        outputs = [torch.from_numpy(o) for o in self.session.run(None, feed)]
        if self._kind == "dict":
            assert self._keys is not None
            return dict(zip(self._keys, outputs, strict=True))
        return tuple(outputs) if self._kind == "tuple" else outputs[0]
