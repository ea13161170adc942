"""Everything beside and above the road: far tree or skyline band, facades, houses, hedges, rails, tunnel."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.render.frame import F32, TEX, Frame, rgb, smooth_noise

URBAN_COLORS = [(214, 190, 140), (226, 214, 180), (190, 120, 90), (170, 170, 165), (225, 225, 218), (186, 150, 150)]
URBAN_COLORS += [(140, 152, 130), (204, 170, 116), (150, 160, 170)]
HOUSE_COLORS = [(150, 48, 38), (214, 184, 96), (232, 230, 222), (150, 180, 200), (120, 140, 100), (190, 160, 130)]
BLOCK_COLORS = [(150, 155, 160), (120, 130, 140), (180, 176, 168), (100, 115, 130), (200, 195, 185)]
WARM_WINDOW = rgb(255, 212, 150)


def _c(*c: float) -> np.ndarray:
    """A colour shaped (3, 1, 1), to broadcast over planar (3, rows, cols) images."""
    return rgb(*c)[:, None, None]


@dataclass(frozen=True)
class Segments:
    """Buildings along one side, from ``bounds[i]`` to ``bounds[i + 1]`` metres forward."""

    bounds: np.ndarray
    top: np.ndarray  # height, 0 = gap
    gable: np.ndarray  # extra height at the middle of a gabled house
    color: np.ndarray  # (n, 3)
    spacing: np.ndarray  # window columns
    floor: np.ndarray  # storey height
    ground: np.ndarray  # where the upper-floor windows start (shop floor below)
    sign: np.ndarray  # (n, 3) shop-sign colour, zero = none


N_SEG = 32


def _segments(fr: Frame, kind: str) -> Segments:
    rng, n = fr.rng, N_SEG
    u = rng.uniform
    alternate = np.arange(n) % 2 == 1
    if kind == "urban":
        length, gap = u(10, 30, n), rng.random(n) < 0.08
        top, gable, palette = u(12, 26, n), np.zeros(n), URBAN_COLORS
        spacing, floor, ground = u(2.6, 3.6, n), u(3.0, 3.4, n), u(3.8, 4.6, n)
    elif kind == "house":
        length, gap = np.where(alternate, u(4, 14, n), u(8, 16, n)), alternate
        top, gable, palette = u(3.5, 6.5, n), u(1.5, 3, n) * (rng.random(n) < 0.6), HOUSE_COLORS
        spacing, floor, ground = u(3.5, 5, n), np.full(n, 2.8), np.full(n, 0.9)
    else:
        length, gap = np.where(alternate, u(10, 40, n), u(25, 60, n)), alternate
        top, gable, palette = u(10, 35, n), np.zeros(n), BLOCK_COLORS
        spacing, floor, ground = u(2, 3.5, n), np.full(n, 3.5), np.full(n, 1.0)
    color = np.array(palette, dtype=F32)[rng.integers(len(palette), size=n)] + u(-12, 12, (n, 3))
    signs = (rng.random(n) < fr.spec.clutter) & (kind == "urban")
    return Segments(
        bounds=np.concatenate([[u(-5, 5)], u(-5, 5) + np.cumsum(length)]).astype(F32),
        top=np.where(gap, 0, top).astype(F32),
        gable=gable.astype(F32),
        color=np.clip(color, 0, 255).astype(F32),
        spacing=spacing.astype(F32),
        floor=floor.astype(F32),
        ground=ground.astype(F32),
        sign=(u(40, 255, (n, 3)) * signs[:, None]).astype(F32),
    )


def _wall_coords(fr: Frame, yw: float, zmax: float) -> tuple[int, slice, np.ndarray, np.ndarray, np.ndarray] | None:
    """For the plane y = yw up to height ``zmax``: first row, its side's columns and each pixel's (x, z, depth).

    Rows are limited to those the plane can cover (its nearest visible column spans the most)."""
    cam, g = fr.cam, fr.g
    t = math.radians(cam.pitch_deg)
    ucx = int(min(max(cam.cx, 0), cam.width))
    cols = slice(0, ucx) if yw > 0 else slice(ucx + 1, cam.width)
    u = g.u[cols]
    if u.size == 0:
        return None
    d = (cam.fx * yw / np.where(np.abs(cam.cx - u) < 1e-3, 1e-3, cam.cx - u))[None, :]
    dmin = float(d.min())
    h = cam.mounting_height_m
    vtop = cam.cy - cam.fy * ((zmax - h) + dmin * math.sin(t)) / (math.cos(t) * dmin)
    vbot = cam.cy - cam.fy * (-h + dmin * math.sin(t)) / (math.cos(t) * dmin)
    row0, row1 = max(0, int(vtop) - 1), min(cam.height, int(math.ceil(vbot)) + 1)
    if row0 >= row1:
        return None
    up = (cam.cy - g.v[row0:row1, None]) * d / cam.fy
    dz = up * math.cos(t) - d * math.sin(t)
    return row0, cols, (d + dz * math.sin(t)) / math.cos(t), h + dz, np.broadcast_to(d, dz.shape)


def _put(fr: Frame, row0: int, cols: slice, mask: np.ndarray, alb: np.ndarray, depth: np.ndarray) -> None:
    """Write albedo and depth where ``mask`` (rows from ``row0``, columns ``cols``) is set."""
    rows = slice(row0, row0 + mask.shape[0])
    np.copyto(fr.img[:, rows, cols], alb, where=mask)
    np.copyto(fr.depth[rows, cols], depth, where=mask)


def _frac(a: np.ndarray) -> np.ndarray:
    return a - np.floor(a)


def _facades(fr: Frame, yw: float, segs: Segments, lit_p: float) -> None:
    wc = _wall_coords(fr, yw, float((segs.top + segs.gable).max()))
    if wc is None:
        return
    row0, cols, _, z, d = wc
    # Along the facade, x varies with the column only (up to the small tilt from the camera's pitch).
    x = d[0] / math.cos(math.radians(fr.cam.pitch_deg))
    i = np.clip(np.searchsorted(segs.bounds, x) - 1, 0, segs.top.size - 1)
    start = segs.bounds[i]
    top = segs.top[i] + segs.gable[i] * (1 - np.abs(2 * (x - start) / (segs.bounds[i + 1] - start) - 1))
    top = np.where((x > segs.bounds[0]) & (x < segs.bounds[-1]), top, -1.0)
    mask = (z >= 0) & (z < top)
    if not mask.any():
        return
    fa = (x - start) / segs.spacing[i]
    fa1, half = _frac(fa), _frac(fa * 0.5)
    ground = segs.ground[i]
    fz = (z - ground) / segs.floor[i]
    fz1 = _frac(fz)
    win = ((fa1 > 0.3) & (fa1 < 0.7)) & (fz1 > 0.3) & (fz1 < 0.75) & (fz > 0) & (z < top - 1.2)
    glazed = win | (((half > 0.12) & (half < 0.88)) & (z > 0.5) & (z < ground - 0.7))
    # Material per pixel (wall, glass, cornice, shop sign, distant blend), then one lookup per segment.
    mat = glazed.astype(np.int64)
    mat[z > top - 0.45] = 2
    mat[(z > ground - 0.65) & (z < ground - 0.1) & (segs.sign[i, 0] > 0)] = 3
    mat[:, d[0] > fr.cam.fx * 0.3] = 4  # windows narrower than ~4 px blend into the wall
    mat += i * 5
    wall, glass = segs.color, fr.look.glass[None, :] * 1.4
    table = np.stack([wall, np.broadcast_to(glass, wall.shape), wall * 0.6, segs.sign, wall * 0.75 + glass * 0.25], 1)
    table = table.reshape(-1, 3)
    rows = slice(row0, row0 + mask.shape[0])
    for c in range(3):
        np.copyto(fr.img[c, rows, cols], np.take(table[:, c], mat), where=mask)
    np.copyto(fr.depth[rows, cols], d, where=mask)
    if fr.look.dark > 0:
        lut = fr.rng.random(1021)
        key = (i * 7919 + fa.astype(np.int64) * 104729 + (fz.astype(np.int64) + 7) * 1299709) % 1021
        lit = glazed & mask & (lut[key] < lit_p * fr.look.dark)
        np.copyto(fr.emit[:, rows, cols], (WARM_WINDOW * F32(0.8))[:, None, None], where=lit)


def _low_wall(fr: Frame, yw: float, zlo: float, zhi: float, kind: str) -> None:
    """Hedges, guard rails and noise barriers: low planes along the road, clipped to the rows they can reach."""
    rng = fr.rng
    wc = _wall_coords(fr, yw, zhi + 0.3)
    if wc is None:
        return
    row0, cols, x, z, d = wc
    if kind == "hedge":
        gaps = (x % rng.uniform(14, 30)) < rng.uniform(2, 5)
        tex = fr.g.tex[(x * 6).astype(np.int64) % TEX, (z * 6).astype(np.int64) % TEX]
        top = zhi + 0.15 * fr.g.tex[(x * 2).astype(np.int64) % TEX, 7]
        mask = (z >= 0) & (z < top) & ~gaps & (x > 1)
        alb = rgb(46, 78, 40)[:, None, None] * (1 + 0.25 * tex)
    elif kind == "rail":
        post = (x % 4.0) < 0.14
        mask = (((z > zlo) & (z < zhi)) | (post & (z >= 0) & (z < zhi))) & (x > 1)
        band = np.where(z > zhi - 0.08, _c(205, 208, 212), _c(160, 163, 168))
        alb = np.where(post & (z < zlo), _c(90, 90, 92), band)
    else:
        mask = (z >= 0) & (z < zhi) & (x > rng.uniform(0, 60))
        panel = _c(*rng.choice([(120, 110, 90), (90, 112, 96), (140, 140, 135)]))
        alb = np.where((x % 4.0) < 0.15, panel * 0.6, panel)
    if mask.any():
        _put(fr, row0, cols, mask, alb, d)


def _far_band(fr: Frame) -> None:
    cam, g, rng = fr.cam, fr.g, fr.rng
    scene = fr.spec.road.scene_type
    w, hv = cam.width, cam.horizon_v
    dist = rng.uniform(300, 800)
    if scene == "urban street" or (scene == "arterial" and rng.random() < 0.5):
        steps = np.repeat(rng.uniform(15, 60, w // 6 + 1), 6)[:w]
        height, color = steps, rgb(*(rng.uniform(100, 130) + rng.uniform(-6, 6, 3)))
    else:
        height = rng.uniform(10, 25) * (1 + 0.35 * smooth_noise(rng, (1, w), (1, 12))[0])
        height = height + rng.uniform(0, 8, w) * (rng.random(w) < 0.15)
        color = rgb(36, 54, 38) * F32(rng.uniform(0.8, 1.2))
    px = cam.fy * height / dist
    row0 = max(0, int(hv - px.max()) - 1)
    if row0 >= g.g0:
        return
    mask = g.v[row0 : g.g0, None] > hv - px[None, :]
    fr.img[:, row0 : g.g0][:, mask] = color[:, None]
    fr.depth[row0 : g.g0][mask] = dist


def _tunnel(fr: Frame) -> None:
    cam, g, rng, road = fr.cam, fr.g, fr.rng, fr.spec.road
    t = math.radians(cam.pitch_deg)
    hc = rng.uniform(5.0, 6.5)
    end = rng.uniform(150, 500)
    # Ceiling: the plane z = hc seen above the horizon.
    a = (g.v[: g.g0] - cam.cy) / cam.fy
    dz = -math.sin(t) - a * math.cos(t)
    s = (hc - cam.mounting_height_m) / np.maximum(dz, 1e-6)
    x = (s * (math.cos(t) - a * math.sin(t)))[:, None]
    y = s[:, None] * g.col[None, :]
    fr.img[:, : g.g0] = _c(52, 52, 56)
    fr.depth[: g.g0] = np.minimum(s, end)[:, None]
    sp = rng.uniform(3, 10)
    rows_y = [(road.left_edge_y + road.right_edge_y) / 2]
    if rng.random() < 0.5:
        rows_y = [road.left_edge_y - road.lane_width_m * 0.5, road.right_edge_y + road.lane_width_m * 0.5]
    on = ((x / sp) % 1 < 0.45) | (np.abs(np.gradient(s)) > sp * 0.4)[:, None]
    lamp = np.zeros_like(y, dtype=bool)
    for yl in rows_y:
        lamp |= np.abs(y - yl) < 0.3
    fr.emit[:, : g.g0][:, lamp & on & (x < end)] = (fr.look.lamp * F32(255 * 1.1))[:, None]
    for yw in (road.left_edge_y + fr.layout.wall, road.right_edge_y - fr.layout.wall):
        wc = _wall_coords(fr, yw, hc)
        if wc is None:
            continue
        row0, cols, xw, zw, dw = wc
        mask = (zw >= 0) & (zw <= hc) & (xw < end)
        tiles = zw < 2.8
        joint = (xw % 2.5) < 0.06
        alb = np.where(tiles, _c(188, 188, 180), _c(74, 74, 78))
        alb = np.where(joint & tiles, alb * 0.7, alb)
        alb = np.where(zw < 0.35, alb * 0.55, alb)
        _put(fr, row0, cols, mask, alb, dw)
    # The way out: daylight, dusk or night beyond the tunnel's end.
    u, v, _ = cam.project(
        np.array([end, end]), np.array([road.left_edge_y + 1, road.right_edge_y - 1]), np.array([0.0, hc])
    )
    u1, u2 = sorted(np.nan_to_num(u).tolist())
    v1, v2 = sorted(np.nan_to_num(v).tolist())
    sl = (slice(max(0, int(v1)), max(0, math.ceil(v2))), slice(max(0, int(u1)), max(0, math.ceil(u2))))
    portal = {"day": rgb(250, 250, 240), "dusk": rgb(210, 140, 100)}.get(fr.spec.lighting, rgb(12, 14, 26))
    fr.img[:, sl[0], sl[1]] = 0
    fr.emit[:, sl[0], sl[1]] = portal[:, None, None]
    fr.depth[sl] = end


def paint_background(fr: Frame) -> None:
    """Far band, buildings, hedges, rails or tunnel for the spec's scene type (after the ground)."""
    road, lay, rng = fr.spec.road, fr.layout, fr.rng
    scene = road.scene_type
    if scene == "tunnel":
        _tunnel(fr)
        return
    _far_band(fr)
    left, right = road.left_edge_y + lay.wall, road.right_edge_y - lay.wall
    kind = {"urban street": "urban", "residential": "house", "arterial": "block"}.get(scene)
    if kind:
        lit_p = {"urban": 0.55, "house": 0.45, "block": 0.4}[kind]
        for yw in (left, right):
            _facades(fr, yw, _segments(fr, kind), lit_p)
    if scene == "residential":
        for edge, sign in ((road.left_edge_y, 1), (road.right_edge_y, -1)):
            if rng.random() < 0.75:
                _low_wall(fr, edge + sign * (lay.walk + rng.uniform(0.3, 1.0)), 0, rng.uniform(0.9, 1.6), "hedge")
    rail_p = {"highway": 1.0, "arterial": 0.4}.get(scene, 0.0)
    for edge, sign in ((road.left_edge_y, 1), (road.right_edge_y, -1)):
        if scene == "highway" and rng.random() < 0.35:
            _low_wall(fr, edge + sign * (lay.wall + rng.uniform(3, 6)), 0, rng.uniform(3, 4.5), "barrier")
        if rng.random() < rail_p:
            off = lay.wall if scene == "highway" else 0.6
            _low_wall(fr, edge + sign * off, 0.45, 0.8, "rail")
