"""Footage shown at another frame rate: motion-compensated interpolation between its frames.

A clip is made at its model's rate (LTX-Video: 24-25 fps, Wan: 16) and shown at the video's. A
frame between footage frames ``a`` and ``b`` at time ``t`` (0 at ``a``, 1 at ``b``) is made the
way flow-based frame interpolation does it (Jiang et al., "Super SloMo", CVPR 2018, for the
flow approximation): the flows ``a -> b`` and ``b -> a`` (OpenCV DIS, ``pipeline.video.flow``)
give the flows from the in-between time back to both neighbours; both are warped there and
blended, ``a`` weighted ``1 - t`` and ``b`` weighted ``t``, each only where it is visible
(the forward-backward check); where neither is, the nearer side is used. At ``t = 0`` and
``t = 1`` the frame is exactly ``a`` or ``b``. It never blends across a cut: it only ever
sees the frames of one footage.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .flow import occlusion_mask, optical_flow, warp

EXACT = 1e-6  # times this close to a footage frame are that frame
FLOW_SIDE = 384
"""The motion between two frames is found at most this many pixels on the longer side (and the
visibility check made there): a clip's motion is smooth, and this is about a quarter of the cost of
finding it at 640 px. Only the two final warps and the blend run at the footage's full size."""


@dataclass(frozen=True)
class PairMotion:
    """The motion between two footage frames, at ``scale`` of their size: the flows both ways and where
    each frame is seen in the other (1.0) or occluded (0.0)."""

    forward: np.ndarray
    backward: np.ndarray
    seen_a: np.ndarray
    seen_b: np.ndarray
    scale: float


def pair_flows(a: np.ndarray, b: np.ndarray) -> PairMotion:
    """The motion between ``a`` and ``b`` (found at most :data:`FLOW_SIDE` pixels on the longer side)."""
    height, width = a.shape[:2]
    scale = min(1.0, FLOW_SIDE / max(height, width))
    if scale < 1.0:
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
    forward, backward = optical_flow(a, b), optical_flow(b, a)
    seen_a = (~occlusion_mask(forward, backward)).astype(np.float32)
    seen_b = (~occlusion_mask(backward, forward)).astype(np.float32)
    return PairMotion(forward, backward, seen_a, seen_b, scale)


def interpolate(a: np.ndarray, b: np.ndarray, t: float, motion: PairMotion | None = None) -> np.ndarray:
    """The frame ``t`` (0..1) of the way from ``a`` to ``b`` (uint8 RGB, one size); exact at 0 and 1.

    ``motion``: the pair's :func:`pair_flows` if already known.
    """
    if t <= EXACT:
        return a
    if t >= 1.0 - EXACT:
        return b
    m = motion if motion is not None else pair_flows(a, b)
    # Flow from the in-between time to each neighbour, from the two flows between them (linear motion).
    to_a = -(1.0 - t) * t * m.forward + t * t * m.backward
    to_b = (1.0 - t) * (1.0 - t) * m.forward - t * (1.0 - t) * m.backward
    weight_a, weight_b = (1.0 - t) * warp(m.seen_a, to_a), t * warp(m.seen_b, to_b)
    neither = weight_a + weight_b < 1e-3  # seen from neither side: the nearer one
    nearer_a = 1.0 if t < 0.5 else 0.0
    weight_a = np.where(neither, nearer_a, weight_a)
    weight_b = np.where(neither, 1.0 - nearer_a, weight_b)
    share_a = weight_a / (weight_a + weight_b)
    height, width = a.shape[:2]
    if m.scale < 1.0:
        size = (width, height)
        to_a = cv2.resize(to_a, size, interpolation=cv2.INTER_LINEAR) / m.scale
        to_b = cv2.resize(to_b, size, interpolation=cv2.INTER_LINEAR) / m.scale
        share_a = cv2.resize(share_a, size, interpolation=cv2.INTER_LINEAR)
    share_a = np.ascontiguousarray(share_a, dtype=np.float32)
    return cv2.blendLinear(warp(a, to_a), warp(b, to_b), share_a, 1.0 - share_a)


class Resampler:
    """Frames of ``frame(i)`` (footage at ``fps``) at any time, interpolated by motion between neighbours.

    Keeps the flows of the last pair of neighbours, so several output frames between the same
    two footage frames cost one flow computation.
    """

    def __init__(self, frame, count: int, fps: float) -> None:
        self._frame, self._count, self._fps = frame, count, fps
        self._pair: tuple[int, PairMotion] | None = None

    def at(self, seconds: float) -> np.ndarray:
        """The frame at ``seconds`` from the first (clamped to the footage)."""
        exact = min(max(seconds * self._fps, 0.0), self._count - 1.0)
        index = min(int(exact), self._count - 1)
        t = exact - index
        if t <= EXACT or index + 1 >= self._count:
            return self._frame(index)
        if t >= 1.0 - EXACT:
            return self._frame(index + 1)
        a, b = self._frame(index), self._frame(index + 1)
        if self._pair is None or self._pair[0] != index:
            self._pair = (index, pair_flows(a, b))
        return interpolate(a, b, t, self._pair[1])
