"""Light, air and sensor: composing the lit scene with sky and fog, lamp glows, rain and snow, camera artefacts."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sim.render.frame import F32, NOISE_PAD, Frame, rgb, smooth_noise
from sim.render.sketch import Glow

HEADLIGHT = rgb(1.0, 0.96, 0.88)


def compose(fr: Frame) -> np.ndarray:
    """(3, H, W) radiance: albedo under ambient and artificial light, self-lit parts, sky, wet mirror, haze."""
    look, g, rng = fr.look, fr.g, fr.rng
    h0 = g.g0
    img = fr.img * look.ambient[:, None, None]
    if fr.light.any():
        img[:, h0:] += fr.img[:, h0:] * fr.light * look.lamp[:, None, None]
    if fr.head.any():
        img[:, h0:] += fr.img[:, h0:] * fr.head * HEADLIGHT[:, None, None]
    if look.dark > 0 or fr.spec.road.scene_type == "tunnel":  # the only frames with lit windows or lamps
        img += fr.emit
    if h0 > 0:
        hv = max(fr.cam.horizon_v, 1.0)
        t = np.clip((hv - g.v[:h0]) / hv, 0, 1) ** 0.6
        rows = look.sky_bottom[:, None] + t[None, :] * (look.sky_top - look.sky_bottom)[:, None]
        amp = 0.16 if look.overcast else 0.08 * (1 - look.dark)
        clouds = 1 + amp * smooth_noise(rng, (h0, fr.cam.width), (3, 5))
        np.copyto(img[:, :h0], rows[:, :, None] * clouds, where=np.isinf(fr.depth[:h0]))
    if fr.reflect is not None and h0 > 0:
        mirror = np.clip(np.rint(2 * fr.cam.horizon_v - g.v[h0:]), 0, h0 - 1).astype(np.int64)
        r = fr.reflect
        img[:, h0:] = img[:, h0:] * (1 - 0.5 * r) + img[:, mirror] * (0.7 * r)
    # Clipped exponent: float32 exp of very negative numbers gives denormals, which are slow.
    f = 1 - np.exp(np.maximum(fr.depth * F32(-1 / look.vis_m), -30))
    f[np.isinf(fr.depth)] = look.sky_fog
    img += f * (look.haze[:, None, None] - img)
    return img


def apply_glows(img: np.ndarray, glows: list[Glow]) -> None:
    """Add each lamp's halo (a soft Gaussian and a bright core) in a window around it."""
    h, w = img.shape[1:]
    for gl in glows:
        ry = gl.r * gl.stretch
        u0, u1 = max(0, int(gl.u - 3 * gl.r)), min(w, int(gl.u + 3 * gl.r) + 2)
        v0, v1 = max(0, int(gl.v - 3 * ry)), min(h, int(gl.v + 3 * ry) + 2)
        if u0 >= u1 or v0 >= v1:
            continue
        du = np.arange(u0, u1, dtype=F32) + 0.5 - gl.u
        dv = np.arange(v0, v1, dtype=F32) + 0.5 - gl.v
        soft = np.exp(-(dv[:, None] ** 2) / (2 * ry**2)) * np.exp(-(du[None, :] ** 2) / (2 * gl.r**2))
        core = soft**9
        img[:, v0:v1, u0:u1] += (0.45 * soft + core) * F32(255 * gl.strength) * gl.color[:, None, None]


def _stamp(mask: np.ndarray, vs: np.ndarray, us: np.ndarray, vals: np.ndarray) -> None:
    h, w = mask.shape
    ok = (vs >= 0) & (vs < h) & (us >= 0) & (us < w)
    mask[vs[ok], us[ok]] = np.maximum(mask[vs[ok], us[ok]], vals[ok])


def weather(fr: Frame, img: np.ndarray) -> None:
    """Rain streaks and windscreen drops, or snowflakes, blended over the image (not inside tunnels)."""
    rng, look = fr.rng, fr.look
    h, w = img.shape[1:]
    if fr.spec.weather not in ("rain", "snow"):
        return
    mask = np.zeros((h, w), F32)
    level = max(float(look.ambient.mean()), 0.25)
    if fr.spec.weather == "rain":
        if fr.spec.road.scene_type != "tunnel":
            n = int(rng.integers(150, 420))
            u0, v0 = rng.uniform(0, w, n), rng.uniform(-20, h, n)
            length, a = rng.integers(6, 20, n), rng.uniform(0.15, 0.45, n).astype(F32)
            wind = rng.uniform(-0.35, 0.35)
            for t in range(20):
                live = t < length
                _stamp(mask, (v0 + t).astype(int)[live], (u0 + t * wind).astype(int)[live], a[live])
        for _ in range(int(rng.integers(4, 20))):  # drops on the windscreen
            r, cu, cv = rng.uniform(1.5, 4.5), rng.uniform(0, w), rng.uniform(0, h)
            vv, uu = np.mgrid[
                max(0, int(cv - r)) : min(h, int(cv + r) + 1), max(0, int(cu - r)) : min(w, int(cu + r) + 1)
            ]
            inside = (vv - cv) ** 2 + (uu - cu) ** 2 < r * r
            _stamp(mask, vv[inside], uu[inside], np.full(inside.sum(), 0.3, F32))
        color = rgb(150, 155, 165) * F32(max(level, 0.4))
    else:
        n = int(rng.integers(250, 750))
        us, vs = rng.integers(0, w, n), rng.integers(0, h, n)
        a = rng.uniform(0.45, 0.95, n).astype(F32)
        big = rng.random(n) < 0.3
        _stamp(mask, vs, us, a)
        for dv, du in ((0, 1), (1, 0), (0, -1), (-1, 0), (1, 1)):
            _stamp(mask, vs[big] + dv, us[big] + du, a[big] * 0.7)
        color = rgb(236, 238, 245) * F32(max(level, 0.45))
        img += mask * (color[:, None, None] - img)
        return
    img += mask * color[:, None, None]  # rain catches light: it only brightens


def _blur(img: np.ndarray, wt: float) -> np.ndarray:
    """Separable [wt, 1 - 2 wt, wt] blur of a (3, H, W) image, edges replicated."""
    out = img * F32(1 - 2 * wt)
    out[:, :, 1:] += F32(wt) * img[:, :, :-1]
    out[:, :, :-1] += F32(wt) * img[:, :, 1:]
    out[:, :, 0] += F32(wt) * img[:, :, 0]
    out[:, :, -1] += F32(wt) * img[:, :, -1]
    res = out * F32(1 - 2 * wt)
    res[:, 1:] += F32(wt) * out[:, :-1]
    res[:, :-1] += F32(wt) * out[:, 1:]
    res[:, 0] += F32(wt) * out[:, 0]
    res[:, -1] += F32(wt) * out[:, -1]
    return res


def sensor(fr: Frame, img: np.ndarray) -> np.ndarray:
    """Optics and sensor on a (3, H, W) image: sometimes slight blur, vignetting, exposure/contrast/colour cast,
    noise; returns (H, W, 3) uint8."""
    rng, g = fr.rng, fr.g
    h, w = img.shape[1:]
    if rng.random() < 0.35:
        img = _blur(img, float(rng.uniform(0.1, 0.24)))
    contrast = rng.uniform(0.85, 1.15)
    gain = (rng.uniform(0.93, 1.07, 3) * rng.uniform(0.9, 1.1) * contrast).astype(F32)
    vignette = 1 - F32(rng.uniform(0.0, 0.35)) * g.r2
    img = img * (vignette * gain[:, None, None]) + F32(128 * (1 - contrast) + 0.5)  # + 0.5: round, not floor
    sigma = rng.uniform(*{"day": (1.5, 4.0), "dusk": (2.5, 6.0)}.get(fr.spec.lighting, (3.5, 8.0)))
    oy, ox = rng.integers(0, NOISE_PAD, 2)
    img += g.noise[0, oy : oy + h, ox : ox + w] * F32(sigma)  # luma noise: one plane, broadcast (cheap)
    img[::2] += g.noise[1:, oy : oy + h, ox : ox + w] * F32(sigma * 0.35)  # and a little chroma (red, blue)
    return np.array(to_image(img))


def to_image(img: np.ndarray) -> Image.Image:
    """A (3, H, W) float image (clipped to 0..255) as an RGB ``PIL.Image``."""
    np.clip(img, 0, 255, out=img)
    return Image.merge("RGB", [Image.fromarray(c) for c in img.astype(np.uint8)])


def from_image(image: Image.Image) -> np.ndarray:
    """An RGB ``PIL.Image`` as a (3, H, W) float32 array."""
    return np.stack([np.asarray(band) for band in image.split()]).astype(F32)
