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
        # The export flattens outputs in order; name them, so that results are matched by name, not place.
        if isinstance(reference, dict) and all(isinstance(v, torch.Tensor) for v in reference.values()):
            self._keys: list[str] | None = list(reference)
            self.output_names = list(reference)
        elif isinstance(reference, tuple) and all(isinstance(v, torch.Tensor) for v in reference):
            self._keys, self.output_names = None, [f"output_{i}" for i in range(len(reference))]
        elif isinstance(reference, torch.Tensor):
            self._keys, self.output_names = None, ["output"]
        else:
            raise TypeError(
                f"{type(module).__name__} returns {type(reference).__name__}: export needs a tensor,"
                " a tuple of tensors or a dict of tensors"
            )
        self._single = isinstance(reference, torch.Tensor)
        self.input_names = [f"input_{i}" for i in range(len(example))]
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            path = Path(tmp) / "model.onnx"
            warnings.simplefilter("ignore")  # the exporter's notes on traced control flow and its own deprecation
            torch.onnx.export(
                module,
                example,
                path,
                input_names=self.input_names,
                output_names=self.output_names,
                dynamic_axes={name: {0: "batch"} for name in self.input_names + self.output_names},
                opset_version=OPSET,
                dynamo=False,
            )
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Idle pool threads would otherwise spin, taking CPU from the other models' instances.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        exported = [o.name for o in self.session.get_outputs()]
        if exported != self.output_names:
            raise RuntimeError(f"the export of {type(module).__name__} has outputs {exported}, not {self.output_names}")

    def __call__(self, *inputs: torch.Tensor) -> Any:
        arrays = (np.ascontiguousarray(x.detach().numpy()) for x in inputs)
        feed = dict(zip(self.input_names, arrays, strict=True))
        outputs = [torch.from_numpy(o) for o in self.session.run(self.output_names, feed)]
        if self._keys is not None:
            return dict(zip(self._keys, outputs, strict=True))
        return outputs[0] if self._single else tuple(outputs)
