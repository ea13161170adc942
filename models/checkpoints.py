"""One checkpoint format for the served models and their CLIP backbone, and untrained checkpoints to start from.

A checkpoint is a ``torch.save`` dict::

    {"model": "clip" | "st_clip" | "sa_clip" | "scene_graph", "clip_arch": str, "options": {...},
     "preprocess": {"size", "mean", "std"}, "state_dict": {...}, "storage": "float32" | "float16",
     "backbone": None | {"file": "base_clip.pt", "sha256": str},
     "meta": {"trained": bool, "seed": int, "interface_version": int, ...}}

Kept small enough for a repository: floating-point weights may be stored as float16 (loaded back
as float32), token-embedding rows that are exactly zero (words never trained) are not stored, and an
ST-CLIP checkpoint holds only its prompts and adapters: its frozen CLIP is the ``clip`` checkpoint
named in ``backbone``, next to it (checked by sha256).

``python -m models.checkpoints init --dir DIR --seed 0`` fills DIR for serving: the reference
checkpoints shipped in ``models/weights`` (see models/README.md) where there are some, and seeded,
untrained checkpoints for the rest, so that the serving path runs end to end before any training.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from core.errors import MissingCheckpoint
from core.settings import get_settings
from models.clip_backbone import DEFAULT_ARCH, BaseClip, ClipModel, ImageCfg, create_clip
from models.sa_clip import SAClip
from models.scene_graph import SceneGraphModel
from models.shipped import BACKBONE_FILE, SHIPPED_DIR, install, sha256
from models.st_clip import STClip
from models.vocab import INTERFACE_VERSION

MODELS: dict[str, type[ClipModel]] = {
    "clip": BaseClip,
    "st_clip": STClip,
    "sa_clip": SAClip,
    "scene_graph": SceneGraphModel,
}
SERVED = ("st_clip", "sa_clip", "scene_graph")
FROZEN_BACKBONE = {"st_clip"}  # models whose CLIP stays frozen: their checkpoints refer to a backbone file
SPARSE_ROWS = "token_embedding.weight"


def build_model(
    name: str, arch: str = DEFAULT_ARCH, weights: str | Path | None = None, *, imagenet: bool = True, **options: Any
) -> ClipModel:
    """A new ``name`` model on a CLIP ``arch`` backbone (``weights``: pretrained CLIP, None = random;
    ``imagenet``: a pretrained image tower starts from ImageNet, see ``create_clip``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    clip, image_cfg = create_clip(arch, weights, imagenet=imagenet)
    return MODELS[name](clip, arch, image_cfg, **options)


def save_checkpoint(
    model: ClipModel,
    name: str,
    path: str | Path,
    meta: dict[str, Any],
    *,
    half: bool = False,
    backbone: str | Path | None = None,
) -> Path:
    """Write ``model`` as a ``name`` checkpoint; ``meta`` must say ``trained`` and ``seed``.

    ``half`` stores floating-point weights as float16. A frozen-backbone model (ST-CLIP) needs
    ``backbone``, the ``clip`` checkpoint holding its CLIP, which must sit in the same directory.
    """
    if not isinstance(model, MODELS[name]):
        raise ValueError(f"a {type(model).__name__} cannot be saved as {name!r}")
    missing = {"trained", "seed"} - meta.keys()
    if missing:
        raise ValueError(f"checkpoint meta lacks {sorted(missing)}")
    path = Path(path)
    state = model.state_dict()
    backbone_ref = None
    if name in FROZEN_BACKBONE:
        if backbone is None:
            raise ValueError(f"a {name} checkpoint needs the backbone checkpoint its frozen CLIP was saved in")
        backbone = Path(backbone)
        if backbone.resolve().parent != path.resolve().parent:
            raise ValueError(f"backbone {backbone} must be in the same directory as {path}")
        backbone_ref = {"file": backbone.name, "sha256": sha256(backbone)}
        state = {k: v for k, v in state.items() if not k.startswith("clip.")}
    payload = {
        "model": name,
        "clip_arch": model.arch,
        "options": model.options,
        "preprocess": model.image_cfg.as_dict(),
        "state_dict": {k: _packed(k, v, half) for k, v in state.items()},
        "storage": "float16" if half else "float32",
        "backbone": backbone_ref,
        "meta": {**meta, "interface_version": INTERFACE_VERSION},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: a server loading the checkpoint meanwhile sees the old file or the new one.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def _packed(key: str, value: torch.Tensor, half: bool) -> Any:
    if half and value.is_floating_point():
        value = value.half()
    if key.endswith(SPARSE_ROWS) and value.dim() == 2:
        rows = value.abs().sum(dim=1).nonzero().flatten()
        return {"rows": rows, "values": value[rows], "shape": list(value.shape)}
    return value


def _unpacked(value: Any) -> torch.Tensor:
    if isinstance(value, dict):
        full = torch.zeros(value["shape"], dtype=value["values"].dtype)
        full[value["rows"]] = value["values"]
        value = full
    return value.float() if value.is_floating_point() else value


def load_checkpoint(path: str | Path, untrained_ok: tuple[str, ...] = ()) -> ClipModel:
    """The model stored at ``path``, in eval mode, with ``model.meta`` set from the checkpoint.

    Weights whose names start with one of ``untrained_ok`` may be missing (a head added since the
    checkpoint was trained, to be trained next): they keep their initialisation."""
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpoint(
            f"checkpoint {path} does not exist; create untrained checkpoints with "
            f"`python -m models.checkpoints init --dir {path.parent}` or train one"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("model") not in MODELS:
        raise ValueError(f"{path} is not a fleetscope checkpoint")
    version = ckpt["meta"].get("interface_version")
    if version != INTERFACE_VERSION:
        raise ValueError(
            f"{path} has interface version {version}, this code has {INTERFACE_VERSION} "
            "(models.vocab changed); retrain or re-create it"
        )
    state = {k: _unpacked(v) for k, v in ckpt["state_dict"].items()}
    ref = ckpt.get("backbone")
    if ref is not None:
        backbone_path = path.parent / ref["file"]
        if not backbone_path.is_file():
            raise MissingCheckpoint(f"{path} needs its CLIP backbone {backbone_path}, which does not exist")
        if sha256(backbone_path) != ref["sha256"]:
            raise ValueError(f"{backbone_path} is not the backbone {path} was trained on (sha256 differs)")
        backbone = load_checkpoint(backbone_path)
        assert isinstance(backbone, BaseClip)
        model = MODELS[ckpt["model"]](backbone.clip, ckpt["clip_arch"], backbone.image_cfg, **ckpt["options"])
        missing = [k for k in model.load_state_dict(state, strict=False).missing_keys if not k.startswith("clip.")]
        if missing:
            raise ValueError(f"{path} lacks weights for {sorted(missing)[:5]}")
    else:
        # The checkpoint holds every weight: reading a pretrained tower's ImageNet file first would be wasted.
        model = build_model(ckpt["model"], ckpt["clip_arch"], imagenet=False, **ckpt["options"])
        result = model.load_state_dict(state, strict=False)
        if missing := sorted(k for k in result.missing_keys if not k.startswith(untrained_ok)):
            raise ValueError(f"{path} lacks weights for {missing[:5]}; retrain it (models/README.md)")
        if result.unexpected_keys:
            raise ValueError(f"{path} has weights this code does not know: {sorted(result.unexpected_keys)[:5]}")
    model.image_cfg = ImageCfg.from_dict(ckpt["preprocess"])
    model.meta = ckpt["meta"]
    return model.eval()


def init_untrained(
    checkpoint_dir: str | Path, seed: int = 0, arch: str = DEFAULT_ARCH, overwrite: bool = False
) -> list[Path]:
    """Write ``<name>.pt`` for every served model that has none (all with ``overwrite``) from a seeded
    random initialisation (same seed, same weights), plus the CLIP backbone ST-CLIP refers to; return
    the paths written."""
    directory = Path(checkpoint_dir)
    paths = []
    backbone = directory / BACKBONE_FILE
    new_backbone = overwrite or not backbone.exists() or not (directory / "st_clip.pt").exists()
    if new_backbone:
        torch.manual_seed(seed)
        paths.append(save_checkpoint(build_model("clip", arch), "clip", backbone, {"trained": False, "seed": seed}))
    for name in SERVED:
        torch.manual_seed(seed)  # per model, so each file is independent of the others' order
        path = directory / f"{name}.pt"
        frozen = name in FROZEN_BACKBONE
        if path.exists() and not overwrite and not (frozen and new_backbone):
            continue
        meta = {"trained": False, "seed": seed}
        if frozen:
            clip = load_checkpoint(backbone)
            assert isinstance(clip, BaseClip)
            model = MODELS[name](clip.clip, clip.arch, clip.image_cfg)
            paths.append(save_checkpoint(model, name, path, meta, backbone=backbone))
        else:
            paths.append(save_checkpoint(build_model(name, arch), name, path, meta))
    return paths


def install_shipped(checkpoint_dir: str | Path, shipped: Path = SHIPPED_DIR) -> list[Path]:
    """Copy the shipped checkpoints into ``checkpoint_dir`` where it has none of its own or an untouched
    older copy (``models.shipped``); return those copied."""
    return install(checkpoint_dir, shipped)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.checkpoints", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="install the shipped checkpoints, and seeded untrained ones for the rest")
    init.add_argument("--dir", type=Path, default=None, help="default: settings triton.checkpoint_dir")
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--arch", default=DEFAULT_ARCH, help="open_clip architecture of the backbone")
    init.add_argument("--overwrite", action="store_true", help="replace existing checkpoints (trained ones too)")
    init.add_argument("--untrained", action="store_true", help="do not install the shipped checkpoints")
    args = parser.parse_args(argv)

    directory = args.dir or get_settings().triton.checkpoint_dir
    installed = [] if args.untrained or args.overwrite else install_shipped(directory)
    for path in installed + init_untrained(directory, seed=args.seed, arch=args.arch, overwrite=args.overwrite):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB  sha256 {sha256(path)}")


if __name__ == "__main__":
    main()
