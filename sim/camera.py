"""A calibrated pinhole dashcam on the ego vehicle, and the ground plane it looks at.

Ego frame: x metres forward, y metres left, z metres up, origin on the ground below the camera.
The camera sits at ``mounting_height_m`` and looks forward, pitched down by ``pitch_deg``.
Image coordinates: u to the right, v down, in pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from records.messages import CameraCalibration

# Corner pairs joined by the 12 edges of a cuboid (corners as ordered in ``Camera.box``).
_EDGES = ((0, 1), (0, 2), (1, 3), (2, 3), (4, 5), (4, 6), (5, 7), (6, 7), (0, 4), (1, 5), (2, 6), (3, 7))
# Points closer than this in front of the lens are not projected (they would explode to infinity).
MIN_DEPTH_M = 0.5


@dataclass(frozen=True)
class Camera:
    """Intrinsics and mounting of one vehicle's dashcam."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    mounting_height_m: float
    pitch_deg: float

    @classmethod
    def sample(cls, rng: np.random.Generator, size: int = 224) -> Camera:
        """A plausible dashcam: 60-80 degree horizontal field of view, 1.2-1.8 m high, pitched 1-6 degrees down."""
        fov = math.radians(rng.uniform(60, 80))
        f = (size / 2) / math.tan(fov / 2)
        return cls(
            width=size,
            height=size,
            fx=f,
            fy=f * rng.uniform(0.98, 1.02),
            cx=size / 2 + rng.uniform(-3, 3),
            cy=size / 2 + rng.uniform(-3, 3),
            mounting_height_m=rng.uniform(1.2, 1.8),
            pitch_deg=rng.uniform(1, 6),
        )

    def calibration(self) -> CameraCalibration:
        """The calibration record sent with every frame."""
        return CameraCalibration(
            fx=self.fx,
            fy=self.fy,
            cx=self.cx,
            cy=self.cy,
            width=self.width,
            height=self.height,
            mounting_height_m=self.mounting_height_m,
            pitch_deg=self.pitch_deg,
        )

    @property
    def horizon_v(self) -> float:
        """Image row of the horizon (where the ground plane vanishes)."""
        return self.cy - self.fy * math.tan(math.radians(self.pitch_deg))

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ego-frame points to pixel (u, v) and depth along the optical axis; depth <= 0 means behind."""
        t = math.radians(self.pitch_deg)
        dz = np.asarray(z, dtype=np.float64) - self.mounting_height_m
        x = np.asarray(x, dtype=np.float64)
        depth = x * math.cos(t) - dz * math.sin(t)
        up = x * math.sin(t) + dz * math.cos(t)
        safe = np.where(depth > MIN_DEPTH_M, depth, np.nan)
        u = self.cx - self.fx * np.asarray(y, dtype=np.float64) / safe
        v = self.cy - self.fy * up / safe
        return u, v, depth

    def box(
        self, x: float, y: float, heading: float, length: float, width: float, height: float, z0: float = 0.0
    ) -> tuple[float, float, float, float] | None:
        """Pixel box (u1, v1, u2, v2) of a cuboid standing on the ground, clipped to the image.

        ``heading`` is the cuboid's facing relative to the camera's forward axis (radians, 0 = same way).
        Returns None when no part of the cuboid is in front of the camera and inside the image.
        """
        c, s = math.cos(heading), math.sin(heading)
        dl = np.array([1, 1, -1, -1] * 2) * length / 2
        dw = np.array([1, -1, 1, -1] * 2) * width / 2
        xs = x + dl * c - dw * s
        ys = y + dl * s + dw * c
        zs = z0 + np.array([0.0] * 4 + [height] * 4)
        u, v, depth = self.project(xs, ys, zs)
        ok = depth > MIN_DEPTH_M
        if not ok.any():
            return None
        if not ok.all():
            # Part of the cuboid is behind the near plane: add where its edges cross that plane.
            i, j = np.array(_EDGES).T
            cross = ok[i] != ok[j]
            i, j = i[cross], j[cross]
            f = (MIN_DEPTH_M + 1e-6 - depth[i]) / (depth[j] - depth[i])
            cu, cv, _ = self.project(
                xs[i] + f * (xs[j] - xs[i]), ys[i] + f * (ys[j] - ys[i]), zs[i] + f * (zs[j] - zs[i])
            )
            u, v = np.concatenate([u[ok], cu]), np.concatenate([v[ok], cv])
        else:
            u, v = u[ok], v[ok]
        u1, u2 = float(np.nanmin(u)), float(np.nanmax(u))
        v1, v2 = float(np.nanmin(v)), float(np.nanmax(v))
        u1, u2 = max(u1, 0.0), min(u2, float(self.width))
        v1, v2 = max(v1, 0.0), min(v2, float(self.height))
        if u2 - u1 < 1.0 or v2 - v1 < 1.0:
            return None
        return (u1, v1, u2, v2)
