"""Image helpers shared by the keyframe and compose stages: fit to the output size, load as RGB.

Everything here keeps the aspect ratio: an image is scaled to *cover* the
target and centre-cropped, never stretched, so a square model image becomes a
16:9 frame by losing a strip top and bottom.
"""

from __future__ import annotations

from os import PathLike

import cv2
import numpy as np
from PIL import Image, ImageOps


def fit_cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Return ``image`` scaled to cover ``width`` x ``height`` and centre-cropped to exactly that size.

    The result is always a new RGB image of exactly ``(width, height)``; any
    alpha is dropped. The aspect ratio is kept (at most a sub-pixel error from
    rounding the crop to whole pixels).
    """
    rgb = np.asarray(_as_rgb(image))
    return Image.fromarray(fit_cover_array(rgb, width, height))


def fit_cover_array(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Like :func:`fit_cover` for a uint8 ``H x W x 3`` array; returns a new C-contiguous array."""
    _check_size(width, height)
    src_h, src_w = rgb.shape[:2]
    if src_w == width and src_h == height:
        return np.ascontiguousarray(rgb).copy()
    # Crop first, in source pixels, so the resize only touches pixels we keep.
    scale = max(width / src_w, height / src_h)
    crop_w = min(src_w, max(1, round(width / scale)))
    crop_h = min(src_h, max(1, round(height / scale)))
    left = (src_w - crop_w) // 2
    top = (src_h - crop_h) // 2
    crop = rgb[top:top + crop_h, left:left + crop_w]
    # INTER_AREA is the clean (moire-free) choice for shrinking; for enlarging
    # it degrades to nearest-neighbour-like blockiness, so use cubic there.
    shrinking = crop_w >= width and crop_h >= height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    fitted = cv2.resize(crop, (width, height), interpolation=interpolation)
    return np.ascontiguousarray(fitted)


def load_rgb(path: str | PathLike[str], width: int | None = None, height: int | None = None) -> np.ndarray:
    """Read an image file as a uint8 ``H x W x 3`` RGB array (C-contiguous).

    EXIF orientation is applied. Give ``width`` and ``height`` to get it fitted
    with :func:`fit_cover_array` in the same call (what the timeline's
    ``load_keyframe`` needs).
    """
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        rgb = np.asarray(_as_rgb(image))
    if width is not None and height is not None:
        return fit_cover_array(rgb, width, height)
    return np.ascontiguousarray(rgb)


def _as_rgb(image: Image.Image) -> Image.Image:
    # convert() also loads lazily opened files, so the array outlives the file handle.
    return image if image.mode == "RGB" else image.convert("RGB")


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"Target size must be positive, got {width}x{height}.")
