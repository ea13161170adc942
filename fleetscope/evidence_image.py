"""An evidence frame as an operator looks at it: the JPEG with the detected objects boxed, the
relations that held between them drawn as labelled links, and a caption naming the rule, its score
on this frame and SA-CLIP's reading."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from kinematics.tracking import FACING_TOWARDS
from streams.sinks.evidence import StoredFrame

MIN_WIDTH = 640  # small frames are enlarged so that the text stays legible
BOX = (255, 200, 0)
RELATION = (255, 40, 40)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def caption(frame: StoredFrame) -> str:
    """The line above the picture: rule and score, SA-CLIP's anomaly, vehicle and capture time."""
    d: dict[str, Any] = frame.drawing
    rule_score = d.get("rule_score")
    scored = f" {rule_score:.2f}" if isinstance(rule_score, int | float) else ""
    anomaly = d.get("anomaly") or {}
    seen = f"; SA-CLIP: {anomaly['type']} {anomaly['score']:.2f}" if anomaly else ""
    return f"{d.get('rule', frame.alert_type)}{scored}{seen} | {frame.vehicle_id} {frame.captured_at:%Y-%m-%d %H:%M:%S}"


def object_label(obj: dict[str, Any]) -> str:
    """The text on an object's box: class and score, and "facing us" where the scene graph says so (the
    wrong-way rule's evidence; frames stored before 2026-12-06 have no facing)."""
    facing = obj.get("facing")
    towards = f", facing us {facing:.2f}" if isinstance(facing, int | float) and facing >= FACING_TOWARDS else ""
    return f"{obj['label']} {obj['score']:.2f}{towards}"


def draw(frame: StoredFrame) -> Image.Image:
    """The evidence frame with its boxes, relations and caption drawn."""
    with Image.open(io.BytesIO(frame.jpeg)) as img:
        picture = img.convert("RGB")
    if picture.width < MIN_WIDTH:
        scale = MIN_WIDTH / picture.width
        picture = picture.resize((MIN_WIDTH, round(picture.height * scale)), Image.Resampling.BICUBIC)
    w, h = picture.size
    text_size = max(12, w // 50)
    band = text_size * 2
    out = Image.new("RGB", (w, h + band), (0, 0, 0))
    out.paste(picture, (0, band))
    pen = ImageDraw.Draw(out)
    font = _font(text_size)
    pen.text((text_size // 2, text_size // 2), caption(frame), fill=(255, 255, 255), font=font)

    objects = frame.drawing.get("objects", [])
    boxes = [(x1 * w, band + y1 * h, x2 * w, band + y2 * h) for x1, y1, x2, y2 in (o["box"] for o in objects)]
    for obj, box in zip(objects, boxes, strict=True):
        pen.rectangle(box, outline=BOX, width=max(2, w // 320))
        pen.text((box[0] + 2, box[1] + 2), object_label(obj), fill=BOX, font=font)
    for rel in frame.drawing.get("relations", []):
        if not (0 <= rel["subject"] < len(boxes) and 0 <= rel["object"] < len(boxes)):
            continue
        a, b = boxes[rel["subject"]], boxes[rel["object"]]
        start, end = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2), ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
        pen.line([start, end], fill=RELATION, width=max(2, w // 320))
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        pen.text(middle, f"{rel['predicate']} {rel['score']:.2f}", fill=RELATION, font=font)
    return out
