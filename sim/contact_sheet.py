"""A grid of rendered frames with their objects' boxes and captions, for looking at what the simulator draws."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sim.scene_spec import SceneSpec

CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "car": (0, 200, 255),
    "truck": (255, 140, 0),
    "bus": (255, 230, 0),
    "cyclist": (200, 80, 255),
    "pedestrian": (255, 60, 160),
    "traffic light": (0, 255, 120),
    "obstacle": (255, 40, 40),
}
SHORT = {"traffic light": "tlight", "pedestrian": "ped", "obstacle": "obst"}
LINE_H = 12


def contact_sheet(
    tiles: list[tuple[np.ndarray, SceneSpec, list[str]]], columns: int = 4, scale: int = 2
) -> Image.Image:
    """Images in a grid (upscaled ``scale`` times), each object's box and class drawn, caption lines underneath."""
    font = ImageFont.load_default()
    if not tiles:
        return Image.new("RGB", (1, 1))
    tw = max(img.shape[1] for img, _, _ in tiles) * scale
    th = max(img.shape[0] for img, _, _ in tiles) * scale
    lines = max(len(caption) for _, _, caption in tiles)
    cell_h = th + 4 + LINE_H * lines + 6
    columns = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (tw + 6) + 6, rows * cell_h + 6), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, (img, spec, caption) in enumerate(tiles):
        x0, y0 = 6 + (i % columns) * (tw + 6), 6 + (i // columns) * cell_h
        tile = Image.fromarray(img).resize((img.shape[1] * scale, img.shape[0] * scale), Image.Resampling.NEAREST)
        sheet.paste(tile, (x0, y0))
        for o in spec.objects:
            if o.box is None:
                continue
            color = CLASS_COLORS.get(o.cls, (255, 255, 255))
            u1, v1, u2, v2 = (c * scale for c in o.box)
            draw.rectangle([x0 + u1, y0 + v1, x0 + u2, y0 + v2], outline=color, width=1)
            label = SHORT.get(o.cls, o.cls)
            if o.lights != "off":
                label += f" {o.lights}"
            ty = max(y0, y0 + v1 - LINE_H)
            bbox = draw.textbbox((x0 + u1 + 1, ty), label, font=font)
            draw.rectangle(bbox, fill=(0, 0, 0))
            draw.text((x0 + u1 + 1, ty), label, fill=color, font=font)
        for k, text in enumerate(caption):
            draw.text((x0, y0 + th + 4 + k * LINE_H), text, fill=(230, 230, 230), font=font)
    return sheet
