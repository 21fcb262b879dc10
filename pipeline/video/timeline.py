"""The timeline: keyframes + durations + motion + transitions -> one RGB frame at a time.

Timing rules (all in whole frames at ``fps = storyboard.output_fps``):

* The video has ``round(storyboard.total_seconds * fps)`` frames. Scene ``k``
  owns the frames ``[round(start_k * fps), round(end_k * fps))``, where start and
  end are the cumulative sums of the durations, so the video lasts the sum of
  the durations within one frame and no time is lost or added at boundaries.
  (At a very low fps a short scene can round to zero frames; it is skipped.)
* A transition takes its time from the two scenes it joins and adds none. It
  is centred on their boundary and lasts
  ``L = min(transition_duration, duration_k, duration_k+1)`` seconds, so **a
  scene shorter than the transition shortens it**. In frames,
  ``n = round(L * fps)``; ``n // 2`` frames come from the end of the outgoing
  scene and the rest from the start of the incoming one (each side is capped at
  half of that scene's frames, which only matters when rounding makes a very
  short scene one frame shorter). If ``n < 2`` or the transition is ``cut`` the
  boundary is a hard cut. Transition frame ``i`` of ``n`` uses ``t = i/(n-1)``:
  its first frame is the outgoing scene, its last the incoming one.
* Motion (``Scene.motion``) is a gentle Ken Burns move spread over every frame
  on which the scene is visible, its halves of transitions included: zoom
  1.0 <-> 1.12, or a pan across 10% of the width (at a fixed 1/0.9 zoom so the
  window never leaves the picture). It samples a moving window of the fitted
  keyframe with one sub-pixel ``cv2.warpAffine`` (bilinear), so slow moves do
  not judder and no pixel from outside the keyframe is ever shown.
* A ``generated`` transition shows the footage the video model made from the outgoing scene's
  last frame to the incoming one's first (``BridgeLoader``), spread over its frames; the two
  scenes' visible ranges then stop at the transition (each scene's own frames end where the
  generated clip begins). Without that footage it is a crossfade of the two scenes' end frames.
* A scene whose loader gives footage (a clip, a restyled shot: ``pipeline.video.footage``) shows
  its frames instead of the keyframe's camera move, from its first visible frame on, at the
  video's size and rate.
* A ``morph`` transition whose in-between images the model made shows them
  instead of a blend of the two keyframes (``pipeline.video.morph``): its first
  and last frames are the two scenes' frames, the rest walk through the images,
  blended between neighbours to keep the frame rate; without them it is a crossfade.

Memory is O(1) in the number of scenes: keyframes are loaded lazily and at
most two (the outgoing and incoming scenes) are held at once, plus at most two
in-between images of the morph being drawn.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import cv2
import numpy as np

from .footage import MovingSource
from .imaging import fit_cover_array
from ..contract.footage import Footage
from ..contract.storyboard import Storyboard
from .transitions import blend

if TYPE_CHECKING:
    from .morph import MorphImages

ZOOM_AMOUNT = 0.12
"""How much ``zoom_in``/``zoom_out`` magnify over a scene (1.0 -> 1.12)."""
PAN_FRACTION = 0.10
"""How far ``pan_left``/``pan_right`` travel, as a fraction of the frame width."""

KeyframeLoader = Callable[[int], "np.ndarray | Footage"]
"""``load_keyframe(scene)``: the scene's keyframe (a still) or its footage (frames at a rate)."""
BridgeLoader = Callable[[int], "Footage | None"]
"""``load_bridge(boundary)``: the generated transition's footage from scene ``boundary`` to the next, or None
when it is drawn as a crossfade."""
MorphLoader = Callable[[int], "MorphImages | None"]
"""``load_morph(boundary)``: the generated in-between images of the morph from scene ``boundary``
to the next, or None when that morph is drawn as a crossfade."""


@dataclass(frozen=True)
class SceneSpan:
    """Where scene ``index`` is in the video, in frame numbers (``end`` values exclusive).

    ``[start, end)`` is the scene's own time; ``[hold_start, hold_end)`` the part
    shown alone; ``[visible_start, visible_end)`` every frame it appears on,
    transitions included (its motion runs across exactly these).
    """

    index: int
    motion: str
    start: int
    end: int
    hold_start: int
    hold_end: int
    visible_start: int
    visible_end: int


@dataclass(frozen=True)
class TransitionSpan:
    """The transition between scene ``boundary`` and scene ``boundary + 1``.

    ``kind`` is what is drawn (``"cut"`` whenever it got under two frames);
    frames ``[start, end)`` blend the two scenes. A cut has ``start == end``.
    """

    boundary: int
    kind: str
    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class FrameStage:
    """What frame ``j`` shows: a scene alone (``transition is None``) or a transition at ``t``."""

    scene: int
    transition: TransitionSpan | None = None
    t: float = 0.0


@dataclass(frozen=True)
class TimelinePlan:
    """Frame ranges for a whole video. Build it with :func:`plan_timeline`."""

    width: int
    height: int
    fps: int
    total_frames: int
    scenes: tuple[SceneSpan, ...]
    transitions: tuple[TransitionSpan, ...]  # one per boundary, len(scenes) - 1

    @property
    def duration(self) -> float:
        return self.total_frames / self.fps

    def stage_at(self, frame: int) -> FrameStage:
        """What frame number ``frame`` shows (O(log scenes)); in a transition ``scene`` is the outgoing one."""
        if not 0 <= frame < self.total_frames:
            raise IndexError(f"Frame {frame} is outside 0..{self.total_frames - 1}.")
        # The scene owning the frame; a transition around it can only be at its two boundaries.
        k = bisect.bisect_right(self.scenes, frame, key=lambda scene: scene.start) - 1
        for span in self.transitions[max(0, k - 1):k + 1]:
            if span.start <= frame < span.end:
                return FrameStage(span.boundary, span, (frame - span.start) / (span.frames - 1))
        return FrameStage(k)


def plan_timeline(storyboard: Storyboard) -> TimelinePlan:
    """Work out every scene's and transition's frame range for ``storyboard`` (see the module rules)."""
    fps = storyboard.output_fps
    bounds = _scene_bounds(storyboard, fps)
    transitions = tuple(
        _plan_transition(storyboard, k, bounds) for k in range(len(storyboard.scenes) - 1)
    )
    scenes = tuple(_plan_scene(storyboard, k, bounds, transitions) for k in range(len(storyboard.scenes)))
    preset = storyboard.preset
    return TimelinePlan(preset.width, preset.height, fps, bounds[-1], scenes, transitions)


def _scene_bounds(storyboard: Storyboard, fps: int) -> list[int]:
    # Rounding cumulative times (not each duration) keeps errors from adding up.
    bounds, elapsed = [0], 0.0
    for scene in storyboard.scenes:
        elapsed += scene.duration
        bounds.append(round(elapsed * fps))
    bounds[-1] = round(storyboard.total_seconds * fps)  # same sum, stated once as the contract
    return bounds


def _plan_transition(storyboard: Storyboard, k: int, bounds: list[int]) -> TransitionSpan:
    boundary = bounds[k + 1]
    scenes = storyboard.scenes
    length = min(storyboard.transition_duration, scenes[k].duration, scenes[k + 1].duration)
    n = round(length * storyboard.output_fps)
    before = min(n // 2, (bounds[k + 1] - bounds[k]) // 2)
    incoming_frames = bounds[k + 2] - bounds[k + 1]
    after = min(n - n // 2, incoming_frames - incoming_frames // 2)
    if storyboard.transition == "cut" or before + after < 2:
        return TransitionSpan(k, "cut", boundary, boundary)
    return TransitionSpan(k, storyboard.transition, boundary - before, boundary + after)


def _plan_scene(
    storyboard: Storyboard, k: int, bounds: list[int], transitions: tuple[TransitionSpan, ...]
) -> SceneSpan:
    start, end = bounds[k], bounds[k + 1]
    incoming = transitions[k - 1] if k > 0 else None
    outgoing = transitions[k] if k < len(transitions) else None
    hold_start = incoming.end if incoming else start
    hold_end = outgoing.start if outgoing else end
    # A generated transition is footage of its own: the scenes it joins end where it begins.
    return SceneSpan(
        index=k,
        motion=storyboard.scenes[k].motion,
        start=start,
        end=end,
        hold_start=hold_start,
        hold_end=hold_end,
        visible_start=incoming.start if incoming and incoming.kind != "generated" else hold_start,
        visible_end=outgoing.end if outgoing and outgoing.kind != "generated" else hold_end,
    )


def compose_frames(storyboard: Storyboard, plan: TimelinePlan, load_keyframe: KeyframeLoader,
                   load_morph: MorphLoader | None = None, load_bridge: BridgeLoader | None = None
                   ) -> Iterator[np.ndarray]:
    """Yield exactly ``plan.total_frames`` frames: uint8 ``height x width x 3`` RGB, C-contiguous.

    ``load_keyframe(i)`` must return scene ``i``'s keyframe as a uint8 RGB array,
    ideally already fitted to the output size (other sizes are fitted here).
    It is called lazily (when the scene first becomes visible), once per scene
    that has frames, in scene order; this generator references at most two
    keyframes at any time. It may return a scene's footage instead (a finished
    ``Footage``): the scene then shows its frames. ``load_morph`` (see :data:`MorphLoader`)
    is called when a ``morph`` transition begins, ``load_bridge`` when a ``generated`` one
    does; without them those are crossfades. Raises
    ValueError (on the first frame) if ``plan`` was made for a storyboard with
    another number of scenes.

    A still scene yields the *same* read-only array for each of its frames;
    consumers must copy a frame before changing it (an encoder that writes
    ``frame.tobytes()`` or ``frame.data`` needs nothing).
    """
    if len(plan.scenes) != len(storyboard.scenes):
        raise ValueError("This plan was made for another storyboard; build it with plan_timeline(storyboard).")
    cache = _KeyframeCache(load_keyframe, plan.width, plan.height, plan.fps)
    for scene in plan.scenes:
        for frame in range(scene.hold_start, scene.hold_end):
            yield scene_frame(cache.get(scene), scene, frame)
        if scene.index < len(plan.transitions):
            yield from _transition_frames(plan, plan.transitions[scene.index], cache, load_morph, load_bridge)
        cache.release(scene.index)


def _transition_frames(plan: TimelinePlan, span: TransitionSpan, cache: "_KeyframeCache",
                       load_morph: MorphLoader | None, load_bridge: BridgeLoader | None = None
                       ) -> Iterator[np.ndarray]:
    outgoing, incoming = plan.scenes[span.boundary], plan.scenes[span.boundary + 1]
    bridge = load_bridge(span.boundary) if span.kind == "generated" and load_bridge is not None else None
    if bridge is not None:
        source = MovingSource(bridge, plan.width, plan.height, plan.fps)
        for i in range(span.frames):
            yield np.ascontiguousarray(source.spread(i, span.frames))
        return
    images = load_morph(span.boundary) if span.kind == "morph" and load_morph is not None else None
    if images is not None and images.count > 0:
        from .morph import morph_frames  # it draws with this module's motion helpers

        yield from morph_frames(span, outgoing, incoming, cache.get, images, (plan.width, plan.height))
        return
    for i, frame in enumerate(range(span.start, span.end)):
        a = scene_frame(cache.get(outgoing), outgoing, frame)
        b = scene_frame(cache.get(incoming), incoming, frame)
        yield np.ascontiguousarray(blend(span.kind, a, b, i / (span.frames - 1)))


def scene_frame(keyframe: "np.ndarray | MovingSource", scene: SceneSpan, frame: int) -> np.ndarray:
    """What scene ``scene`` alone shows on video frame ``frame``: its keyframe through its camera move,
    or its footage's frame at that time."""
    if isinstance(keyframe, MovingSource):
        # A restyled shot keeps its source's timing: its first frame is the scene's own first frame, so
        # the cuts stay on the source's frames; a clip starts on the first frame the scene is seen.
        first = scene.start if keyframe.footage.info.made_by == "restyle" else scene.visible_start
        return keyframe.frame_on(frame, first)
    if scene.motion == "none":
        return keyframe
    last = scene.visible_end - 1
    progress = (frame - scene.visible_start) / (last - scene.visible_start) if last > scene.visible_start else 0.0
    return apply_motion(keyframe, scene.motion, progress)


def apply_motion(keyframe: np.ndarray, motion: str, progress: float) -> np.ndarray:
    """Return ``keyframe`` seen through the camera move ``motion`` at ``progress`` in [0, 1].

    ``keyframe`` is uint8 RGB (``H x W x 3``) or RGBA (``H x W x 4``, whose
    alpha is dropped); the result is always a new ``H x W x 3`` RGB array that
    only shows keyframe pixels, or the keyframe itself for an RGB keyframe at
    rest. Calling it per frame? Pass an RGBA copy: OpenCV warps four channels
    about twice as fast as three, which outweighs the conversion back to RGB.
    """
    height, width = keyframe.shape[:2]
    return warp_window(keyframe, *_motion_window(motion, min(1.0, max(0.0, progress)), width, height))


def warp_window(keyframe: np.ndarray, zoom: float, left: float, top: float) -> np.ndarray:
    """``keyframe`` (RGB or RGBA) seen through the window at (``left``, ``top``) magnified ``zoom`` times, as RGB."""
    height, width = keyframe.shape[:2]
    if zoom == 1.0 and left == 0.0 and top == 0.0:
        return keyframe if keyframe.shape[2] == 3 else cv2.cvtColor(keyframe, cv2.COLOR_RGBA2RGB)
    # Inverse map, pixel centres aligned: output pixel x samples source
    # x / zoom + left + 0.5 / zoom - 0.5, i.e. the window [left, left + width / zoom).
    matrix = np.array(
        [[1.0 / zoom, 0.0, left + 0.5 / zoom - 0.5], [0.0, 1.0 / zoom, top + 0.5 / zoom - 0.5]],
        dtype=np.float64,
    )
    # REPLICATE only matters for the half-pixel at the very edge; the window itself stays inside.
    warped = cv2.warpAffine(
        keyframe, matrix, (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )
    return warped if warped.shape[2] == 3 else cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB)


def motion_window(scene: SceneSpan, frame: int, width: int, height: int) -> tuple[float, float, float]:
    """Scene ``scene``'s camera window (zoom, left, top) on video frame ``frame``."""
    last = scene.visible_end - 1
    progress = (frame - scene.visible_start) / (last - scene.visible_start) if last > scene.visible_start else 0.0
    return _motion_window(scene.motion, min(1.0, max(0.0, progress)), width, height)


def _motion_window(motion: str, progress: float, width: int, height: int) -> tuple[float, float, float]:
    """The zoom and the window's top-left corner (source pixels) for a move at ``progress``."""
    if motion == "none":
        return 1.0, 0.0, 0.0
    if motion in ("zoom_in", "zoom_out"):
        amount = progress if motion == "zoom_in" else 1.0 - progress
        zoom = 1.0 + ZOOM_AMOUNT * amount
    elif motion in ("pan_left", "pan_right"):
        zoom = 1.0 / (1.0 - PAN_FRACTION)
    else:
        raise ValueError(f"Unknown motion '{motion}'.")
    spare_w, spare_h = width - width / zoom, height - height / zoom
    if motion == "pan_right":  # the camera moves right: the window travels left -> right
        return zoom, spare_w * progress, spare_h / 2
    if motion == "pan_left":
        return zoom, spare_w * (1.0 - progress), spare_h / 2
    return zoom, spare_w / 2, spare_h / 2


class _KeyframeCache:
    """Loads keyframes on first use and forgets them on release; holds two at most.

    A still scene's keyframe is kept as a read-only RGB array (yielded as is);
    a moving scene's as RGBA, the fast input for :func:`apply_motion`.
    """

    def __init__(self, load: KeyframeLoader, width: int, height: int, fps: float) -> None:
        self._load, self._width, self._height, self._fps = load, width, height, fps
        self._held: dict[int, np.ndarray | MovingSource] = {}

    def get(self, scene: SceneSpan) -> "np.ndarray | MovingSource":
        keyframe = self._held.get(scene.index)
        if keyframe is None:
            keyframe = self._prepare(self._load(scene.index), scene)
            self._held[scene.index] = keyframe
        return keyframe

    def release(self, index: int) -> None:
        self._held.pop(index, None)

    def _prepare(self, raw: "np.ndarray | Footage", scene: SceneSpan) -> "np.ndarray | MovingSource":
        if isinstance(raw, Footage):
            return MovingSource(raw, self._width, self._height, self._fps)
        raw = np.asarray(raw)
        if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[2] != 3:
            raise ValueError(
                f"Scene {scene.index + 1}: keyframe must be a uint8 HxWx3 RGB array, got {raw.shape} {raw.dtype}."
            )
        if raw.shape[:2] != (self._height, self._width):
            raw = fit_cover_array(raw, self._width, self._height)
        if scene.motion != "none":
            return cv2.cvtColor(raw, cv2.COLOR_RGB2RGBA)
        # A read-only view: still frames are yielded many times, so nobody may write to them.
        frame = np.ascontiguousarray(raw).view()
        frame.flags.writeable = False
        return frame
