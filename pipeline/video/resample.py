"""Footage shown at another frame rate: motion-compensated interpolation between its frames.

A clip is made at its model's rate (Wan: 16 fps; LTX-Video: 25, or the video's own from 24 to 30,
when nothing here interpolates) and shown at the video's. A frame between footage frames ``a`` and ``b`` at time ``t`` (0 at ``a``, 1 at ``b``) is made the
way flow-based frame interpolation does it (Jiang et al., "Super SloMo", CVPR 2018, for the
flow approximation): the flows ``a -> b`` and ``b -> a`` (OpenCV DIS, ``pipeline.video.flow``)
give the flows from the in-between time back to both neighbours; both are warped there and
blended, ``a`` weighted ``1 - t`` and ``b`` weighted ``t``, each only where it is visible
(the forward-backward check); where neither is, the nearer side is used. At ``t = 0`` and
``t = 1`` (within :data:`EXACT`) the frame is exactly ``a`` or ``b``. It never blends across a
cut: it only ever sees the frames of one footage.

Cost: the motion of a pair is found once (both ways, at most :data:`FLOW_SIDE` pixels) and reused
by every output frame between the two; per output frame, only the two warps (``cv2.remap`` with
fixed-point maps) and the blend run at the footage's own size, which is the model's (smaller than
the video's); the caller cover-fits the result to the video's size afterwards.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from .flow import FAST, gray_at, motion_field, occlusion_mask, pixel_grid

EXACT = 1e-3
"""Times this close (in footage frames) to a footage frame are that frame: 1/1000 of a frame is far
below what anyone could see, and it saves a whole interpolation for rates that are nearly multiples."""
FLOW_SIDE = 384
"""The motion between two frames is found at most this many pixels on the longer side (and the
visibility check made there): a clip's motion is smooth, and this is about a quarter of the cost of
finding it at 640 px. DIS's FAST preset (no variational refinement) is used: between neighbouring clip
frames the motion is small and smooth, and it interpolates a pan as well as MEDIUM (within 0.4 dB)
at about half the cost. Only the two final warps and the blend run at the footage's full size."""


@dataclass(frozen=True)
class PairMotion:
    """The motion between two footage frames, at ``scale`` of their size: the flows both ways and where
    each frame is seen in the other (1.0) or occluded (0.0)."""

    forward: np.ndarray
    backward: np.ndarray
    seen_a: np.ndarray
    seen_b: np.ndarray
    scale: float


def flow_size(frame: np.ndarray) -> tuple[int, int] | None:
    """The (width, height) the motion of ``frame``'s footage is found at; None: its own size."""
    height, width = frame.shape[:2]
    scale = min(1.0, FLOW_SIDE / max(height, width))
    return (max(8, round(width * scale)), max(8, round(height * scale))) if scale < 1.0 else None


def pair_flows(a: np.ndarray, b: np.ndarray, grays: tuple[np.ndarray, np.ndarray] | None = None) -> PairMotion:
    """The motion between ``a`` and ``b`` (found at most :data:`FLOW_SIDE` pixels on the longer side).

    ``grays``: both frames already made gray at :func:`flow_size` (each frame of a footage is in two pairs).
    """
    size = flow_size(a)
    scale = min(1.0, FLOW_SIDE / max(a.shape[:2]))  # the factor flow_size used
    gray_a, gray_b = grays if grays is not None else (gray_at(a, size), gray_at(b, size))
    forward, backward = motion_field(gray_a, gray_b, FAST), motion_field(gray_b, gray_a, FAST)
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
    t = float(t)  # a Python float keeps the float32 arrays float32
    # Flow from the in-between time to each neighbour, from the two flows between them (linear motion),
    # and how much each neighbour counts there: all at the flow's small size, in scratch buffers.
    small = m.forward.shape[:2]
    to_a = cv2.addWeighted(m.forward, -(1.0 - t) * t, m.backward, t * t, 0.0,
                           dst=_scratch("to-a", (*small, 2), np.float32))
    to_b = cv2.addWeighted(m.forward, (1.0 - t) * (1.0 - t), m.backward, -t * (1.0 - t), 0.0,
                           dst=_scratch("to-b", (*small, 2), np.float32))
    weight_a = np.multiply(_warp_small(m.seen_a, to_a, "a"), 1.0 - t, out=_scratch("weight-a", small, np.float32))
    weight_b = np.multiply(_warp_small(m.seen_b, to_b, "b"), t, out=_scratch("weight-b", small, np.float32))
    total = np.add(weight_a, weight_b, out=_scratch("total", small, np.float32))
    share_a = _scratch("share-small", small, np.float32)
    share_a.fill(1.0 if t < 0.5 else 0.0)  # seen from neither side: the nearer one
    np.divide(weight_a, total, out=share_a, where=total >= 1e-3)
    height, width = a.shape[:2]
    if m.scale < 1.0:
        share_a = cv2.resize(share_a, (width, height), dst=_scratch("share", (height, width), np.float32),
                             interpolation=cv2.INTER_LINEAR)
    share_b = cv2.subtract(1.0, share_a, dst=_scratch("share-b", (height, width), np.float32))
    # The two warps live in scratch buffers; the blend is a new array, the caller's to keep.
    return cv2.blendLinear(_pull(a, to_a, m.scale, "a"), _pull(b, to_b, m.scale, "b"), share_a, share_b)


def _pull(frame: np.ndarray, small_flow: np.ndarray, scale: float, side: str) -> np.ndarray:
    """``frame`` warped by a flow found at ``scale`` of its size: the flow is brought to the frame's size
    straight into a sampling map (one resize, one multiply-add), made fixed-point, and remapped.

    Every array here lives in this thread's scratch buffers (``side`` tells the two warps apart):
    fresh megabyte-sized arrays per frame cost more in page faults than the arithmetic does.
    """
    height, width = frame.shape[:2]
    grid = pixel_grid(width, height)
    positions = _scratch(f"positions-{side}", (height, width, 2), np.float32)
    if scale < 1.0:
        up = cv2.resize(small_flow, (width, height), dst=_scratch(f"up-{side}", (height, width, 2), np.float32),
                        interpolation=cv2.INTER_LINEAR)
        cv2.scaleAdd(up, 1.0 / scale, grid, dst=positions)
    else:
        cv2.add(small_flow, grid, dst=positions)
    map1, map2 = cv2.convertMaps(positions, None, cv2.CV_16SC2,
                                 dstmap1=_scratch(f"map1-{side}", (height, width, 2), np.int16),
                                 dstmap2=_scratch(f"map2-{side}", (height, width), np.uint16))
    return cv2.remap(frame, map1, map2, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
                     dst=_scratch(f"warped-{side}", frame.shape, frame.dtype))


def _warp_small(mask: np.ndarray, small_flow: np.ndarray, side: str) -> np.ndarray:
    """``mask`` (at the flow's size) pulled along ``small_flow``, into a scratch buffer."""
    height, width = mask.shape[:2]
    positions = cv2.add(small_flow, pixel_grid(width, height), dst=_scratch(f"at-{side}", (height, width, 2),
                                                                            np.float32))
    return cv2.remap(mask, positions, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
                     dst=_scratch(f"seen-{side}", (height, width), np.float32))


_local = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """This thread's reusable buffer ``name`` of ``shape`` and ``dtype`` (contents undefined)."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    buffer = buffers.get(name)
    if buffer is None or buffer.shape != tuple(shape) or buffer.dtype != dtype:
        buffer = buffers[name] = np.empty(shape, dtype)
    return buffer


def footage_step(seconds: float, fps: float, count: int) -> tuple[int, float | None]:
    """Where ``seconds`` falls in a footage of ``count`` frames at ``fps`` (clamped to it): ``(i, None)``
    when it is footage frame ``i`` (within :data:`EXACT`), else ``(i, t)``: ``t`` of the way from frame
    ``i`` to ``i + 1``."""
    exact = min(max(seconds * fps, 0.0), count - 1.0)
    index = min(int(exact), count - 1)
    t = exact - index
    if t <= EXACT or index + 1 >= count:
        return index, None
    if t >= 1.0 - EXACT:
        return index + 1, None
    return index, t


class Resampler:
    """Frames of ``frame(i)`` (footage at ``fps``) at any time, interpolated by motion between neighbours.

    Keeps the motion of the last pair of neighbours, so every output frame between the same two
    footage frames shares one flow computation (both ways).
    """

    def __init__(self, frame, count: int, fps: float) -> None:
        self._frame, self._count, self._fps = frame, count, fps
        self._pair: tuple[int, PairMotion] | None = None
        # The last two footage frames read, with their gray versions for the flow: played forward, frame
        # i + 1 of one pair is frame i of the next, read and made gray once.
        self._recent: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def at(self, seconds: float) -> np.ndarray:
        """The frame at ``seconds`` from the first (clamped to the footage)."""
        index, t = footage_step(seconds, self._fps, self._count)
        if t is None:
            return self._read(index)[0]
        a, b = self._read(index, gray=True), self._read(index + 1, gray=True)
        if self._pair is None or self._pair[0] != index:
            self._pair = (index, pair_flows(a[0], b[0], (a[1], b[1])))
        return interpolate(a[0], b[0], t, self._pair[1])

    def _read(self, index: int, gray: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Footage frame ``index`` (and, with ``gray``, made gray at the flow's size), kept for the next call."""
        frame, small = self._recent.get(index) or (self._frame(index), None)
        if gray and small is None:
            small = gray_at(frame, flow_size(frame))
        self._recent = {i: v for i, v in self._recent.items() if abs(i - index) <= 1}
        self._recent[index] = (frame, small)
        return frame, small
