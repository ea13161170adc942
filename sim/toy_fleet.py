"""A small deterministic fleet for the walking-skeleton demo and the tests (synthetic data).

Vehicles drive straight lines through central Helsinki at constant speed; GPS at 1 Hz, a frame
every ``frame_every_s`` seconds. Frames are simple rendered road scenes (sky, road, lane marks,
vehicles as boxes, sometimes an obstacle in the lane). The full simulator replaces this module.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from PIL import Image, ImageDraw

from streams.schema import CameraCalibration, Frame, GpsFix

START = datetime(2026, 11, 2, 7, 30, tzinfo=timezone.utc)
ORIGIN = (60.1699, 24.9384)  # Helsinki centre
SIZE = 224
CAMERA = CameraCalibration(fx=200.0, fy=200.0, cx=SIZE / 2, cy=SIZE / 2, width=SIZE, height=SIZE, mounting_height_m=1.4)


@dataclass(frozen=True)
class Vehicle:
    vehicle_id: str
    heading_deg: float
    speed_mps: float


def render_frame(rng: random.Random, obstacle: bool) -> bytes:
    """A 224x224 JPEG road scene."""
    light = rng.choice([(135, 180, 235), (90, 100, 140), (25, 25, 45)])
    img = Image.new("RGB", (SIZE, SIZE), light)
    d = ImageDraw.Draw(img)
    horizon = SIZE // 2 + rng.randint(-10, 10)
    d.rectangle([0, horizon, SIZE, SIZE], fill=(70, 90, 60))
    d.polygon(
        [(SIZE // 2 - 8, horizon), (SIZE // 2 + 8, horizon), (SIZE, SIZE), (0, SIZE)], fill=(rng.randint(60, 100),) * 3
    )
    for y in range(horizon + 6, SIZE, 18):
        d.line([(SIZE // 2, y), (SIZE // 2, y + 8)], fill=(230, 230, 230), width=max(1, (y - horizon) // 20))
    for _ in range(rng.randint(0, 4)):
        depth = rng.uniform(0.1, 1.0)
        w = int(10 + 60 * depth)
        x = rng.randint(0, SIZE - w)
        y = horizon + int(depth * (SIZE - horizon) * 0.8)
        d.rectangle([x, y - int(w * 0.7), x + w, y], fill=tuple(rng.randint(0, 255) for _ in range(3)))
    if obstacle:
        d.rectangle([SIZE // 2 - 25, SIZE - 90, SIZE // 2 + 25, SIZE - 50], fill=(255, 120, 0))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(70, 92))
    return buf.getvalue()


def fleet(n_vehicles: int, seed: int) -> list[Vehicle]:
    rng = random.Random(seed)
    return [Vehicle(f"demo-{i:03d}", rng.uniform(0, 360), rng.uniform(5, 20)) for i in range(n_vehicles)]


def stream(n_vehicles: int, duration_s: int, frame_every_s: int = 2, seed: int = 7) -> Iterator[GpsFix | Frame]:
    """GPS fixes and frames in time order: each second, every vehicle's fix, then its frame if due."""
    rng = random.Random(seed)
    vehicles = fleet(n_vehicles, seed)
    for t in range(duration_s):
        ts = START + timedelta(seconds=t)
        for v in vehicles:
            dist = v.speed_mps * t
            heading = math.radians(v.heading_deg)
            lat = ORIGIN[0] + dist * math.cos(heading) / 111_320 + rng.gauss(0, 5) / 111_320
            lon = ORIGIN[1] + dist * math.sin(heading) / (111_320 * math.cos(math.radians(ORIGIN[0])))
            yield GpsFix(
                vehicle_id=v.vehicle_id,
                ts=ts,
                lat=lat,
                lon=lon,
                speed_mps=v.speed_mps,
                heading_deg=v.heading_deg,
                accuracy_m=5.0,
            )
            if t % frame_every_s == 0:
                yield Frame(
                    vehicle_id=v.vehicle_id,
                    frame_id=f"{v.vehicle_id}-{t:06d}",
                    captured_at=ts + timedelta(milliseconds=rng.randint(0, 400)),
                    jpeg=render_frame(rng, obstacle=rng.random() < 0.1),
                    camera=CAMERA,
                )
