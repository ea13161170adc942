"""Training the scene-graph model on the simulator's frames and their object and relation truth (synthetic).

Per batch: a CenterNet focal loss on the object-centre heatmap and L1 on the proposed sizes and
offsets (the dense heads); then the decoder runs on queries placed at the true objects' centre
cells plus the strongest other peaks (which must say "no object"), with cross-entropy on classes,
L1 + GIoU on the refined boxes and binary cross-entropy on the predicate of every ordered pair of
true objects. At inference the queries sit at the heatmap's top peaks instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from models.scene_graph import IMAGE_SIZE, STRIDE, SceneGraphModel, peaks
from models.vocab import NUM_QUERIES, OBJECT_CLASSES, PREDICATES
from sim.truth import FrameTruth
from training.dataset import FrameSet

SIDE = IMAGE_SIZE // STRIDE


@dataclass(frozen=True)
class GraphTruth:
    """One frame's objects (normalised xyxy boxes, class ids) and relations as (subject, predicate, object) indices."""

    boxes: np.ndarray  # float32 [N, 4]
    classes: np.ndarray  # int64 [N]
    relations: np.ndarray  # int64 [R, 3]

    @classmethod
    def of(cls, frame: FrameTruth) -> GraphTruth:
        index = {o.track_id: i for i, o in enumerate(frame.objects)}
        w, h = frame.camera.width, frame.camera.height
        boxes = np.array([[o.box[0] / w, o.box[1] / h, o.box[2] / w, o.box[3] / h] for o in frame.objects])
        return cls(
            boxes=boxes.reshape(-1, 4).astype(np.float32),
            classes=np.array([OBJECT_CLASSES.index(o.cls) for o in frame.objects], dtype=np.int64),
            relations=np.array(
                [(index[s], PREDICATES.index(p), index[o]) for s, p, o in frame.relations], dtype=np.int64
            ).reshape(-1, 3),
        )


def _centre_heatmap(truth: GraphTruth) -> np.ndarray:
    """CenterNet target [C, S, S]: a Gaussian per object at its centre, sized by its box."""
    heat = np.zeros((len(OBJECT_CLASSES), SIDE, SIDE), dtype=np.float32)
    grid = np.arange(SIDE) + 0.5
    for box, cls in zip(truth.boxes, truth.classes, strict=True):
        cx, cy = (box[0] + box[2]) / 2 * SIDE, (box[1] + box[3]) / 2 * SIDE
        sigma = max(0.5, 0.15 * min(box[2] - box[0], box[3] - box[1]) * SIDE)
        g = np.exp(-((grid[None, :] - cx) ** 2 + (grid[:, None] - cy) ** 2) / (2 * sigma**2))
        ix, iy = min(int(cx), SIDE - 1), min(int(cy), SIDE - 1)
        g[iy, ix] = 1.0
        heat[cls] = np.maximum(heat[cls], g)
    return heat


def _focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of objects."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -((1 - p) ** 2) * p.log() * pos
    neg_loss = -((1 - target) ** 4) * p**2 * (1 - p).log() * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def _giou(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of matching rows of two xyxy box sets [N,4]."""
    lt, rb = torch.maximum(pred[:, :2], true[:, :2]), torch.minimum(pred[:, 2:], true[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (pred[:, 2:] - pred[:, :2]).prod(-1) + (true[:, 2:] - true[:, :2]).prod(-1) - inter
    hull = (torch.maximum(pred[:, 2:], true[:, 2:]) - torch.minimum(pred[:, :2], true[:, :2])).prod(-1)
    return inter / union.clamp(min=1e-9) - (hull - union) / hull.clamp(min=1e-9)


def _cells(truth: GraphTruth) -> tuple[np.ndarray, np.ndarray]:
    """The centre cell of each object, and which objects own their cell (the first one there does)."""
    centre = (truth.boxes[:, :2] + truth.boxes[:, 2:]) / 2 * SIDE
    ix, iy = np.minimum(centre.astype(np.int64), SIDE - 1).T
    cells = iy * SIDE + ix
    _, first = np.unique(cells, return_index=True)
    owner = np.zeros(len(cells), dtype=bool)
    owner[first] = True
    return cells, owner


def batch_loss(model: SceneGraphModel, images: torch.Tensor, truths: list[GraphTruth]) -> dict[str, torch.Tensor]:
    """The training losses of one batch (see the module docstring); ``total`` is their weighted sum."""
    dense = model.dense(images)
    heat_target = torch.from_numpy(np.stack([_centre_heatmap(t) for t in truths]))
    losses = {"heatmap": _focal(dense["heatmap"], heat_target)}

    # Queries: the true objects' cells first, then the strongest remaining peaks.
    candidates = peaks(dense["heatmap"].detach(), 2 * NUM_QUERIES)
    query_cells, assigned = [], []
    for b, t in enumerate(truths):
        cells, owner = _cells(t)
        objects = np.flatnonzero(owner)[:NUM_QUERIES]
        taken = set(cells[objects].tolist())
        extra = [c for c in candidates[b].tolist() if c not in taken][: NUM_QUERIES - len(objects)]
        query_cells.append(cells[objects].tolist() + extra)
        assigned.append(objects)
    cells_t = torch.tensor(query_cells)

    size = dense["size"].flatten(2).transpose(1, 2)
    size_pred, size_true = [], []
    for b, (t, objects) in enumerate(zip(truths, assigned, strict=True)):
        if not len(objects):
            continue
        box = torch.from_numpy(t.boxes[objects])
        wh = (box[:, 2:] - box[:, :2]).clamp(min=1e-3)
        centre = (box[:, :2] + box[:, 2:]) / 2 * SIDE
        offset = centre - (centre.floor().clamp(max=SIDE - 1) + 0.5)
        raw = size[b, cells_t[b, : len(objects)]]
        size_pred.append(torch.cat([raw[:, :2], raw[:, 2:].tanh()], dim=-1))
        size_true.append(torch.cat([wh.log(), offset], dim=-1))
    losses["size"] = F.l1_loss(torch.cat(size_pred), torch.cat(size_true)) if size_pred else size.sum() * 0

    out = model.decode(dense, cells_t)
    no_object = len(OBJECT_CLASSES)
    class_target = torch.full(cells_t.shape, no_object, dtype=torch.long)
    box_pred, box_true, pred_logits, pred_target = [], [], [], []
    for b, (t, objects) in enumerate(zip(truths, assigned, strict=True)):
        n = len(objects)
        class_target[b, :n] = torch.from_numpy(t.classes[objects])
        box_pred.append(out["boxes"][b, :n])
        box_true.append(torch.from_numpy(t.boxes[objects]))
        slot = np.full(len(t.classes), -1)
        slot[objects] = np.arange(n)
        target = torch.zeros(n, n, len(PREDICATES))
        for s, p, o in t.relations:
            if slot[s] >= 0 and slot[o] >= 0:
                target[slot[s], slot[o], p] = 1.0
        off_diagonal = ~torch.eye(n, dtype=torch.bool)
        pred_logits.append(out["predicate_logits"][b, :n, :n][off_diagonal])
        pred_target.append(target[off_diagonal])
    weight = torch.ones(no_object + 1)
    weight[no_object] = 0.2
    losses["class"] = F.cross_entropy(out["class_logits"].flatten(0, 1), class_target.flatten(), weight=weight)
    bp, bt = torch.cat(box_pred), torch.cat(box_true)
    losses["box"] = F.l1_loss(bp, bt) * 5 + (1 - _giou(bp, bt)).mean() * 2
    losses["predicate"] = F.binary_cross_entropy_with_logits(torch.cat(pred_logits), torch.cat(pred_target)) * len(
        PREDICATES
    )
    losses["total"] = sum(losses.values(), torch.zeros(()))
    return losses


def train_scene_graph(
    model: SceneGraphModel,
    frames: FrameSet,
    train_idx: np.ndarray,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> SceneGraphModel:
    """Train ``model`` on ``steps`` batches of ``frames[train_idx]`` (AdamW, one-cycle); returns it in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    truths = {int(i): GraphTruth.of(frames.truth[i]) for i in train_idx}
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps, pct_start=0.05)
    model.train()
    order = rng.permutation(train_idx)
    position = 0
    running: dict[str, float] = {}
    for step in range(1, steps + 1):
        if position + batch_size > len(order):
            order, position = rng.permutation(train_idx), 0
        idx = order[position : position + batch_size]
        position += batch_size
        losses = batch_loss(model, frames.images(idx, model.image_cfg), [truths[int(i)] for i in idx])
        optimiser.zero_grad()
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if step % 50 == 0 or step == steps:
            parts = "  ".join(f"{k} {v / 50:.3f}" for k, v in running.items())
            log(f"scene graph ({'VLM' if model.use_vlm else 'ablation'}) step {step}/{steps}  {parts}")
            running = {}
    return model.eval()
