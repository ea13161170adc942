"""Per-frame render state: pixel grids cached per camera, the look of light and air, the roadside layout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sim.camera import Camera
from sim.scene_spec import SceneSpec

FAR_M = 3000.0  # ground farther than this counts as horizon
NOISE_PAD = 32  # sensor-noise tile margin, so that each frame takes a random window of it
TEX = 256  # side of the cached ground texture (cells of TEX_CELL_M)
TEX_CELL_M = 0.06
F32 = np.float32


def rgb(*c: float) -> np.ndarray:
    """A colour as a float32 (3,) array."""
    return np.array(c, dtype=F32)


@dataclass(frozen=True)
class Grids:
    """Pixel-centre geometry of one camera, shared by every frame it renders."""

    u: np.ndarray  # (W,) column centres
    v: np.ndarray  # (H,) row centres
    g0: int  # first row that sees the ground nearer than FAR_M; rows above are sky or background
    gx: np.ndarray  # (Hg,) forward distance of each ground row
    gs: np.ndarray  # (Hg,) depth along the optical axis of each ground row
    gy: np.ndarray  # (Hg, W) lateral position of each ground pixel
    inv_mpp: np.ndarray  # (Hg, 1) ground pixels per lateral metre, per row
    col: np.ndarray  # (W,) lateral metres per metre of depth: y = col * depth
    r2: np.ndarray  # (H, W) squared distance from the image centre, 1 in the corners
    noise: np.ndarray  # (3, H + pad, W + pad) standard normal sensor-noise tile
    tex: np.ndarray  # (TEX, TEX) smooth-ish ground texture, zero mean
    blob: np.ndarray  # (TEX, TEX) smooth blobs (puddles), unit variance


@lru_cache(maxsize=64)
def grids(cam: Camera) -> Grids:
    """The cached grids of ``cam`` (cameras are frozen, so they key the cache)."""
    t = math.radians(cam.pitch_deg)
    u = np.arange(cam.width, dtype=np.float64) + 0.5
    v = np.arange(cam.height, dtype=np.float64) + 0.5
    a = (v - cam.cy) / cam.fy
    dz = -math.sin(t) - a * math.cos(t)
    s = cam.mounting_height_m / np.maximum(-dz, 1e-12)
    x = np.where(dz < -1e-9, s * (math.cos(t) - a * math.sin(t)), np.inf)
    ground = np.nonzero(x < FAR_M)[0]
    g0 = int(ground[0]) if ground.size else cam.height
    col = -(u - cam.cx) / cam.fx
    gs = s[g0:]
    r2 = ((u[None, :] - cam.width / 2) / (cam.width / 2)) ** 2 + ((v[:, None] - cam.height / 2) / (cam.height / 2)) ** 2
    rng = np.random.default_rng(0x5EED)
    fine = rng.standard_normal((TEX, TEX)).astype(F32)
    fine = (fine + np.roll(fine, 1, 0) + np.roll(fine, 1, 1) + np.roll(fine, (1, 1), (0, 1))) * 0.5
    tex = smooth_noise(rng, (TEX, TEX), (32, 32)) * 0.7 + fine * 0.5
    return Grids(
        u=u.astype(F32),
        v=v.astype(F32),
        g0=g0,
        gx=x[g0:].astype(F32),
        gs=gs.astype(F32),
        gy=(gs[:, None] * col[None, :]).astype(F32),
        inv_mpp=(cam.fx / gs)[:, None].astype(F32),
        col=col.astype(F32),
        r2=(r2 / 2).astype(F32),
        noise=rng.standard_normal((3, cam.height + NOISE_PAD, cam.width + NOISE_PAD), dtype=F32),
        tex=tex,
        blob=smooth_noise(rng, (TEX, TEX), (8, 8)),
    )


@dataclass(frozen=True)
class Look:
    """How light and air make this frame look."""

    ambient: np.ndarray  # (3,) radiance of a white surface in daylight/skylight
    sky_top: np.ndarray
    sky_bottom: np.ndarray
    haze: np.ndarray  # colour that distant things fade to
    vis_m: float  # distance at which they are 63 % faded
    sky_fog: float  # how much the sky itself is hidden by the haze
    dark: float  # 0 day, ~0.6 dusk, 1 night: how much lamps, glows and lit windows show
    lamp: np.ndarray  # colour of street lighting
    glass: np.ndarray  # vehicle and window glass
    overcast: bool
    wintry: bool


_SKY = {  # lighting -> (clear top, clear bottom, overcast top, overcast bottom, ambient, dark)
    "day": ((70, 122, 206), (178, 208, 238), (150, 155, 162), (198, 200, 204), (1.1, 1.1, 1.1), 0.0),
    "dusk": ((40, 38, 92), (196, 112, 66), (62, 58, 72), (120, 98, 92), (0.52, 0.42, 0.42), 0.6),
    "night": ((4, 6, 16), (24, 22, 36), (13, 13, 16), (42, 35, 33), (0.1, 0.11, 0.15), 1.0),
}
_HAZE = {"day": (196, 198, 202), "dusk": (150, 132, 132), "night": (36, 36, 42)}


def make_look(spec: SceneSpec, rng: np.random.Generator) -> Look:
    """Sky, ambient light and haze for the spec's lighting and weather, with per-frame jitter."""
    top, bottom, otop, obottom, amb, dark = _SKY.get(spec.lighting, _SKY["day"])
    jitter = rng.uniform(0.94, 1.06, 3).astype(F32) * F32(rng.uniform(0.85, 1.15))
    overcast = spec.weather != "clear"
    sky_top, sky_bottom = (rgb(*otop), rgb(*obottom)) if overcast else (rgb(*top), rgb(*bottom))
    ambient = rgb(*amb)
    haze = sky_bottom.copy()
    vis, sky_fog = rng.uniform(600, 1500), 0.0
    if spec.weather == "rain":
        ambient *= 0.72
        sky_top, sky_bottom = sky_top * 0.8, sky_bottom * 0.85
        haze, vis, sky_fog = sky_bottom * 0.95, rng.uniform(120, 260), 0.3
    elif spec.weather == "fog":
        ambient *= 0.85
        haze = rgb(*_HAZE.get(spec.lighting, _HAZE["day"]))
        sky_top, sky_bottom = haze * 1.05, haze
        vis, sky_fog = rng.uniform(22, 55), 0.9
    elif spec.weather == "snow":
        haze = rgb(*_HAZE.get(spec.lighting, _HAZE["day"])) * 1.05
        vis, sky_fog = rng.uniform(70, 180), 0.5
    if spec.road.scene_type == "tunnel":
        # Lit by its own lamps whatever the hour: sodium orange or LED white.
        ambient = rgb(0.62, 0.5, 0.34) if rng.random() < 0.5 else rgb(0.5, 0.53, 0.56)
        ambient *= F32(rng.uniform(0.75, 1.1))
        haze = ambient * 70
        vis = min(vis, float(rng.uniform(150, 400)))
    lamp = rgb(1.0, 0.72, 0.42) if rng.random() < 0.5 else rgb(0.9, 0.93, 1.0)
    glass = (rgb(28, 32, 40) + 0.25 * sky_bottom * ambient).astype(F32)
    return Look(
        ambient=ambient * jitter,
        sky_top=sky_top * jitter,
        sky_bottom=sky_bottom * jitter,
        haze=haze * jitter,
        vis_m=float(vis),
        sky_fog=sky_fog,
        dark=dark,
        lamp=lamp,
        glass=glass,
        overcast=overcast,
        wintry=spec.surface == "snow" or spec.weather == "snow",
    )


@dataclass(frozen=True)
class Layout:
    """Where things stand beside the carriageway, as outward distances (metres) from its edges."""

    band_ends: np.ndarray  # (n,) outer end of each ground band; one more band extends to infinity
    band_colors: np.ndarray  # (n + 1, 3) albedo of each band
    walk: float  # width of the sidewalk or shoulder, where poles and signs stand
    wall: float  # building fronts, walls or rails (per scene type)
    lamp_spacing: float  # street lights, 0 = none
    lamp_phase: float
    lamp_sides: tuple[bool, bool]  # left, right
    lamps_on: bool


def _jit(rng: np.random.Generator, c: tuple[float, float, float], amount: float) -> np.ndarray:
    return np.clip(rgb(*c) + F32(rng.uniform(-amount, amount)) + rng.uniform(-5, 5, 3).astype(F32), 0, 255)


def make_layout(spec: SceneSpec, look: Look, rng: np.random.Generator) -> Layout:
    """Ground bands (curb, sidewalk, verge), wall setback and street lights for the scene type."""
    scene, road = spec.road.scene_type, spec.road
    curb, paver, grass = _jit(rng, (168, 166, 160), 8), _jit(rng, (150, 145, 138), 15), _jit(rng, (72, 104, 48), 12)
    gravel, asphalt = _jit(rng, (124, 118, 106), 10), _jit(rng, (96, 96, 98), 14)
    if scene == "tunnel":
        walk = rng.uniform(0.8, 1.3)
        bands = [(walk, _jit(rng, (140, 140, 134), 10)), (0.0, _jit(rng, (90, 90, 90), 10))]
        wall = walk
    elif scene == "highway" or not road.sidewalks:
        walk = rng.uniform(1.0, 2.5) if scene in ("highway", "arterial") else rng.uniform(0.3, 0.8)
        bands = [(walk, asphalt), (walk + 0.7, gravel), (0.0, grass)]
        wall = walk + rng.uniform(0.6, 1.2) if scene == "highway" else rng.uniform(6, 12)
    elif scene == "urban street":
        walk = rng.uniform(2.5, 4.5)
        bands = [(0.2, curb), (walk, paver), (0.0, paver * 0.9)]
        wall = walk + rng.uniform(0.0, 1.5)
    elif scene == "residential":
        walk = rng.uniform(1.5, 2.6)
        bands = [(0.15, curb), (walk, paver), (0.0, grass)]
        wall = walk + rng.uniform(5, 10)
    else:  # arterial: curb, grass strip, foot/cycle path, grass
        strip = rng.uniform(1.0, 2.5)
        walk = strip + rng.uniform(2.5, 3.5)
        path = _jit(rng, (150, 82, 72), 12) if rng.random() < 0.5 else paver
        bands = [(0.2, curb), (strip, grass), (walk, path), (0.0, grass)]
        wall = walk + rng.uniform(12, 30)
    if spec.surface == "snow":
        snow = _jit(rng, (226, 230, 238), 8)
        bands = [(end, snow * (0.9 if i == 0 else 1.0)) for i, (end, _) in enumerate(bands)]
    lamps = {"urban street": (28, 1.0), "residential": (32, 0.6), "arterial": (36, 1.0), "highway": (60, 0.3)}
    spacing, p = lamps.get(scene, (0, 0.0))
    has_lamps = rng.random() < p
    sides = (True, True) if scene != "residential" else (rng.random() < 0.5, True)
    return Layout(
        band_ends=np.array([end for end, _ in bands[:-1]], dtype=F32),
        band_colors=np.stack([c for _, c in bands]).astype(F32),
        walk=float(walk),
        wall=float(wall),
        lamp_spacing=float(spacing * rng.uniform(0.85, 1.15)) if has_lamps else 0.0,
        lamp_phase=float(rng.uniform(0, spacing)),
        lamp_sides=sides,
        lamps_on=look.dark > 0.5 or (look.dark > 0 and rng.random() < 0.7),
    )


@dataclass
class Frame:
    """Everything the painters share while one frame is drawn."""

    spec: SceneSpec
    cam: Camera
    g: Grids
    rng: np.random.Generator
    look: Look
    layout: Layout
    img: np.ndarray  # (3, H, W) albedo, channel-planar (per-channel numpy ops are much faster so)
    depth: np.ndarray  # (H, W) metres along the optical axis, inf = sky
    emit: np.ndarray  # (3, H, W) self-lit radiance (windows, tunnel lamps)
    light: np.ndarray  # (Hg, W) street lighting on the ground, in units of ``look.lamp``
    head: np.ndarray  # (Hg, W) headlight on the ground (ego and other vehicles)
    reflect: np.ndarray | None = None  # (Hg, W) mirror strength of a wet ground


def new_frame(spec: SceneSpec) -> Frame:
    """A blank frame for ``spec``: its grids, look and layout decided, nothing painted."""
    rng = np.random.default_rng(spec.seed)
    cam = spec.camera
    g = grids(cam)
    look = make_look(spec, rng)
    h, w = cam.height, cam.width
    return Frame(
        spec=spec,
        cam=cam,
        g=g,
        rng=rng,
        look=look,
        layout=make_layout(spec, look, rng),
        img=np.zeros((3, h, w), F32),
        depth=np.full((h, w), np.inf, F32),
        emit=np.zeros((3, h, w), F32),
        light=np.zeros((h - g.g0, w), F32),
        head=np.zeros((h - g.g0, w), F32),
    )


def lamp_xs(layout: Layout, far: float = 160.0) -> np.ndarray:
    """Forward positions of the street lights."""
    if layout.lamp_spacing <= 0:
        return np.zeros(0, F32)
    return np.arange(layout.lamp_phase, far, layout.lamp_spacing, dtype=F32)


@lru_cache(maxsize=256)
def _interp(n: int, cells: int) -> np.ndarray:
    """(n, cells + 1) weights that linearly interpolate cells + 1 knots onto n samples."""
    r = np.linspace(0, cells, n)
    i = np.minimum(r.astype(np.int64), cells - 1)
    m = np.zeros((n, cells + 1), F32)
    m[np.arange(n), i] = 1 - (r - i)
    m[np.arange(n), i + 1] = r - i
    return m


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Zero-mean, unit-ish noise of ``shape`` varying over about ``cells`` cells (bilinear upsampling)."""
    coarse = rng.standard_normal((cells[0] + 1, cells[1] + 1)).astype(F32)
    return _interp(shape[0], cells[0]) @ coarse @ _interp(shape[1], cells[1]).T
