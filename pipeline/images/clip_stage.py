"""The clip stage: a render's clips (animated scenes, generated transitions) from the cache or the video model.

It runs after the image stage has settled every keyframe (in the same thread), one clip at a
time in the order the video shows them, so the timeline can play scene 1 while scene 2's clip
is made. Each clip's condition pictures are resolved just before it runs (``ClipRequest.pictures``):
the keyframe, fitted to the clip's size; for a generated transition the outgoing scene's last
frame (its clip's last frame, or its keyframe seen through its camera move at its end: ``view``,
given by the renderer, which knows the camera) and the incoming scene's first frame. The
backend writes the frames into a footage folder in the render folder, which goes into the
clip's slot (``pipeline.images.slots``); a clip that cannot be made leaves None there, with
the reason in a ClipReady event: no video model, a failed load, a placeholder keyframe, out of
memory, a blank clip. Step previews and Progress counting clip steps go to ``emit`` as they
happen, and a cancel reaches the backend within one denoising step.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from ..contract.errors import RenderCancelled
from ..contract.events import ClipReady, Event, Preview, Progress
from ..contract.footage import Footage
from ..contract.storyboard import Storyboard
from ..event_stream import EventStream
from .clip_batches import plan_clip_batches
from .clip_cache import ClipCache
from .clip_generation import ClipPictures, ClipRequest, GeneratedClip, VideoModel, bridge_id, clip_id
from .clip_plan import DEFAULT_CLIP_GUIDANCE, DEFAULT_CLIP_STEPS, ClipPlan, ClipTiming, bridge_refused, plan_clips
from .generation import keyframe_id
from .look import fit_picture
from .slots import ImageSlots
from .zerogpu import estimate_clip_gpu_seconds, zerogpu_stream

log = logging.getLogger(__name__)

NO_VIDEO_MODEL_REASON = ("no video model on this server (none is loaded without a GPU unless --video-model "
                         "names one)")
BLANK_SPREAD = 1.0  # a clip whose frames vary less than this (grey levels) is blank

Emit = Callable[[Event], None]
View = Callable[[Image.Image, int, str], Image.Image]
"""``view(picture, scene, "first" | "last")``: what the video shows of a still scene at its first or last frame."""


@dataclass
class _Clips:
    """One render's state in the clip stage."""

    storyboard: Storyboard
    work_dir: Path
    slots: ImageSlots
    cancel: threading.Event
    emit: Emit
    plan: ClipPlan
    keyframes: dict[int, tuple[str, str]]  # scene -> (source, reason) from the image stage
    total_steps: int
    steps_done: int = 0
    made: dict[str, Footage] = field(default_factory=dict)
    uncached: set[str] = field(default_factory=set)


class ClipStage:
    """Makes the clips of a render plan, yielding ClipReady and Progress as each is settled."""

    def __init__(self, model: VideoModel | None, cache: ClipCache | None = None,
                 size: tuple[int, int] | None = None, unavailable: str = NO_VIDEO_MODEL_REASON) -> None:
        """``size``: the server's ``--clip-size`` (None: the model's native size); ``unavailable``: why
        there is no video model when ``model`` is None."""
        self.model, self.cache, self.size, self.unavailable = model, cache, size, unavailable
        # On a ZeroGPU Space each clip borrows the GPU for its estimated time (None elsewhere).
        self._on_zerogpu = zerogpu_stream(partial(stream_clip, model.generate_clip), self._gpu_seconds) \
            if model is not None else None

    def ids(self, storyboard: Storyboard, timing: ClipTiming) -> list[tuple[str, str, int]]:
        """(id, kind, index) of every clip ``storyboard`` asks for, whether or not a model can make it."""
        ids = []
        for index in range(len(storyboard.scenes)):
            if storyboard.animated(index):
                ids.append((clip_id(index), "clip", index))
            if index in timing.bridge_seconds:
                ids.append((bridge_id(index), "bridge", index))
        return ids

    def run(self, storyboard: Storyboard, work_dir: Path, slots: ImageSlots, cancel: threading.Event, emit: Emit,
            timing: ClipTiming, view: View, keyframes: dict[int, tuple[str, str]],
            image_keys: dict[str, str]) -> Iterator[Event]:
        """Yield a ClipReady for every clip of ``storyboard`` (all slots filled); RenderCancelled on a cancel."""
        wanted = self.ids(storyboard, timing)
        if not wanted:
            return
        if self.model is not None and storyboard.use_ai and not self.model.info().loaded:
            yield Progress("clips", 0.0, f"Loading the video model {self.model.model_id}…")
        reason = self._unavailable(storyboard)
        if reason:
            for request_id, kind, index in wanted:
                yield self._fallback(slots, request_id, kind, index, reason)
            return
        rules = self.model.frame_rules()
        steps = int(getattr(self.model, "default_steps", DEFAULT_CLIP_STEPS) or DEFAULT_CLIP_STEPS)
        guidance = float(getattr(self.model, "default_guidance", DEFAULT_CLIP_GUIDANCE))
        plan = plan_clips(storyboard, rules, timing, self.size, steps, guidance)
        planned = {request.id for request in plan.requests}
        for request_id, kind, index in wanted:  # next to a restyled shot, or a model that cannot end on a frame
            if request_id not in planned:
                reason = bridge_refused(storyboard, index) or rules.last_frame_reason or \
                    "the video model cannot end a clip on a given frame"
                yield self._fallback(slots, request_id, kind, index, reason)
        run = _Clips(storyboard, work_dir, slots, cancel, emit, plan, keyframes,
                     sum(request.steps for request in plan.requests))
        keys = plan.cache_keys(self.model.model_id, image_keys)
        # Fraction 0 once more, after the load: the clips' pace is measured from here.
        yield Progress("clips", 0.0, f"Making {len(plan.requests)} clip(s)")
        for batch in plan_clip_batches(plan.requests, rules, self._batch_size):
            _check(cancel)
            yield from self._batch(run, batch, keys, view)

    def _batch_size(self, request: ClipRequest) -> int:
        """Clips like ``request`` the model makes in one call (1 on ZeroGPU: one GPU lease a clip)."""
        size = getattr(self.model, "clip_batch_size", None)
        return 1 if size is None or self._on_zerogpu is not None else int(size(request))

    def _unavailable(self, storyboard: Storyboard) -> str:
        if not storyboard.use_ai:
            return "AI frames are switched off for this render (use_ai is false)"
        if self.model is None:
            return self.unavailable
        if not self.model.load():
            info = self.model.info()
            return f"the video model {self.model.model_id} could not be loaded: {info.reason or 'unknown error'}"
        return ""

    def _batch(self, run: _Clips, batch: list[ClipRequest], keys: dict[str, str], view: View) -> Iterator[Event]:
        """Settle every clip of ``batch``: from the cache or as a fallback where it can be, the rest made
        by one model call (:mod:`pipeline.images.clip_batches`), delivered in order."""
        todo = []
        for request in batch:
            missing = self._missing_keyframe(run, request)
            if missing:
                run.steps_done += request.steps
                yield self._fallback(run.slots, request.id, request.kind, request.scene_index, missing)
                continue
            cached = None
            if self.cache is not None and not self._uncached(run, request):
                cached = self.cache.get(keys[request.id], run.work_dir / request.id)
            if cached is not None:
                run.steps_done += request.steps
                yield from self._deliver(run, request, cached, "cache")
            else:
                todo.append(request)
        if not todo:
            return
        todo = [replace(request, pictures=self._pictures(run, request, view)) for request in todo]
        results = self._make(run, todo)
        _check(run.cancel)
        for request, result in zip(todo, results):
            run.steps_done += request.steps
            yield from self._settle(run, request, keys[request.id], result)

    def _make(self, run: _Clips, requests: list[ClipRequest]) -> list[GeneratedClip]:
        folders = [run.work_dir / request.id for request in requests]
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        if len(requests) == 1:
            return [self._generate(run, requests[0], folders[0])]
        under_way: dict[str, float] = {}

        def on_step(request: ClipRequest, step: int, total: int, image: Image.Image | None) -> None:
            under_way[request.id] = request.steps * step / max(total, 1)
            _stepped(run, request, step, total, image, sum(under_way.values()))

        return self.model.generate_clips(requests, folders, on_step, run.cancel.is_set)

    def _settle(self, run: _Clips, request: ClipRequest, key: str, result: GeneratedClip) -> Iterator[Event]:
        footage, reason = _checked(result)
        if footage is None:
            shutil.rmtree(run.work_dir / request.id, ignore_errors=True)
            log.info("%s: no clip (%s)", request.id, reason)
            yield self._fallback(run.slots, request.id, request.kind, request.scene_index, reason)
            return
        if self.cache is not None and not self._uncached(run, request):
            self.cache.put(key, footage)
        yield from self._deliver(run, request, footage, "ai")

    def _gpu_seconds(self, arg: tuple[ClipRequest, Path], *args, **kwargs) -> int:
        """ZeroGPU time to ask for one clip, from its frames, size and steps and the model's compression."""
        request, rules = arg[0], self.model.frame_rules()
        return estimate_clip_gpu_seconds(request.num_frames, request.width, request.height, request.steps,
                                         max_frames=rules.max_frames, frame_step=rules.frame_step,
                                         side=rules.side_multiple)

    def _generate(self, run: _Clips, request: ClipRequest, folder: Path) -> GeneratedClip:
        """One backend call, in this thread or (ZeroGPU) in the GPU worker, its previews streamed back."""
        def on_step(_request: ClipRequest, step: int, total: int, image: Image.Image | None) -> None:
            _stepped(run, request, step, total, image, request.steps * step / max(total, 1))

        if self._on_zerogpu is None:
            return self.model.generate_clip(request, folder, on_step, run.cancel.is_set)
        try:
            stream = self._on_zerogpu((request, folder), run.cancel)
            while True:
                step, total, image = next(stream)
                on_step(request, step, total, image)
        except StopIteration as end:
            return end.value or GeneratedClip(request.scene_index, None, "stopped")
        except Exception as exc:  # ZeroGPU's own errors: quota, time limit, a worker that died
            return GeneratedClip(request.scene_index, None, f"generation failed: {type(exc).__name__}: {exc}")

    @staticmethod
    def _missing_keyframe(run: _Clips, request: ClipRequest) -> str:
        scenes = (request.scene_index,) if request.kind == "clip" else (request.scene_index, request.scene_index + 1)
        for index in scenes:
            source, reason = run.keyframes.get(index, ("placeholder", "its keyframe was not made"))
            if source == "placeholder":
                return f"scene {index + 1}'s keyframe is a placeholder ({reason.rstrip('.')})"
        return ""

    @staticmethod
    def _uncached(run: _Clips, request: ClipRequest) -> bool:
        """A transition whose outgoing clip fell back is made from another picture than its key says."""
        if request.kind == "bridge" and request.start.startswith("clip-") and request.start not in run.made:
            run.uncached.add(request.id)
        return request.id in run.uncached

    def _pictures(self, run: _Clips, request: ClipRequest, view: View) -> ClipPictures:
        size = (request.width, request.height)
        if request.kind == "clip":
            return ClipPictures(start=self._keyframe(run, request.scene_index, size))
        k = request.scene_index
        if request.start in run.made:  # the outgoing scene's clip: its last frame
            footage = run.made[request.start]
            start = fit_picture(Image.fromarray(np.asarray(footage.frame(len(footage) - 1))), *size)
        else:
            start = view(self._keyframe(run, k, size), k, "last")
        end_scene = k + 1
        end = self._keyframe(run, end_scene, size)
        if not run.storyboard.animated(end_scene):
            end = view(end, end_scene, "first")
        return ClipPictures(start=start, end=end)

    @staticmethod
    def _keyframe(run: _Clips, index: int, size: tuple[int, int]) -> Image.Image:
        with Image.open(run.slots.wait(keyframe_id(index))) as image:
            return fit_picture(image, *size)

    def _deliver(self, run: _Clips, request: ClipRequest, footage: Footage, source: str) -> Iterator[Event]:
        run.made[request.id] = footage
        run.slots.put(request.id, footage.folder)
        yield ClipReady(request.id, request.kind, request.scene_index, source, len(footage), footage.info.fps,
                        self.model.model_id, path=footage.folder)
        yield Progress("clips", min(run.steps_done / max(run.total_steps, 1), 1.0), f"{_what(run, request)} ready")

    def _fallback(self, slots: ImageSlots, request_id: str, kind: str, index: int, reason: str) -> ClipReady:
        slots.put(request_id, None)
        model = self.model.model_id if self.model is not None else ""
        return ClipReady(request_id, kind, index, "fallback", model=model, reason=reason)



def _stepped(run: _Clips, request: ClipRequest, step: int, total: int, image: Image.Image | None,
             under_way: float) -> None:
    """A denoising step of ``request`` is done: its preview, and Progress counting every clip's steps
    (``under_way``: the steps done of the clips being made now)."""
    what = _what(run, request)
    if image is not None:
        run.emit(Preview(request.scene_index, step, total, image, what))
    fraction = (run.steps_done + under_way) / max(run.total_steps, 1)
    run.emit(Progress("clips", min(fraction, 1.0), f"{what} · step {step} of {total}"))


def stream_clip(generate_clip: Callable[..., GeneratedClip], arg: tuple[ClipRequest, Path], stop: threading.Event
                ) -> Iterator[tuple[int, int, Image.Image | None]]:
    """Run ``generate_clip`` in a thread, yielding (step, total, preview) per step; return its GeneratedClip.

    The GPU side of a ZeroGPU clip: only plain data crosses (the frames go to the footage folder on
    the shared disk). Closed early, it sets ``stop`` and waits for the backend's current step.
    """
    request, folder = arg
    previews = EventStream(stop)
    results: list[GeneratedClip] = []

    def work() -> Iterator[Event]:
        def on_step(_request: ClipRequest, step: int, total: int, image: Image.Image | None) -> None:
            previews.put(Preview(request.scene_index, step, total, image), droppable=True)

        results.append(generate_clip(request, folder, on_step, stop.is_set))
        yield from ()

    previews.run("generate-clip", work())
    try:
        for preview in previews.drain():
            yield preview.step, preview.total_steps, preview.image
    finally:
        previews.close()
    return results[0] if results else GeneratedClip(request.scene_index, None, "stopped")


def _what(run: _Clips, request: ClipRequest) -> str:
    k = request.scene_index
    if request.kind == "bridge":
        return f"transition {k + 1}→{k + 2}"
    return f"clip of scene {k + 1} of {len(run.storyboard.scenes)}"


def _checked(result: GeneratedClip) -> tuple[Footage | None, str]:
    """The clip's footage, or None and why (no frames, an unfinished folder, a blank clip)."""
    if result.folder is None:
        return None, result.reason or "the video model made no clip"
    if not Footage.is_footage(result.folder):
        return None, "the video model's clip was left unfinished"
    footage = Footage(result.folder)
    picks = sorted({0, len(footage) // 2, len(footage) - 1})
    if max(float(np.asarray(footage.frame(i), dtype=np.float32).std()) for i in picks) < BLANK_SPREAD:
        return None, "the clip came out blank (one flat colour)"
    return footage, ""


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise RenderCancelled()
