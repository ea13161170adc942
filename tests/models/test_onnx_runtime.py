"""The ONNX Runtime twin of each shipped model answers as the model does in torch, at any batch size
(the export is traced at batch 2; a size read as a Python number there would fix it to 2)."""

from __future__ import annotations

import pytest
import torch

from models.checkpoints import SHIPPED_DIR, load_checkpoint
from models.onnx_runtime import OnnxForward
from models.scene_graph import SceneGraphModel
from models.st_clip import STClip
from models.vocab import ST_CONTEXT_DIM


def inputs(model, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    size = model.image_cfg.size
    images = torch.rand(batch, 3, size, size, generator=g)
    return (images, torch.rand(batch, ST_CONTEXT_DIM, generator=g)) if isinstance(model, STClip) else (images,)


def flat(outputs) -> dict[str, torch.Tensor]:
    if isinstance(outputs, dict):
        return outputs
    return {str(i): o for i, o in enumerate(outputs)}


@pytest.mark.parametrize("name", ["st_clip", "sa_clip", "scene_graph"])
def test_the_onnx_runtime_twin_gives_the_torch_outputs_at_batch_sizes_it_was_not_traced_at(name):
    model = load_checkpoint(SHIPPED_DIR / f"{name}.pt").eval()
    twin = OnnxForward(model, inputs(model, 2, seed=0))
    for batch in (1, 5):
        x = inputs(model, batch, seed=batch)
        with torch.inference_mode():
            expected = model(*x)
        got = twin(*x)
        if name == "scene_graph":  # what is served: objects and triplets after postprocessing
            expected, got = SceneGraphModel.postprocess(expected), SceneGraphModel.postprocess(got)
        expected, got = flat(expected), flat(got)
        for key, value in expected.items():
            assert got[key].shape == value.shape and got[key].dtype == value.dtype, key
            torch.testing.assert_close(got[key], value, atol=1e-4, rtol=1e-4, msg=key)


def test_a_model_whose_outputs_the_export_cannot_name_is_refused_at_load():
    class ReturnsAList(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [x + 1, x * 2]

    with pytest.raises(TypeError, match="returns list"):
        OnnxForward(ReturnsAList(), (torch.zeros(2, 3),))
