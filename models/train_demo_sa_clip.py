"""Brief SA-CLIP fine-tune on simulator frames (synthetic), so that the embedded demo's alerts mean something.

Not the SA-CLIP method of issue 4 (relation captions with hard negatives): this teaches the image
tower to match each frame to one relation prompt, the anomaly type's prompt for anomalous frames and
"the road ahead is clear" for the others, with the text tower frozen. Frames come from the simulator's
dataset episodes (train split for training, val split for the printed AUC; held-out anomaly types
are in neither). Prints its wall time and the anomaly AUC on the val frames.

    python -m models.train_demo_sa_clip --out var/checkpoints/sa_clip.pt [--if-untrained]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from models.checkpoints import build_model, load_checkpoint, save_checkpoint
from models.preprocess import to_tensor_batch
from models.sa_clip import SAClip
from models.vocab import ANOMALY_PROMPTS, RELATION_PROMPTS

CLEAR = RELATION_PROMPTS.index("the road ahead is clear")


def sim_frames(n: int, seed: int, split: str) -> tuple[list[bytes], np.ndarray]:
    """``n`` rendered frames of one split, half of them anomalous; labels are prompt indices."""
    from sim.export import ExportConfig, episode_worlds
    from sim.render import render_jpeg
    from sim.world import FrameEmission
    from streams.context.road_network import load_network

    jpegs: list[bytes] = []
    labels: list[int] = []
    normal = anomalous = 0
    for world in episode_worlds(load_network(), ExportConfig(seed=seed)):
        for e in world.run(ExportConfig().episode_s):
            if not isinstance(e, FrameEmission) or e.truth.split != split:
                continue
            if e.truth.anomaly and anomalous < n // 2:
                anomalous += 1
                labels.append(RELATION_PROMPTS.index(ANOMALY_PROMPTS[e.truth.anomaly]))
            elif not e.truth.anomaly and normal < n - n // 2:
                normal += 1
                labels.append(CLEAR)
            else:
                continue
            jpegs.append(render_jpeg(e.spec))
        if len(jpegs) >= n:
            return jpegs, np.array(labels)
    raise AssertionError("unreachable: episodes are endless")


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
    train_jpegs, train_y = sim_frames(n_train, seed, "train")
    val_jpegs, val_y = sim_frames(n_val, seed, "val")
    print(f"simulated and rendered {n_train + n_val} frames in {time.monotonic() - t0:.0f}s", flush=True)
    x_train = to_tensor_batch(train_jpegs, cfg.size, cfg.mean, cfg.std)
    x_val = to_tensor_batch(val_jpegs, cfg.size, cfg.mean, cfg.std)
    val_anomalous = (val_y != CLEAR).astype(int)
    auc_before = evaluate(model, x_val, val_anomalous)

    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.clip.visual.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        prompts = F.normalize(model.clip.encode_text(model.prompt_ids), dim=-1)
    targets = torch.from_numpy(train_y)
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

    auc_after = evaluate(model, x_val, val_anomalous)
    wall = time.monotonic() - t0
    meta = {
        "trained": True,
        "seed": seed,
        "data": f"simulator dataset episodes, seed {seed}: train split (train), val split (AUC); synthetic",
        "steps": steps,
        "batch": batch,
        "n_train": n_train,
        "n_val": n_val,
        "val_auc": round(auc_after, 4),
        "wall_s": round(wall, 1),
        "command": f"python -m models.train_demo_sa_clip --out {out} --seed {seed} --steps {steps}",
    }
    save_checkpoint(model, "sa_clip", out, meta)
    print(
        f"simulator val split (seed {seed}, n={n_val}, half anomalous): "
        f"anomaly AUC {auc_before:.3f} untrained -> {auc_after:.3f}"
    )
    print(f"wall time {wall:.0f}s; wrote {out}")
    return {"auc_before": auc_before, "auc_after": auc_after, "wall_s": wall}


def is_trained(path: Path) -> bool:
    try:
        return bool(load_checkpoint(path).meta.get("trained"))
    except Exception:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.train_demo_sa_clip", description=__doc__.split("\n")[0])
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
