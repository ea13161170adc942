"""Brief SA-CLIP fine-tune on the toy fleet's obstacle frames (synthetic), for the walking-skeleton demo.

Not the SA-CLIP method of issue 4 (relation captions with hard negatives): this teaches the image
tower one relation, "an obstacle is on the road" versus "the road ahead is clear", so that the demo's
alerts mean something. The text tower stays frozen; prompt embeddings are fixed during training.
Prints its wall time and the anomaly AUC on frames rendered from a different seed.

    python -m models.train_toy_sa_clip --out var/checkpoints/sa_clip.pt [--if-untrained]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from models.checkpoints import build_model, load_checkpoint, save_checkpoint
from models.preprocess import to_tensor_batch
from models.sa_clip import SAClip
from models.vocab import ANOMALY_PROMPTS, RELATION_PROMPTS
from sim.toy_fleet import render_frame

CLEAR = RELATION_PROMPTS.index("the road ahead is clear")
OBSTACLE = RELATION_PROMPTS.index(ANOMALY_PROMPTS["obstacle"])


def toy_frames(n: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    """``n`` toy frames, half with an obstacle in the lane; labels 1 = obstacle."""
    rng = random.Random(seed)
    labels = np.array([i % 2 for i in range(n)])
    rng.shuffle(labels)  # type: ignore[arg-type]
    return [render_frame(rng, obstacle=bool(y)) for y in labels], labels


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outranks a negative; ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@torch.no_grad()
def evaluate(model: SAClip, images: torch.Tensor, labels: np.ndarray) -> float:
    model.eval()
    scores = torch.cat([model(images[i : i + 64])[0] for i in range(0, len(images), 64)]).numpy()
    return auc(scores, labels)


def train(out: Path, seed: int, steps: int, batch: int, n_train: int, n_val: int) -> dict[str, float]:
    t0 = time.monotonic()
    torch.manual_seed(seed)
    model = build_model("sa_clip")
    assert isinstance(model, SAClip)
    cfg = model.image_cfg
    train_jpegs, train_y = toy_frames(n_train, seed)
    val_jpegs, val_y = toy_frames(n_val, seed + 1000)
    x_train = to_tensor_batch(train_jpegs, cfg.size, cfg.mean, cfg.std)
    x_val = to_tensor_batch(val_jpegs, cfg.size, cfg.mean, cfg.std)
    auc_before = evaluate(model, x_val, val_y)

    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.clip.visual.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        prompts = F.normalize(model.clip.encode_text(model.prompt_ids), dim=-1)
    targets = torch.where(torch.from_numpy(train_y) == 1, OBSTACLE, CLEAR)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4, weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, n_train, (batch,), generator=gen)
        image = F.normalize(model.clip.encode_image(x_train[idx]), dim=-1)
        logits = model.clip.logit_scale.exp() * image @ prompts.T
        loss = F.cross_entropy(logits, targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == steps:
            print(f"step {step}/{steps}  loss {loss.item():.3f}  {time.monotonic() - t0:.0f}s", flush=True)

    auc_after = evaluate(model, x_val, val_y)
    wall = time.monotonic() - t0
    meta = {
        "trained": True,
        "seed": seed,
        "data": "sim.toy_fleet obstacle frames (synthetic)",
        "steps": steps,
        "batch": batch,
        "n_train": n_train,
        "n_val": n_val,
        "val_auc": round(auc_after, 4),
        "wall_s": round(wall, 1),
        "command": f"python -m models.train_toy_sa_clip --out {out} --seed {seed} --steps {steps}",
    }
    save_checkpoint(model, "sa_clip", out, meta)
    print(
        f"held-out toy frames (seed {seed + 1000}, n={n_val}): "
        f"obstacle AUC {auc_before:.3f} untrained -> {auc_after:.3f}"
    )
    print(f"wall time {wall:.0f}s; wrote {out}")
    return {"auc_before": auc_before, "auc_after": auc_after, "wall_s": wall}


def is_trained(path: Path) -> bool:
    try:
        return bool(load_checkpoint(path).meta.get("trained"))
    except Exception:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.train_toy_sa_clip", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (sa_clip.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--train-frames", type=int, default=1024)
    parser.add_argument("--val-frames", type=int, default=256)
    parser.add_argument(
        "--if-untrained", action="store_true", help="do nothing if --out is already a trained checkpoint"
    )
    args = parser.parse_args(argv)
    if args.if_untrained and is_trained(args.out):
        print(f"{args.out} is already trained; nothing to do")
        return
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    train(args.out, args.seed, args.steps, args.batch, args.train_frames, args.val_frames)


if __name__ == "__main__":
    main()
