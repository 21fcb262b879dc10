"""Transitions between two frames: one call per output frame, ``t`` from 0 (outgoing) to 1 (incoming).

Every kind returns exactly the outgoing frame at ``t = 0`` and exactly the
incoming frame at ``t = 1``, and changes monotonically in between:

* ``crossfade``: each pixel moves linearly from outgoing to incoming, so the
  distance from the outgoing frame never shrinks as ``t`` grows.
* ``fade``: through black. On ``[0, 0.5]`` the outgoing frame darkens to black
  (brightness non-increasing); on ``[0.5, 1]`` the incoming frame brightens from
  black (brightness non-decreasing). The "distance travelled" along the path
  outgoing -> black -> incoming is therefore non-decreasing in ``t``.
* ``wipe``: the incoming frame is revealed left to right; its boundary column
  is ``round(t * W)`` (columns left of it show the incoming frame).
* ``slide``: the incoming frame slides in from the right and pushes the
  outgoing one out to the left, both offset by ``round(t * W)`` pixels.
* ``cut``: outgoing for ``t < 0.5``, else incoming. (The timeline gives a cut no
  transition frames at all; this exists so every name is callable.)

The result may *be* one of the inputs (not a copy) at the ends or for a cut:
treat it as read-only.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from ..contract.fields import TRANSITIONS


Blender = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def blend(kind: str, outgoing: np.ndarray, incoming: np.ndarray, t: float) -> np.ndarray:
    """Return the frame ``t`` of the way through transition ``kind`` from ``outgoing`` to ``incoming``.

    Both frames must be uint8 ``H x W x 3`` arrays of the same shape; ``t`` is
    clamped to ``[0, 1]``. Raises ValueError for an unknown kind or mismatched
    frames. The result has the same shape and dtype.
    """
    blender = _BLENDERS.get(kind)
    if blender is None:
        raise ValueError(f"Unknown transition '{kind}'; choose one of {', '.join(TRANSITIONS)}.")
    if outgoing.shape != incoming.shape or outgoing.dtype != np.uint8 or incoming.dtype != np.uint8:
        raise ValueError(
            f"Transition frames must be uint8 arrays of one shape; got {outgoing.shape} {outgoing.dtype} "
            f"and {incoming.shape} {incoming.dtype}."
        )
    t = min(1.0, max(0.0, float(t)))
    # The exact ends are guaranteed here, once, rather than trusted to each kind's rounding.
    if t == 0.0:
        return outgoing
    if t == 1.0:
        return incoming
    return blender(outgoing, incoming, t)


def _cut(outgoing: np.ndarray, incoming: np.ndarray, t: float) -> np.ndarray:
    return outgoing if t < 0.5 else incoming


def _crossfade(outgoing: np.ndarray, incoming: np.ndarray, t: float) -> np.ndarray:
    # addWeighted is a single fused, saturating pass: a few ms at 1080p.
    return cv2.addWeighted(outgoing, 1.0 - t, incoming, t, 0.0)


def _fade(outgoing: np.ndarray, incoming: np.ndarray, t: float) -> np.ndarray:
    if t < 0.5:
        return cv2.convertScaleAbs(outgoing, alpha=1.0 - 2.0 * t)
    return cv2.convertScaleAbs(incoming, alpha=2.0 * t - 1.0)


def _wipe(outgoing: np.ndarray, incoming: np.ndarray, t: float) -> np.ndarray:
    width = outgoing.shape[1]
    edge = round(t * width)
    frame = np.empty_like(outgoing)
    frame[:, :edge] = incoming[:, :edge]
    frame[:, edge:] = outgoing[:, edge:]
    return frame


def _slide(outgoing: np.ndarray, incoming: np.ndarray, t: float) -> np.ndarray:
    width = outgoing.shape[1]
    offset = round(t * width)
    frame = np.empty_like(outgoing)
    # The outgoing frame has moved `offset` pixels left; the incoming one's left
    # edge now sits at column width - offset.
    frame[:, :width - offset] = outgoing[:, offset:]
    frame[:, width - offset:] = incoming[:, :offset]
    return frame


_BLENDERS: dict[str, Blender] = {
    "cut": _cut,
    "crossfade": _crossfade,
    "fade": _fade,
    "wipe": _wipe,
    "slide": _slide,
}
