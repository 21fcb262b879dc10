"""Fitting a remote service's image sizes to a preset's exact size, never stretching.

A service offers a few fixed sizes (OpenAI) or takes any size within limits (Hugging Face);
either way the image that comes back is scaled to cover the exact output size and centre-cropped.
"""

from __future__ import annotations

import math
from typing import Sequence

from PIL import Image

from ...video.imaging import fit_cover
from ..generation import ImageRequest


def closest_size(sizes: Sequence[tuple[int, int]], width: int, height: int) -> tuple[int, int]:
    """The service size whose aspect ratio is closest to ``width``x``height`` (ties: the larger one).

    The result is then cover-fitted (scaled and centre-cropped) to the exact size, never stretched.
    """
    want = math.log(width / height)
    return min(sizes, key=lambda size: (round(abs(math.log(size[0] / size[1]) - want), 6), -size[0] * size[1]))


def aspect_size(width: int, height: int, native: int = 1024, multiple: int = 16) -> tuple[int, int]:
    """A size with the aspect of ``width``x``height``, an area near ``native``² (never more than the
    output needs) and sides in multiples of ``multiple``, for services that take any size."""
    scale = min(1.0, native / math.sqrt(width * height))
    return (max(multiple, round(width * scale / multiple) * multiple),
            max(multiple, round(height * scale / multiple) * multiple))


def fit_to_request(image: Image.Image, request: ImageRequest) -> Image.Image:
    """The service's image scaled to cover the request's exact size and centre-cropped (no stretching)."""
    return fit_cover(image, request.width, request.height)
