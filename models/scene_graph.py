"""Scene-graph generation in one stage, after VOST-SGG (arXiv 2512.05524), per frame.

One network goes from the image to objects and relation triplets. A backbone gives a feature map
at 1/8 of the dashcam's resolution (small, far objects need the detail; CLIP's ViT tokens are 16 px
apart at 128 px): since 2026-12-03 the ImageNet-trained EfficientNet-Lite0 of
``models.pretrained_tower``, locked, with a light feature pyramid over its stride-8, 16 and 32
stages (``backbone="lite0"``); before, a small convolutional network trained from scratch
(``backbone="scratch"``, kept to load and compare the earlier checkpoints). Its NUM_QUERIES object
queries are initialised from two sources, as in VOST-SGG:

- "where", a spatial prior: the box proposed at one of the top peaks of a dense object-centre heatmap
  (CenterNet-style), embedded from its coordinates;
- "what": the peak's class distribution mixing CLIP text embeddings of the object classes.

A transformer decoder refines the queries against the feature map; each predicts a box and a class.
Every ordered pair of queries gets predicate logits from a multi-modal feature bank: the two query
features (visual), the pair's box geometry (spatial) and similarity to CLIP text embeddings of the
predicates (textual).

Each query also gets a facing probability (``FacingHead``): whether the object shows us its front,
read from its box's pixels alone. A car facing us in our own lane is a wrong-way driver.

``use_vlm=False`` is the ablation baseline: "what" mixes learned class embeddings instead, and there
is no predicate text bank; everything else is the same network.

Only CLIP's text tower is used, once, at construction: the text embeddings are stored as buffers.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn
from torch.nn import functional as F

from models import pretrained_tower
from models.clip_backbone import CLIP, ClipModel, ImageCfg, text_embeddings
from models.vocab import NUM_QUERIES, NUM_TRIPLETS, OBJECT_CLASSES, PREDICATES

assert NUM_QUERIES * (NUM_QUERIES - 1) * len(PREDICATES) >= NUM_TRIPLETS
GEOMETRY_DIM = 8
# The text banks' prompts, in words the base CLIP's text tower learnt from its alt-text captions:
# a word it never saw has an all-zero embedding ("crossing", "something"), so its prompt would say
# nothing (tests/models/test_scene_graph.py checks every word against the shipped base CLIP).
CLASS_PROMPTS = tuple(f"a photo of a {c}." for c in OBJECT_CLASSES)
PREDICATE_PROMPTS = {
    "in front of": "a vehicle is in front of a vehicle.",
    "left of": "a vehicle is left of a vehicle.",
    "right of": "a vehicle is right of a vehicle.",
    "following": "a vehicle is following a vehicle.",
    "crossing": "a vehicle is moving in front of a vehicle.",
    "passing": "a vehicle is passing a vehicle.",
    "collides with": "a vehicle collides with a vehicle.",
}
IMAGE_SIZE = 224  # the dashcam frames' own size: no detail is thrown away
STRIDE = 8  # feature-map cell in pixels
CROP_H, CROP_W = 12, 16  # the facing head's resampled box: a distant car is about 10 x 15 px


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU [N,M] of xyxy boxes a [N,4] and b [M,4]."""
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    inter = torch.minimum(a[:, None, 2:], b[None, :, 2:]) - torch.maximum(a[:, None, :2], b[None, :, :2])
    inter = inter.clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None] - inter
    return inter / union.clamp(min=1e-9)


def pair_geometry(boxes: torch.Tensor) -> torch.Tensor:
    """Spatial features of every ordered (subject, object) pair of xyxy boxes [B,Q,4] -> [B,Q,Q,GEOMETRY_DIM].

    Centre offset and log size ratio relative to the subject, IoU, log area ratio and the object's
    centre (where in the frame the pair is).
    """
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=1e-3)
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    s_wh, o_wh = wh[:, :, None], wh[:, None]
    offset = (centre[:, None] - centre[:, :, None]) / s_wh
    log_ratio = (o_wh / s_wh).log()
    lt = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
    rb = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = wh.prod(-1)
    union = area[:, :, None] + area[:, None] - inter
    iou = (inter / union)[..., None]
    area_ratio = (area[:, None] / area[:, :, None]).log()[..., None]
    obj_centre = centre[:, None].expand_as(offset)
    return torch.cat([offset, log_ratio, iou, area_ratio, obj_centre], dim=-1)


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), nn.Conv2d(channels, channels, 3, 1, 1, bias=False))
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.norm(self.body(x)))


class Backbone(nn.Module):
    """Image [B,3,224,224] -> features [B,dim,28,28]: a stride-8 map plus upsampled stride-16 context."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fine = nn.Sequential(_conv(3, 16, 2), _conv(16, 32, 2), _conv(32, dim, 2), _Residual(dim))
        self.coarse = nn.Sequential(_conv(dim, dim, 2), _Residual(dim), _Residual(dim))
        self.merge = _conv(dim, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fine = self.fine(images.contiguous(memory_format=torch.channels_last))  # faster convolutions on CPU
        coarse = F.interpolate(self.coarse(fine), size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.merge(fine + coarse)


class PretrainedBackbone(nn.Module):
    """Image [B,3,224,224] -> features [B,dim,28,28]: the locked ImageNet EfficientNet-Lite0's stride-8, 16 and
    32 stages merged top-down by a light feature pyramid (the only part that trains).

    Built without weights (a checkpoint holds them); ``load_imagenet`` reads the installed ones. The
    tower's classifier and head convolution are dropped, so a checkpoint does not carry them.
    """

    TAPS = (2, 4, 6)  # block stages ending at strides 8, 16 and 32
    TAP_CHANNELS = (40, 112, 320)
    IMAGE_CFG = ImageCfg(size=IMAGE_SIZE, mean=pretrained_tower.MEAN, std=pretrained_tower.STD)

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.trunk = pretrained_tower.lock(pretrained_tower.create_trunk("lite0"))
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1, bias=False), nn.BatchNorm2d(dim)) for c in self.TAP_CHANNELS
        )
        self.merge = nn.Sequential(_conv(dim, dim), _Residual(dim))
        self._drop_head()

    def _drop_head(self) -> None:
        for name in ("conv_head", "bn2", "global_pool", "classifier"):
            setattr(self.trunk, name, nn.Identity())

    def load_imagenet(self) -> None:
        """Replace the trunk by the installed ImageNet weights (sha256-checked), locked as before."""
        full = pretrained_tower.create_trunk("lite0")
        pretrained_tower.load_pretrained(full, "lite0")
        self.trunk = pretrained_tower.lock(full)
        self._drop_head()

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The locked trunk's outputs at strides 8, 16 and 32: what training may compute once per frame."""
        trunk = self.trunk.get_submodule
        x = trunk("bn1")(trunk("conv_stem")(images))
        out = []
        for i, stage in enumerate(trunk("blocks").children()):
            x = stage(x)
            if i in self.TAPS:
                out.append(x)
        return out

    def neck(self, taps: list[torch.Tensor]) -> torch.Tensor:
        """The feature pyramid: coarse to fine, each stage upsampled and added to the next finer one."""
        x = self.lateral[-1](taps[-1])
        for lateral, tap in zip(self.lateral[-2::-1], taps[-2::-1], strict=True):
            x = lateral(tap) + F.interpolate(x, size=tap.shape[-2:], mode="bilinear", align_corners=False)
        return self.merge(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.taps(images))


BACKBONES = {"scratch": Backbone, "lite0": PretrainedBackbone}


class FacingHead(nn.Module):
    """Logit [B,Q] that each box's object faces the camera, from its pixels resampled to CROP_H x CROP_W.

    The box's position is deliberately left out: in the training frames every car facing us drives in
    an oncoming lane, so a head that sees where the box is learns the lane instead of the facing (a
    probe on the decoder's query states called 12-33 % of a wrong-way car's detections facing us, one on
    the crops 97 %: models/README.md). Trained after the rest, on the frozen model's own boxes
    (``training.scene_graph_training.train_facing_head``); until then it says 0.5 everywhere.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        dim = 3 * CROP_H * CROP_W
        # Standardisation of the crops' pixels, set from the training crops.
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        out = nn.Linear(hidden, 1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), out)

    @staticmethod
    def crops(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Pixels [B,Q,3*CROP_H*CROP_W] of ``images`` [B,3,H,W] inside xyxy ``boxes`` [B,Q,4] (0..1), bilinear."""
        b, q, _ = boxes.shape
        fy = (torch.arange(CROP_H, dtype=boxes.dtype, device=boxes.device) + 0.5) / CROP_H
        fx = (torch.arange(CROP_W, dtype=boxes.dtype, device=boxes.device) + 0.5) / CROP_W
        x = boxes[..., 0:1] + (boxes[..., 2:3] - boxes[..., 0:1]) * fx  # [B,Q,W]
        y = boxes[..., 1:2] + (boxes[..., 3:4] - boxes[..., 1:2]) * fy  # [B,Q,H]
        grid = torch.stack(
            [x[:, :, None, :].expand(b, q, CROP_H, CROP_W), y[..., None].expand(b, q, CROP_H, CROP_W)], -1
        )
        sampled = F.grid_sample(images, grid.reshape(b, q * CROP_H, CROP_W, 2) * 2 - 1, align_corners=False)
        return sampled.reshape(b, 3, q, CROP_H, CROP_W).transpose(1, 2).flatten(2)

    def logits(self, crops: torch.Tensor) -> torch.Tensor:
        """Facing logits [...] for crops [..., 3*CROP_H*CROP_W]."""
        return self.mlp((crops - self.shift) / self.scale)[..., 0]

    def forward(self, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.logits(self.crops(images, boxes))


def peaks(heat: torch.Tensor, k: int) -> torch.Tensor:
    """Flat cell indices [B,k] of the ``k`` strongest local maxima of the class-agnostic heatmap [B,C,H,W]."""
    agnostic = heat.max(dim=1).values
    local_max = F.max_pool2d(agnostic[:, None], 3, 1, 1)[:, 0]
    suppressed = torch.where(agnostic == local_max, agnostic, agnostic - 1e4)
    return suppressed.flatten(1).topk(k, dim=1).indices


class SceneGraphModel(ClipModel):
    """forward(images [B,3,224,224]) -> boxes [B,Q,4] xyxy in [0,1], class_logits [B,Q,C+1],
    predicate_logits [B,Q,Q,P], facing_logits [B,Q]; ``dense`` and ``decode`` give the parts training needs."""

    class_text: torch.Tensor
    predicate_text: torch.Tensor
    cell_xy: torch.Tensor

    def __init__(
        self,
        clip: CLIP,
        arch: str,
        image_cfg: ImageCfg,
        use_vlm: bool = True,
        dim: int = 128,
        backbone: str = "scratch",
    ) -> None:
        if backbone not in BACKBONES:
            raise ValueError(f"unknown scene-graph backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        super().__init__(clip, arch, image_cfg, use_vlm=use_vlm, dim=dim, backbone=backbone)
        if backbone == "scratch":
            self.image_cfg = replace(image_cfg, size=IMAGE_SIZE)
        else:
            self.image_cfg = PretrainedBackbone.IMAGE_CFG
        self.use_vlm = use_vlm
        n_cls, n_pred = len(OBJECT_CLASSES), len(PREDICATES)
        side = IMAGE_SIZE // STRIDE
        ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        self.register_buffer("cell_xy", torch.stack([(xs + 0.5) / side, (ys + 0.5) / side], -1).flatten(0, 1), False)

        self.backbone: nn.Module = BACKBONES[backbone](dim)
        heatmap_out = nn.Conv2d(dim, n_cls, 1)
        assert heatmap_out.bias is not None
        nn.init.constant_(heatmap_out.bias, -math.log(99.0))  # focal-loss prior: every cell starts 99% background
        self.heatmap_head = nn.Sequential(_conv(dim, dim), heatmap_out)
        self.size_head = nn.Sequential(_conv(dim, dim), nn.Conv2d(dim, 4, 1))  # log w, log h, offset x, y
        self.position_embed = nn.Sequential(nn.Linear(2, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.box_embed = nn.Sequential(nn.Linear(4, dim), nn.ReLU(), nn.Linear(dim, dim))

        if use_vlm:
            predicate_prompts = [PREDICATE_PROMPTS[p] for p in PREDICATES]
            self.register_buffer("class_text", text_embeddings(clip, arch, list(CLASS_PROMPTS)))
            self.register_buffer("predicate_text", text_embeddings(clip, arch, predicate_prompts))
            self.what_proj = nn.Linear(self.class_text.shape[1], dim)
            self.pair_to_text = nn.Linear(dim, self.predicate_text.shape[1])
            self.text_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        else:
            self.class_embed = nn.Parameter(torch.randn(n_cls, dim) * 0.02)

        layer = nn.TransformerDecoderLayer(dim, 4, dim * 4, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers=2, norm=nn.LayerNorm(dim))
        self.class_head = nn.Linear(dim, n_cls + 1)  # last class = no object
        box_delta = nn.Linear(dim, 4)
        nn.init.zeros_(box_delta.weight)  # start at the proposed boxes
        nn.init.zeros_(box_delta.bias)
        self.box_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), box_delta)

        self.subject_proj = nn.Linear(dim, dim)
        self.object_proj = nn.Linear(dim, dim)
        self.geometry_embed = nn.Sequential(nn.Linear(GEOMETRY_DIM, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.pair_mlp = nn.Sequential(nn.LayerNorm(dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.predicate_head = nn.Linear(dim, n_pred)
        self.facing_head = FacingHead()

    def dense(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Feature map [B,dim,S,S], centre heatmap logits [B,C,S,S] and size/offset [B,4,S,S]."""
        return self.dense_from(self.backbone(images))

    def dense_from(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """The dense heads on a backbone feature map [B,dim,S,S]."""
        return {"features": features, "heatmap": self.heatmap_head(features), "size": self.size_head(features)}

    def proposals(self, dense: dict[str, torch.Tensor], cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes [B,Q,4] (cxcywh in 0..1) proposed at ``cells`` [B,Q] and their class logits [B,Q,C]."""
        size = dense["size"].flatten(2).transpose(1, 2)  # [B, S*S, 4]
        picked = torch.gather(size, 1, cells[..., None].expand(-1, -1, 4))
        side = dense["size"].shape[-1]
        centre = self.cell_xy[cells] + picked[..., 2:].tanh() / side
        wh = picked[..., :2].clamp(-8.0, 1.0).exp()
        heat = dense["heatmap"].flatten(2).transpose(1, 2)
        return torch.cat([centre, wh], dim=-1), torch.gather(heat, 1, cells[..., None].expand(-1, -1, heat.shape[-1]))

    def queries(self, boxes: torch.Tensor, class_logits: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """Initial queries [B,Q,dim]: what (class text or learned embeddings) + where (box) + the feature there."""
        mix = class_logits.softmax(dim=-1)
        what = self.what_proj(mix @ self.class_text) if self.use_vlm else mix @ self.class_embed
        return what + self.box_embed(boxes) + visual

    def predicate_logits(self, hidden: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Predicate logits [B,Q,Q,P] for every (subject, object) pair from the multi-modal feature bank."""
        # Geometry from detached boxes: box supervision alone trains the box head.
        geometry = self.geometry_embed(pair_geometry(boxes.detach()))
        pair = self.subject_proj(hidden)[:, :, None] + self.object_proj(hidden)[:, None] + geometry
        pair = self.pair_mlp(pair)
        logits = self.predicate_head(pair)
        if self.use_vlm:
            sim = F.normalize(self.pair_to_text(pair), dim=-1) @ self.predicate_text.T
            logits = logits + self.text_scale.exp() * sim
        return logits

    def decode(self, dense: dict[str, torch.Tensor], cells: torch.Tensor) -> dict[str, torch.Tensor]:
        """Objects and predicates for the queries placed at ``cells`` [B,Q]."""
        proposed, proposed_logits = self.proposals(dense, cells)
        memory = dense["features"].flatten(2).transpose(1, 2)
        visual = torch.gather(memory, 1, cells[..., None].expand(-1, -1, memory.shape[-1]))
        memory = memory + self.position_embed(self.cell_xy)
        hidden = self.decoder(self.queries(proposed, proposed_logits, visual), memory)
        refined = (torch.logit(proposed.clamp(1e-4, 1 - 1e-4)) + self.box_head(hidden)).sigmoid()
        boxes = cxcywh_to_xyxy(refined).clamp(0.0, 1.0)
        return {
            "boxes": boxes,
            "class_logits": self.class_head(hidden),
            "predicate_logits": self.predicate_logits(hidden, boxes),
        }

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        dense = self.dense(images)
        out = self.decode(dense, peaks(dense["heatmap"], NUM_QUERIES))
        return {**out, "facing_logits": self.facing_head(images, out["boxes"])}

    @staticmethod
    def postprocess(outputs: dict[str, torch.Tensor], k: int = NUM_TRIPLETS) -> dict[str, torch.Tensor]:
        """Objects and the top-``k`` relation triplets per image.

        Returns boxes [B,Q,4], class_ids [B,Q] int32, class_scores [B,Q], facing [B,Q] (probability that
        the object faces the camera), triplets [B,k,3] int32
        (subject query, predicate id, object query; subject != object) and triplet_scores [B,k],
        best first: subject score * object score * predicate probability.
        """
        probs = outputs["class_logits"].softmax(dim=-1)[..., :-1]  # drop no-object
        class_scores, class_ids = probs.max(dim=-1)
        # Predicates are not exclusive in general: sigmoid, scored one by one.
        pred = outputs["predicate_logits"].sigmoid()
        batch, q, _, p = pred.shape
        scores = class_scores[:, :, None, None] * class_scores[:, None, :, None] * pred
        self_pair = torch.eye(q, dtype=torch.bool, device=pred.device)[None, :, :, None]
        scores = scores.masked_fill(self_pair, -1.0)  # below any real score, so never in the top k
        top_scores, flat = scores.flatten(1).topk(k, dim=1)
        subject, rest = flat // (q * p), flat % (q * p)
        triplets = torch.stack([subject, rest % p, rest // p], dim=-1)
        return {
            "boxes": outputs["boxes"],
            "class_ids": class_ids.to(torch.int32),
            "class_scores": class_scores,
            "facing": outputs["facing_logits"].sigmoid(),
            "triplets": triplets.to(torch.int32),
            "triplet_scores": top_scores,
        }
