"""Images resized the one way training and serving share: bilinear, with Pillow, 8-bit
pixels as 8-bit images (rounded, as Pillow resizes them) and deeper ones as floats."""

from __future__ import annotations

import numpy as np


def resize(image: np.ndarray, size: tuple[int, int], deep: bool) -> np.ndarray:
    """One (height, width, channels) image at ``size`` (height, width), float32: channel by
    channel as floats when ``deep`` (16-bit grey), else as an 8-bit grey or RGB image (its
    values clipped to 0..255 and rounded first)."""
    from PIL import Image

    height, width = size
    channels = image.shape[-1]
    if deep:
        out = np.empty((height, width, channels), dtype=np.float32)
        for c in range(channels):
            plane = Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
            out[..., c] = np.asarray(plane.resize((width, height), Image.Resampling.BILINEAR))
        return out
    pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    resized = np.asarray(picture.resize((width, height), Image.Resampling.BILINEAR))
    return resized.reshape(height, width, channels).astype(np.float32)
