"""One shot's redrawn frames, steady from frame to frame: keyframes redrawn, the frames between carried by flow.

Coherence ``flow`` (the default): a keyframe every ``interval`` frames (and on the shot's last
frame). The first is redrawn from its source frame; each later one starts from the previous redrawn
keyframe warped to it along the source's optical flow, blended with its source frame (the source
alone where the flow cannot be trusted), and its colours are matched to the first keyframe's, so a
long shot does not drift. A frame between two keyframes is both redrawn keyframes warped to it and
blended by how near each is; where one of them cannot see the pixel (the forward-backward check of
``pipeline.video.flow``) the other is used, and where neither can, the nearer one.

Coherence ``none``: every frame redrawn on its own from its source frame (the flicker restyling is
known for; kept so the gain can be measured, see bench/restyle.py).

The redrawing itself is a callable (the image model through the restyle stage, or anything in a
test), so this module knows no model. Only the source frames from one keyframe to the next are held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from ..images.look import match_colors
from ..video.flow import occlusion_mask, optical_flow, warp

SOURCE_BLEND = 0.25
"""How much of the source frame a keyframe's start picture takes (the rest: the warped previous keyframe)."""

Redraw = Callable[[np.ndarray, np.ndarray, int], "np.ndarray | None"]
"""``redraw(start, source, frame)``: the picture the model makes from ``start`` (what image-to-image starts
from) for source frame number ``frame`` of the shot (``source``: its edges may guide the layout); same size.
None when it cannot: the rest of the shot is then its source frames as they are."""


@dataclass(frozen=True)
class ShotPlan:
    """Which frames of a shot of ``count`` frames are redrawn: every one (``none``) or keyframes (``flow``)."""

    count: int
    coherence: str = "flow"
    interval: int = 8

    @property
    def keyframes(self) -> tuple[int, ...]:
        if self.coherence == "none" or self.interval <= 1:
            return tuple(range(self.count))
        frames = list(range(0, self.count, self.interval))
        if frames[-1] != self.count - 1:
            frames.append(self.count - 1)
        return tuple(frames)


def restyle_shot(frames: Iterable[np.ndarray], plan: ShotPlan, redraw: Redraw,
                 on_keyframe: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> Iterator[np.ndarray]:
    """The shot's ``plan.count`` output frames (uint8 RGB, the source's size), in order, as they are made.

    ``frames`` yields the source frames; ``on_keyframe(frame, source, redrawn)`` is called for each
    redrawn keyframe (previews, progress). A keyframe's frames between it and the previous one are
    yielded once it exists. Once ``redraw`` answers None, every frame not yet yielded is its source frame.
    """
    keys = set(plan.keyframes)
    first: Image.Image | None = None
    window: list[tuple[int, np.ndarray]] = []  # source frames since the last keyframe (it included)
    last: np.ndarray | None = None  # the last redrawn keyframe
    failed = False
    for index, source in enumerate(frames):
        if index >= plan.count:
            break
        if failed:
            yield source
            continue
        if index not in keys:
            window.append((index, source))
            continue
        start = source if last is None or plan.coherence == "none" else carried_start(last, window[0][1], source)
        picture = redraw(start, source, index)
        if picture is None:  # the model cannot draw: the source from here on
            failed = True
            yield from (frame for _, frame in window[1:])  # the frames since the last keyframe (yielded)
            yield source
            continue
        redrawn = np.asarray(picture, dtype=np.uint8)
        if last is not None and plan.coherence != "none":
            redrawn = _matched(redrawn, first)
        if first is None and plan.coherence != "none":
            first = Image.fromarray(redrawn)
        if on_keyframe is not None:
            on_keyframe(index, source, redrawn)
        if last is not None and len(window) > 1:
            yield from between(window, last, (index, source), redrawn)
        yield redrawn
        window, last = [(index, source)], redrawn


def carried_start(previous: np.ndarray, previous_source: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Where a keyframe's redrawing starts: the previous redrawn keyframe moved along the source's motion
    to this frame, blended with this source frame (the source alone where the flow cannot be trusted)."""
    toward = optical_flow(source, previous_source)
    back = optical_flow(previous_source, source)
    carried = warp(previous, toward).astype(np.float32)
    hidden = occlusion_mask(toward, back)[..., None]
    start = (1.0 - SOURCE_BLEND) * carried + SOURCE_BLEND * source.astype(np.float32)
    return np.where(hidden, source, np.clip(start + 0.5, 0, 255)).astype(np.uint8)


def between(window: list[tuple[int, np.ndarray]], before: np.ndarray, after: tuple[int, np.ndarray],
            redrawn_after: np.ndarray) -> Iterator[np.ndarray]:
    """The frames strictly between two redrawn keyframes: both warped to each frame, blended by nearness."""
    (a, source_a), (b, source_b) = window[0], after
    for t, source in window[1:]:
        near_a = (b - t) / (b - a)
        warped_a, seen_a = _carried(before, source_a, source)
        warped_b, seen_b = _carried(redrawn_after, source_b, source)
        weight_a = near_a * seen_a
        weight_b = (1.0 - near_a) * seen_b
        neither = (weight_a + weight_b) == 0.0
        weight_a = np.where(neither, 1.0 if near_a >= 0.5 else 0.0, weight_a)
        weight_b = np.where(neither, 0.0 if near_a >= 0.5 else 1.0, weight_b)
        total = (weight_a + weight_b)[..., None]
        mixed = (weight_a[..., None] * warped_a + weight_b[..., None] * warped_b) / total
        yield np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def _carried(redrawn: np.ndarray, key_source: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A redrawn keyframe warped to ``source``'s frame, and where that can be trusted (1.0) or not (0.0)."""
    toward = optical_flow(source, key_source)
    back = optical_flow(key_source, source)
    seen = ~occlusion_mask(toward, back)
    return warp(redrawn, toward).astype(np.float32), seen.astype(np.float32)


def _matched(redrawn: np.ndarray, first: Image.Image | None) -> np.ndarray:
    if first is None:
        return redrawn
    return np.asarray(match_colors(Image.fromarray(redrawn), first))
