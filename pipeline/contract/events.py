"""What a render tells its caller, as it happens. Plain dataclasses; the UI and the CLI map them.

A render yields, in order: KeyframeReady (and Preview while a scene is being
denoised) for every scene, MorphReady for every morph transition, ClipReady for every
animated scene and generated transition (Previews while a clip is denoised), Segment for each ~2 s of encoded video, Progress
throughout, and finally exactly one of Done or Failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

Source = Literal["placeholder", "ai", "cache"]
MorphSource = Literal["ai", "cache", "crossfade"]
Made = Literal["cut", "blend", "generated", "crossfade", "clip"]
Stage = Literal["loading", "keyframes", "clips", "composing", "encoding", "finishing"]
FramesFrom = Literal["clip", "still", "placeholder"]
ClipSource = Literal["ai", "cache", "fallback"]


@dataclass(frozen=True)
class SceneReport:
    """Where one scene's keyframe came from. ``reason`` says why a placeholder was used;
    ``notes`` what the image model ignored (e.g. a seed or negative prompt a remote service does not take);
    ``start`` and ``length`` where the scene is in the video, in seconds, after any fitting to the audio;
    ``decoder`` which decoder made an AI (or cached AI) keyframe: "full" or "tiny".

    ``made_from`` lists what the picture was made from: "text", "previous scene" (a chained
    look), "reference image", "control image" (ControlNet edges); empty for a placeholder.
    """

    index: int
    source: Source
    reason: str = ""
    notes: tuple[str, ...] = ()
    start: float = 0.0
    length: float = 0.0
    decoder: str = ""
    made_from: tuple[str, ...] = ()
    frames: FramesFrom = "still"
    video_model: str = ""
    clip_reason: str = ""


@dataclass(frozen=True)
class TransitionReport:
    """How the frames of the transition from scene ``index`` to ``index + 1`` were made.

    ``made``: ``cut`` (no transition frames), ``blend`` (a pixel transition of the two
    keyframes), ``generated`` (a morph: ``generated`` in-between images from the model,
    ``cached`` of them from the cache, blended to the frame rate), ``clip`` (a generated
    transition: the video model ``model`` made it; ``cached`` 1 when it came from the cache) or
    ``crossfade`` (a morph or generated transition that fell back; ``reason`` says why).
    """

    index: int
    kind: str
    frames: int
    made: Made
    generated: int = 0
    cached: int = 0
    reason: str = ""
    model: str = ""


@dataclass(frozen=True)
class RenderReport:
    """The facts of a finished video, returned beside the MP4 by the UI, the API and the CLI."""

    width: int
    height: int
    fps: int
    frames: int
    duration: float
    scenes: tuple[SceneReport, ...]
    model: str = ""
    device: str = ""
    seconds_taken: float = 0.0
    transitions: tuple[TransitionReport, ...] = ()
    audio: bool = False  # the video has a soundtrack
    beats: tuple[float, ...] = ()  # beat times (s) the cuts were moved onto, with cut_on_beats

    def to_dict(self) -> dict:
        data = asdict(self)
        data["scenes"] = [_scene_dict(scene) for scene in self.scenes]
        data["transitions"] = [asdict(transition) for transition in self.transitions]
        data["beats"] = list(self.beats)
        return data

    @property
    def fallbacks(self) -> list[SceneReport]:
        """Scenes that got a placeholder, for notices."""
        return [scene for scene in self.scenes if scene.source == "placeholder"]


def _scene_dict(scene: SceneReport) -> dict:
    """A scene's report entry; ``notes`` only when there are some (reports stay as they were otherwise)."""
    data = asdict(scene)
    data["made_from"] = list(scene.made_from)
    if scene.notes:
        data["notes"] = list(scene.notes)
    else:
        del data["notes"]
    return data


@dataclass(frozen=True)
class Preview:
    """A cheap look at a scene while it is being denoised (one per step).

    ``what`` names the image when it is not scene ``scene_index``'s keyframe (``morph 1→2``
    for an in-between image of the morph from scene 1 to scene 2).
    """

    scene_index: int
    step: int
    total_steps: int
    image: Image.Image
    what: str = ""


@dataclass(frozen=True)
class KeyframeReady:
    """A scene's keyframe exists. ``path`` is a PNG at the model's size, kept for the render's life.
    ``decoder``: "full" or "tiny" for an AI keyframe, "" for a placeholder."""

    scene_index: int
    path: Path
    source: Source
    reason: str = ""
    notes: tuple[str, ...] = ()
    decoder: str = ""
    made_from: tuple[str, ...] = ()  # see SceneReport.made_from


@dataclass(frozen=True)
class MorphReady:
    """The in-between images of the morph from scene ``boundary`` to ``boundary + 1`` are settled.

    ``source`` is ``ai`` or ``cache`` (all ``frames`` images exist; ``cached`` came from the
    cache), or ``crossfade``: the morph falls back to a crossfade and ``reason`` says why.
    """

    boundary: int
    source: MorphSource
    frames: int
    cached: int = 0
    reason: str = ""


@dataclass(frozen=True)
class ClipReady:
    """A clip of the render is settled: scene ``index``'s clip (``kind`` ``clip``) or the generated
    transition from scene ``index`` to the next (``bridge``).

    ``source``: ``ai`` or ``cache`` (``frames`` frames at the model's ``fps`` in the footage folder
    ``path``), or ``fallback``: no clip, ``reason`` says why (the scene is then a still with its
    camera motion, the transition a crossfade). ``model``: the video model's id.
    """

    id: str
    kind: str
    index: int
    source: ClipSource
    frames: int = 0
    fps: float = 0.0
    model: str = ""
    reason: str = ""
    path: Path | None = None


@dataclass(frozen=True)
class Progress:
    """How far the render is: ``fraction`` of all work in 0..1 and a time-left estimate."""

    stage: Stage
    fraction: float
    message: str
    eta_seconds: float | None = None


@dataclass(frozen=True)
class Segment:
    """About two seconds of finished H.264 video (an MPEG-TS file), ready to stream."""

    index: int
    path: Path
    first_frame: int
    frames: int


@dataclass(frozen=True)
class Done:
    video_path: Path
    report: RenderReport
    report_path: Path | None = None


@dataclass(frozen=True)
class Failed:
    """The render ended without a video. ``cancelled`` is true when the user stopped it."""

    message: str
    cancelled: bool = False


Event = Preview | KeyframeReady | MorphReady | ClipReady | Progress | Segment | Done | Failed
