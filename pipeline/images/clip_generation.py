"""The video-model interface: clip requests in, frames (or reasons) out, and each model's frame rules.

A render plans its clips as :class:`ClipRequest` objects beside its image requests: a
scene clip (kind ``clip``) animates one scene from its keyframe (a condition at frame 0);
a generated transition (kind ``bridge``) is the clip from the last frame of one scene to
the first frame of the next (conditions at the first and the last frame). A video backend
(:class:`VideoModel`: LTX-Video, Wan, a test stand-in) makes one clip per request at its
own frame rate and size rules (:class:`FrameRules`), writing the frames as they are decoded
into a footage folder (``pipeline.contract.footage``) so no clip is held whole in memory.
A scene longer than the model's longest clip is made of several calls, each continuing from
the last frames of the one before; that is the backend's business, the request only says
how many frames it wants.

Like :class:`pipeline.images.generation.ImageModel`, ``generate_clip`` never raises for a
clip that cannot be made: it answers with a one-line reason, and the scene is then shown
as a still with camera motion (a transition as a crossfade). torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol

from PIL import Image

from .generation import ModelInfo


@dataclass(frozen=True)
class FrameRules:
    """The sizes and lengths a video model makes.

    A clip has ``frame_step * k + 1`` frames (LTX-Video: 8k+1, Wan: 4k+1), at most
    ``max_frames`` per call, at ``fps``; its sides are multiples of ``side_multiple``
    (LTX: 32, Wan: 16) and its native size has about ``native_pixels`` pixels.
    ``last_frame``: the model can be conditioned on a clip's last frame (needed for
    generated transitions), with ``last_frame_reason`` saying why not when it cannot.
    ``rates``: the frame rates (low, high) the model can be asked to make a clip at, because it is
    conditioned on the rate (LTX-Video); None: it makes ``fps`` only (Wan). See :meth:`at_rate`.
    """

    fps: float
    frame_step: int
    side_multiple: int
    native_pixels: int
    max_frames: int
    last_frame: bool = True
    last_frame_reason: str = ""
    rates: tuple[float, float] | None = None

    def at_rate(self, video_fps: float) -> FrameRules:
        """These rules for a video at ``video_fps``: a model that takes the rate as an input makes the
        clip at the video's own rate when it lies in ``rates``, so every clip frame is a video frame
        (nothing interpolated, and no frames made only to be blended away); otherwise at ``fps``,
        resampled by motion afterwards."""
        if self.rates is None or not self.rates[0] <= float(video_fps) <= self.rates[1]:
            return self
        return replace(self, fps=float(video_fps))

    def frames_for(self, seconds: float) -> int:
        """The fewest valid frame counts that cover ``seconds`` (at least ``frame_step + 1``; may
        exceed ``max_frames``, in which case the backend makes the clip in several calls)."""
        steps = max(1, math.ceil(max(seconds, 0.0) * self.fps / self.frame_step))
        return steps * self.frame_step + 1

    def size_for(self, width: int, height: int, pixels: int | None = None) -> tuple[int, int]:
        """A size with the aspect of ``width`` x ``height`` and about ``pixels`` pixels (default:
        the native count), both sides multiples of ``side_multiple`` (at least one multiple)."""
        pixels = pixels or self.native_pixels
        scale = math.sqrt(pixels / (width * height))
        step = self.side_multiple
        return (max(step, round(width * scale / step) * step), max(step, round(height * scale / step) * step))

    def fit_size(self, width: int, height: int) -> tuple[int, int]:
        """``width`` x ``height`` (a server's ``--clip-size``) rounded to the nearest allowed sides."""
        step = self.side_multiple
        return max(step, round(width / step) * step), max(step, round(height / step) * step)


@dataclass(frozen=True)
class ClipPictures:
    """A clip request's condition pictures, filled in by the stage just before the backend runs it.

    ``start``: the picture frame 0 must be (a scene's keyframe, or the outgoing scene's last
    frame for a transition); ``end``: the picture the last frame must be (a transition's
    incoming scene's first frame), or None. Both at the request's size.
    """

    start: Image.Image | None = None
    end: Image.Image | None = None


@dataclass(frozen=True)
class ClipRequest:
    """Everything that decides one clip. Plain data: it pickles (ZeroGPU) and keys the cache.

    ``id``: ``clip-3`` is scene 3's clip, ``bridge-2`` the generated transition from scene 2
    to scene 3 (see :func:`clip_id`, :func:`bridge_id`). ``kind``: ``clip`` or ``bridge``.
    ``start``/``end``: the plan ids whose pictures condition the first / last frame (also in
    ``depends_on``); "" for none. ``width`` x ``height`` and ``num_frames`` already follow the
    model's :class:`FrameRules`; ``fps`` is the rate the clip is made at (the model's, or the video's
    where the model takes it: :meth:`FrameRules.at_rate`).
    """

    scene_index: int
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance_scale: float
    width: int
    height: int
    num_frames: int
    fps: float
    id: str = ""
    kind: str = "clip"
    depends_on: tuple[str, ...] = ()
    start: str = ""
    end: str = ""
    pictures: ClipPictures | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class GeneratedClip:
    """One answer: ``frames`` frames were written to ``folder`` (a finished footage folder), or
    ``folder is None`` and a ``reason`` a user can read. ``notes``: what the model could not honour."""

    scene_index: int
    folder: Path | None
    reason: str = ""
    notes: tuple[str, ...] = ()
    frames: int = 0


# Called after every denoising step of a clip: (request, step, total steps, a preview frame or None).
ClipStepCallback = Callable[[ClipRequest, int, int, "Image.Image | None"], None]


class VideoModel(Protocol):
    """A video backend: what the clip stage needs from a model (see the module doc)."""

    model_id: str

    def load(self) -> bool:
        """Load the weights if needed; True when ready. Never raises (a failure is remembered)."""

    def info(self) -> ModelInfo:
        """Model id, device, dtype and whether it is loaded, for the UI and the report."""

    def frame_rules(self) -> FrameRules:
        """The model's frame rate, frame-count and size rules. Exact once loaded."""

    def generate_clip(self, request: ClipRequest, folder: Path, on_step: ClipStepCallback | None = None,
                      should_stop: Callable[[], bool] | None = None) -> GeneratedClip:
        """Make ``request``'s clip into the new footage folder ``folder``; never raises for a failed clip.

        Stops within one denoising step once ``should_stop()`` is true (answering ``stopped``).
        """


def clip_id(scene_index: int) -> str:
    """The plan id of scene ``scene_index``'s clip (0-based in, 1-based in the name)."""
    return f"clip-{scene_index + 1}"


def bridge_id(boundary: int) -> str:
    """The plan id of the generated transition from scene ``boundary`` (0-based) to the next."""
    return f"bridge-{boundary + 1}"
