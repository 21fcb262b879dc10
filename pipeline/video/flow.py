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
OCCLUSION_TOLERANCE = 1.0
"""Pixels of forward-backward disagreement (plus a share of the motion) still called consistent."""

_local = threading.local()  # one DIS instance per thread: OpenCV's objects are not thread-safe


def _dis() -> cv2.DISOpticalFlow:
    dis = getattr(_local, "dis", None)
    if dis is None:
        dis = _local.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis


def optical_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The flow from ``first`` to ``second`` (both RGB, same size): ``H x W x 2`` float32 pixels."""
    if first.shape != second.shape:
        raise ValueError(f"Flow needs two frames of one size, got {first.shape} and {second.shape}.")
    height, width = first.shape[:2]
    scale = min(1.0, MAX_FLOW_SIDE / max(height, width))
    a, b = _gray(first, scale), _gray(second, scale)
    flow = _dis().calc(a, b, None)
    if scale < 1.0:
        flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) / scale
    return np.ascontiguousarray(flow, dtype=np.float32)


def _gray(frame: np.ndarray, scale: float) -> np.ndarray:
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        size = (max(8, round(gray.shape[1] * scale)), max(8, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


def warp(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``frame`` sampled at ``(x, y) + flow[y, x]`` (bilinear; edges replicated): backward warping."""
    height, width = flow.shape[:2]
    grid_x, grid_y = _grid(width, height)
    map_x = grid_x + flow[..., 0]
    map_y = grid_y + flow[..., 1]
    return cv2.remap(frame, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """True where the forward-backward check fails: pixels of the first frame not seen in the second.

    ``forward`` is the flow first -> second, ``backward`` second -> first. Following
    ``forward`` and then ``backward`` should come back to the start; where it misses by more
    than :data:`OCCLUSION_TOLERANCE` pixels plus 5% of the motion, the pixel is occluded
    (or the flow is wrong there), the standard test of Sundaram et al. (ECCV 2010).
    """
    back_at_target = warp(backward, forward)
    round_trip = forward + back_at_target
    error = np.sum(round_trip * round_trip, axis=2)
    motion = np.sum(forward * forward, axis=2) + np.sum(back_at_target * back_at_target, axis=2)
    return error > 0.05 * motion + OCCLUSION_TOLERANCE


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    key = (width, height)
    cached = getattr(_local, "grid", None)
    if cached is None or cached[0] != key:
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        cached = _local.grid = (key, xs, ys)
    return cached[1], cached[2]
