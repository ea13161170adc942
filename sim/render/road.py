"""The ground plane, pixel by pixel: carriageway, markings, surface condition, roadside bands, light pools."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from sim.render.frame import F32, TEX, TEX_CELL_M, Frame, lamp_xs, rgb, smooth_noise

WHITE = rgb(222, 222, 214)
YELLOW = rgb(226, 178, 40)
VEHICLES = ("car", "truck", "bus")


def _dashes(fr: Frame, period: float, duty: float, phase: float) -> np.ndarray:
    """(Hg,) on/off per row for dashes along x; the average duty where a row spans a large part of a period."""
    gx = fr.g.gx
    on = (((gx + phase) / period) % 1.0 < duty).astype(F32)
    step = np.abs(np.gradient(gx)) if gx.size > 1 else np.zeros_like(gx)
    return np.where(step > period * 0.3, F32(duty), on)


Stroke = tuple[float, float, np.ndarray, np.ndarray]  # lateral y, half width (m), colour (3,), opacity per row


def _strokes(fr: Frame, alb: np.ndarray, strokes: list[Stroke]) -> None:
    """Blend anti-aliased lines along x into the (3, Hg, W) ground albedo, touching only the pixels they cover."""
    if not strokes:
        return
    g, cam = fr.g, fr.cam
    ys = np.array([s[0] for s in strokes], F32)[:, None]
    half = np.array([s[1] for s in strokes], F32)[:, None]
    colors = np.stack([s[2] for s in strokes], 1)
    alpha = np.stack([s[3] for s in strokes])
    uc = cam.cx - cam.fx * ys / g.gs[None, :]
    hw = half * g.inv_mpp[None, :, 0]
    k = int(math.ceil(2 * float(hw.max()) + 3))
    cols = np.floor(uc - hw - 1).astype(np.int64)[..., None] + np.arange(k)
    dist = np.abs(cols + 0.5 - uc[..., None])
    hw = hw[..., None]
    cov = np.minimum(np.minimum(np.maximum(0.5 + hw - dist, 0), 1), 2 * hw) * alpha[..., None]
    ok = (cols >= 0) & (cols < alb.shape[2]) & (cov > 0.01)
    line, rows, _ = np.nonzero(ok)
    cols, a = cols[ok], cov[ok].astype(F32)
    alb[:, rows, cols] += a * (colors[:, line] - alb[:, rows, cols])


def paint_ground(fr: Frame) -> None:
    """Ground albedo below the horizon: bands, carriageway, lane markings and the surface condition."""
    g, spec, lay, rng = fr.g, fr.spec, fr.layout, fr.rng
    if g.gx.size == 0:
        return
    road, surface = spec.road, spec.surface
    le, re, w = road.left_edge_y, road.right_edge_y, road.lane_width_m
    y = g.gy
    out = np.maximum(y - le, re - y)
    asphalt = rgb(*(rng.uniform(78, 112) + rng.uniform(-4, 4, 3)))
    if surface == "snow":
        asphalt = rgb(*(rng.uniform(200, 225) + rng.uniform(-4, 4, 3)))
    elif surface == "wet":
        asphalt *= 0.6
    palette = np.vstack([asphalt[None], lay.band_colors * (0.8 if surface == "wet" else 1.0)])
    idx = (out > 0).astype(np.int32)
    for end in lay.band_ends.tolist():
        idx += out > end
    # Fine grain in world coordinates (so it shrinks with distance), faded where it would alias.
    ix = (g.gx * (1 / TEX_CELL_M)).astype(np.int32) & (TEX - 1)
    iy = (y * (1 / TEX_CELL_M)).astype(np.int32) & (TEX - 1)
    fade = np.clip(1.3 - 1.0 / (g.inv_mpp * 0.12), 0.15, 1.0) * F32(0.09 if surface != "snow" else 0.04)
    shade = np.take(g.tex, (ix * TEX)[:, None] + iy) * fade
    shade += smooth_noise(rng, (y.shape[0], y.shape[1]), (3, 6)) * F32(rng.uniform(0.03, 0.08))
    shade += 1
    alb = fr.img[:, g.g0 :]  # painted in place
    for c in range(3):
        np.take(palette[:, c], idx, out=alb[c])
    alb *= shade
    onroad = out <= 0

    lanes, opp = road.lanes, road.lanes_opposite
    wear = rng.uniform(0.6, 0.95) * {"snow": 0.12, "damaged": 0.6, "wet": 0.8}.get(surface, 1.0)
    solid = np.full(g.gx.shape, F32(wear))
    dashed = _dashes(fr, 12.0, 0.27, rng.uniform(0, 12)) * F32(wear)
    lines: list[Stroke] = [(le - k * w, 0.07, WHITE, dashed) for k in range(1, lanes) if k != opp]
    ins = rng.uniform(0.15, 0.35)
    if rng.random() < 0.75 or road.scene_type in ("highway", "arterial", "tunnel"):
        lines += [(le - ins, 0.06, WHITE, solid), (re + ins, 0.06, WHITE, solid)]
    if 0 < opp < lanes:
        yc = le - opp * w
        if lanes >= 4 or rng.random() < 0.5:
            lines += [(yc + 0.12, 0.055, YELLOW, solid), (yc - 0.12, 0.055, YELLOW, solid)]
        else:
            lines.append((yc, 0.07, YELLOW, solid))

    if surface == "snow":
        # Grey slush in the wheel tracks of every lane.
        slush = rgb(*(rng.uniform(125, 165) + rng.uniform(-3, 6, 3)))
        for lane in range(lanes):
            yc = road.lane_center_y(lane)
            alpha = np.full(g.gx.shape, F32(rng.uniform(0.5, 0.85)))
            for off in (-0.8, 0.8):
                lines.append((yc + off + rng.uniform(-0.1, 0.1), rng.uniform(0.12, 0.22), slush, alpha))
    elif surface == "wet":
        bx, by = (g.gx * 10).astype(np.int32) & (TEX - 1), (y * 10).astype(np.int32) & (TEX - 1)
        blob = np.take(g.blob, bx[:, None] * TEX + by)  # puddles: smooth blobs a few metres across
        puddle = (blob > rng.uniform(0.8, 1.3)) & onroad
        fresnel = (0.22 + 0.5 * (1 - np.exp(-g.gx / 25.0))).astype(F32)[:, None]
        reflect = np.where(onroad, fresnel, fresnel * 0.3) * F32(rng.uniform(0.7, 1.0))
        fr.reflect = np.where(puddle, F32(0.85), reflect).astype(F32)
        alb[:, puddle] *= 0.5
    elif surface == "damaged":
        alb *= _damage(fr)
    _strokes(fr, alb, lines)
    fr.depth[g.g0 :] = g.gs[:, None]


def _ground_poly(fr: Frame, xs: np.ndarray, ys: np.ndarray) -> list[tuple[float, float]] | None:
    u, v, depth = fr.cam.project(xs, ys, np.zeros_like(xs))
    if not np.all(depth > 0.5):
        return None
    return list(zip(u.tolist(), (v - fr.g.g0).tolist(), strict=True))


def _damage(fr: Frame) -> np.ndarray:
    """(Hg, W) albedo factor of a damaged road: patches, cracks and potholes drawn in ground coordinates."""
    rng, road = fr.rng, fr.spec.road
    le, re = road.left_edge_y, road.right_edge_y
    hg, w = fr.g.gy.shape
    mask = Image.new("L", (w, hg), 128)
    draw = ImageDraw.Draw(mask)
    for _ in range(rng.integers(2, 6)):
        x0, length = rng.uniform(3, 60), rng.uniform(2, 9)
        y0 = rng.uniform(re, le)
        width = rng.uniform(1, 3)
        xs, ys = np.array([x0, x0, x0 + length, x0 + length]), np.array([y0, y0 - width, y0 - width, y0])
        pts = _ground_poly(fr, xs, ys)
        if pts:
            draw.polygon(pts, fill=int(rng.choice([rng.integers(85, 110), rng.integers(140, 165)])))
    for _ in range(rng.integers(8, 18)):
        steps = rng.integers(6, 20)
        heading = rng.uniform(-0.6, 0.6) + (math.pi / 2 if rng.random() < 0.4 else 0)
        ang = heading + np.cumsum(rng.normal(0, 0.5, steps))
        seg = rng.uniform(0.3, 1.0, steps)
        xs = rng.uniform(2.5, 45) + np.cumsum(seg * np.cos(ang))
        ys = rng.uniform(re, le) + np.cumsum(seg * np.sin(ang))
        pts = _ground_poly(fr, xs, ys)
        if pts:
            draw.line(pts, fill=int(rng.integers(35, 70)), width=1 + int(xs[0] < 8))
    for _ in range(rng.integers(1, 6)):
        x0, y0 = rng.uniform(4, 40), rng.uniform(re + 0.5, le - 0.5)
        around = np.linspace(0, 2 * math.pi, 12, endpoint=False)
        rad = rng.uniform(0.3, 0.9) * rng.uniform(0.7, 1.2, 12)
        rim = _ground_poly(fr, x0 + 1.25 * rad * np.cos(around), y0 + 1.25 * rad * np.sin(around))
        hole = _ground_poly(fr, x0 + rad * np.cos(around), y0 + rad * np.sin(around))
        if rim and hole:
            draw.polygon(rim, fill=150)
            draw.polygon(hole, fill=int(rng.integers(30, 55)))
    return np.asarray(mask, dtype=F32) * F32(1 / 128)


def paint_lights(fr: Frame) -> None:
    """Artificial light on the ground: ego headlights, street-light pools, other vehicles' headlight cones."""
    look, g, lay, spec = fr.look, fr.g, fr.layout, fr.spec
    if look.dark <= 0 or g.gx.size == 0 or spec.road.scene_type == "tunnel":
        return
    x, y = g.gx[:, None], g.gy
    near = g.gx < 60
    xs, ys = x[near], y[near]
    ego = np.clip((xs - 2.5) / 6.0, 0, 1) * np.exp(-xs / 20.0) * np.exp(-((ys / (0.8 + 0.18 * xs)) ** 2))
    fr.head[near] += ego * F32(0.6 * look.dark)
    xl = lamp_xs(lay)
    if lay.lamps_on and xl.size:
        sp, r2 = lay.lamp_spacing, 8.0**2
        dx = ((g.gx - lay.lamp_phase + sp / 2) % sp) - sp / 2
        along = np.where((g.gx > xl[0] - sp / 2) & (g.gx < xl[-1] + sp / 2), np.exp(-(dx**2) / r2), 0)[:, None]
        road = spec.road
        lateral = np.zeros_like(y)
        if lay.lamp_sides[0]:
            lateral += np.exp(-((y - (road.left_edge_y - 1.0)) ** 2) / r2)
        if lay.lamp_sides[1]:
            lateral += np.exp(-((y - (road.right_edge_y + 1.0)) ** 2) / r2)
        fr.light += (along * lateral * F32(0.8)).astype(F32)
    for o in spec.objects:
        if o.cls not in VEHICLES or o.lights != "head":
            continue
        c, s = math.cos(o.heading), math.sin(o.heading)
        cx, cy = o.x + c * (o.length / 2 + 7), o.y + s * (o.length / 2 + 7)
        rows = (g.gx > cx - 14) & (g.gx < cx + 14)
        if not rows.any():
            continue
        dx, dy = g.gx[rows][:, None] - cx, y[rows] - cy
        da, db = dx * c + dy * s, -dx * s + dy * c
        fr.head[rows] += np.exp(-((da / 7.0) ** 2) - (db / 2.2) ** 2) * F32(1.0 * look.dark)
