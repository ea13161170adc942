"""Roadside things as sketches: street lights, and by ``spec.clutter`` signs, trees, bikes, bins and bollards."""

from __future__ import annotations

import math

import numpy as np

from sim.render.frame import Frame, lamp_xs
from sim.render.objects import Local, box_corners, hexa, light_on
from sim.render.sketch import Color, Sketch
from sim.scene_spec import SceneObject

KINDS = {  # scene type -> (expected count at clutter 1, weights over sign/tree/bike/bin/bollard)
    "urban street": (26, (0.3, 0.15, 0.25, 0.15, 0.15)),
    "residential": (22, (0.15, 0.5, 0.1, 0.15, 0.1)),
    "arterial": (18, (0.35, 0.4, 0.0, 0.05, 0.2)),
    "highway": (12, (0.45, 0.45, 0.0, 0.0, 0.1)),
    "tunnel": (10, (1.0, 0.0, 0.0, 0.0, 0.0)),
}
GREY: Color = (96, 98, 100)


def _street_lights(fr: Frame) -> list[Sketch]:
    lay, road, look = fr.layout, fr.spec.road, fr.look
    height = 6.5 if road.scene_type == "residential" else 9.0
    out = []
    for x in lamp_xs(lay).tolist():
        for side, edge, present in (
            (1, road.left_edge_y, lay.lamp_sides[0]),
            (-1, road.right_edge_y, lay.lamp_sides[1]),
        ):
            if not present:
                continue
            yp, ya = edge + side * 0.6, edge - side * 1.0
            sk = Sketch(key=x, illum=light_on(fr, x, yp))
            sk.line([sk.p(x, yp, 0), sk.p(x, yp, height)], GREY, 0.16)
            sk.line([sk.p(x, yp, height), sk.p(x, ya, height + 0.3)], GREY, 0.08)
            head = sk.p(x, ya, height + 0.2)
            if lay.lamps_on:
                col = tuple(float(c) for c in look.lamp * 255)
                sk.disc(head, 0.28, col, lit=True)  # type: ignore[arg-type]
                sk.glow(head, 1.2, col, 0.55 * look.dark + 0.1, mirror=sk.p(x, ya, -height))  # type: ignore[arg-type]
            else:
                sk.disc(head, 0.25, (150, 150, 146))
            out.append(sk)
    return out


def _tree(sk: Sketch, x: float, y: float, rng: np.random.Generator, wintry: bool) -> None:
    trunk = rng.uniform(1.8, 3.2)
    sk.line([sk.p(x, y, 0), sk.p(x, y, trunk + 0.5)], (70, 54, 40), 0.28)
    green = np.array([rng.uniform(30, 70), rng.uniform(70, 110), rng.uniform(25, 50)])
    for _ in range(int(rng.integers(2, 5))):
        c = green * rng.uniform(0.8, 1.2)
        if wintry:
            c = c * 0.4 + np.array([190.0, 192.0, 198.0]) * 0.6
        z = trunk + rng.uniform(0.8, 2.5)
        centre = sk.p(x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.8, 0.8), z)
        sk.disc(centre, rng.uniform(1.2, 2.4), tuple(c.tolist()))  # type: ignore[arg-type]


def _sign(sk: Sketch, x: float, y: float, rng: np.random.Generator, scene: str) -> None:
    if scene == "tunnel":  # a lit emergency-exit sign on the wall
        q = [sk.p(x, y + dy, z) for dy, z in ((0.3, 1.2), (-0.3, 1.2), (-0.3, 1.6), (0.3, 1.6))]
        sk.poly(q, (40, 220, 110), lit=True)
        return
    if scene == "highway" and rng.random() < 0.5:  # a large direction sign on two posts
        w, z0, z1 = rng.uniform(2.5, 4), 2.2, rng.uniform(3.6, 4.4)
        for dy in (w / 2 - 0.3, -w / 2 + 0.3):
            sk.line([sk.p(x, y + dy, 0), sk.p(x, y + dy, z0)], GREY, 0.12)
        board: Color = (30, 80, 170) if rng.random() < 0.6 else (30, 120, 70)
        sk.poly([sk.p(x, y + dy, z) for dy, z in ((w / 2, z0), (-w / 2, z0), (-w / 2, z1), (w / 2, z1))], board)
        for k in range(2):
            zt = z0 + (z1 - z0) * (0.3 + 0.35 * k)
            ln = [
                sk.p(x - 0.01, y + dy, z)
                for dy, z in ((w / 3, zt), (-w / 3, zt), (-w / 3, zt + 0.2), (w / 3, zt + 0.2))
            ]
            sk.poly(ln, (235, 235, 235))
        return
    top = rng.uniform(2.2, 2.8)
    sk.line([sk.p(x, y, 0), sk.p(x, y, top)], GREY, 0.07)
    kind = int(rng.integers(3))
    if kind == 0:
        sk.disc(sk.p(x - 0.02, y, top), 0.35, (200, 30, 36))
        sk.disc(sk.p(x - 0.03, y, top), 0.27, (240, 240, 236))
    elif kind == 1:
        tri = [sk.p(x - 0.02, y + dy, top + dz) for dy, dz in ((0.4, -0.3), (-0.4, -0.3), (0.0, 0.4))]
        sk.poly(tri, (200, 30, 36))
        tri = [sk.p(x - 0.03, y + dy, top + dz) for dy, dz in ((0.29, -0.23), (-0.29, -0.23), (0.0, 0.27))]
        sk.poly(tri, (244, 200, 40))
    else:
        sq = [sk.p(x - 0.02, y + dy, top + dz) for dy, dz in ((0.3, -0.3), (-0.3, -0.3), (-0.3, 0.3), (0.3, 0.3))]
        sk.poly(sq, (30, 80, 180))
        sk.poly(
            [sk.p(x - 0.03, y + dy, top + dz) for dy, dz in ((0.08, -0.2), (-0.08, -0.2), (0, 0.2))], (240, 240, 240)
        )


def _bike(sk: Sketch, x: float, y: float, rng: np.random.Generator) -> None:
    c: Color = tuple(rng.uniform(20, 200, 3).tolist())  # type: ignore[assignment]
    ang = np.linspace(0, 2 * math.pi, 11)
    for dy in (-0.5, 0.5):  # parked across the sidewalk, wheels seen nearly edge-on
        sk.line(
            [sk.p(x + 0.34 * math.cos(t) * 0.3, y + dy, 0.34 + 0.34 * math.sin(t)) for t in ang], (30, 30, 30), 0.05
        )
    sk.line([sk.p(x, y - 0.5, 0.34), sk.p(x, y - 0.1, 0.9), sk.p(x, y + 0.4, 0.95), sk.p(x, y + 0.5, 0.34)], c, 0.05)


def sketch_clutter(fr: Frame) -> list[Sketch]:
    """Street lights and ``spec.clutter``-many roadside things, all beside the carriageway."""
    rng, road, lay, spec = fr.rng, fr.spec.road, fr.layout, fr.spec
    out = _street_lights(fr)
    scene = road.scene_type
    count, weights = KINDS.get(scene, KINDS["urban street"])
    for _ in range(int(rng.poisson(max(spec.clutter, 0.0) * count))):
        kind = int(rng.choice(5, p=np.array(weights) / sum(weights)))
        x = float(rng.uniform(3, 90))
        side, edge = (1, road.left_edge_y) if rng.random() < 0.5 else (-1, road.right_edge_y)
        walk = max(lay.walk, 0.6)
        if scene == "tunnel":
            off = lay.wall - 0.05
        elif kind == 1:
            off = rng.uniform(0.6 * walk, walk) if scene == "urban street" else rng.uniform(walk + 1, walk + 10)
        else:
            off = rng.uniform(0.3, walk - 0.2) if walk > 0.6 else walk + 0.5
        y = edge + side * off
        sk = Sketch(key=x, illum=light_on(fr, x, y))
        if kind == 0:
            _sign(sk, x, y, rng, scene)
        elif kind == 1:
            _tree(sk, x, y, rng, fr.look.wintry)
        elif kind == 2:
            _bike(sk, x, y, rng)
        elif kind == 3:
            color = (40, 90, 60) if rng.random() < 0.5 else (90, 92, 96)
            bin_ = SceneObject(0, "bin", x, y, 0.0, 0.5, 0.5, 1.0, 0.0, color)
            hexa(Local(sk, bin_), box_corners(-0.25, 0.25, -0.25, 0.25, 0, 1.0), color, {}, fr.cam.mounting_height_m)
        else:
            c: Color = (230, 190, 30) if rng.random() < 0.5 else (120, 122, 124)
            sk.line([sk.p(x, y, 0), sk.p(x, y, 1.0)], c, 0.14)
        out.append(sk)
    return out
