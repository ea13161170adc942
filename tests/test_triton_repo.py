"""Every ``triton_repo/*/config.pbtxt`` declares the tensors that ``models/vocab.py`` implies.

The configs' dims are written by hand; these tests parse them with Triton's own protobuf schema, so
a vocabulary change that forgets a config (or a config edit that forgets the worker) fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from models.vocab import ASPECTS, NUM_QUERIES, NUM_TRIPLETS, RELATION_PROMPTS, ST_CONTEXT_DIM
from streams.inference.triton_client import SA_CLIP_OUTPUTS, SCENE_GRAPH_OUTPUTS, ST_CLIP_OUTPUTS

REPO = Path(__file__).resolve().parents[1] / "triton_repo"
Tensors = dict[str, tuple[str, list[int]]]  # name -> (data type, dims per image)

IMAGE = {"IMAGE_JPEG": ("TYPE_STRING", [1])}
EXPECTED_INPUTS: dict[str, Tensors] = {
    "st_clip": {**IMAGE, "ST_CONTEXT": ("TYPE_FP32", [ST_CONTEXT_DIM])},
    "sa_clip": IMAGE,
    "scene_graph": IMAGE,
}
EXPECTED_OUTPUTS: dict[str, Tensors] = {
    "st_clip": {f"ASPECT_{aspect.upper()}": ("TYPE_FP32", [len(classes)]) for aspect, classes in ASPECTS.items()},
    "sa_clip": {"ANOMALY_SCORE": ("TYPE_FP32", [1]), "RELATION_SCORES": ("TYPE_FP32", [len(RELATION_PROMPTS)])},
    "scene_graph": {
        "BOXES": ("TYPE_FP32", [NUM_QUERIES, 4]),
        "CLASS_IDS": ("TYPE_INT32", [NUM_QUERIES]),
        "CLASS_SCORES": ("TYPE_FP32", [NUM_QUERIES]),
        "FACING": ("TYPE_FP32", [NUM_QUERIES]),
        "TRIPLETS": ("TYPE_INT32", [NUM_TRIPLETS, 3]),
        "TRIPLET_SCORES": ("TYPE_FP32", [NUM_TRIPLETS]),
    },
}
WORKER_OUTPUTS = {"st_clip": ST_CLIP_OUTPUTS, "sa_clip": SA_CLIP_OUTPUTS, "scene_graph": SCENE_GRAPH_OUTPUTS}


def config(model: str) -> mc.ModelConfig:
    return text_format.Parse((REPO / model / "config.pbtxt").read_text(), mc.ModelConfig())


def tensors(declared) -> Tensors:
    return {t.name: (mc.DataType.Name(t.data_type), list(t.dims)) for t in declared}


def test_the_repository_holds_exactly_the_three_served_models() -> None:
    assert {p.parent.name for p in REPO.glob("*/config.pbtxt")} == set(EXPECTED_OUTPUTS)


@pytest.mark.parametrize("model", sorted(EXPECTED_OUTPUTS))
def test_config_is_named_after_its_folder_and_served_by_its_python_backend(model: str) -> None:
    cfg = config(model)
    assert cfg.name == model
    assert cfg.backend == "python" and (REPO / model / "1" / "model.py").is_file()


@pytest.mark.parametrize("model", sorted(EXPECTED_OUTPUTS))
def test_inputs_have_the_dims_and_types_the_vocabulary_implies(model: str) -> None:
    assert tensors(config(model).input) == EXPECTED_INPUTS[model]


@pytest.mark.parametrize("model", sorted(EXPECTED_OUTPUTS))
def test_outputs_have_the_dims_and_types_the_vocabulary_implies(model: str) -> None:
    assert tensors(config(model).output) == EXPECTED_OUTPUTS[model]


@pytest.mark.parametrize("model", sorted(EXPECTED_OUTPUTS))
def test_the_worker_asks_for_exactly_the_declared_outputs(model: str) -> None:
    assert sorted(WORKER_OUTPUTS[model]) == sorted(tensors(config(model).output))
