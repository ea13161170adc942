"""One checkpoint format for the three served models, and the untrained checkpoints to start from.

A checkpoint is a ``torch.save`` dict::

    {"model": "st_clip" | "sa_clip" | "scene_graph", "clip_arch": str, "options": {...},
     "preprocess": {"size", "mean", "std"}, "state_dict": {...},
     "meta": {"trained": bool, "seed": int, "interface_version": int, ...}}

``python -m models.checkpoints init --dir DIR --seed 0`` writes seeded, untrained checkpoints so
that the serving path runs end to end before any training.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from fleetscope.errors import MissingCheckpoint
from fleetscope.settings import get_settings
from models.clip_backbone import DEFAULT_ARCH, ClipModel, ImageCfg, create_clip
from models.sa_clip import SAClip
from models.scene_graph import SceneGraphModel
from models.st_clip import STClip
from models.vocab import INTERFACE_VERSION

MODELS: dict[str, type[ClipModel]] = {"st_clip": STClip, "sa_clip": SAClip, "scene_graph": SceneGraphModel}


def build_model(name: str, arch: str = DEFAULT_ARCH, weights: str | Path | None = None, **options: Any) -> ClipModel:
    """A new ``name`` model on a CLIP ``arch`` backbone (``weights``: pretrained CLIP, None = random)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    clip, image_cfg = create_clip(arch, weights)
    return MODELS[name](clip, arch, image_cfg, **options)


def save_checkpoint(model: ClipModel, name: str, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``model`` as a ``name`` checkpoint; ``meta`` must say ``trained`` and ``seed``."""
    if not isinstance(model, MODELS[name]):
        raise ValueError(f"a {type(model).__name__} cannot be saved as {name!r}")
    missing = {"trained", "seed"} - meta.keys()
    if missing:
        raise ValueError(f"checkpoint meta lacks {sorted(missing)}")
    payload = {
        "model": name,
        "clip_arch": model.arch,
        "options": model.options,
        "preprocess": model.image_cfg.as_dict(),
        "state_dict": model.state_dict(),
        "meta": {**meta, "interface_version": INTERFACE_VERSION},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: a server loading the checkpoint meanwhile sees the old file or the new one.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> ClipModel:
    """The model stored at ``path``, in eval mode, with ``model.meta`` set from the checkpoint."""
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
    model = build_model(ckpt["model"], ckpt["clip_arch"], **ckpt["options"])
    model.load_state_dict(ckpt["state_dict"])
    model.image_cfg = ImageCfg.from_dict(ckpt["preprocess"])
    model.meta = ckpt["meta"]
    return model.eval()


def init_untrained(
    checkpoint_dir: str | Path, seed: int = 0, arch: str = DEFAULT_ARCH, overwrite: bool = False
) -> list[Path]:
    """Write ``<name>.pt`` for every model that has none (all with ``overwrite``) from a seeded random
    initialisation (same seed, same weights); return the paths written."""
    paths = []
    for name in MODELS:
        torch.manual_seed(seed)  # per model, so each file is independent of the others' order
        path = Path(checkpoint_dir) / f"{name}.pt"
        if path.exists() and not overwrite:
            continue
        paths.append(save_checkpoint(build_model(name, arch), name, path, {"trained": False, "seed": seed}))
    return paths


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.checkpoints", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="write untrained, seeded checkpoints of every model")
    init.add_argument("--dir", type=Path, default=None, help="default: settings triton.checkpoint_dir")
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--arch", default=DEFAULT_ARCH, help="open_clip architecture of the backbone")
    init.add_argument("--overwrite", action="store_true", help="replace existing checkpoints (trained ones too)")
    args = parser.parse_args(argv)

    directory = args.dir or get_settings().triton.checkpoint_dir
    for path in init_untrained(directory, seed=args.seed, arch=args.arch, overwrite=args.overwrite):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB  sha256 {_sha256(path)}")


if __name__ == "__main__":
    main()
