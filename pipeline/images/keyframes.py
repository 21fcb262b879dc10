"""The keyframe stage: one image per scene, from the cache, the model, or a placeholder.

Scenes already in the cache come first and at once. The rest go to the model in
batches; the model runs in a worker thread so that its step previews can be
yielded as events while it works, and so that a cancel reaches it within one
denoising step. On a ZeroGPU Space that thread runs in ZeroGPU's worker process
(see pipeline.images.zerogpu). A scene the model cannot draw gets a placeholder and the reason.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Generator, Iterator

from PIL import Image

from .batching import auto_group_size
from .cache import KeyframeCache, cache_key
from ..contract.errors import RenderCancelled
from ..contract.events import Event, KeyframeReady, Preview, Progress
from .generation import GeneratedImage, ImageModel, KeyframeRequest
from .placeholder import render_placeholder
from ..contract.storyboard import Storyboard
from .zerogpu import estimate_gpu_seconds, zerogpu_stream

log = logging.getLogger(__name__)

AI_OFF_REASON = "AI frames are switched off for this render (use_ai is false)."
NO_MODEL_REASON = "No image model is configured on this server."


@dataclass(frozen=True)
class GenerationPlan:
    """Steps, guidance and model-side size for a storyboard on a given model."""

    steps: int
    guidance_scale: float
    width: int
    height: int


def plan_generation(storyboard: Storyboard, model: ImageModel) -> GenerationPlan:
    """Preset defaults that suit the model (turbo: few steps, guidance 0), overridden by the storyboard."""
    preset = storyboard.preset
    distilled = model.is_distilled()
    steps = storyboard.steps or (preset.steps_distilled if distilled else preset.steps_full)
    if storyboard.guidance_scale is not None:
        guidance = storyboard.guidance_scale
    else:
        guidance = 0.0 if distilled else preset.guidance_full
    width, height = model.generation_size(preset.width, preset.height)
    return GenerationPlan(steps, guidance, width, height)


def build_requests(storyboard: Storyboard, plan: GenerationPlan) -> list[KeyframeRequest]:
    return [
        KeyframeRequest(
            scene_index=index, prompt=scene.prompt, negative_prompt=scene.negative_prompt,
            seed=scene.resolved_seed, steps=plan.steps, guidance_scale=plan.guidance_scale,
            width=plan.width, height=plan.height,
        )
        for index, scene in enumerate(storyboard.scenes)
    ]


class KeyframeStage:
    """Produces KeyframeReady (and Preview/Progress) events for every scene of a storyboard."""

    def __init__(self, model: ImageModel | None, cache: KeyframeCache | None = None, batch_size: int | None = None):
        """``batch_size``: scenes per model call after the first; None (or 0) is auto: groups of
        :func:`pipeline.images.batching.auto_group_size`, which the model splits by its free memory."""
        self.model = model
        self.cache = cache
        # A MultiDeviceModel lists its per-GPU managers; every GPU should get a full batch.
        devices = len(getattr(model, "managers", None) or ()) or 1
        self.batch_size = batch_size if batch_size and batch_size > 0 else auto_group_size(devices)
        # Wrapped once: on a ZeroGPU Space each batch then borrows a GPU for its estimated time.
        # None elsewhere: the model then runs in this process and polls ``cancel`` itself.
        # A remote backend (``remote = True``) needs no GPU: its batches run here.
        local = model is not None and not getattr(model, "remote", False)
        self._on_zerogpu = zerogpu_stream(partial(stream_batch, model.generate), _gpu_seconds) if local else None

    def run(self, storyboard: Storyboard, work_dir: Path, cancel: threading.Event) -> Iterator[Event]:
        """Yield events until every scene has a keyframe PNG in ``work_dir``.

        Raises RenderCancelled (after the model has stopped) when ``cancel`` is set.
        """
        total = len(storyboard.scenes)
        if not storyboard.use_ai or self.model is None:
            reason = AI_OFF_REASON if not storyboard.use_ai else NO_MODEL_REASON
            for index in range(total):
                _check(cancel)
                yield self._placeholder(storyboard, index, work_dir, reason)
                yield _progress(index + 1, total, index)
            return
        model = self.model
        if model.describe().get("state") != "loaded":
            yield Progress("loading", 0.0, f"Loading {model.model_id}…")
        # Loaded before planning: the generation size and steps come from the loaded model's own
        # config, so the first render of a process asks for (and caches) what every later one does.
        # A failed load is remembered; every scene then gets a placeholder with the reason.
        model.load()
        requests = build_requests(storyboard, plan_generation(storyboard, model))
        pending: list[KeyframeRequest] = []
        done = 0
        for request in requests:
            image = self.cache.get(cache_key(model.model_id, request)) if self.cache else None
            if image is None:
                pending.append(request)
                continue
            done += 1
            yield self._save(request.scene_index, image, work_dir, "cache", notes=_notes_for(model, request))
            yield _progress(done, total, request.scene_index)
        for batch in _batches(pending, self.batch_size):
            results = yield from self._with_step_progress(self._generate(batch, cancel), done, len(batch), total)
            # The step progress already counted the whole batch, so its scenes report the batch's end:
            # counting them one at a time here would move the bar backwards.
            done += len(batch)
            for request, result in zip(batch, results):
                yield self._finish_scene(storyboard, request, result, work_dir)
                yield _progress(done, total, request.scene_index)

    def _generate(self, batch: list[KeyframeRequest],
                  cancel: threading.Event) -> Generator[Event, None, list[GeneratedImage]]:
        """Yield one batch's step previews as they come; return its results (failures as reasons)."""
        if self._on_zerogpu is not None:
            stream = self._on_zerogpu(batch, cancel)
        else:
            stream = stream_batch(self.model.generate, batch, cancel)
        try:
            results = yield from stream
        except Exception as exc:  # ZeroGPU's own errors: quota, time limit, a worker that died
            results = _failed(batch, exc)
        _check(cancel)
        return results

    @staticmethod
    def _with_step_progress(events: Generator[Event, None, list[GeneratedImage]], done: int, batch: int,
                            total: int) -> Generator[Event, None, list[GeneratedImage]]:
        """Pass a batch's previews on, each followed by progress that counts its denoising steps."""
        # Closed explicitly, not left to garbage collection: a stopped render stops its batch now.
        with closing(events):
            while True:
                try:
                    event = next(events)
                except StopIteration as stop:
                    return stop.value
                yield event
                if isinstance(event, Preview):
                    fraction = (done + batch * event.step / max(event.total_steps, 1)) / total
                    message = f"scene {event.scene_index + 1} of {total} · step {event.step} of {event.total_steps}"
                    yield Progress("keyframes", min(fraction, 1.0), message)

    def _finish_scene(self, storyboard: Storyboard, request: KeyframeRequest, result: GeneratedImage,
                      work_dir: Path) -> KeyframeReady:
        if result.image is None:
            log.info("Scene %d: placeholder (%s)", request.scene_index + 1, result.reason)
            return self._placeholder(storyboard, request.scene_index, work_dir, result.reason, result.notes)
        if self.cache is not None:
            self.cache.put(cache_key(self.model.model_id, request), result.image)
        log.info("Scene %d: AI keyframe from %s", request.scene_index + 1, self.model.model_id)
        return self._save(request.scene_index, result.image, work_dir, "ai", notes=result.notes)

    def _placeholder(self, storyboard: Storyboard, index: int, work_dir: Path, reason: str,
                     notes: tuple[str, ...] = ()) -> KeyframeReady:
        preset = storyboard.preset
        image = render_placeholder(storyboard.scenes[index].prompt, index + 1, preset.width, preset.height)
        return self._save(index, image, work_dir, "placeholder", reason, notes)

    @staticmethod
    def _save(index: int, image: Image.Image, work_dir: Path, source: str, reason: str = "",
              notes: tuple[str, ...] = ()) -> KeyframeReady:
        path = work_dir / f"keyframe_{index + 1:03d}.png"
        # Fast PNG: these files live only as long as the render folder.
        image.convert("RGB").save(path, format="PNG", compress_level=1)
        return KeyframeReady(index, path, source, reason, notes)


def stream_batch(
    generate: Callable[..., list[GeneratedImage]], batch: list[KeyframeRequest], stop: threading.Event
) -> Generator[Preview, None, list[GeneratedImage]]:
    """Run ``generate(batch)`` in a worker thread, yielding its step previews; return its results.

    The model polls ``stop`` at every denoising step. Closed early, this sets ``stop``
    and waits for the model to finish its current step, so no GPU work outlives the caller.
    Everything yielded and returned pickles (ZeroGPU sends it between processes).
    """
    previews: queue.Queue = queue.Queue()
    outcome: dict[str, object] = {}

    def on_step(indices: list[int], step: int, total: int, images: list[Image.Image]) -> None:
        previews.put(Preview(indices[0], step, total, images[0]))

    def work() -> None:
        try:
            outcome["results"] = generate(batch, on_step=on_step, should_stop=stop.is_set)
        except BaseException as exc:  # the model promises not to raise; be safe anyway
            outcome["error"] = exc

    # Run in a copy of this thread's context, so Gradio's request and progress stay visible.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,),
                              name="scene2video-generate", daemon=True)
    worker.start()
    try:
        while worker.is_alive() or not previews.empty():
            try:
                yield previews.get(timeout=0.05)
            except queue.Empty:
                pass
    finally:
        if worker.is_alive():  # closed early (the render was stopped)
            stop.set()
        worker.join()
    if "error" in outcome:
        return _failed(batch, outcome["error"])
    return outcome["results"]


def _notes_for(model: ImageModel, request: KeyframeRequest) -> tuple[str, ...]:
    """What ``model`` ignores of ``request`` (remote services), also for a scene that came from the cache."""
    notes_for = getattr(model, "notes_for", None)
    return tuple(notes_for(request)) if notes_for is not None else ()


def _failed(batch: list[KeyframeRequest], exc: BaseException) -> list[GeneratedImage]:
    reason = f"generation failed: {type(exc).__name__}: {exc}"
    return [GeneratedImage(r.scene_index, None, reason) for r in batch]


def _batches(requests: list[KeyframeRequest], size: int) -> Iterator[list[KeyframeRequest]]:
    """The first scene alone, so the first image shows up fast; then groups of ``size`` (at least 1).

    A batch gives the same images as one-by-one generation (each image has its own seeded
    generator), so this changes when images appear, not what they are.
    """
    if requests:
        yield requests[:1]
    size = max(1, size)
    for start in range(1, len(requests), size):
        yield requests[start:start + size]


def _gpu_seconds(batch: list[KeyframeRequest], *args, **kwargs) -> int:
    """ZeroGPU time to ask for one batch (scenes x steps x size), capped."""
    first = batch[0]
    return estimate_gpu_seconds(len(batch), first.steps, first.width, first.height)


def _progress(done: int, total: int, scene_index: int) -> Progress:
    """``done`` of ``total`` keyframes exist, the last one for scene ``scene_index``."""
    return Progress("keyframes", done / total, f"scene {scene_index + 1} of {total} ready")


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise RenderCancelled()
