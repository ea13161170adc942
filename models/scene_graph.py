"""Scene-graph generation in one stage, after VOST-SGG (arXiv 2512.05524), per frame.

A DETR-style decoder reads CLIP ViT patch tokens. Its NUM_QUERIES object queries are initialised
from two sources: "what" mixes CLIP text embeddings of the object classes, "where" embeds a learnable
reference box (spatial prior). Each query predicts a box and a class; every ordered pair of queries
gets predicate logits from a multi-modal feature bank: the two query features (visual), the pair's
box geometry (spatial) and similarity to CLIP text embeddings of the predicates (textual).

``use_vlm=False`` is the ablation baseline: plain learned "what" embeddings and no predicate text
bank; the spatial priors stay, so the comparison isolates what the VLM adds.

Only the image tower of CLIP is kept: the text embeddings are computed once at construction
(CLIP text is frozen here) and stored as buffers.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from models.clip_backbone import CLIP, ClipModel, ImageCfg, encode_image_tokens, text_embeddings
from models.vocab import NUM_QUERIES, NUM_TRIPLETS, OBJECT_CLASSES, PREDICATES

assert NUM_QUERIES * (NUM_QUERIES - 1) * len(PREDICATES) >= NUM_TRIPLETS
GEOMETRY_DIM = 8


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def _anchor_grid(n: int) -> torch.Tensor:
    """n reference boxes (cxcywh) whose centres tile the image row by row."""
    side = math.ceil(math.sqrt(n))
    i = torch.arange(n)
    centres = torch.stack([(i % side + 0.5) / side, (i // side + 0.5) / side], dim=-1)
    return torch.cat([centres, torch.full((n, 2), 1.0 / side)], dim=-1)


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


class SceneGraphModel(ClipModel):
    """forward(images [B,3,H,W]) -> boxes [B,Q,4] xyxy in [0,1], class_logits [B,Q,C+1], predicate_logits [B,Q,Q,P]."""

    cell_boxes: torch.Tensor
    class_text: torch.Tensor
    predicate_text: torch.Tensor

    def __init__(
        self, clip: CLIP, arch: str, image_cfg: ImageCfg, use_vlm: bool = True, dim: int = 128, heads: int = 4
    ) -> None:
        super().__init__(clip, arch, image_cfg, use_vlm=use_vlm, dim=dim, heads=heads)
        self.use_vlm = use_vlm
        self.visual = clip.visual
        embed_dim, grid = clip.visual.output_dim, clip.visual.grid_size
        n_cls, n_pred = len(OBJECT_CLASSES), len(PREDICATES)

        # Memory: CLIP patch tokens, plus their cell boxes embedded like the queries' reference boxes.
        token_width = clip.visual.transformer.width
        self.memory_proj = nn.Sequential(nn.LayerNorm(token_width), nn.Linear(token_width, dim))
        ys, xs = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
        cells = torch.stack([(xs + 0.5) / grid[1], (ys + 0.5) / grid[0]], dim=-1).flatten(0, 1)
        cell_size = torch.tensor([1 / grid[1], 1 / grid[0]]).expand_as(cells)
        self.register_buffer("cell_boxes", torch.cat([cells, cell_size], dim=-1), persistent=False)
        self.box_embed = nn.Sequential(nn.Linear(4, dim), nn.ReLU(), nn.Linear(dim, dim))

        # "where": reference boxes, stored as logits so that sigmoid keeps them in the image.
        self.ref_logits = nn.Parameter(torch.logit(_anchor_grid(NUM_QUERIES), eps=1e-4))
        # "what": a learned mixture of class text embeddings per query, or a free embedding without VLM.
        if use_vlm:
            class_prompts = [f"a photo of a {c}." for c in OBJECT_CLASSES]
            predicate_prompts = [f"something {p} something." for p in PREDICATES]
            self.register_buffer("class_text", text_embeddings(clip, arch, class_prompts))
            self.register_buffer("predicate_text", text_embeddings(clip, arch, predicate_prompts))
            self.query_mix = nn.Parameter(torch.randn(NUM_QUERIES, n_cls))
            self.what_proj = nn.Linear(embed_dim, dim)
            self.pair_to_text = nn.Linear(dim, embed_dim)
            self.text_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        else:
            self.query_embed = nn.Parameter(torch.randn(NUM_QUERIES, dim) * 0.02)

        layer = nn.TransformerDecoderLayer(dim, heads, dim * 4, dropout=0.1, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, num_layers=2, norm=nn.LayerNorm(dim))
        self.class_head = nn.Linear(dim, n_cls + 1)  # last class = no object
        box_delta = nn.Linear(dim, 4)
        nn.init.zeros_(box_delta.weight)  # start at the reference boxes
        nn.init.zeros_(box_delta.bias)
        self.box_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), box_delta)

        self.subject_proj = nn.Linear(dim, dim)
        self.object_proj = nn.Linear(dim, dim)
        self.geometry_embed = nn.Sequential(nn.Linear(GEOMETRY_DIM, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.pair_mlp = nn.Sequential(nn.LayerNorm(dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.predicate_head = nn.Linear(dim, n_pred)

    def queries(self) -> torch.Tensor:
        """Initial object queries [Q, dim]: what + where."""
        where = self.box_embed(self.ref_logits.sigmoid())
        if self.use_vlm:
            what = self.what_proj(self.query_mix.softmax(dim=-1) @ self.class_text)
        else:
            what = self.query_embed
        return what + where

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

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        _, tokens = encode_image_tokens(self.visual, images, -1)
        memory = self.memory_proj(tokens) + self.box_embed(self.cell_boxes)
        tgt = self.queries().expand(len(images), -1, -1)
        hidden = self.decoder(tgt, memory)
        cxcywh = (self.box_head(hidden) + self.ref_logits).sigmoid()
        boxes = cxcywh_to_xyxy(cxcywh).clamp(0.0, 1.0)
        return {
            "boxes": boxes,
            "class_logits": self.class_head(hidden),
            "predicate_logits": self.predicate_logits(hidden, boxes),
        }

    @staticmethod
    def postprocess(outputs: dict[str, torch.Tensor], k: int = NUM_TRIPLETS) -> dict[str, torch.Tensor]:
        """Objects and the top-``k`` relation triplets per image.

        Returns boxes [B,Q,4], class_ids [B,Q] int32, class_scores [B,Q], triplets [B,k,3] int32
        (subject query, predicate id, object query; subject != object) and triplet_scores [B,k],
        best first: subject score * object score * predicate probability.
        """
        probs = outputs["class_logits"].softmax(dim=-1)[..., :-1]  # drop no-object
        class_scores, class_ids = probs.max(dim=-1)
        # Predicates are not exclusive (a car can be in front of and following another): sigmoid.
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
            "triplets": triplets.to(torch.int32),
            "triplet_scores": top_scores,
        }
