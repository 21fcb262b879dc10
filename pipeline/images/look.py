"""Pictures that tie scenes together, made with OpenCV (no model weights): fitted start images,
Canny-edge control images, and colour matching in Lab space.

Torch-free: the image stage uses these to resolve a request's input pictures and to keep a
chain of image-to-image scenes on the first scene's colours.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageOps

# Canny hysteresis thresholds (the usual ones for ControlNet's canny model).
CANNY_LOW = 100
CANNY_HIGH = 200


def fit_picture(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled and centre-cropped to exactly ``width`` x ``height`` (RGB)."""
    return ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def canny_edges(image: Image.Image, width: int, height: int) -> Image.Image:
    """The Canny edges of ``image`` fitted to ``width`` x ``height``: white lines on black, RGB."""
    gray = cv2.cvtColor(np.asarray(fit_picture(image, width, height)), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, CANNY_LOW, CANNY_HIGH)
    return Image.fromarray(np.repeat(edges[:, :, None], 3, axis=2))


def lab_statistics(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each Lab channel (L in 0..100, a and b around 0)."""
    lab = _to_lab(image).reshape(-1, 3)
    return lab.mean(axis=0), lab.std(axis=0)


def match_colors(image: Image.Image, target: Image.Image) -> Image.Image:
    """``image`` with each Lab channel's mean and spread moved to ``target``'s (Reinhard et al. 2001).

    Keeps a long image-to-image chain on its first picture's colours instead of drifting
    toward one hue. The picture's content and size are unchanged.
    """
    lab = _to_lab(image)
    mean, std = lab.reshape(-1, 3).mean(axis=0), lab.reshape(-1, 3).std(axis=0)
    target_mean, target_std = lab_statistics(target)
    scaled = (lab - mean) * (target_std / np.maximum(std, 1e-3)) + target_mean
    scaled[..., 0] = np.clip(scaled[..., 0], 0.0, 100.0)
    scaled[..., 1:] = np.clip(scaled[..., 1:], -127.0, 127.0)
    rgb = cv2.cvtColor(scaled.astype(np.float32), cv2.COLOR_LAB2RGB)
    return Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8))


def _to_lab(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
