"""Training the scene-graph model on the simulator's frames and their object and relation truth (synthetic).

Per batch: a CenterNet focal loss on the object-centre heatmap and L1 on the sizes and offsets at
the true objects' centre cells (the dense heads); then the decoder runs on the queries proposed as
at inference, the heatmap's top NUM_QUERIES peaks, and each true object is matched to one query by
set matching (Hungarian, ``scipy.optimize.linear_sum_assignment``, on class probability, L1 and
GIoU as in DETR). Matched queries learn the object's class and box by cross-entropy and L1 + GIoU,
the others "no object"; the predicates of every ordered pair of matched queries learn by binary
cross-entropy. With ``queries="centres"``, the recipe of the checkpoints shipped until now, the
queries sit at the true objects' centre cells instead (then the strongest other peaks), which
inference never sees.

A locked pretrained trunk (``PretrainedBackbone``) sees the same frame the same way at every step,
so its stage outputs are computed once (``trunk_taps``, cached beside the dataset under the
tower's digest) and only the feature pyramid and the heads train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch.nn import functional as F
from tqdm import tqdm

from models import pretrained_tower
from models.scene_graph import IMAGE_SIZE, STRIDE, PretrainedBackbone, SceneGraphModel, box_iou, peaks
from models.vocab import NUM_QUERIES, OBJECT_CLASSES, PREDICATES, VEHICLE_CLASSES
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


def _pairwise_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU [N,M] of every pair of xyxy boxes a [N,4] and b [M,4]."""
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    inter_lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    inter_rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (inter_rb - inter_lt).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None] - inter
    hull = (torch.maximum(a[:, None, 2:], b[None, :, 2:]) - torch.minimum(a[:, None, :2], b[None, :, :2])).prod(-1)
    return inter / union.clamp(min=1e-9) - (hull - union) / hull.clamp(min=1e-9)


# Matching cost weights, as the losses weigh the same terms (DETR's recipe).
COST_CLASS, COST_L1, COST_GIOU = 1.0, 5.0, 2.0


@torch.no_grad()
def match(class_logits: torch.Tensor, boxes: torch.Tensor, truth: GraphTruth) -> tuple[np.ndarray, np.ndarray]:
    """(query indices, object indices) of the minimum-cost one-to-one matching of one frame's queries
    (class logits [Q,C+1], xyxy boxes [Q,4]) to its true objects; at most Q objects are matched."""
    if not len(truth.classes):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    true_boxes = torch.from_numpy(truth.boxes)
    prob = class_logits.softmax(-1)[:, torch.from_numpy(truth.classes)]
    cost = (
        -COST_CLASS * prob
        + COST_L1 * torch.cdist(boxes, true_boxes, p=1)
        - COST_GIOU * _pairwise_giou(boxes, true_boxes)
    )
    queries, objects = linear_sum_assignment(cost.numpy())
    return queries.astype(np.int64), objects.astype(np.int64)


def _centre_cells(truth: GraphTruth) -> tuple[np.ndarray, np.ndarray]:
    """The centre cell of each object, and which objects own their cell (the first one there does)."""
    centre = (truth.boxes[:, :2] + truth.boxes[:, 2:]) / 2 * SIDE
    ix, iy = np.minimum(centre.astype(np.int64), SIDE - 1).T
    cells = iy * SIDE + ix
    _, first = np.unique(cells, return_index=True)
    owner = np.zeros(len(cells), dtype=bool)
    owner[first] = True
    return cells, owner


def _size_loss(size: torch.Tensor, truths: list[GraphTruth]) -> torch.Tensor:
    """L1 on log size and centre offset at each object's centre cell (the dense size head [B,4,S,S])."""
    flat = size.flatten(2).transpose(1, 2)
    pred, true = [], []
    for b, t in enumerate(truths):
        cells, owner = _centre_cells(t)
        if not owner.any():
            continue
        box = torch.from_numpy(t.boxes[owner])
        wh = (box[:, 2:] - box[:, :2]).clamp(min=1e-3)
        centre = (box[:, :2] + box[:, 2:]) / 2 * SIDE
        offset = centre - (centre.floor().clamp(max=SIDE - 1) + 0.5)
        raw = flat[b, torch.from_numpy(cells[owner])]
        pred.append(torch.cat([raw[:, :2], raw[:, 2:].tanh()], dim=-1))
        true.append(torch.cat([wh.log(), offset], dim=-1))
    return F.l1_loss(torch.cat(pred), torch.cat(true)) if pred else size.sum() * 0


QUERY_MODES = ("centres", "matched")


def _centre_queries(heatmap: torch.Tensor, truths: list[GraphTruth]) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Query cells [B,Q]: the true objects' centre cells first, then the strongest other peaks; and the
    objects of the first queries, in order (the recipe of the checkpoints shipped until 2026-12-03)."""
    candidates = peaks(heatmap, 2 * NUM_QUERIES)
    cells_out, assigned = [], []
    for b, t in enumerate(truths):
        cells, owner = _centre_cells(t)
        objects = np.flatnonzero(owner)[:NUM_QUERIES]
        taken = set(cells[objects].tolist())
        extra = [c for c in candidates[b].tolist() if c not in taken][: NUM_QUERIES - len(objects)]
        cells_out.append(cells[objects].tolist() + extra)
        assigned.append(objects)
    return torch.tensor(cells_out), assigned


def batch_loss(
    model: SceneGraphModel, features: torch.Tensor, truths: list[GraphTruth], queries: str = "centres"
) -> dict[str, torch.Tensor]:
    """The training losses of one batch from its backbone ``features`` (see the module docstring);
    ``total`` is their weighted sum. ``queries``: "matched" (proposed as at inference, set matching)
    or "centres" (placed at the true objects' centres)."""
    if queries not in QUERY_MODES:
        raise ValueError(f"queries must be one of {QUERY_MODES}, not {queries!r}")
    dense = model.dense_from(features)
    heat_target = torch.from_numpy(np.stack([_centre_heatmap(t) for t in truths]))
    losses = {"heatmap": _focal(dense["heatmap"], heat_target), "size": _size_loss(dense["size"], truths)}

    if queries == "centres":
        cells, assigned = _centre_queries(dense["heatmap"].detach(), truths)
        out = model.decode(dense, cells)
        pairs = [(np.arange(len(objects)), objects) for objects in assigned]
    else:
        out = model.decode(dense, peaks(dense["heatmap"].detach(), NUM_QUERIES))
        pairs = [match(out["class_logits"][b], out["boxes"][b], t) for b, t in enumerate(truths)]
    no_object = len(OBJECT_CLASSES)
    class_target = torch.full(out["class_logits"].shape[:2], no_object, dtype=torch.long)
    box_pred, box_true, pred_logits, pred_target = [], [], [], []
    for b, (t, (query_idx, objects)) in enumerate(zip(truths, pairs, strict=True)):
        if not len(query_idx):
            continue
        q = torch.from_numpy(query_idx)
        class_target[b, q] = torch.from_numpy(t.classes[objects])
        box_pred.append(out["boxes"][b, q])
        box_true.append(torch.from_numpy(t.boxes[objects]))
        slot = np.full(len(t.classes), -1)
        slot[objects] = np.arange(len(objects))
        n = len(objects)
        target = torch.zeros(n, n, len(PREDICATES))
        for s, p, o in t.relations:
            if slot[s] >= 0 and slot[o] >= 0:
                target[slot[s], slot[o], p] = 1.0
        off_diagonal = ~torch.eye(n, dtype=torch.bool)
        pred_logits.append(out["predicate_logits"][b][q][:, q][off_diagonal])
        pred_target.append(target[off_diagonal])
    weight = torch.ones(no_object + 1)
    weight[no_object] = 0.2
    losses["class"] = F.cross_entropy(out["class_logits"].flatten(0, 1), class_target.flatten(), weight=weight)
    if box_pred:
        bp, bt = torch.cat(box_pred), torch.cat(box_true)
        losses["box"] = F.l1_loss(bp, bt) * 5 + (1 - _giou(bp, bt)).mean() * 2
        losses["predicate"] = F.binary_cross_entropy_with_logits(torch.cat(pred_logits), torch.cat(pred_target)) * len(
            PREDICATES
        )
    losses["total"] = sum(losses.values(), torch.zeros(()))
    return losses


@torch.no_grad()
def trunk_taps(backbone: PretrainedBackbone, frames: FrameSet, idx: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    """The locked trunk's stage outputs (float16) for frames ``idx``, cached in the dataset's ``cache`` folder
    under the tower's digest (the weights are sha256-checked, so the cache is valid while the digest is)."""
    cache = frames.root / "cache"
    digest = pretrained_tower.TOWERS["lite0"].sha256[:12]
    key = hashlib.sha256(np.ascontiguousarray(idx).tobytes()).hexdigest()[:12]
    files = [cache / f"lite0-{digest}-tap{t}-{IMAGE_SIZE}-{key}.npy" for t in PretrainedBackbone.TAPS]
    if all(f.exists() for f in files):
        return [np.load(f, mmap_mode="r") for f in files]
    cache.mkdir(parents=True, exist_ok=True)
    backbone.eval()
    out: list[np.ndarray] = []
    for start in tqdm(range(0, len(idx), batch), desc="locked tower features, once", unit="batch"):
        taps = backbone.taps(frames.images(idx[start : start + batch], PretrainedBackbone.IMAGE_CFG))
        if not out:
            out = [np.empty((len(idx), *t.shape[1:]), dtype=np.float16) for t in taps]
        for array, tap in zip(out, taps, strict=True):
            array[start : start + len(tap)] = tap.numpy().astype(np.float16)
    for f, array in zip(files, out, strict=True):
        tmp = f.with_name(f.name + ".tmp.npy")
        np.save(tmp, array)
        tmp.replace(f)
    return out


def train_scene_graph(
    model: SceneGraphModel,
    frames: FrameSet,
    train_idx: np.ndarray,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    queries: str = "centres",
    log: Callable[[str], None] = print,
) -> SceneGraphModel:
    """Train ``model`` on ``steps`` batches of ``frames[train_idx]`` (AdamW, one-cycle), its decoder on
    ``queries`` (see ``batch_loss``); returns it in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    truths = [GraphTruth.of(frames.truth[int(i)]) for i in train_idx]
    backbone = model.backbone
    taps = trunk_taps(backbone, frames, train_idx) if isinstance(backbone, PretrainedBackbone) else None
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps, pct_start=0.05)
    model.train()
    order = rng.permutation(len(train_idx))
    position = 0
    running: dict[str, float] = {}
    for step in range(1, steps + 1):
        if position + batch_size > len(order):
            order, position = rng.permutation(len(train_idx)), 0
        rows = np.sort(order[position : position + batch_size])
        position += batch_size
        if taps is not None:
            assert isinstance(backbone, PretrainedBackbone)
            features = backbone.neck([torch.from_numpy(np.asarray(t[rows], dtype=np.float32)) for t in taps])
        else:
            features = backbone(frames.images(train_idx[rows], model.image_cfg))
        losses = batch_loss(model, features, [truths[r] for r in rows], queries)
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


@torch.no_grad()
def facing_examples(
    model: SceneGraphModel, frames: FrameSet, idx: np.ndarray, min_score: float = 0.3, batch: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops [N, 3*CROP_H*CROP_W] of the vehicles ``model`` detects in frames ``idx`` (its own boxes, class
    score ≥ ``min_score``, IoU ≥ 0.5 with a true vehicle) and whether each faces the camera (heading > 90°)."""
    crops, labels = [], []
    vehicle_ids = torch.tensor([OBJECT_CLASSES.index(c) for c in VEHICLE_CLASSES])
    for start in tqdm(range(0, len(idx), batch), desc="facing: the scene graph's detections", unit="batch"):
        rows = idx[start : start + batch]
        images = frames.images(rows, model.image_cfg)
        dense = model.dense(images)
        out = model.decode(dense, peaks(dense["heatmap"], NUM_QUERIES))
        score, cls = out["class_logits"].softmax(-1)[..., :-1].max(-1)
        all_crops = model.facing_head.crops(images, out["boxes"])
        for b, i in enumerate(rows):
            frame = frames.truth[int(i)]
            vehicles = [n for n, o in enumerate(frame.objects) if o.cls in VEHICLE_CLASSES]
            if not vehicles:
                continue
            truth = [frame.objects[n] for n in vehicles]
            iou = box_iou(out["boxes"][b], torch.from_numpy(GraphTruth.of(frame).boxes[vehicles]))
            best, which = iou.max(dim=1)
            keep = (best >= 0.5) & (score[b] >= min_score) & torch.isin(cls[b], vehicle_ids)
            for q in keep.nonzero().flatten().tolist():
                crops.append(all_crops[b, q])
                labels.append(float(truth[int(which[q])].heading_deg > 90))
    return torch.stack(crops), torch.tensor(labels)


def train_facing_head(
    model: SceneGraphModel,
    frames: FrameSet,
    train_idx: np.ndarray,
    *,
    epochs: int = 60,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> None:
    """Train ``model.facing_head`` (the rest frozen) on the vehicles the model detects in ``frames[train_idx]``:
    standardisation from their crops, then the MLP by class-weighted binary cross-entropy (AdamW, batches
    of 512)."""
    torch.manual_seed(seed)
    model.eval()
    crops, labels = facing_examples(model, frames, train_idx)
    head = model.facing_head
    head.shift.copy_(crops.mean(0))
    head.scale.copy_(crops.std(0).clamp(min=1e-3))
    towards = float(labels.mean())
    weight = torch.where(labels > 0.5, 0.5 / max(towards, 1e-3), 0.5 / max(1 - towards, 1e-3))
    optimiser = torch.optim.AdamW(head.mlp.parameters(), lr=3e-3, weight_decay=1e-2)
    head.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(labels))
        for part in order.split(512):
            loss = F.binary_cross_entropy_with_logits(head.logits(crops[part]), labels[part], weight=weight[part])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if epoch % 20 == 0 or epoch == epochs:
            log(
                f"facing head epoch {epoch}/{epochs}  loss {loss.item():.3f}"
                f"  ({len(labels)} vehicles, {towards:.0%} facing us)"
            )
    head.eval()


@torch.no_grad()
def facing_accuracy(model: SceneGraphModel, frames: FrameSet, idx: np.ndarray) -> dict[str, float]:
    """How often the facing head is right (probability ≥ 0.5) on the vehicles the model detects in frames ``idx``,
    for those facing us and those facing away."""
    crops, labels = facing_examples(model, frames, idx)
    called = model.facing_head.logits(crops) >= 0
    towards = labels > 0.5
    return {
        "vehicles": float(len(labels)),
        "towards": float((called & towards).sum() / towards.sum().clamp(min=1)),
        "away": float((~called & ~towards).sum() / (~towards).sum().clamp(min=1)),
    }
