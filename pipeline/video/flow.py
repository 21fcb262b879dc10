"""Dense optical flow between two frames, warping by it, and where it cannot be trusted.

One small module shared by frame-rate resampling (clips made at a video model's rate,
shown at the storyboard's) and by restyling (redrawn keyframes carried along the source
video's motion). OpenCV's DIS optical flow (Kroeger et al., ECCV 2016): weight-free,
fast on a CPU, good on the large smooth motions of camera moves.

Conventions: frames are uint8 ``H x W x 3`` RGB; a flow is float32 ``H x W x 2`` in
pixels, ``flow[y, x] = (dx, dy)`` such that pixel ``(x, y)`` of the *first* frame is seen
at ``(x + dx, y + dy)`` in the *second*. :func:`warp` pulls pixels along a flow (backward
warping), so ``warp(second, flow(first, second))`` looks like ``first``.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

# Flow is computed at most this many pixels on the longer side and scaled up: DIS at full
# 1080p costs several times more for little gain on camera-scale motion.
MAX_FLOW_SIDE = 640
MEDIUM, FAST = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, cv2.DISOPTICAL_FLOW_PRESET_FAST
OCCLUSION_TOLERANCE = 1.0
"""Pixels of forward-backward disagreement (plus a share of the motion) still called consistent."""

_local = threading.local()  # one DIS instance per thread: OpenCV's objects are not thread-safe


def _dis(preset: int) -> cv2.DISOpticalFlow:
    instances = getattr(_local, "dis", None)
    if instances is None:
        instances = _local.dis = {}
    if preset not in instances:
        instances[preset] = cv2.DISOpticalFlow_create(preset)
    return instances[preset]


def optical_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The flow from ``first`` to ``second`` (both RGB, same size): ``H x W x 2`` float32 pixels."""
    if first.shape != second.shape:
        raise ValueError(f"Flow needs two frames of one size, got {first.shape} and {second.shape}.")
    height, width = first.shape[:2]
    scale = min(1.0, MAX_FLOW_SIDE / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale))) if scale < 1.0 else None
    flow = motion_field(gray_at(first, size), gray_at(second, size))
    if scale < 1.0:
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
        flow *= 1.0 / scale
    return flow


def motion_field(first_gray: np.ndarray, second_gray: np.ndarray, preset: int = MEDIUM) -> np.ndarray:
    """DIS flow between two gray ``uint8`` frames of one size, as float32 ``H x W x 2`` pixels.

    ``preset``: :data:`MEDIUM` (the default, with variational refinement) or :data:`FAST` (about a
    third of the cost; as good on the smooth camera-scale motion between neighbouring clip frames).
    """
    return np.ascontiguousarray(_dis(preset).calc(first_gray, second_gray, None), dtype=np.float32)


def gray_at(frame: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """``frame`` (RGB) as gray ``uint8``, then shrunk to ``size`` (width, height) when given."""
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if size is not None and size != (gray.shape[1], gray.shape[0]):
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


def warp(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``frame`` sampled at ``(x, y) + flow[y, x]`` (bilinear; edges replicated): backward warping."""
    height, width = flow.shape[:2]
    positions = cv2.add(np.ascontiguousarray(flow, dtype=np.float32), pixel_grid(width, height))
    return cv2.remap(frame, positions, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """True where the forward-backward check fails: pixels of the first frame not seen in the second.

    ``forward`` is the flow first -> second, ``backward`` second -> first. Following
    ``forward`` and then ``backward`` should come back to the start; where it misses by more
    than :data:`OCCLUSION_TOLERANCE` pixels plus 5% of the motion, the pixel is occluded
    (or the flow is wrong there), the standard test of Sundaram et al. (ECCV 2010).
    """
    back_at_target = warp(backward, forward)
    error = _squared_length(cv2.add(forward, back_at_target))
    motion = _squared_length(forward) + _squared_length(back_at_target)
    return error > 0.05 * motion + OCCLUSION_TOLERANCE


def _squared_length(vectors: np.ndarray) -> np.ndarray:
    x, y = cv2.split(vectors)
    return cv2.multiply(x, x) + cv2.multiply(y, y)


def pixel_grid(width: int, height: int) -> np.ndarray:
    """Every pixel's own ``(x, y)``, float32 ``height x width x 2`` (cached per thread; do not modify).

    A few sizes are kept: interpolation works at two at once (the flow's and the frame's).
    """
    grids = getattr(_local, "grids", None)
    if grids is None:
        grids = _local.grids = {}
    key = (width, height)
    grid = grids.get(key)
    if grid is None:
        if len(grids) >= 4:
            grids.clear()
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        grid = grids[key] = np.dstack([xs, ys])
    return grid
