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

import numpy as np

from .flow import occlusion_mask, optical_flow, warp

EXACT = 1e-6  # times this close to a footage frame are that frame


def interpolate(a: np.ndarray, b: np.ndarray, t: float, flows: tuple[np.ndarray, np.ndarray] | None = None
                ) -> np.ndarray:
    """The frame ``t`` (0..1) of the way from ``a`` to ``b`` (uint8 RGB, one size); exact at 0 and 1.

    ``flows``: the flows ``a -> b`` and ``b -> a`` if already known (see :func:`pair_flows`).
    """
    if t <= EXACT:
        return a
    if t >= 1.0 - EXACT:
        return b
    forward, backward = flows if flows is not None else pair_flows(a, b)
    # Flow from the in-between time to each neighbour, from the two flows between them (linear motion).
    to_a = -(1.0 - t) * t * forward + t * t * backward
    to_b = (1.0 - t) * (1.0 - t) * forward - t * (1.0 - t) * backward
    seen_a = warp((~occlusion_mask(forward, backward)).astype(np.float32), to_a)
    seen_b = warp((~occlusion_mask(backward, forward)).astype(np.float32), to_b)
    weight_a, weight_b = (1.0 - t) * seen_a, t * seen_b
    neither = weight_a + weight_b < 1e-3
    nearer_a = 1.0 if t < 0.5 else 0.0
    weight_a = np.where(neither, nearer_a, weight_a)
    weight_b = np.where(neither, 1.0 - nearer_a, weight_b)
    total = (weight_a + weight_b)[..., None]
    mixed = (weight_a[..., None] * warp(a, to_a) + weight_b[..., None] * warp(b, to_b)) / total
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def pair_flows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flows ``a -> b`` and ``b -> a``."""
    return optical_flow(a, b), optical_flow(b, a)


class Resampler:
    """Frames of ``frame(i)`` (footage at ``fps``) at any time, interpolated by motion between neighbours.

    Keeps the flows of the last pair of neighbours, so several output frames between the same
    two footage frames cost one flow computation.
    """

    def __init__(self, frame, count: int, fps: float) -> None:
        self._frame, self._count, self._fps = frame, count, fps
        self._pair: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None

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
