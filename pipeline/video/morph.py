"""Drawing a morph transition from its generated in-between images, and what the report says of each transition.

A morph with ``count`` generated images has ``count + 2`` anchors: the outgoing keyframe,
the images in order, the incoming keyframe, spread evenly over the transition's frames.
Transition frame ``i`` of ``n`` sits at ``u = i / (n - 1)``, i.e. at anchor position
``u * (count + 1)``, and crossfades the two anchors around it, so the video keeps its
frame rate whatever the number of images (the walk itself may be eased: that is in the
images' positions, see ``pipeline.images.plan.morph_position``). The first and last
frames are exactly the two scenes' own frames.

Motion: each scene's camera window (zoom and position) is known on every frame of the
transition; a morph frame is seen through the window ``u`` of the way from the outgoing
scene's window to the incoming one's, so the camera glides from one move into the other
and never shows a pixel from outside the picture.

A scene shown as footage (a clip) moves on through the transition: its anchor is not its
keyframe but the frame the clip shows at that moment, and its camera window is the whole
frame (the clip's camera is in its pixels). So an animated scene's last frame before the
morph and the morph's first in-betweens meet without a jump back to the clip's first frame,
and the morph's last in-betweens lead into the frame the incoming clip plays on.

At most two in-between images are held at once; each is loaded when first needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import cv2
import numpy as np

from ..contract.events import ClipReady, MorphReady, TransitionReport
from .footage import MovingSource
from .imaging import fit_cover_array
from .timeline import SceneSpan, TimelinePlan, TransitionSpan, motion_window, scene_frame, warp_window
from .transitions import blend


@dataclass(frozen=True)
class MorphImages:
    """A morph's generated in-between images: ``count`` of them, ``load(j)`` (j in 0..count-1) gives
    image ``j`` as a uint8 RGB array (any size; fitted to the frame here)."""

    count: int
    load: Callable[[int], np.ndarray]


def morph_frames(span: TransitionSpan, outgoing: SceneSpan, incoming: SceneSpan,
                 keyframe: Callable[[SceneSpan], np.ndarray], images: MorphImages,
                 size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The ``span.frames`` frames of a morph; ``keyframe(scene)`` is the timeline's prepared keyframe."""
    anchors = _Anchors(keyframe, outgoing, incoming, images, size)
    last = span.frames - 1
    for i, frame in enumerate(range(span.start, span.end)):
        if i == 0:
            yield scene_frame(keyframe(outgoing), outgoing, frame)
        elif i == last:
            yield scene_frame(keyframe(incoming), incoming, frame)
        else:
            u = i / last
            position = u * (images.count + 1)
            low = min(int(position), images.count)
            picture = blend("crossfade", anchors.get(low, frame), anchors.get(low + 1, frame), position - low)
            anchors.forget_below(low)
            yield np.ascontiguousarray(_through_camera(picture, outgoing, incoming, frame, u, anchors.moving))


def _through_camera(picture: np.ndarray, outgoing: SceneSpan, incoming: SceneSpan, frame: int,
                    u: float, moving: tuple[bool, bool] = (False, False)) -> np.ndarray:
    """``picture`` seen through the window ``u`` of the way from the outgoing scene's window to the incoming one's.

    ``moving``: whether each scene is footage, whose window is the whole frame whatever its ``motion``.
    """
    still_out, still_in = not moving[0], not moving[1]
    if not (still_out and outgoing.motion != "none") and not (still_in and incoming.motion != "none"):
        return picture
    height, width = picture.shape[:2]
    whole = (1.0, 0.0, 0.0)
    start = motion_window(outgoing, frame, width, height) if still_out else whole
    end = motion_window(incoming, frame, width, height) if still_in else whole
    # Each window lies inside the picture, and so does any mix of the two (1/zoom is convex).
    zoom, left, top = ((1.0 - u) * a + u * b for a, b in zip(start, end))
    return warp_window(picture, zoom, left, top)


class _Anchors:
    """The morph's anchors by position: 0 the outgoing scene, 1..count the images, count + 1 the incoming.

    A scene's anchor is its keyframe, or for footage the frame it shows on the frame asked for.
    """

    def __init__(self, keyframe: Callable[[SceneSpan], np.ndarray], outgoing: SceneSpan, incoming: SceneSpan,
                 images: MorphImages, size: tuple[int, int]) -> None:
        self._keyframe, self._ends = keyframe, (outgoing, incoming)
        self._images, self._size = images, size
        self._held: dict[int, np.ndarray] = {}
        self.moving = (isinstance(keyframe(outgoing), MovingSource), isinstance(keyframe(incoming), MovingSource))

    def get(self, position: int, frame: int) -> np.ndarray:
        """Anchor ``position`` on video frame ``frame``."""
        end = 0 if position == 0 else 1 if position == self._images.count + 1 else None
        if end is not None and self.moving[end]:
            scene = self._ends[end]
            return scene_frame(self._keyframe(scene), scene, frame)
        if position not in self._held:
            self._held[position] = self._load(position)
        return self._held[position]

    def forget_below(self, position: int) -> None:
        for old in [p for p in self._held if p < position]:
            del self._held[old]

    def _load(self, position: int) -> np.ndarray:
        if position == 0 or position == self._images.count + 1:
            keyframe = self._keyframe(self._ends[0 if position == 0 else 1])
            return cv2.cvtColor(keyframe, cv2.COLOR_RGBA2RGB) if keyframe.shape[2] == 4 else keyframe
        image = np.asarray(self._images.load(position - 1))
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"In-between image {position}: must be a uint8 HxWx3 RGB array, got {image.shape}.")
        width, height = self._size
        return image if image.shape[:2] == (height, width) else fit_cover_array(image, width, height)


def transition_reports(plan: TimelinePlan, morphs: Mapping[int, MorphReady],
                       bridges: Mapping[int, ClipReady] | None = None) -> tuple[TransitionReport, ...]:
    """How each transition's frames were made, from the timeline and the image stage's MorphReady and
    ClipReady (generated transitions) events."""
    reports = []
    for span in plan.transitions:
        if span.kind == "cut":
            reports.append(TransitionReport(span.boundary, span.kind, 0, "cut"))
        elif span.kind == "generated":
            reports.append(_bridge_report(span, (bridges or {}).get(span.boundary)))
        elif span.kind != "morph":
            reports.append(TransitionReport(span.boundary, span.kind, span.frames, "blend"))
        else:
            event = morphs.get(span.boundary)
            if event is None:
                reason = f"the transition is too short ({span.frames} frames) for in-between images"
                reports.append(TransitionReport(span.boundary, span.kind, span.frames, "crossfade", reason=reason))
            elif event.source == "crossfade":
                reports.append(TransitionReport(span.boundary, span.kind, span.frames, "crossfade",
                                                reason=event.reason))
            else:
                reports.append(TransitionReport(span.boundary, span.kind, span.frames, "generated", event.frames,
                                                event.cached))
    return tuple(reports)


def _bridge_report(span: TransitionSpan, event: ClipReady | None) -> TransitionReport:
    if event is None:
        return TransitionReport(span.boundary, span.kind, span.frames, "crossfade", reason="no clip was planned")
    if event.source == "fallback":
        return TransitionReport(span.boundary, span.kind, span.frames, "crossfade", reason=event.reason,
                                model=event.model)
    return TransitionReport(span.boundary, span.kind, span.frames, "clip", 1, int(event.source == "cache"),
                            model=event.model)
