"""How a clip longer than one model call is cut into calls, and how the calls' frames are joined.

numpy only (no torch): the manager hands over each call's decoded frames as uint8 arrays.

A clip of ``total`` frames is made in calls of at most ``max_frames`` frames. Every call after
the first is conditioned on the last ``overlap`` frames of the one before (LTX-Video: a video
condition of 9 frames; Wan: the last frame as its start image), so its first ``overlap`` frames
show again what the previous call ended with. Those frames are not shown twice: the join
crossfades the previous call's tail into the new call's head over the overlap, so motion
carries on and no frame jumps (:class:`ClipStitcher`).

The pictures the clip is conditioned on are pinned (the rule the tests check): frame 0 *is* the
start picture and, for a generated transition, the last frame *is* the end picture, with the
next (previous) ``pin`` frames blended from the picture into the model's frames. A model
decodes its condition frame only approximately (VAE round trip; with random test weights not
at all), and a seamless cut needs the exact picture: a scene then begins on its keyframe and a
transition starts on one scene's last frame and ends on the next one's first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

PIN_FRAMES = 2  # frames after (before) a pinned picture that blend from it into the model's own


@dataclass(frozen=True)
class CallPlan:
    """One model call of a clip: ``frames`` frames, the first ``overlap`` of them repeating the
    previous call's last ``overlap`` (0 for the first call)."""

    frames: int
    overlap: int

    @property
    def new_frames(self) -> int:
        """Frames this call adds to the clip."""
        return self.frames - self.overlap


def plan_calls(total: int, max_frames: int, frame_step: int, overlap: int) -> list[CallPlan]:
    """The calls that make a clip of ``total`` frames (``frame_step * k + 1``), each at most ``max_frames``.

    Every call's length is valid for the model (``frame_step * k + 1``). ``overlap`` must be
    ``frame_step * j + 1`` (so a continuation adds a multiple of ``frame_step``) and less than
    ``max_frames``. The new frames of all calls add up to ``total`` exactly.
    """
    if total < 1 or (total - 1) % frame_step:
        raise ValueError(f"A clip has {frame_step}k+1 frames, not {total}.")
    if (overlap - 1) % frame_step or not 0 < overlap < max_frames:
        raise ValueError(f"An overlap of {overlap} frames does not fit calls of {max_frames}.")
    largest = (max_frames - 1) // frame_step * frame_step + 1
    calls = [CallPlan(min(total, largest), 0)]
    made = calls[0].frames
    while made < total:
        frames = min(largest, total - made + overlap)
        calls.append(CallPlan(frames, overlap))
        made += frames - overlap
    return calls


def _blend(a: np.ndarray, b: np.ndarray, weight_b: float) -> np.ndarray:
    mixed = a.astype(np.float32) * (1.0 - weight_b) + b.astype(np.float32) * weight_b
    return mixed.round().clip(0, 255).astype(np.uint8)


def pin_start(frames: list[np.ndarray], picture: np.ndarray, pin: int = PIN_FRAMES) -> None:
    """Frame 0 becomes ``picture``; the next ``pin`` frames blend from it into the model's (in place)."""
    for index in range(min(pin + 1, len(frames))):
        frames[index] = _blend(picture, frames[index], index / (pin + 1))


def pin_end(frames: list[np.ndarray], picture: np.ndarray, pin: int = PIN_FRAMES) -> None:
    """The last frame becomes ``picture``; the ``pin`` before it blend from the model's into it (in place)."""
    for back in range(min(pin + 1, len(frames))):
        frames[-1 - back] = _blend(picture, frames[-1 - back], back / (pin + 1))


class ClipStitcher:
    """Joins the calls' frames into one stream and hands finished frames to ``write`` as they come.

    The last ``hold`` frames of the stream are held back, because the next call's overlap
    (or the end picture's pin) changes them; :meth:`finish` writes them.
    """

    def __init__(self, write: Callable[[np.ndarray], None], hold: int) -> None:
        self._write = write
        self._hold = max(1, hold)
        self._tail: list[np.ndarray] = []
        self.written = 0

    def add_call(self, frames: list[np.ndarray], overlap: int) -> None:
        """Add one call's frames; its first ``overlap`` frames crossfade from the held tail into them."""
        frames = list(frames)
        if overlap:
            if overlap > len(self._tail):
                raise ValueError(f"An overlap of {overlap} frames needs that many held back, not {len(self._tail)}.")
            old = self._tail[-overlap:]
            self._tail = self._tail[:-overlap]
            for index in range(overlap):
                frames[index] = _blend(old[index], frames[index], (index + 1) / (overlap + 1))
        self._tail.extend(frames)
        self._flush(self._hold)

    def tail(self, count: int) -> list[np.ndarray]:
        """The last ``count`` frames of the stream so far (what the next call is conditioned on)."""
        return list(self._tail[-count:])

    def finish(self, end_picture: np.ndarray | None = None) -> int:
        """Pin the end picture (if any), write the held frames; answers the frames written in all."""
        if end_picture is not None:
            pin_end(self._tail, end_picture)
        self._flush(0)
        return self.written

    def _flush(self, keep: int) -> None:
        while len(self._tail) > keep:
            self._write(self._tail.pop(0))
            self.written += 1
