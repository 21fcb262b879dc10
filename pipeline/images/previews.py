"""From a diffusers pipeline's raw output to images: cheap latent previews, blank detection.

numpy and PIL only, no torch: callers hand over arrays (``tensor.cpu().numpy()``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# A decoded image whose brightest pixel is below this (0..1 scale) is treated as all-black.
_BLACK_LEVEL = 0.01

# Linear latent -> RGB approximations (the community-standard preview factors).
_SD_LATENT_RGB = np.array(
    [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]],
    dtype=np.float32,
)
_SD_LATENT_BIAS = np.zeros(3, dtype=np.float32)
_SDXL_LATENT_RGB = np.array(
    [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
    dtype=np.float32,
)
_SDXL_LATENT_BIAS = np.array([0.1084, -0.0175, -0.0011], dtype=np.float32)


def latents_to_previews(latents: np.ndarray, xl: bool = False) -> list[Image.Image]:
    """Cheap RGB previews of (B, 4, h, w) latents via a linear latent->RGB map (latent-sized images)."""
    factors, bias = (_SDXL_LATENT_RGB, _SDXL_LATENT_BIAS) if xl else (_SD_LATENT_RGB, _SD_LATENT_BIAS)
    latents = np.nan_to_num(np.asarray(latents, dtype=np.float32))
    if latents.ndim != 4 or latents.shape[1] != factors.shape[0]:
        return []
    rgb = np.einsum("bchw,cr->bhwr", latents, factors) + bias
    pixels = (((rgb + 1.0) / 2.0).clip(0.0, 1.0) * 255.0).round().astype(np.uint8)
    return [Image.fromarray(frame) for frame in pixels]


def to_pil(array: np.ndarray, width: int, height: int) -> Image.Image:
    """A decoded (h, w, 3) float image in 0..1 as an 8-bit PIL image of exactly ``width``x``height``."""
    image = Image.fromarray((array.clip(0.0, 1.0) * 255.0).round().astype(np.uint8))
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image


def is_blank(array: np.ndarray) -> bool:
    """True when a decoded float image holds NaN/inf or is all-black (a failed generation)."""
    return not np.isfinite(array).all() or float(array.max()) < _BLACK_LEVEL
