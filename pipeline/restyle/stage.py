"""The restyle stage of a render: each scene with a source span becomes a footage folder of redrawn frames.

For a restyled scene the stage decodes its span of the source video (``source.decode_frames``: at
the storyboard's rate and frame size, exactly as many frames as the timeline gives the scene),
redraws it (``coherence.restyle_shot``) with the image model's image-to-image at the board's
``look_strength``, every keyframe guided by its source frame's Canny edges when the server has a
ControlNet, and writes the frames as they come into ``restyle-N/`` in the render folder
(``pipeline.contract.footage``). The folder goes into the scene's slot (:func:`footage_id`) once it
is finished, and the timeline shows it (``pipeline.renderer.image_loaders``), so the video streams
shot by shot and memory stays flat with the video's length.

Events: a KeyframeReady per scene (its first redrawn keyframe, for the report and the page), a
Preview per redrawn keyframe (the source frame beside the redrawn one), and Progress counting
redrawn keyframes and propagated frames. With a footage cache, a shot the model drew to the end is
kept (``shot_cache``) and the next render with the same inputs takes it from there (its
KeyframeReady says ``cache``). Stop is seen within one denoising step or one frame.
Without a model (or with ``use_ai`` off, or when the model fails) the scene shows its source frames,
and the report says so (a placeholder, with the reason): a fallback is never passed off as AI.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from ..contract.errors import RenderCancelled
from ..contract.events import Event, KeyframeReady, Preview, Progress
from ..contract.footage import Footage, FootageWriter
from ..contract.storyboard import Storyboard, scene_frame_bounds
from ..images.clip_cache import ClipCache
from ..images.clip_plan import restyled_id as footage_id
from ..images.generation import ControlImage, GeneratedImage, ImageModel, ImageRequest, InitImage, Pictures
from ..images.look import canny_edges, fit_picture
from ..images.plan import generation_settings, joined_prompt
from ..images.slots import ImageSlots
from ..images.stage import AI_OFF_REASON, NO_MODEL_REASON
from .coherence import Redraw, ShotPlan, restyle_shot
from .shot_cache import shot_cache_key, source_digest
from .source import decode_frames

log = logging.getLogger(__name__)

MADE_FROM = ("text", "source video")
NO_AI_REASON = "the source frames are shown as they are"

Emit = Callable[[Event], None]


@dataclass
class ShotState:
    """What the stage knows of one scene while it redraws it (``reason``: why the model is not used)."""

    index: int
    count: int
    request: ImageRequest | None  # the model's request for this scene (None: no model)
    reason: str = ""  # why the model is not used, or why it failed
    keyframes: int = 0
    first: Path | None = None
    cache_key: str = ""  # the shot's key in the footage cache ("": not cached)


Generate = Callable[[list[ImageRequest], threading.Event], list[GeneratedImage]]


class RestyleStage:
    """Redraws the restyled scenes of a storyboard, one shot after another."""

    def __init__(self, model: ImageModel | None, controlnet: str = "", generate: Generate | None = None,
                 cache: ClipCache | None = None) -> None:
        """``generate(batch, cancel)``: how a picture is drawn (the image stage's ``generate``, which borrows
        the GPU on a ZeroGPU Space); default: the model's own ``generate`` in this thread. ``cache``: where
        finished shots are kept (None: every render redraws them)."""
        self.model = model
        self.controlnet = controlnet
        self.cache = cache
        self._generate = generate or (lambda batch, cancel: model.generate(batch, should_stop=cancel.is_set))

    def run(self, storyboard: Storyboard, work_dir: Path, slots: ImageSlots, cancel: threading.Event, emit: Emit,
            no_ai_reason: str = "") -> Iterator[Event]:
        """Yield events until every restyled scene's footage is in ``slots`` (RenderCancelled on Stop)."""
        restyled = [i for i, scene in enumerate(storyboard.scenes) if scene.restyled]
        if not restyled:
            return
        fps = storyboard.output_fps
        bounds = scene_frame_bounds([scene.duration for scene in storyboard.scenes], fps)
        if not storyboard.use_ai or self.model is None:
            no_ai_reason = no_ai_reason or (AI_OFF_REASON if not storyboard.use_ai else NO_MODEL_REASON)
        use_model = not no_ai_reason
        if use_model:
            self.model.load()
        base = self._base_request(storyboard) if use_model else None
        source = source_digest(storyboard.source_video) if use_model and self.cache is not None else ""
        total = sum(bounds[i + 1] - bounds[i] for i in restyled)
        done = 0
        for index in restyled:
            count = bounds[index + 1] - bounds[index]
            request = _for_scene(base, storyboard, index) if base is not None else None
            shot = ShotState(index, count, request, "" if use_model else f"{no_ai_reason.rstrip('.')}; {NO_AI_REASON}")
            if request is not None and source:
                shot.cache_key = shot_cache_key(self.model.model_id, request, storyboard, index, count, source)
            yield from self._shot(storyboard, work_dir, slots, cancel, emit, shot, done, total)
            done += count

    def _base_request(self, storyboard: Storyboard) -> ImageRequest:
        settings = generation_settings(storyboard, self.model)
        return ImageRequest(scene_index=0, prompt="", negative_prompt="", seed=0, steps=settings.steps,
                            guidance_scale=settings.guidance_scale, width=settings.width, height=settings.height,
                            kind="restyle", decoder=settings.decoder,
                            init=InitImage(storyboard.look_strength, path="source video"),
                            control=ControlImage(self.controlnet, "source video", "") if self.controlnet else None)

    def redrawer(self, storyboard: Storyboard, index: int, cancel: threading.Event | None = None
                 ) -> tuple[Redraw, ShotState]:
        """The model's ``redraw`` for restyled scene ``index`` (load the model first), and its state.

        For measuring and testing the coherence on its own (bench/restyle.py); a render uses :meth:`run`.
        """
        bounds = scene_frame_bounds([scene.duration for scene in storyboard.scenes], storyboard.output_fps)
        shot = ShotState(index, bounds[index + 1] - bounds[index],
                         _for_scene(self._base_request(storyboard), storyboard, index))
        return partial_redraw(self, shot, cancel or threading.Event()), shot

    def _shot(self, storyboard: Storyboard, work_dir: Path, slots: ImageSlots, cancel: threading.Event, emit: Emit,
              shot: ShotState, done: int, total: int) -> Iterator[Event]:
        if shot.cache_key and (yield from self._cached(work_dir, slots, emit, shot, done, total)):
            return
        preset, scene = storyboard.preset, storyboard.scenes[shot.index]
        frames = decode_frames(storyboard.source_video, storyboard.output_fps, preset.width, preset.height,
                               scene.source_start, shot.count, cancel)
        folder = work_dir / footage_id(shot.index)
        model_id = self.model.model_id if self.model is not None else ""
        writer = FootageWriter(folder, storyboard.output_fps, made_by="restyle", model=model_id)
        plan = ShotPlan(shot.count, storyboard.coherence, storyboard.keyframe_interval)
        redraw = partial_redraw(self, shot, cancel)
        keyframes = len(plan.keyframes)

        def on_keyframe(frame: int, source: np.ndarray, redrawn: np.ndarray) -> None:
            shot.keyframes += 1
            if shot.first is None:
                shot.first = work_dir / f"{footage_id(shot.index)}.png"
                Image.fromarray(redrawn).save(shot.first, format="PNG", compress_level=1)
            emit(Preview(shot.index, shot.keyframes, keyframes, side_by_side(source, redrawn),
                         f"scene {shot.index + 1} · keyframe {shot.keyframes} of {keyframes} (source | redrawn)"))

        try:
            if shot.request is None:  # no model: the source frames themselves
                output: Iterator[np.ndarray] = frames
            else:
                output = restyle_shot(frames, plan, redraw, on_keyframe)
            for number, frame in enumerate(output, start=1):
                if cancel.is_set():
                    raise RenderCancelled()
                writer.write(frame)
                made = f"{shot.keyframes} of {keyframes} keyframes redrawn · " if shot.request is not None else ""
                emit(Progress("restyling", (done + number) / total,
                              f"scene {shot.index + 1}: {made}frame {number} of {shot.count}"))
            footage = writer.finish()
        except BaseException:
            writer.abort()
            frames.close()
            raise
        if shot.first is None:  # no keyframe was redrawn: the first source frame stands for the scene
            _first_frame_stands_for_it(shot, work_dir, footage)
        if shot.cache_key and not shot.reason:  # drawn by the model to the end
            self.cache.put(shot.cache_key, footage)
        slots.put(footage_id(shot.index), folder)
        source = "ai" if shot.request is not None and not shot.reason else "placeholder"
        yield KeyframeReady(shot.index, shot.first, source, shot.reason,
                            made_from=_made_from(shot) if source == "ai" else (),
                            decoder=shot.request.decoder if source == "ai" else "")

    def _cached(self, work_dir: Path, slots: ImageSlots, emit: Emit, shot: ShotState, done: int,
                total: int) -> Iterator[Event]:
        """The shot from the cache into its slot, with its events; returns whether it was there."""
        folder = work_dir / footage_id(shot.index)
        footage = self.cache.get(shot.cache_key, folder)
        if footage is None:
            return False
        _first_frame_stands_for_it(shot, work_dir, footage)
        emit(Progress("restyling", (done + shot.count) / total,
                      f"scene {shot.index + 1}: {shot.count} frames from the cache"))
        slots.put(footage_id(shot.index), folder)
        yield KeyframeReady(shot.index, shot.first, "cache", "", made_from=_made_from(shot),
                            decoder=shot.request.decoder)
        return True

    def redraw_frame(self, shot: ShotState, start: np.ndarray, source: np.ndarray, frame: int,
                     cancel: threading.Event) -> np.ndarray | None:
        """One picture from the model: image-to-image from ``start``, guided by ``source``'s edges if configured.

        None when the model cannot draw it: the rest of the shot then shows its source frames (the reason
        is kept for the report, which calls the scene a placeholder).
        """
        request = shot.request
        if request is None or shot.reason:
            return None
        size = (request.width, request.height)
        height, width = source.shape[:2]
        init = fit_picture(Image.fromarray(start), *size)
        control = canny_edges(Image.fromarray(source), *size) if request.control is not None else None
        result = self._generate([replace(request, pictures=Pictures(init, control))], cancel)[0]
        if cancel.is_set():
            raise RenderCancelled()
        if result.image is None:
            shot.reason = (f"frame {frame + 1} could not be redrawn: {result.reason}; from there on the source "
                           "frames are shown")
            log.info("Scene %d: %s", shot.index + 1, shot.reason)
            return None
        return np.asarray(result.image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS))


def _made_from(shot: ShotState) -> tuple[str, ...]:
    """What the model drew the shot from (for the report)."""
    return MADE_FROM + (("control image",) if shot.request and shot.request.control else ())


def _first_frame_stands_for_it(shot: ShotState, work_dir: Path, footage: Footage) -> None:
    """The footage's first frame as the scene's picture (the page's and the report's), for a shot whose first
    redrawn keyframe was not kept (none was redrawn, or the shot came from the cache)."""
    shot.first = work_dir / f"{footage_id(shot.index)}.png"
    Image.fromarray(np.asarray(footage.frame(0))).save(shot.first, format="PNG", compress_level=1)


def partial_redraw(stage: RestyleStage, shot: ShotState, cancel: threading.Event) -> Redraw:
    """The ``redraw`` callable of :func:`~pipeline.restyle.coherence.restyle_shot` for one shot."""
    def redraw(start: np.ndarray, source: np.ndarray, frame: int) -> np.ndarray:
        return stage.redraw_frame(shot, start, source, frame, cancel)

    return redraw


def _for_scene(base: ImageRequest, storyboard: Storyboard, index: int) -> ImageRequest:
    scene = storyboard.scenes[index]
    return replace(base, scene_index=index, id=footage_id(index), seed=scene.resolved_seed,
                   prompt=joined_prompt(scene.prompt, storyboard.style),
                   negative_prompt=joined_prompt(scene.negative_prompt, storyboard.style_negative))


def side_by_side(source: np.ndarray, redrawn: np.ndarray, height: int = 180) -> Image.Image:
    """A preview: the source frame on the left, the redrawn one on the right, ``height`` pixels tall."""
    width = max(1, round(source.shape[1] * height / source.shape[0]))
    left = Image.fromarray(source).resize((width, height), Image.Resampling.BILINEAR)
    right = Image.fromarray(redrawn).resize((width, height), Image.Resampling.BILINEAR)
    both = Image.new("RGB", (2 * width, height))
    both.paste(left, (0, 0))
    both.paste(right, (width, 0))
    return both
