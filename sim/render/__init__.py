"""Dashcam frames from scene specs: ``render`` draws a ``SceneSpec`` into pixels, ``render_jpeg`` encodes them.

The frame is built in layers: ground and background as per-pixel maps over the camera's cached grids
(``road``, ``background``), light, sky and haze (``effects.compose``), roadside things and scene objects as
projected 3-D sketches drawn far to near (``clutter``, ``objects``, ``sketch``), then lamp glows, rain or snow
and sensor artefacts (``effects``). All randomness comes from ``numpy.random.default_rng(spec.seed)``.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from sim.render.background import paint_background
from sim.render.clutter import sketch_clutter
from sim.render.effects import apply_glows, compose, from_image, sensor, to_image, weather
from sim.render.frame import new_frame
from sim.render.objects import sketch_object
from sim.render.road import paint_ground, paint_lights
from sim.render.sketch import draw_sketches
from sim.scene_spec import SceneSpec

__all__ = ["encode_jpeg", "render", "render_jpeg"]


def render(spec: SceneSpec) -> np.ndarray:
    """The frame ``spec`` describes, as an (H, W, 3) uint8 RGB array; the same spec gives the same pixels."""
    fr = new_frame(spec)
    paint_ground(fr)
    paint_background(fr)
    paint_lights(fr)
    canvas = to_image(compose(fr))
    sketches = sketch_clutter(fr) + [sketch_object(fr, o) for o in spec.objects]
    glows = draw_sketches(fr, sketches, ImageDraw.Draw(canvas))
    img = from_image(canvas)
    apply_glows(img, glows)
    weather(fr, img)
    return sensor(fr, img)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG bytes of an (H, W, 3) uint8 image: 4:4:4 (small red and amber lamps keep their colour),
    no metadata, not optimised, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, "JPEG", quality=int(quality), subsampling=0, optimize=False)
    return buf.getvalue()


def render_jpeg(spec: SceneSpec) -> bytes:
    """``render`` then ``encode_jpeg`` at the spec's quality."""
    return encode_jpeg(render(spec), spec.jpeg_quality)
