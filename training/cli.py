"""``fleetscope train``: train the reference checkpoints on the simulator's datasets (synthetic)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.decorators import FC

from core.settings import REPO_ROOT

if TYPE_CHECKING:
    from models.clip_backbone import BaseClip
    from training.dataset import FrameSet

WEIGHTS_DIR = REPO_ROOT / "models" / "weights"


def weights_dir_option(name: str, help: str | None = None, must_exist: bool = False) -> Callable[[FC], FC]:
    """A folder-of-checkpoints option (``--out`` to train into, ``--weights`` to read), models/weights by default."""
    return click.option(
        name,
        type=click.Path(exists=must_exist, file_okay=False, path_type=Path),
        default=WEIGHTS_DIR,
        show_default=True,
        help=help,
    )


def _log(message: str) -> None:
    click.echo(message)
    sys.stdout.flush()  # progress shows up in a log file as it happens


@click.group("train")
def train() -> None:
    """Train fleetscope's models; each command prints its progress and wall time."""


SA_STEPS = {"vit": 400, "pretrained": 2000}  # SA-CLIP steps by backbone: a locked tower's steps are cheap


@train.command("clip")
@weights_dir_option("--out")
@click.option("--seed", default=0, show_default=True, help="seed of initialisation and batch order")
@click.option(
    "--clip-arch",
    default="fleetscope-vit-tiny",
    show_default=True,
    help="open_clip architecture: a ViT is pretrained from scratch, a pretrained tower's (fleetscope-efficientnet-*)"
    " base CLIP is trained by LiT",
)
@click.option(
    "--clip-weights",
    type=click.Path(exists=True, dir_okay=False),
    help="pretrained CLIP weights (a local open_clip state dict): skips base CLIP pretraining",
)
@click.option("--pretrain-steps", default=1500, show_default=True, help="base CLIP steps (batch 64)")
@click.option(
    "--sa-steps",
    type=int,
    help=f"SA-CLIP fine-tuning steps (batch 64) [default: {SA_STEPS['vit']} on a ViT,"
    f" {SA_STEPS['pretrained']} on a pretrained tower]",
)
@click.option("--shots", default=16, show_default=True, type=click.Choice(["1", "2", "4", "8", "16"]))
def train_clip(
    out: Path,
    seed: int,
    clip_arch: str,
    clip_weights: str | None,
    pretrain_steps: int,
    sa_steps: int | None,
    shots: str,
) -> None:
    """Base CLIP, SA-CLIP and ST-CLIP: writes base_clip.pt, sa_clip.pt and st_clip.pt to OUT.

    Base CLIP trains on the simulator corpus (seed 101) with alt-text captions: from scratch on a ViT,
    or by locked-image text tuning (LiT) on an ImageNet-trained tower. SA-CLIP fine-tunes it on
    relation captions with hard negatives, and ST-CLIP learns its prompts on the frozen base CLIP
    from SHOTS frames per class of the benchmark's train split (seed 41). Checkpoints are stored as
    float16.
    """
    import torch

    from models.checkpoints import BACKBONE_FILE, save_checkpoint
    from models.clip_backbone import BaseClip, create_clip, has_pretrained_tower, image_size
    from training.clip_training import lit_clip, pretrain_clip
    from training.dataset import BENCHMARK, CORPUS, ensure_export, load_frames

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.monotonic()
    corpus_root = ensure_export(CORPUS)
    ensure_export(BENCHMARK)
    pretrained = has_pretrained_tower(clip_arch)
    if clip_weights:
        clip, image_cfg = create_clip(clip_arch, clip_weights)
        base = BaseClip(clip, clip_arch, image_cfg).eval()
        corpus = load_frames(corpus_root, image_cfg.size)
        origin = f"pretrained weights {clip_weights}"
    elif pretrained:
        corpus = load_frames(corpus_root, image_size(clip_arch))
        base = lit_clip(corpus, arch=clip_arch, steps=pretrain_steps, seed=seed, log=_log)
        origin = f"LiT on the ImageNet tower, simulator corpus (seed {CORPUS.seed}, {pretrain_steps} steps)"
    else:
        corpus = load_frames(corpus_root, image_size(clip_arch))
        base = pretrain_clip(corpus, arch=clip_arch, steps=pretrain_steps, seed=seed, log=_log)
        origin = f"pretrained from scratch on the simulator corpus (seed {CORPUS.seed}, {pretrain_steps} steps)"
    common = {"seed": seed, "data": "simulator (synthetic)", "clip_arch": clip_arch}
    backbone = save_checkpoint(
        base, "clip", out / BACKBONE_FILE, {**common, "trained": True, "origin": origin}, half=True
    )
    _log(f"wrote {backbone}  ({backbone.stat().st_size / 1e6:.1f} MB)  {time.monotonic() - t0:.0f}s")

    _train_sa_clip(base, corpus, out, sa_steps, origin, common)

    _train_st_clip(base, backbone, out, int(shots), seed, common)
    _log(f"wall time {time.monotonic() - t0:.0f}s (datasets, base CLIP, SA-CLIP, ST-CLIP at {shots} shots)")


@train.command("lit-clip")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/lit-clip"),
    show_default=True,
    help="folder base_clip.pt is written to (not the shipped weights: SA-CLIP and ST-CLIP cannot use it yet)",
)
@click.option("--seed", default=0, show_default=True, help="seed of initialisation, batch order and captions")
@click.option(
    "--clip-arch",
    default="fleetscope-efficientnet-lite0",
    show_default=True,
    help="architecture with a pretrained tower",
)
@click.option("--steps", default=1500, show_default=True, help="steps (batch 64)")
def train_lit_clip(out: Path, seed: int, clip_arch: str, steps: int) -> None:
    """Base CLIP by locked-image text tuning: writes base_clip.pt to OUT (no SA-CLIP or ST-CLIP yet).

    The image tower keeps its ImageNet weights (models/pretrained_tower.py); the text tower and the
    projections learn from the simulator corpus (seed 101) with alt-text captions. The tower's
    features of every corpus frame are computed first (printed as they go), then each step costs
    the text tower only. Compare it with another base CLIP by `fleetscope eval zero-shot`.
    """
    import torch

    from models.checkpoints import BACKBONE_FILE, save_checkpoint
    from models.clip_backbone import image_size
    from training.clip_training import lit_clip
    from training.dataset import CORPUS, ensure_export, load_frames

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.monotonic()
    corpus = load_frames(ensure_export(CORPUS), image_size(clip_arch))
    base = lit_clip(corpus, arch=clip_arch, steps=steps, seed=seed, log=_log)
    origin = f"LiT: locked ImageNet tower, text tuned on the simulator corpus (seed {CORPUS.seed}, {steps} steps)"
    meta = {"seed": seed, "data": "simulator (synthetic)", "clip_arch": clip_arch, "trained": True, "origin": origin}
    path = save_checkpoint(base, "clip", out / BACKBONE_FILE, meta, half=True)
    _log(f"wrote {path}  ({path.stat().st_size / 1e6:.1f} MB)  wall time {time.monotonic() - t0:.0f}s")


@train.command("sa-clip")
@weights_dir_option("--out", "folder with the base CLIP (base_clip.pt); sa_clip.pt is written there")
@click.option("--seed", default=0, show_default=True, help="seed of batch order and caption choice")
@click.option(
    "--steps",
    type=int,
    help=f"fine-tuning steps (batch 64) [default: {SA_STEPS['vit']} on a ViT base, {SA_STEPS['pretrained']} on a"
    " pretrained tower]",
)
@click.option(
    "--unlocked-stages",
    default=1,
    show_default=True,
    help="on a pretrained tower: how many of its last block stages learn (the rest stay as ImageNet left them)",
)
def train_sa_clip(out: Path, seed: int, steps: int | None, unlocked_stages: int) -> None:
    """SA-CLIP alone: fine-tune the base CLIP in OUT on relation captions with hard negatives.

    Reads the simulator corpus (seed 101, exported on first use). On a ViT base the whole CLIP learns
    (about six minutes on an idle machine); on a pretrained tower its last stage and the text side do,
    after the locked part's features of every frame are computed once (printed as they go).
    """
    import torch

    from models.checkpoints import BACKBONE_FILE, load_checkpoint
    from models.clip_backbone import BaseClip
    from training.dataset import CORPUS, ensure_export, load_frames

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.monotonic()
    base = load_checkpoint(out / BACKBONE_FILE)
    assert isinstance(base, BaseClip)
    corpus = load_frames(ensure_export(CORPUS), base.image_cfg.size)
    common = {"seed": seed, "data": "simulator (synthetic)", "clip_arch": base.arch}
    _train_sa_clip(base, corpus, out, steps, f"the {BACKBONE_FILE} in {out}", common, unlocked_stages)
    _log(f"wall time {time.monotonic() - t0:.0f}s")


def _train_sa_clip(
    base: BaseClip,
    corpus: FrameSet,
    out: Path,
    steps: int | None,
    origin: str,
    common: dict[str, Any],
    unlocked_stages: int = 1,
) -> None:
    """Fine-tune SA-CLIP on a copy of ``base`` and write it to OUT; ``steps`` None is the backbone's ``SA_STEPS``."""
    from models.checkpoints import save_checkpoint
    from models.clip_backbone import pretrained_tower_of
    from training.clip_training import finetune_sa_clip, fresh_copy

    pretrained = pretrained_tower_of(base.clip.visual) is not None
    if steps is None:
        steps = SA_STEPS["pretrained" if pretrained else "vit"]
    sa = finetune_sa_clip(
        fresh_copy(base), corpus, steps=steps, unlocked_stages=unlocked_stages, seed=common["seed"], log=_log
    )
    meta = {**common, "trained": True, "steps": steps, "origin": f"SA-CLIP on {origin}"}
    if pretrained:
        meta["unlocked_stages"] = unlocked_stages
    path = save_checkpoint(sa, "sa_clip", out / "sa_clip.pt", meta, half=True)
    _log(f"wrote {path}  ({path.stat().st_size / 1e6:.1f} MB)")


@train.command("st-clip")
@weights_dir_option("--out", "folder with the base CLIP (base_clip.pt); st_clip.pt is written there")
@click.option("--seed", default=0, show_default=True, help="seed of the shots drawn, initialisation and batch order")
@click.option("--shots", default=16, show_default=True, type=click.Choice(["1", "2", "4", "8", "16"]))
def train_st_clip(out: Path, seed: int, shots: str) -> None:
    """ST-CLIP's prompts and adapters alone, few-shot, on the frozen base CLIP in OUT.

    SHOTS frames per class of every aspect come from the benchmark's train split (seed 41); each
    carries the ST context the worker would send. Takes about a minute.
    """
    import torch

    from models.checkpoints import BACKBONE_FILE, load_checkpoint
    from models.clip_backbone import BaseClip

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.monotonic()
    base = load_checkpoint(out / BACKBONE_FILE)
    assert isinstance(base, BaseClip)
    common = {"seed": seed, "data": "simulator (synthetic)", "clip_arch": base.arch}
    _train_st_clip(base, out / BACKBONE_FILE, out, int(shots), seed, common)
    _log(f"wall time {time.monotonic() - t0:.0f}s")


def _train_st_clip(base: BaseClip, backbone: Path, out: Path, shots: int, seed: int, common: dict[str, Any]) -> None:
    from models.checkpoints import BACKBONE_FILE, save_checkpoint
    from training.dataset import BENCHMARK, ensure_export, load_frames
    from training.few_shot import frozen_features, sample_shots, train_prompts

    bench = load_frames(ensure_export(BENCHMARK), base.image_cfg.size)
    train_feats = frozen_features(base, bench, bench.split("train"))
    st = train_prompts(base, "st_clip", train_feats.take(sample_shots(train_feats.labels, shots, seed)), log=_log)
    st_meta = {**common, "trained": True, "shots": shots, "origin": f"ST-CLIP on the frozen {BACKBONE_FILE}"}
    st_path = save_checkpoint(st, "st_clip", out / "st_clip.pt", st_meta, half=True, backbone=backbone)
    _log(f"wrote {st_path}  ({st_path.stat().st_size / 1e6:.1f} MB)")


@train.command("scene-graph")
@weights_dir_option(
    "--out", "folder with the base CLIP (base_clip.pt, for its text embeddings); the checkpoints are written there"
)
@click.option("--seed", default=0, show_default=True, help="seed of initialisation and batch order")
@click.option("--steps", default=1800, show_default=True, help="training steps per model")
@click.option("--batch-size", default=16, show_default=True)
@click.option(
    "--backbone",
    type=click.Choice(["lite0", "scratch"]),
    default="scratch",
    show_default=True,
    help="scratch: the small network trained from scratch (shipped); lite0: the locked ImageNet"
    " EfficientNet-Lite0 with a feature pyramid (measured, not shipped: models/README.md)",
)
@click.option(
    "--queries",
    type=click.Choice(["centres", "matched"]),
    default="centres",
    show_default=True,
    help="where the decoder's queries sit in training: centres, at the true objects' centres (shipped);"
    " matched, at the heatmap's peaks as at inference, with Hungarian set matching",
)
def train_scene_graph(out: Path, seed: int, steps: int, batch_size: int, backbone: str, queries: str) -> None:
    """The scene-graph model (scene_graph.pt) and its ablation without the VLM-aided parts
    (scene_graph_ablation.pt), the same way on the same frames: the simulator corpus' train and val
    splits (seed 101, synthetic). The defaults are the shipped checkpoints' recipe (40 minutes here; their
    text embeddings came from the ViT base CLIP shipped before 2026-12-02 evening). With
    the locked pretrained tower its features of the 10,437 frames are computed once (11 minutes here,
    cached beside the dataset) and serve both models."""
    import torch

    from models.checkpoints import BACKBONE_FILE, load_checkpoint, save_checkpoint
    from models.clip_backbone import BaseClip
    from models.scene_graph import IMAGE_SIZE, PretrainedBackbone, SceneGraphModel
    from training.dataset import CORPUS, ensure_export, load_frames
    from training.scene_graph_training import train_scene_graph as train_model

    ORIGIN = {"lite0": "locked ImageNet EfficientNet-Lite0 with a feature pyramid", "scratch": "from scratch"}

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.monotonic()
    base = load_checkpoint(out / BACKBONE_FILE)
    assert isinstance(base, BaseClip)
    corpus = load_frames(ensure_export(CORPUS), IMAGE_SIZE)
    train_idx = corpus.split("train", "val")
    for use_vlm, name in ((True, "scene_graph.pt"), (False, "scene_graph_ablation.pt")):
        torch.manual_seed(seed)
        model = SceneGraphModel(base.clip, base.arch, base.image_cfg, use_vlm=use_vlm, backbone=backbone)
        if isinstance(model.backbone, PretrainedBackbone):
            model.backbone.load_imagenet()
        train_model(model, corpus, train_idx, steps=steps, batch_size=batch_size, seed=seed, queries=queries, log=_log)
        facing = _train_facing(model, corpus, seed)
        meta = {
            "seed": seed,
            "trained": True,
            "data": "simulator (synthetic)",
            "steps": steps,
            "batch_size": batch_size,
            "queries": queries,
            "origin": f"{ORIGIN[backbone]}, trained on the simulator corpus (seed {CORPUS.seed});"
            f" text from {BACKBONE_FILE}",
            "facing": facing,
        }
        path = save_checkpoint(model, "scene_graph", out / name, meta, half=True)
        _log(f"wrote {path}  ({path.stat().st_size / 1e6:.1f} MB)  {time.monotonic() - t0:.0f}s")
    _log(f"wall time {time.monotonic() - t0:.0f}s")


def _train_facing(model: Any, corpus: Any, seed: int) -> dict[str, Any]:
    """Train the scene graph's facing head on the corpus' train split; return its accuracy on val (for the meta)."""
    from training.scene_graph_training import facing_accuracy, train_facing_head

    train_facing_head(model, corpus, corpus.split("train"), seed=seed, log=_log)
    val = facing_accuracy(model, corpus, corpus.split("val"))
    _log(
        f"facing head on val: {val['towards']:.1%} of {int(val['vehicles'])} detected vehicles facing us called so,"
        f" {val['away']:.1%} of those facing away"
    )
    return {"trained_on": f"simulator corpus ({corpus.root.name}) train split", "val": val}


@train.command("facing")
@weights_dir_option("--out", "folder with scene_graph.pt (and scene_graph_ablation.pt, if there): rewritten in place")
@click.option("--seed", default=0, show_default=True, help="seed of initialisation and batch order")
def train_facing(out: Path, seed: int) -> None:
    """The scene graph's facing head alone, on checkpoints trained without it (the shipped scene_graph.pt
    of 2026-11-22): every other weight stays as it is. Trains on the vehicles the checkpoint itself
    detects in the simulator corpus' train split (seed 101, synthetic); about 2 minutes a model here,
    after the corpus' export (about 3 minutes, once).
    ``train scene-graph`` ends with the same step."""
    import torch

    from models.checkpoints import load_checkpoint, save_checkpoint
    from models.scene_graph import IMAGE_SIZE, SceneGraphModel
    from training.dataset import CORPUS, ensure_export, load_frames

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    t0 = time.monotonic()
    corpus = load_frames(ensure_export(CORPUS), IMAGE_SIZE)
    for name in ("scene_graph.pt", "scene_graph_ablation.pt"):
        path = out / name
        if not path.exists():
            continue
        model = load_checkpoint(path, untrained_ok=("facing_head.",))
        assert isinstance(model, SceneGraphModel)
        facing = _train_facing(model, corpus, seed)
        path = save_checkpoint(model, "scene_graph", path, {**model.meta, "facing": facing}, half=True)
        _log(f"wrote {path}  ({path.stat().st_size / 1e6:.1f} MB)  {time.monotonic() - t0:.0f}s")
