"""JPEG bytes to normalised image tensors, with Pillow and numpy only.

Frames are resized to the backbone's square size without cropping: scene-graph boxes are predicted
in [0, 1] coordinates of the model input, and only a full-frame resize keeps those equal to
coordinates in the original frame.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def decode_jpeg(data: bytes, min_size: int | None = None) -> Image.Image:
    """Decode JPEG ``data`` to an RGB image; raise ValueError if it is not a readable JPEG.

    With ``min_size``, the JPEG decoder may scale down by a power of two while both sides stay at
    least ``min_size``: much faster for large frames that will be shrunk anyway.
    """
    try:
        with warnings.catch_warnings():
            # Pillow only warns about very large images; treat them as the bombs they may be.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format != "JPEG":
                raise ValueError(f"expected a JPEG, got {img.format or 'unknown format'}")
            if min_size is not None:
                img.draft("RGB", (min_size, min_size))
            img.load()  # decode now: a truncated or corrupt stream fails here, not later
    except (OSError, SyntaxError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a decodable JPEG ({len(data)} bytes): {exc}") from exc
    return img.convert("RGB")


def to_uint8_batch(jpegs: Sequence[bytes], image_size: int) -> np.ndarray:
    """Decode and resize JPEGs into uint8 pixels [B, image_size, image_size, 3] (RGB).

    Raises ValueError naming the first image that does not decode.
    """
    batch = np.empty((len(jpegs), image_size, image_size, 3), dtype=np.uint8)
    for i, data in enumerate(jpegs):
        try:
            img = decode_jpeg(data, min_size=image_size)
        except ValueError as exc:
            raise ValueError(f"image {i} of {len(jpegs)}: {exc}") from exc
        batch[i] = np.asarray(img.resize((image_size, image_size), Image.Resampling.BICUBIC))
    return batch


def normalise(pixels: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 pixels [B, H, W, 3] to the float32 model input [B, 3, H, W], scaled to 0..1 and normalised."""
    batch = torch.as_tensor(pixels).to(torch.float32) / 255.0
    batch = (batch - torch.tensor(mean, dtype=torch.float32)) / torch.tensor(std, dtype=torch.float32)
    return batch.permute(0, 3, 1, 2).contiguous()


def to_tensor_batch(
    jpegs: Sequence[bytes],
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Decode, resize and normalise JPEGs into a float32 tensor [B, 3, image_size, image_size].

    Raises ValueError naming the first image that does not decode.
    """
    return normalise(to_uint8_batch(jpegs, image_size), mean, std)
