"""3-D drawing lists: things are described in ego-frame metres, projected together once, drawn far to near."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import ImageDraw

from sim.render.frame import F32, Frame

Color = tuple[float, float, float]
NEAR = 0.6  # metres: polygons are cut here, a little beyond the camera's own cut-off
MAX_GLOW = 0.06  # largest halo radius, as a fraction of the image width


@dataclass(frozen=True)
class Glow:
    """An additive halo around a lamp, in pixels."""

    u: float
    v: float
    r: float
    color: np.ndarray
    strength: float
    stretch: float = 1.0  # vertical elongation (wet-road reflections)
    key: float = 0.0  # forward distance of its lamp, for occlusion by nearer solid things


@dataclass
class Sketch:
    """Drawing instructions for one thing; ``key`` orders things far to near."""

    key: float
    illum: np.ndarray  # (3,) light falling on it
    solid: bool = False  # hides the glows of farther things behind its outline
    pts: list[tuple[float, float, float]] = field(default_factory=list)
    ops: list[tuple] = field(default_factory=list)

    def p(self, x: float, y: float, z: float) -> int:
        """Add a point, return its index."""
        self.pts.append((x, y, z))
        return len(self.pts) - 1

    def poly(self, idx: list[int], color: Color, lit: bool = False) -> None:
        """A filled polygon; ``lit`` colours are self-luminous (not darkened at night)."""
        self.ops.append(("poly", idx, color, lit))

    def line(self, idx: list[int], color: Color, width_m: float, lit: bool = False) -> None:
        """A polyline ``width_m`` metres thick at its first point's depth."""
        self.ops.append(("line", idx, color, lit, width_m))

    def disc(self, centre: int, radius_m: float, color: Color, lit: bool = False) -> None:
        """A disc facing the camera."""
        self.ops.append(("disc", [centre], color, lit, radius_m))

    def glow(self, centre: int, radius_m: float, color: Color, strength: float, mirror: int = -1) -> None:
        """A halo around a lamp; ``mirror`` is the lamp's reflection point below the ground (or -1)."""
        self.ops.append(("glow", [centre, mirror], color, True, radius_m, strength))


def _clip_near(fr: Frame, pts: np.ndarray, depth: np.ndarray) -> list[tuple[float, float]]:
    """Pixel outline of a polygon cut at the near plane (for things reaching past the camera)."""
    keep = []
    n = len(pts)
    for i in range(n):
        p, q, dp, dq = pts[i], pts[(i + 1) % n], depth[i], depth[(i + 1) % n]
        if dp >= NEAR:
            keep.append(p)
        if (dp >= NEAR) != (dq >= NEAR):
            keep.append(p + (q - p) * ((NEAR - dp) / (dq - dp)))
    if len(keep) < 3:
        return []
    k = np.array(keep)
    u, v, _ = fr.cam.project(k[:, 0], k[:, 1], k[:, 2])
    return list(zip(np.nan_to_num(u).tolist(), np.nan_to_num(v).tolist(), strict=True))


def _paint(color: Color, mul: list[float], add: list[float]) -> tuple[int, int, int]:
    r, g, b = color
    return (
        int(min(255.0, r * mul[0] + add[0])),
        int(min(255.0, g * mul[1] + add[1])),
        int(min(255.0, b * mul[2] + add[2])),
    )


def draw_sketches(fr: Frame, sketches: list[Sketch], draw: ImageDraw.ImageDraw) -> list[Glow]:
    """Draw ``sketches`` far to near onto ``draw``, with night and fog applied per thing; return their glows."""
    if not sketches:
        return []
    look, fx = fr.look, fr.cam.fx
    allpts = np.array([p for s in sketches for p in s.pts], dtype=np.float64)
    u, v, depth = fr.cam.project(allpts[:, 0], allpts[:, 1], allpts[:, 2])
    ok = (depth > 0.5) & np.isfinite(u) & np.isfinite(v)
    ul, vl, dl, okl = u.tolist(), v.tolist(), depth.tolist(), ok.tolist()
    wet = fr.spec.surface == "wet" or fr.spec.weather == "rain"
    fog_glow = 1.8 if fr.spec.weather in ("fog", "snow") else 1.0
    glows: list[Glow] = []
    outlines: list[tuple[float, float, float, float, float]] = []
    starts = np.cumsum([0] + [len(s.pts) for s in sketches])
    for si in sorted(range(len(sketches)), key=lambda i: -sketches[i].key):
        sk, base = sketches[si], int(starts[si])
        if not sk.pts:
            continue
        d0 = dl[base] if okl[base] else max(sk.key, 0.5)
        f = 1.0 - math.exp(-d0 / look.vis_m)
        mul, add = (sk.illum * (1 - f)).tolist(), (look.haze * f).tolist()
        mul_lit, add_lit = [1 - 0.7 * f] * 3, (look.haze * (0.7 * f)).tolist()
        if sk.solid:
            su, sv = u[base : base + len(sk.pts)], v[base : base + len(sk.pts)]
            if np.isfinite(su).any():
                box = (float(np.nanmin(su)), float(np.nanmin(sv)), float(np.nanmax(su)), float(np.nanmax(sv)))
                outlines.append((sk.key, *box))
        for op in sk.ops:
            kind, idx, color, lit = op[0], op[1], op[2], op[3]
            first = base + idx[0]
            fill = _paint(color, mul_lit, add_lit) if lit else _paint(color, mul, add)
            if kind == "poly":
                ids = [base + i for i in idx]
                if all(okl[i] for i in ids):
                    draw.polygon([(ul[i], vl[i]) for i in ids], fill=fill)
                else:
                    xy = _clip_near(fr, allpts[ids], depth[ids])
                    if len(xy) >= 3:
                        draw.polygon(xy, fill=fill)
                continue
            if not okl[first]:
                continue
            if kind == "line":
                ids = [base + i for i in idx]
                if all(okl[i] for i in ids):
                    draw.line([(ul[i], vl[i]) for i in ids], fill=fill, width=max(1, round(fx * op[4] / dl[first])))
            elif kind == "disc":
                r = fx * op[4] / dl[first]
                if r < 0.35:
                    continue
                draw.ellipse([ul[first] - r, vl[first] - r, ul[first] + r, vl[first] + r], fill=fill)
            else:
                r = min(max(0.8, fx * op[4] / dl[first] * fog_glow), MAX_GLOW * fr.cam.width)
                if r * op[5] < 0.3:  # too small and faint to show
                    continue
                col = np.array(color, F32) / 255 * F32(1 - 0.5 * f)
                glows.append(Glow(ul[first], vl[first], r, col, op[5], key=sk.key))
                m = idx[1]
                if wet and m >= 0 and okl[base + m]:
                    glows.append(Glow(ul[base + m], vl[base + m], r * 0.8, col, op[5] * 0.45, 4.0, sk.key))
    return [gl for gl in glows if not _hidden(gl, outlines)]


def _hidden(gl: Glow, outlines: list[tuple[float, float, float, float, float]]) -> bool:
    """Whether the outline of a nearer solid thing covers the lamp (its halo is then not drawn)."""
    return any(key < gl.key - 1 and u1 <= gl.u <= u2 and v1 <= gl.v <= v2 for key, u1, v1, u2, v2 in outlines)
