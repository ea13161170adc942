"""What the served models promise: output shapes and ranges, checkpoints, and image decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import MissingCheckpoint
from models.checkpoints import SHIPPED_DIR, build_model, init_untrained, load_checkpoint, save_checkpoint
from models.clip_backbone import ClipModel, create_clip
from models.preprocess import decode_jpeg, to_tensor_batch
from models.scene_graph import SceneGraphModel
from models.st_clip import STClip
from models.vocab import (
    ASPECTS,
    INTERFACE_VERSION,
    NORMAL_PROMPTS,
    NUM_QUERIES,
    NUM_TRIPLETS,
    OBJECT_CLASSES,
    PREDICATES,
    RELATION_PROMPTS,
    ST_CONTEXT_DIM,
)

torch.set_num_threads(2)
BATCH = 3


def jpeg(seed: int, size: tuple[int, int] = (160, 90)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def images_for(model: ClipModel, n: int = BATCH) -> torch.Tensor:
    cfg = model.image_cfg
    return to_tensor_batch([jpeg(i) for i in range(n)], cfg.size, cfg.mean, cfg.std)


def st_context(n: int = BATCH, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, ST_CONTEXT_DIM, generator=torch.Generator().manual_seed(seed))


def outputs(model: ClipModel) -> list[torch.Tensor]:
    """Every output of ``model`` on the standard test batch, flattened to a list."""
    images = images_for(model)
    with torch.inference_mode():
        if isinstance(model, STClip):
            return list(model(images, st_context()).values())
        out = model(images)
    return list(out.values()) if isinstance(out, dict) else list(out)


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("checkpoints")
    init_untrained(directory, seed=0)
    return directory


def test_untrained_checkpoints_are_written_for_every_served_model(checkpoint_dir) -> None:
    names = ["base_clip.pt", "sa_clip.pt", "scene_graph.pt", "st_clip.pt"]
    assert sorted(p.name for p in checkpoint_dir.iterdir()) == names
    for path in checkpoint_dir.iterdir():
        assert load_checkpoint(path).meta == {"trained": False, "seed": 0, "interface_version": INTERFACE_VERSION}


def test_st_clip_gives_a_probability_vector_per_aspect(checkpoint_dir) -> None:
    model = load_checkpoint(checkpoint_dir / "st_clip.pt")
    with torch.inference_mode():
        probs = model(images_for(model), st_context())
    assert list(probs) == list(ASPECTS)
    for aspect, classes in ASPECTS.items():
        assert probs[aspect].shape == (BATCH, len(classes))
        assert (probs[aspect] >= 0).all()
        torch.testing.assert_close(probs[aspect].sum(dim=1), torch.ones(BATCH))


def test_the_shipped_st_clip_prompts_depend_on_the_st_context() -> None:
    # Untrained, ST-CLIP is CoOp (its meta-nets start at zero); trained, the context moves its prompts.
    model = load_checkpoint(SHIPPED_DIR / "st_clip.pt")
    images = images_for(model)
    with torch.inference_mode():
        a = model(images, st_context(seed=0))
        b = model(images, st_context(seed=1))
    assert not torch.allclose(a["scene_type"], b["scene_type"])


def test_sa_clip_anomaly_score_is_the_mass_on_anomalous_prompts(checkpoint_dir) -> None:
    model = load_checkpoint(checkpoint_dir / "sa_clip.pt")
    with torch.inference_mode():
        anomaly, relations = model(images_for(model))
    assert anomaly.shape == (BATCH,)
    assert relations.shape == (BATCH, len(RELATION_PROMPTS))
    torch.testing.assert_close(relations.sum(dim=1), torch.ones(BATCH))
    torch.testing.assert_close(anomaly, relations[:, len(NORMAL_PROMPTS) :].sum(dim=1))
    assert ((anomaly >= 0) & (anomaly <= 1)).all()


def test_sa_clip_scoring_against_the_normals_is_not_split_between_anomalies_alike(checkpoint_dir, tmp_path) -> None:
    """An image that fits two anomaly prompts equally scores high on both, not half on each; an image that fits
    a normal prompt scores low on every anomaly; and the scoring travels with the checkpoint."""
    model = build_model("sa_clip", scoring="normals").eval()
    prompts = torch.nn.functional.normalize(torch.randn(len(RELATION_PROMPTS), 8), dim=-1)
    model.prompt_embeddings = lambda: prompts  # type: ignore[method-assign]
    n = len(NORMAL_PROMPTS)
    both = torch.nn.functional.normalize(prompts[n] + prompts[n + 1], dim=-1)
    with torch.no_grad():
        anomaly, relations = model.scores(torch.stack([both, prompts[0]]))
    assert relations[0, n] > 0.5 and relations[0, n + 1] > 0.5
    assert anomaly[1] < 0.2 and (relations[1, n:] < 0.2).all()
    torch.testing.assert_close(relations[:, :n].sum(dim=1), torch.ones(2))
    torch.testing.assert_close(anomaly, relations[:, n:].max(dim=1).values)
    path = save_checkpoint(model, "sa_clip", tmp_path / "sa_clip.pt", {"trained": False, "seed": 0})
    assert load_checkpoint(path).scoring == "normals"
    with pytest.raises(ValueError, match="unknown SA-CLIP scoring"):
        build_model("sa_clip", scoring="vote")


def test_sa_clip_cached_prompts_follow_newly_loaded_weights(checkpoint_dir) -> None:
    model = load_checkpoint(checkpoint_dir / "sa_clip.pt")
    outputs(model)  # fills the prompt cache
    torch.manual_seed(1)
    other = build_model("sa_clip").eval()
    model.load_state_dict(other.state_dict())
    for mine, theirs in zip(outputs(model), outputs(other), strict=True):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("use_vlm", [True, False])
def test_scene_graph_outputs_objects_and_relation_triplets(checkpoint_dir, use_vlm: bool) -> None:
    if use_vlm:
        model = load_checkpoint(checkpoint_dir / "scene_graph.pt")
    else:  # the ablation baseline
        model = build_model("scene_graph", use_vlm=False).eval()
    with torch.inference_mode():
        raw = model(images_for(model))
        out = SceneGraphModel.postprocess(raw)
    assert raw["class_logits"].shape == (BATCH, NUM_QUERIES, len(OBJECT_CLASSES) + 1)
    boxes = out["boxes"]
    assert boxes.shape == (BATCH, NUM_QUERIES, 4)
    assert ((boxes >= 0) & (boxes <= 1)).all()
    assert (boxes[..., :2] <= boxes[..., 2:]).all()
    assert out["class_ids"].dtype == torch.int32 and out["class_ids"].shape == (BATCH, NUM_QUERIES)
    assert ((out["class_ids"] >= 0) & (out["class_ids"] < len(OBJECT_CLASSES))).all()
    assert ((out["class_scores"] > 0) & (out["class_scores"] <= 1)).all()

    triplets, scores = out["triplets"], out["triplet_scores"]
    assert triplets.dtype == torch.int32 and triplets.shape == (BATCH, NUM_TRIPLETS, 3)
    subject, predicate, obj = triplets.unbind(-1)
    assert (subject != obj).all()
    assert ((subject >= 0) & (subject < NUM_QUERIES) & (obj >= 0) & (obj < NUM_QUERIES)).all()
    assert ((predicate >= 0) & (predicate < len(PREDICATES))).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    assert out["facing"].shape == (BATCH, NUM_QUERIES)
    assert ((out["facing"] >= 0) & (out["facing"] <= 1)).all()


def test_scene_graph_triplet_score_combines_objects_and_predicate() -> None:
    q, p = NUM_QUERIES, len(PREDICATES)
    class_logits = torch.zeros(1, q, len(OBJECT_CLASSES) + 1)
    predicate_logits = torch.full((1, q, q, p), -10.0)
    predicate_logits[0, 2, 5, 3] = 10.0  # query 2 "following" query 5
    predicate_logits[0, 4, 4, 0] = 20.0  # a self-pair: never a triplet, however likely
    out = SceneGraphModel.postprocess(
        {
            "boxes": torch.zeros(1, q, 4),
            "class_logits": class_logits,
            "predicate_logits": predicate_logits,
            "facing_logits": torch.zeros(1, q),
        }
    )
    assert out["triplets"][0, 0].tolist() == [2, 3, 5]
    object_score = 1 / (len(OBJECT_CLASSES) + 1)  # uniform class logits
    expected = object_score**2 * torch.sigmoid(torch.tensor(10.0))
    torch.testing.assert_close(out["triplet_scores"][0, 0], expected)


def test_same_seed_gives_identical_models(checkpoint_dir, tmp_path) -> None:
    init_untrained(tmp_path, seed=0)
    for name in ("st_clip", "sa_clip", "scene_graph"):
        first = outputs(load_checkpoint(checkpoint_dir / f"{name}.pt"))
        second = outputs(load_checkpoint(tmp_path / f"{name}.pt"))
        for a, b in zip(first, second, strict=True):
            assert torch.equal(a, b), name


def test_checkpoint_round_trip_keeps_outputs_and_meta(checkpoint_dir, tmp_path) -> None:
    model = load_checkpoint(checkpoint_dir / "sa_clip.pt")
    path = save_checkpoint(model, "sa_clip", tmp_path / "copy.pt", {"trained": True, "seed": 7, "note": "x"})
    copy = load_checkpoint(path)
    assert copy.meta == {"trained": True, "seed": 7, "note": "x", "interface_version": INTERFACE_VERSION}
    assert copy.image_cfg == model.image_cfg and copy.arch == model.arch
    for a, b in zip(outputs(model), outputs(copy), strict=True):
        assert torch.equal(a, b)


def test_float16_checkpoint_is_half_the_size_and_leaves_out_untrained_words(checkpoint_dir, tmp_path) -> None:
    model = load_checkpoint(checkpoint_dir / "sa_clip.pt")
    with torch.no_grad():
        model.clip.token_embedding.weight[100:] = 0.0  # words a training corpus never used
    full = save_checkpoint(model, "sa_clip", tmp_path / "full.pt", {"trained": True, "seed": 0})
    half = save_checkpoint(model, "sa_clip", tmp_path / "half.pt", {"trained": True, "seed": 0}, half=True)
    words = model.clip.token_embedding.weight.numel() * 4  # bytes of the dense float32 embedding
    assert full.stat().st_size < words  # zero rows are not stored
    assert half.stat().st_size < 0.51 * full.stat().st_size
    copy = load_checkpoint(half)
    assert torch.equal(copy.clip.token_embedding.weight[100:], model.clip.token_embedding.weight[100:])
    for a, b in zip(outputs(model), outputs(copy), strict=True):
        torch.testing.assert_close(a, b, atol=2e-2, rtol=0)


def test_st_clip_checkpoint_holds_only_adapters_and_checks_its_backbone(checkpoint_dir, tmp_path) -> None:
    st = load_checkpoint(checkpoint_dir / "st_clip.pt")
    assert not any(k.startswith("clip.") for k in torch.load(checkpoint_dir / "st_clip.pt")["state_dict"])
    backbone = tmp_path / "base_clip.pt"
    backbone.write_bytes((checkpoint_dir / "base_clip.pt").read_bytes())
    path = save_checkpoint(st, "st_clip", tmp_path / "st_clip.pt", {"trained": True, "seed": 0}, backbone=backbone)
    for a, b in zip(outputs(st), outputs(load_checkpoint(path)), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="needs the backbone"):
        save_checkpoint(st, "st_clip", tmp_path / "x.pt", {"trained": True, "seed": 0})
    torch.manual_seed(9)
    save_checkpoint(build_model("clip"), "clip", backbone, {"trained": True, "seed": 9})
    with pytest.raises(ValueError, match="not the backbone"):
        load_checkpoint(path)
    backbone.unlink()
    with pytest.raises(MissingCheckpoint, match="needs its CLIP backbone"):
        load_checkpoint(path)


@pytest.mark.parametrize("condition", ["none", "image", "st"])
def test_baselines_are_st_clip_with_other_prompt_conditioning(checkpoint_dir, condition: str) -> None:
    base = load_checkpoint(checkpoint_dir / "base_clip.pt")
    torch.manual_seed(0)
    model = STClip(base.clip, base.arch, base.image_cfg, condition=condition, low_level=False).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.5)  # trained-looking adapters, so conditioning shows
    image, low = model.frozen_features(images_for(model))
    st = st_context()
    same = model.aspect_logits(image, low, st)
    other_st = model.aspect_logits(image, low, st_context(seed=1))
    assert torch.equal(same, other_st) == (condition != "st")
    # CoOp's class embeddings are shared by all images; CoCoOp's depend on the image.
    classes = model.class_embeddings(image if condition == "image" else st if condition == "st" else None)
    assert classes.shape[0] == (1 if condition == "none" else BATCH)


@pytest.mark.parametrize("condition, residual", [("image", False), ("st", False), ("st", True), ("none", True)])
def test_an_untrained_conditional_prompt_learner_starts_as_coop(checkpoint_dir, condition: str, residual: bool) -> None:
    base = load_checkpoint(checkpoint_dir / "base_clip.pt")
    torch.manual_seed(0)
    coop = STClip(base.clip, base.arch, base.image_cfg, condition="none").eval()
    torch.manual_seed(0)
    conditional = STClip(base.clip, base.arch, base.image_cfg, condition=condition, st_residual=residual).eval()
    image, low = coop.frozen_features(images_for(coop))
    with torch.no_grad():
        expected = coop.aspect_logits(image, low, st_context())
        assert torch.allclose(conditional.aspect_logits(image, low, st_context()), expected, atol=1e-5)


@pytest.mark.parametrize("condition", ["st", "none"])
def test_the_st_residual_moves_classes_of_one_aspect_apart_and_is_saved(checkpoint_dir, tmp_path, condition) -> None:
    """The prompt shift is one for all classes of an aspect; the residual gives each class a logit of its own."""
    base = load_checkpoint(checkpoint_dir / "base_clip.pt")
    model = STClip(base.clip, base.arch, base.image_cfg, condition=condition, st_residual=True).eval()
    assert model.st_residual is not None
    with torch.no_grad():
        model.st_residual.weight.normal_()
        image, low = model.frozen_features(images_for(model))
        moved = model.aspect_logits(image, low, st_context()) - model.aspect_logits(image, low, st_context(seed=1))
    width = len(ASPECTS["scene_type"])
    assert moved[:, :width].std(dim=1).min() > 0  # not one shift for the whole aspect
    backbone = tmp_path / "base_clip.pt"
    backbone.write_bytes((checkpoint_dir / "base_clip.pt").read_bytes())
    path = save_checkpoint(model, "st_clip", tmp_path / "st_clip.pt", {"trained": False, "seed": 0}, backbone=backbone)
    loaded = load_checkpoint(path)
    assert loaded.st_residual is not None and loaded.condition == condition
    # With the residual alone the prompts are CoOp's: one text batch serves every frame.
    prompt_batches = model.class_embeddings(None if condition == "none" else st_context()).shape[0]
    assert (prompt_batches == 1) == (condition == "none")
    with pytest.raises(ValueError, match="st_residual needs"):
        STClip(base.clip, base.arch, base.image_cfg, condition="image", st_residual=True)


def test_st_clip_on_a_pretrained_tower_reads_the_image_embedding_only() -> None:
    clip, cfg = create_clip("fleetscope-efficientnet-lite0-128", imagenet=False)
    model = STClip(clip, "fleetscope-efficientnet-lite0-128", cfg, condition="st", st_residual=True).eval()
    image, low = model.frozen_features(images_for(model))
    assert image.shape == (BATCH, 128) and low.shape == (BATCH, 0)  # the config's embed_dim
    assert set(model(images_for(model), st_context())) == set(ASPECTS)
    with pytest.raises(ValueError, match="need a ViT"):
        STClip(clip, "fleetscope-efficientnet-lite0-128", cfg, low_level=True)


def test_checkpoint_refuses_a_model_of_another_kind(checkpoint_dir, tmp_path) -> None:
    model = load_checkpoint(checkpoint_dir / "st_clip.pt")
    with pytest.raises(ValueError, match="cannot be saved as 'sa_clip'"):
        save_checkpoint(model, "sa_clip", tmp_path / "x.pt", {"trained": False, "seed": 0})


def test_missing_checkpoint_names_the_path_and_how_to_create_it(tmp_path) -> None:
    path = tmp_path / "nowhere" / "st_clip.pt"
    with pytest.raises(MissingCheckpoint) as exc:
        load_checkpoint(path)
    assert str(path) in str(exc.value)
    assert "python -m models.checkpoints init" in str(exc.value)


def test_a_checkpoint_missing_weights_is_refused_unless_they_are_a_head_to_train_next(checkpoint_dir, tmp_path) -> None:
    ckpt = torch.load(checkpoint_dir / "scene_graph.pt", weights_only=True)
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("facing_head.")}
    torch.save(ckpt, tmp_path / "older.pt")
    with pytest.raises(ValueError, match="lacks weights for .*facing_head"):
        load_checkpoint(tmp_path / "older.pt")
    model = load_checkpoint(tmp_path / "older.pt", untrained_ok=("facing_head.",))
    assert isinstance(model, SceneGraphModel) and model.facing_head.mlp[2].weight.abs().sum() == 0
    ckpt["state_dict"]["surplus.weight"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "newer.pt")
    with pytest.raises(ValueError, match="does not know: .*surplus.weight"):
        load_checkpoint(tmp_path / "newer.pt", untrained_ok=("facing_head.",))


def test_checkpoint_of_another_interface_version_is_refused(checkpoint_dir, tmp_path) -> None:
    ckpt = torch.load(checkpoint_dir / "sa_clip.pt", weights_only=True)
    ckpt["meta"]["interface_version"] = 0
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="interface version 0"):
        load_checkpoint(tmp_path / "old.pt")


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", jpeg(0)[:300], jpeg(0)[: len(jpeg(0)) // 2]],
    ids=["empty", "garbage", "header-only", "truncated"],
)
def test_corrupt_jpeg_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_jpeg(data)


def test_non_jpeg_image_is_refused() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    with pytest.raises(ValueError, match="expected a JPEG, got PNG"):
        decode_jpeg(buf.getvalue())


def test_batch_names_the_image_that_does_not_decode() -> None:
    with pytest.raises(ValueError, match="image 1 of 2"):
        to_tensor_batch([jpeg(0), b"junk"], 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_to_tensor_batch_resizes_the_whole_frame_and_normalises() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (320, 180), (255, 0, 128)).save(buf, format="JPEG", quality=100)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    batch = to_tensor_batch([buf.getvalue()] * 2, 64, mean, std)
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == torch.float32
    expected = (torch.tensor([255, 0, 128]) / 255 - torch.tensor(mean)) / torch.tensor(std)
    torch.testing.assert_close(batch[0].mean(dim=(1, 2)), expected, atol=0.05, rtol=0)


def test_create_clip_loads_a_local_vit_b_32_weights_file(tmp_path) -> None:
    torch.manual_seed(3)
    saved, _ = create_clip("ViT-B-32")
    torch.save(saved.state_dict(), tmp_path / "vit-b-32.pt")
    torch.manual_seed(4)  # a different random init, so equality proves the file was loaded
    loaded, image_cfg = create_clip("ViT-B-32", weights=tmp_path / "vit-b-32.pt")
    assert image_cfg.size == 224
    image = to_tensor_batch([jpeg(0)], image_cfg.size, image_cfg.mean, image_cfg.std)
    with torch.inference_mode():
        assert torch.equal(saved.eval().encode_image(image), loaded.eval().encode_image(image))
    # The fleetscope models build on it unchanged (ST-CLIP reads its middle ViT tokens).
    st = STClip(loaded, "ViT-B-32", image_cfg)
    sa = build_model("sa_clip", "ViT-B-32", weights=tmp_path / "vit-b-32.pt")
    with torch.inference_mode():
        aspects = st(image, st_context(1))
        score, _ = sa(image)
    assert set(aspects) == set(ASPECTS) and 0.0 <= float(score) <= 1.0


def test_init_writes_only_missing_checkpoints_and_keeps_a_trained_one(tmp_path) -> None:
    torch.manual_seed(1)
    trained = tmp_path / "sa_clip.pt"
    save_checkpoint(build_model("sa_clip"), "sa_clip", trained, {"trained": True, "seed": 1})
    written = init_untrained(tmp_path, seed=0)
    assert sorted(p.name for p in written) == ["base_clip.pt", "scene_graph.pt", "st_clip.pt"]
    assert load_checkpoint(trained).meta["trained"] is True
    assert len(init_untrained(tmp_path, seed=0, overwrite=True)) == 4
    assert load_checkpoint(trained).meta["trained"] is False
