"""Scene objects as 3-D sketches inside their cuboids: vehicles, cyclists, pedestrians, traffic lights, obstacles."""

from __future__ import annotations

import math

import numpy as np

from sim.render.frame import F32, Frame, lamp_xs
from sim.render.sketch import Color, Sketch
from sim.scene_spec import SceneObject

# Corner order of a hexahedron: bottom (a0,b1) (a0,b0) (a1,b0) (a1,b1), then the same on top.
FACES = {"rear": (0, 1, 5, 4), "right": (1, 2, 6, 5), "front": (2, 3, 7, 6), "left": (3, 0, 4, 7), "top": (4, 5, 6, 7)}
SHADE = {"rear": 1.0, "front": 1.0, "left": 0.8, "right": 0.8, "top": 1.15}
NORMAL = {"rear": (-1.0, 0.0), "front": (1.0, 0.0), "left": (0.0, 1.0), "right": (0.0, -1.0)}
RED, RED_DIM, AMBER = (255.0, 34.0, 24.0), (118.0, 24.0, 24.0), (255.0, 150.0, 12.0)
HEAD, HEAD_OFF = (255.0, 248.0, 228.0), (196.0, 198.0, 196.0)
TYRE, DARK = (26.0, 26.0, 28.0), (38.0, 40.0, 42.0)
SKIN = [(236, 196, 170), (198, 150, 112), (140, 96, 66), (92, 62, 44)]
TROUSERS = [(40, 44, 60), (30, 30, 32), (90, 80, 70), (60, 70, 90), (120, 110, 96)]


def light_on(fr: Frame, x: float, y: float) -> np.ndarray:
    """(3,) light on a thing at (x, y): ambient, plus ego headlights and street lights after dark."""
    look = fr.look
    illum = look.ambient.copy()
    if look.dark > 0 and fr.spec.road.scene_type != "tunnel":
        beam = math.exp(-x / 25.0) * math.exp(-((y / (1.5 + 0.25 * max(x, 0))) ** 2)) * (x > 1)
        illum += F32(1.2 * look.dark * beam) * np.array([1.0, 0.96, 0.88], F32)
        xl = lamp_xs(fr.layout)
        if fr.layout.lamps_on and xl.size:
            near = float(np.min(np.abs(xl - x)))
            illum += look.lamp * F32(0.5 * look.dark * math.exp(-((near / 10.0) ** 2)))
    return illum


class Local:
    """An object's own frame: a forward along its heading, b to its left, z up."""

    def __init__(self, sk: Sketch, o: SceneObject) -> None:
        self.sk, self.x, self.y = sk, o.x, o.y
        self.c, self.s = math.cos(o.heading), math.sin(o.heading)

    def p(self, a: float, b: float, z: float) -> int:
        return self.sk.p(self.x + a * self.c - b * self.s, self.y + a * self.s + b * self.c, z)

    def visible(self, face: str, a: float, b: float) -> bool:
        """Whether the vertical face with centre (a, b) turns towards the camera."""
        na, nb = NORMAL[face]
        nx, ny = na * self.c - nb * self.s, na * self.s + nb * self.c
        px, py = self.x + a * self.c - b * self.s, self.y + a * self.s + b * self.c
        return nx * px + ny * py < 0


Feature = tuple[float, float, float, float, Color, bool]  # s0, s1, t0, t1 on the face, colour, lit


Corner = tuple[float, float, float]


def hexa(
    lo: Local, corners: list[Corner], color: Color, feats: dict[str, list[Feature]], cam_h: float
) -> dict[str, bool]:
    """Draw a hexahedron's visible faces with their features; return which faces were visible."""
    shown: dict[str, bool] = {}
    for face, (i0, i1, i2, i3) in FACES.items():
        c0, c1, c2, c3 = corners[i0], corners[i1], corners[i2], corners[i3]
        if face == "top":
            vis = cam_h > (c0[2] + c2[2]) / 2
        else:
            vis = lo.visible(face, (c0[0] + c2[0]) / 2, (c0[1] + c2[1]) / 2)
        shown[face] = vis
        if not vis:
            continue
        k = SHADE[face]
        lo.sk.poly([lo.p(*c0), lo.p(*c1), lo.p(*c2), lo.p(*c3)], (color[0] * k, color[1] * k, color[2] * k))
        for s0, s1, t0, t1, fc, lit in feats.get(face, ()):
            quad = []
            for s, t in ((s0, t0), (s1, t0), (s1, t1), (s0, t1)):
                w0, w1, w2, w3 = (1 - t) * (1 - s), (1 - t) * s, t * s, t * (1 - s)
                quad.append(lo.p(*(w0 * c0[j] + w1 * c1[j] + w2 * c2[j] + w3 * c3[j] for j in range(3))))
            lo.sk.poly(quad, fc, lit)
    return shown


def box_corners(
    a0: float, a1: float, b0: float, b1: float, z0: float, z1: float, ta: float = 0, tb: float = 0
) -> list[Corner]:
    """Corners of a box (top face shrunk by ``ta`` along and ``tb`` across: a cabin's slanted glass)."""
    bot = [(a0, b1, z0), (a0, b0, z0), (a1, b0, z0), (a1, b1, z0)]
    return bot + [(a0 + ta, b1 - tb, z1), (a0 + ta, b0 + tb, z1), (a1 - ta, b0 + tb, z1), (a1 - ta, b1 - tb, z1)]


RING = [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 10, endpoint=False).tolist()]


def _wheels(lo: Local, shown: dict[str, bool], at: list[float], hw: float, r: float) -> None:
    for face, b in (("left", hw), ("right", -hw)):
        if not shown.get(face):
            continue
        for a in at:
            lo.sk.poly([lo.p(a + r * c, b, r + r * s) for c, s in RING], TYRE)
            hub = [lo.p(a + 0.45 * r * c, b, r + 0.45 * r * s) for c, s in RING[::2]]
            lo.sk.poly(hub, (120, 122, 126))


def _lamps(o: SceneObject, fr: Frame, lo: Local, a0: float, a1: float, hw: float, z: float) -> None:
    """Glows of the lit lamps (tail and brake at the rear, headlights at the front, hazard at the corners)."""
    day = 1 - fr.look.dark
    glows: list[tuple[float, float, Color, float, float]] = []  # a, b, colour, strength, radius
    if o.lights == "brake":
        glows += [(a0, b, RED, 0.9, 0.5) for b in (hw * 0.8, -hw * 0.8)]
    elif o.lights == "head":
        glows += [(a1, b, HEAD, 1.0 - 0.6 * day, 0.8) for b in (hw * 0.7, -hw * 0.7)]
        glows += [(a0, b, RED, 0.5 - 0.3 * day, 0.35) for b in (hw * 0.8, -hw * 0.8)]
    elif o.lights == "hazard":
        glows += [(a, b, AMBER, 1.0, 0.65) for a in (a0, a1) for b in (hw * 0.95, -hw * 0.95)]
    for a, b, col, strength, r in glows:
        face = "rear" if a == a0 else "front"
        if lo.visible(face, a, 0.0):
            lo.sk.glow(lo.p(a, b, z), r * (1 + fr.look.dark), col, strength, mirror=lo.p(a, b, -z))


def vehicle(fr: Frame, o: SceneObject, sk: Sketch, detail: bool = True) -> None:
    """Car, truck or bus: body, cabin or box, glass, wheels and lamps on the faces the camera sees."""
    lo = Local(sk, o)
    L, W, H = o.length, o.width, o.height
    a0, a1, hw = -L / 2, L / 2, W / 2
    body: Color = (float(o.color[0]), float(o.color[1]), float(o.color[2]))
    glass: Color = tuple(fr.look.glass.tolist())  # type: ignore[assignment]
    tail = RED if o.lights == "brake" else (220.0, 28.0, 20.0) if o.lights == "head" else RED_DIM
    tail_lit = o.lights in ("brake", "head")
    head, head_lit = (HEAD, True) if o.lights == "head" else (HEAD_OFF, False)
    hz = o.lights == "hazard"
    cam_h = fr.cam.mounting_height_m
    plate: Color = (222.0, 222.0, 212.0)
    if not detail:  # a few pixels tall: body, glass band and lamps only
        rear = [(0.05, 0.3, 0.35, 0.6, AMBER if hz else tail, hz or tail_lit)]
        rear += [(0.7, 0.95, 0.35, 0.6, AMBER if hz else tail, hz or tail_lit)]
        front = [(0.05, 0.3, 0.3, 0.5, AMBER if hz else head, hz or head_lit)]
        front += [(0.7, 0.95, 0.3, 0.5, AMBER if hz else head, hz or head_lit)]
        band = (0.1, 0.9, 0.65, 0.9, glass, False)
        feats = {"rear": rear + [band], "front": front + [band]}
        hexa(lo, box_corners(a0, a1, -hw, hw, 0.1, H), body, feats, cam_h)
        _lamps(o, fr, lo, a0, a1, hw, H * 0.45)
        return
    sk.poly([lo.p(a, b, 0.0) for a, b in ((a0, hw), (a0, -hw), (a1, -hw), (a1, hw))], TYRE)  # shadow underneath
    if o.cls == "car":
        v = o.variant % 4
        zb = H * (0.5, 0.5, 0.58, 0.62)[v]
        ca0, ca1 = a0 + L * (0.22, 0.1, 0.06, 0.04)[v], a1 - L * (0.32, 0.35, 0.3, 0.2)[v]
        lamp_z = zb * 0.7
        rear = [(0, 1, 0, 0.2, DARK, False), (0.4, 0.6, 0.28, 0.46, plate, False)]
        rear += [(0.03, 0.2, 0.55, 0.85, tail, tail_lit), (0.8, 0.97, 0.55, 0.85, tail, tail_lit)]
        front = [(0.3, 0.7, 0.28, 0.6, DARK, False), (0.4, 0.6, 0.06, 0.22, plate, False)]
        front += [(0.04, 0.25, 0.55, 0.85, head, head_lit), (0.75, 0.96, 0.55, 0.85, head, head_lit)]
        if hz:
            rear += [(0.0, 0.1, 0.5, 0.9, AMBER, True), (0.9, 1.0, 0.5, 0.9, AMBER, True)]
            front += [(0.0, 0.08, 0.5, 0.9, AMBER, True), (0.92, 1.0, 0.5, 0.9, AMBER, True)]
        hexa(lo, box_corners(a0 + 0.4, a1 - 0.4, -hw + 0.1, hw - 0.1, 0, 0.4), TYRE, {}, cam_h)
        shown = hexa(lo, box_corners(a0, a1, -hw, hw, 0.28, zb), body, {"rear": rear, "front": front}, cam_h)
        _wheels(lo, shown, [a0 + 0.2 * L, a1 - 0.2 * L], hw, 0.33)
        third = [(0.4, 0.6, 0.9, 0.97, RED, True)] if o.lights == "brake" else []
        cab = {
            "rear": [(0.08, 0.92, 0.12, 0.86, glass, False)] + third,
            "front": [(0.05, 0.95, 0.08, 0.92, glass, False)],
            "left": [(0.06, 0.47, 0.15, 0.85, glass, False), (0.53, 0.94, 0.15, 0.85, glass, False)],
            "right": [(0.06, 0.47, 0.15, 0.85, glass, False), (0.53, 0.94, 0.15, 0.85, glass, False)],
        }
        hexa(lo, box_corners(ca0, ca1, -hw + 0.06, hw - 0.06, zb, H, L * 0.06, 0.12), body, cab, cam_h)
        _lamps(o, fr, lo, a0, a1, hw, lamp_z)
    elif o.cls == "truck":
        cab_len = min(2.4, L * 0.35)
        box_color: Color = (228.0, 228.0, 224.0) if o.variant % 2 else tuple(min(255.0, c * 1.1) for c in body)  # type: ignore[assignment]
        ch = {"rear": [(0.03, 0.16, 0.55, 0.9, tail, tail_lit), (0.84, 0.97, 0.55, 0.9, tail, tail_lit)]}
        ch["rear"] += [(0.4, 0.6, 0.2, 0.5, plate, False)]
        if hz:
            ch["rear"] += [(0.0, 0.05, 0.5, 0.95, AMBER, True), (0.95, 1.0, 0.5, 0.95, AMBER, True)]
        shown = hexa(lo, box_corners(a0, a1 - 0.2, -hw + 0.05, hw - 0.05, 0.0, 1.0), DARK, ch, cam_h)
        doors = [(0.49, 0.51, 0.04, 0.96, DARK, False), (0.0, 1.0, 0.0, 0.04, DARK, False)]
        hexa(lo, box_corners(a0, a1 - cab_len - 0.15, -hw, hw, 1.0, H), box_color, {"rear": doors}, cam_h)
        zc = min(H * 0.85, 3.2)
        front = [(0.06, 0.94, 0.55, 0.92, glass, False), (0.3, 0.7, 0.1, 0.42, DARK, False)]
        front += [(0.04, 0.2, 0.1, 0.24, head, head_lit), (0.8, 0.96, 0.1, 0.24, head, head_lit)]
        side = [(0.05, 0.5, 0.55, 0.9, glass, False)]
        if hz:
            front += [(0.0, 0.06, 0.08, 0.26, AMBER, True), (0.94, 1.0, 0.08, 0.26, AMBER, True)]
        cab = {"front": front, "left": side, "right": [(0.5, 0.95, 0.55, 0.9, glass, False)]}
        hexa(lo, box_corners(a1 - cab_len, a1, -hw, hw, 0.45, zc), body, cab, cam_h)
        _wheels(lo, shown, [a1 - 1.3, a0 + 1.2, a0 + 2.5], hw, 0.5)
        _lamps(o, fr, lo, a0, a1, hw, 0.75)
    else:
        n = max(3, int(L / 1.7))
        step = 0.92 / n
        wins = [(0.05 + i * step, 0.03 + (i + 1) * step, 0.5, 0.88, glass, False) for i in range(n)]
        rear = [(0.15, 0.85, 0.62, 0.9, glass, False), (0.25, 0.75, 0.1, 0.4, DARK, False)]
        rear += [(0.03, 0.12, 0.1, 0.35, tail, tail_lit), (0.88, 0.97, 0.1, 0.35, tail, tail_lit)]
        front = [(0.04, 0.96, 0.3, 0.84, glass, False), (0.15, 0.85, 0.86, 0.95, (255.0, 168.0, 40.0), True)]
        front += [(0.05, 0.2, 0.06, 0.16, head, head_lit), (0.8, 0.95, 0.06, 0.16, head, head_lit)]
        if hz:
            rear += [(0.0, 0.05, 0.1, 0.4, AMBER, True), (0.95, 1.0, 0.1, 0.4, AMBER, True)]
            front += [(0.0, 0.04, 0.05, 0.2, AMBER, True), (0.96, 1.0, 0.05, 0.2, AMBER, True)]
        hexa(lo, box_corners(a0 + 0.5, a1 - 0.5, -hw + 0.1, hw - 0.1, 0, 0.4), TYRE, {}, cam_h)
        feats = {"rear": rear, "front": front, "left": wins, "right": wins}
        shown = hexa(lo, box_corners(a0, a1, -hw, hw, 0.3, H), body, feats, cam_h)
        _wheels(lo, shown, [a1 - 2.6, a0 + 3.0], hw, 0.5)
        _lamps(o, fr, lo, a0, a1, hw, 0.75)


def _person(lo: Local, o: SceneObject, rng: np.random.Generator, bike: bool) -> None:
    H = o.height / (1.75 if not bike else 1.8)
    shirt: Color = (float(o.color[0]), float(o.color[1]), float(o.color[2]))
    legs: Color = TROUSERS[int(rng.integers(len(TROUSERS)))]
    skin: Color = SKIN[int(rng.integers(len(SKIN)))]
    sk = lo.sk
    if bike:
        frame_c: Color = tuple(rng.uniform(20, 220, 3).tolist())  # type: ignore[assignment]
        ax = min(0.55, o.length / 2 - 0.35)
        ang = np.linspace(0, 2 * math.pi, 13)
        for a in (-ax, ax):
            sk.line([lo.p(a + 0.34 * math.cos(t), 0, 0.34 + 0.34 * math.sin(t)) for t in ang], TYRE, 0.05)
        hub_r, crank, seat, bar, hub_f = (
            lo.p(-ax, 0, 0.34),
            lo.p(0, 0, 0.3),
            lo.p(-0.15, 0, 0.92 * H),
            lo.p(ax - 0.1, 0, 1.0 * H),
            lo.p(ax, 0, 0.34),
        )
        sk.line([hub_r, crank, seat, hub_r], frame_c, 0.04)
        sk.line([crank, bar, hub_f], frame_c, 0.04)
        hip, shoulder, head_z = (-0.15, 0.98 * H), (0.18, 1.42 * H), 1.62 * H
        for b in (0.1, -0.1):
            sk.line([lo.p(hip[0], b, hip[1]), lo.p(0.12, b, 0.62 * H), lo.p(0.02, b, 0.3)], legs, 0.13)
        sk.line([lo.p(hip[0], 0, hip[1]), lo.p(shoulder[0], 0, shoulder[1])], shirt, 0.32)
        for b in (0.18, -0.18):
            sk.line([lo.p(shoulder[0], b, shoulder[1] - 0.05), lo.p(ax - 0.12, b, 1.02 * H)], shirt, 0.09)
        sk.disc(lo.p(shoulder[0] + 0.06, 0, head_z), 0.12 * H, skin)
        sk.disc(lo.p(shoulder[0] + 0.06, 0, head_z + 0.06 * H), 0.1 * H, frame_c)  # helmet
        return
    stride = 0.08 + 0.06 * (o.variant % 3)
    hip_z, shoulder_z = 0.52 * H, 0.82 * H
    for sgn, b in ((1, 0.09), (-1, -0.09)):
        sk.line([lo.p(0, b, hip_z), lo.p(sgn * stride, b, 0.05)], legs, 0.15)
        sk.line([lo.p(sgn * stride, b, 0.05), lo.p(sgn * stride + 0.08, b, 0.0)], TYRE, 0.12)
    sk.line([lo.p(0, 0, hip_z), lo.p(0, 0, shoulder_z)], shirt, 0.38)
    for sgn, b in ((1, 0.2), (-1, -0.2)):
        sk.line([lo.p(0, b, shoulder_z), lo.p(-sgn * stride * 0.8, b * 1.1, 0.5 * H)], shirt, 0.1)
    sk.disc(lo.p(0, 0, 0.93 * H), 0.075 * H, skin)
    if o.variant % 2:
        sk.disc(lo.p(0, 0, 0.96 * H), 0.065 * H, legs)  # cap or hair


def traffic_light(fr: Frame, o: SceneObject, sk: Sketch) -> None:
    """Pole and a three-lamp housing near the top of the cuboid, the lamp of ``o.lights`` lit."""
    H = o.height
    hh = min(1.0, 0.3 * H)
    hw = min(0.2, o.width / 2)
    face = -min(0.15, o.length / 2)  # the housing's camera side (towards -x in the ego frame)
    p = lambda b, z: sk.p(o.x + face, o.y + b, z)  # noqa: E731
    sk.line([p(0, 0), p(0, H - hh)], (70, 72, 74), 0.1)
    sk.poly([p(hw, H - hh), p(-hw, H - hh), p(-hw, H), p(hw, H)], (28, 30, 28))
    lamps = {"red": (0, (255, 40, 30)), "amber": (1, (255, 172, 0)), "green": (2, (60, 255, 140))}
    dim = [(70, 22, 20), (72, 52, 12), (16, 56, 30)]
    lit_i, lit_c = lamps.get(o.lights, (-1, (0, 0, 0)))
    for i in range(3):
        z = H - hh * (i + 0.5) / 3
        c = sk.p(o.x + face - 0.02, o.y, z)
        if i == lit_i:
            sk.disc(c, min(hw, hh / 6) * 0.85, lit_c, lit=True)
            sk.glow(c, 0.35 * (1 + fr.look.dark), lit_c, 0.9, mirror=sk.p(o.x + face, o.y, -z))
        else:
            sk.disc(c, min(hw, hh / 6) * 0.8, dim[i])


def obstacle(fr: Frame, o: SceneObject, rng: np.random.Generator, sk: Sketch) -> None:
    """Box, debris pile, tyre or fallen barrier (``o.variant % 4``) in ``o.color``."""
    lo = Local(sk, o)
    L, W, H = o.length, o.width, o.height
    col: Color = (float(o.color[0]), float(o.color[1]), float(o.color[2]))
    cam_h = fr.cam.mounting_height_m
    kind = o.variant % 4
    if kind == 0:
        tape = (min(255.0, col[0] * 1.3), min(255.0, col[1] * 1.3), min(255.0, col[2] * 1.2))
        stripe = [(0.0, 1.0, 0.45, 0.55, tape, False)]
        hexa(lo, box_corners(-L / 2, L / 2, -W / 2, W / 2, 0, H), col, {"rear": stripe, "top": stripe}, cam_h)
    elif kind == 1:
        for _ in range(int(rng.integers(4, 8))):
            a, b = rng.uniform(-L / 2, L / 2 - 0.2), rng.uniform(-W / 2, W / 2 - 0.2)
            da, db, h = rng.uniform(0.15, L / 2), rng.uniform(0.15, W / 2), rng.uniform(0.1, 1.0) * H
            c = tuple(float(v) for v in np.clip(np.array(col) * rng.uniform(0.5, 1.3), 0, 255))
            corners = box_corners(a, min(a + da, L / 2), b, min(b + db, W / 2), 0, h, da * 0.3, db * 0.3)
            hexa(lo, corners, c, {}, cam_h)  # type: ignore[arg-type]
    elif kind == 2:
        r = min(L, W, max(H, 0.3)) / 2
        ang = np.linspace(0, 2 * math.pi, 14, endpoint=False)
        if H < 0.4:  # lying flat
            sk.poly([lo.p(r * math.cos(t), r * math.sin(t), H) for t in ang], TYRE)
            sk.poly([lo.p(0.5 * r * math.cos(t), 0.5 * r * math.sin(t), H) for t in ang], (60, 60, 62))
        else:
            sk.poly([sk.p(o.x - 0.1, o.y + r * math.cos(t), r + r * math.sin(t)) for t in ang], TYRE)
            sk.poly([sk.p(o.x - 0.12, o.y + 0.5 * r * math.cos(t), r + 0.5 * r * math.sin(t)) for t in ang], col)
    else:
        white: Color = (240.0, 240.0, 236.0)
        stripes: list[Feature] = [(i / 6, (i + 1) / 6, 0.0, 1.0, white, False) for i in range(0, 6, 2)]
        corners = box_corners(-L / 2, L / 2, -W / 2, W / 2, 0.3 * H, 0.7 * H)
        hexa(lo, corners, col, {f: stripes for f in ("rear", "front", "left", "right")}, cam_h)
        for a in (-L / 2 + 0.1, L / 2 - 0.1):
            sk.line([lo.p(a, 0, 0), lo.p(a, 0, 0.3 * H)], (60, 60, 60), 0.05)
        sk.poly([lo.p(-L / 2, W / 2, 0), lo.p(-L / 2 + 0.5, W / 2, 0), lo.p(-L / 2 + 0.3, W / 2 - 0.15, 0.3)], col)


def sketch_object(fr: Frame, o: SceneObject) -> Sketch:
    """The sketch of one scene object (its shape varies with the track, not the frame)."""
    sk = Sketch(key=o.x, illum=light_on(fr, o.x, o.y), solid=o.cls in ("car", "truck", "bus"))
    # Level of detail: things only a few pixels tall get simpler drawings.
    detail = fr.cam.fy * o.height / max(o.x - o.length / 2, 1.0) >= 9
    if o.cls in ("car", "truck", "bus"):
        vehicle(fr, o, sk, detail)
    elif o.cls in ("pedestrian", "cyclist"):
        _person(Local(sk, o), o, _track_rng(o), bike=o.cls == "cyclist")
    elif o.cls == "traffic light":
        traffic_light(fr, o, sk)
    else:
        obstacle(fr, o, _track_rng(o), sk)
    return sk


def _track_rng(o: SceneObject) -> np.random.Generator:
    """Randomness that is stable per track (clothes, debris shape), not per frame."""
    return np.random.default_rng([o.track_id & 0xFFFFFFFF, o.variant & 0xFFFF])
