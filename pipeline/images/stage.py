"""The image stage: every request of a render plan, from the cache, the backend, or a placeholder.

Requests already in the cache come first and at once. The rest go to the backend in
batches of requests whose dependencies exist, the first request alone so that the
first image shows up fast. Step previews go straight onto the render's event stream
(``emit``) from the backend's callback, and a cancel reaches the backend within one
denoising step. On a ZeroGPU Space each batch runs in ZeroGPU's worker process (see
``pipeline.images.zerogpu``). A scene the backend cannot draw gets a placeholder and
the reason. Each finished image is saved in the render folder and left in its slot,
where the timeline picks it up; a morph's in-between images go into their slots together,
once the morph is settled (``pipeline.images.morphs``), and are made only while both of
its keyframes are the model's.

Requests that start from a picture (a chained scene: the previous scene's image; or the
reference image) or are guided by a control image get those pictures here, just before
the backend runs them (``ImageRequest.pictures``). A chained scene's image is colour-matched
to the first scene's, so a long chain keeps its colours. A chained scene whose previous
scene fell back to a placeholder is made from its text alone and not cached.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable, Generator, Iterator

from PIL import Image

from ..contract.errors import RenderCancelled
from ..contract.events import Event, KeyframeReady, Preview, Progress
from ..contract.fields import FIELDS_BY_NAME
from ..contract.reference import checked_reference
from ..contract.storyboard import Storyboard
from ..event_stream import EventStream
from .batching import auto_group_size
from .cache import KeyframeCache
from .generation import GeneratedImage, ImageModel, ImageRequest, Pictures, StepCallback, keyframe_id
from .look import canny_edges, fit_picture, match_colors
from .morphs import MorphBook
from .placeholder import render_placeholder
from .plan import RenderPlan, plan_images
from .slots import ImageSlots
from .zerogpu import estimate_gpu_seconds, zerogpu_stream

log = logging.getLogger(__name__)

# Said in the page's words (the field's label), not by the field's internal name.
AI_OFF_REASON = f"AI frames are switched off for this render (\"{FIELDS_BY_NAME['use_ai'].label}\" is off)."
NO_MODEL_REASON = "No image model is configured on this server."

Emit = Callable[[Event], None]


@dataclass
class _Run:
    """One render's state in the stage."""

    storyboard: Storyboard
    work_dir: Path
    slots: ImageSlots
    cancel: threading.Event
    emit: Emit
    total: int
    morphs: MorphBook
    done: int = 0
    plan: RenderPlan | None = None
    ai_images: dict[str, Path] = field(default_factory=dict)  # keyframe id -> saved AI (or cached) image
    uncached: set[str] = field(default_factory=set)  # made from other inputs than their cache key says
    reference: Image.Image | None = None


class ImageStage:
    """Produces the images of a render plan, yielding KeyframeReady, MorphReady and Progress as they exist."""

    def __init__(self, model: ImageModel | None, cache: KeyframeCache | None = None, batch_size: int | None = None,
                 controlnet: str = "", color_match: bool = True):
        """``batch_size``: requests per backend call after the first; None (or 0) is auto: groups of
        :func:`pipeline.images.batching.auto_group_size`, which the backend splits by its free memory.
        ``controlnet``: the server's ControlNet model id ("" for none). ``color_match``: match chained
        scenes' colours to the first scene's (off only to measure what it does)."""
        self.model = model
        self.cache = cache
        self.controlnet = controlnet
        self.color_match = color_match
        # A MultiDeviceModel lists its per-GPU managers; every GPU should get a full batch.
        devices = len(getattr(model, "managers", None) or ()) or 1
        self.batch_size = batch_size if batch_size and batch_size > 0 else auto_group_size(devices)
        # The first batch is one request, so the first image shows up fast; a remote backend answers
        # ``max_in_flight`` requests in the time of one, so its first batch is that many.
        self.first_batch = max(1, int(getattr(model, "max_in_flight", 1) or 1))
        # Wrapped once: on a ZeroGPU Space each batch then borrows a GPU for its estimated time.
        # None elsewhere: the backend then runs in the stage's thread and polls ``cancel`` itself.
        # A remote backend (``remote = True``) needs no GPU: its batches run here.
        local = model is not None and not getattr(model, "remote", False)
        self._on_zerogpu = zerogpu_stream(partial(stream_batch, model.generate), _gpu_seconds) if local else None

    def run(self, storyboard: Storyboard, work_dir: Path, slots: ImageSlots, cancel: threading.Event,
            emit: Emit) -> Iterator[Event]:
        """Yield events until every image of the storyboard's plan is in ``slots``.

        ``emit`` takes events that may be dropped under load (step previews and their
        progress). Raises RenderCancelled (after the backend has stopped) when ``cancel`` is set.
        """
        run = _Run(storyboard, work_dir, slots, cancel, emit, len(storyboard.scenes), MorphBook(storyboard, slots))
        if not storyboard.use_ai or self.model is None:
            reason = AI_OFF_REASON if not storyboard.use_ai else NO_MODEL_REASON
            yield from run.morphs.fall_back_all(reason)
            for index in range(run.total):
                _check(cancel)
                if storyboard.scenes[index].restyled:  # the restyle stage shows its source frames
                    continue
                yield from self._placeholder(run, index, reason)
                yield _progress(run, index + 1, "keyframe", index)
            return
        if not self.model.info().loaded:
            yield Progress("loading", 0.0, f"Loading {self.model.model_id}…")
        # Loaded before planning: the generation size and steps come from the loaded model's own
        # config, so the first render of a process asks for (and caches) what every later one does.
        # A failed load is remembered; every scene then gets a placeholder with the reason.
        self.model.load()
        plan = plan_images(storyboard, self.model, self.controlnet)
        run.plan = plan
        run.total = len(plan.requests)
        keys = plan.cache_keys(self.model.model_id)
        pending = yield from self._from_cache(run, plan, keys)
        yield from self._generate_all(run, pending, keys)

    def cache_keys(self, storyboard: Storyboard) -> dict[str, str]:
        """The image plan's cache keys by request id (what clips depend on); empty without a loaded model."""
        if not storyboard.use_ai or self.model is None or not self.model.info().loaded:
            return {}
        return plan_images(storyboard, self.model, self.controlnet).cache_keys(self.model.model_id)

    def _from_cache(self, run: _Run, plan: RenderPlan, keys: dict[str, str]) -> Generator[Event, None, list]:
        """Deliver every cached image now; return the requests still to make, in plan order."""
        pending: list[ImageRequest] = []
        for request in plan.requests:
            image = self.cache.get(keys[request.id]) if self.cache else None
            if image is None:
                pending.append(request)
                continue
            run.done += 1
            yield from self._deliver(run, request, image, "cache", decoder=request.decoder)
            yield _progress(run, run.done, request.kind, request.scene_index)
        return pending

    def _generate_all(self, run: _Run, pending: list[ImageRequest], keys: dict[str, str]) -> Iterator[Event]:
        """Batches of requests whose dependencies exist (the first request alone), until none is left."""
        made = {request.id for request in pending}
        first = True
        while pending:
            yield from self._drop_unneeded(run, pending, made)
            pending = [r for r in pending if r.id in made]
            if not pending:
                break
            ready = [r for r in pending if not made.intersection(r.depends_on)]
            if not ready:
                raise RuntimeError("the render plan has a dependency cycle")
            # One kind per batch: step previews and progress then say what is being made.
            ready = [r for r in ready if r.kind == ready[0].kind]
            batch = ready[:self.first_batch] if first else ready[:self.batch_size]
            first = False
            batch = [self._with_pictures(run, request) for request in batch]
            results = self._generate(run, batch)
            # The step progress already counted the whole batch, so its scenes report the batch's end:
            # counting them one at a time here would move the bar backwards.
            run.done += len(batch)
            for request, result in zip(batch, results):
                made.discard(request.id)
                result = self._matched(run, request, result)
                yield from self._finish(run, request, result, keys[request.id])
                yield _progress(run, run.done, request.kind, request.scene_index)
            pending = [r for r in pending if r.id in made]

    def _with_pictures(self, run: _Run, request: ImageRequest) -> ImageRequest:
        """``request`` with its input pictures (start image, control image) filled in."""
        if any(d in run.uncached for d in request.depends_on):
            run.uncached.add(request.id)
        if not request.guided:
            return request
        size = (request.width, request.height)
        init = control = None
        if request.init is not None and request.init.request_id:
            previous = run.ai_images.get(request.init.request_id)
            if previous is None:  # it fell back to a placeholder: start from noise, do not cache
                run.uncached.add(request.id)
                request = replace(request, init=None)
            else:
                with Image.open(previous) as image:
                    init = fit_picture(image, *size)
        elif request.init is not None:
            init = fit_picture(self._reference(run, request.init.path), *size)
        if request.control is not None:
            control = canny_edges(self._reference(run, request.control.path), *size)
        return replace(request, pictures=Pictures(init, control))

    @staticmethod
    def _reference(run: _Run, path: str) -> Image.Image:
        if run.reference is None:
            run.reference = checked_reference(path)[0]
        return run.reference

    def _matched(self, run: _Run, request: ImageRequest, result: GeneratedImage) -> GeneratedImage:
        """A chained scene's image with its colours matched to the first scene's image of the chain."""
        if result.image is None or not self.color_match or request.init is None or not request.init.request_id:
            return result
        first = _chain_start(run.plan, request)
        if first.id not in run.ai_images:
            return result
        with Image.open(run.ai_images[first.id]) as target:
            return replace(result, image=match_colors(result.image, target))

    @staticmethod
    def _drop_unneeded(run: _Run, pending: list[ImageRequest], made: set[str]) -> Iterator[Event]:
        """In-between images of a morph that already fell back are not made; they count as done."""
        for request in pending:
            if run.morphs.settled(request):
                made.discard(request.id)
                run.done += 1
                yield _progress(run, run.done, request.kind, request.scene_index)

    def _generate(self, run: _Run, batch: list[ImageRequest]) -> list[GeneratedImage]:
        """One backend call; its step previews (and progress counting them) go to ``run.emit``."""
        results = self.generate(batch, run.cancel, partial(self._on_step, run, len(batch), batch[0]))
        _check(run.cancel)
        return results

    def generate(self, batch: list[ImageRequest], cancel: threading.Event,
                 on_step: StepCallback | None = None) -> list[GeneratedImage]:
        """One backend call for ``batch``: here, or on a ZeroGPU Space in its GPU worker for its estimated
        time (step previews still reach ``on_step``). Never raises for a failed request: it answers with a
        reason. Other stages that draw with this model (restyling) call it too, so they borrow the GPU alike."""
        if self._on_zerogpu is None:
            return self.model.generate(batch, on_step=on_step, should_stop=cancel.is_set)
        try:
            stream = self._on_zerogpu(batch, cancel)
            while True:
                preview = next(stream)
                if on_step is not None:
                    on_step([preview.scene_index], preview.step, preview.total_steps, [preview.image])
        except StopIteration as end:  # None: cancelled before the GPU task finished
            return end.value if end.value is not None else _failed(batch, RenderCancelled("stopped"))
        except Exception as exc:  # ZeroGPU's own errors: quota, time limit, a worker that died
            return _failed(batch, exc)

    @staticmethod
    def _on_step(run: _Run, batch: int, first: ImageRequest, indices: list[int], step: int, total_steps: int,
                 images: list[Image.Image]) -> None:
        what = _what(run, first.kind, indices[0])  # the batch's kind, the preview's scene
        run.emit(Preview(indices[0], step, total_steps, images[0], what if first.kind == "inbetween" else ""))
        fraction = (run.done + batch * step / max(total_steps, 1)) / run.total
        message = f"{what} · step {step} of {total_steps}"
        run.emit(Progress("keyframes", min(fraction, 1.0), message))

    def _finish(self, run: _Run, request: ImageRequest, result: GeneratedImage, key: str) -> Iterator[Event]:
        if result.image is None and request.kind == "inbetween":
            log.info("%s: no in-between image (%s)", request.id, result.reason)
            yield from run.morphs.inbetween(request, None, "ai", result.reason)
            return
        if result.image is None:
            log.info("Scene %d: placeholder (%s)", request.scene_index + 1, result.reason)
            yield from self._placeholder(run, request.scene_index, result.reason, result.notes)
            return
        decoder = result.decoder or request.decoder
        # The key says which decoder made it; an image made from an uncached start picture is not cached.
        if self.cache is not None and request.id not in run.uncached and decoder == request.decoder:
            self.cache.put(key, result.image)
        log.info("%s: AI image from %s (%s decoder)", request.id, self.model.model_id, decoder)
        yield from self._deliver(run, request, result.image, "ai", result.notes, decoder)

    def _placeholder(self, run: _Run, index: int, reason: str, notes: tuple[str, ...] = ()) -> Iterator[Event]:
        preset = run.storyboard.preset
        image = render_placeholder(run.storyboard.scenes[index].prompt, index + 1, preset.width, preset.height)
        path = _save(run, keyframe_id(index), image)
        run.slots.put(keyframe_id(index), path)
        yield KeyframeReady(index, path, "placeholder", reason, notes)
        yield from run.morphs.keyframe(index, "placeholder", reason)

    def _deliver(self, run: _Run, request: ImageRequest, image: Image.Image, source: str,
                 notes: tuple[str, ...] | None = None, decoder: str = "") -> Iterator[Event]:
        if notes is None:  # from the cache: what the backend ignores still applies to the image
            notes = _notes_for(self.model, request)
        path = _save(run, request.id, image)
        if request.kind == "inbetween":  # its slot is filled when its whole morph is settled
            yield from run.morphs.inbetween(request, path, source)
            return
        run.slots.put(request.id, path)
        run.ai_images[request.id] = path
        yield KeyframeReady(request.scene_index, path, source, notes=notes, made_from=request.made_from(),
                            decoder=decoder)
        yield from run.morphs.keyframe(request.scene_index, source)


def _save(run: _Run, request_id: str, image: Image.Image) -> Path:
    path = run.work_dir / f"{request_id}.png"
    # Fast PNG: these files live only as long as the render folder.
    image.convert("RGB").save(path, format="PNG", compress_level=1)
    return path


def _what(run: _Run, kind: str, scene_index: int) -> str:
    """What a request of ``kind`` for ``scene_index`` makes, for progress messages and previews."""
    if kind == "inbetween":
        return f"morph {scene_index + 1}→{scene_index + 2}"
    return f"scene {scene_index + 1} of {len(run.storyboard.scenes)}"


def stream_batch(
    generate: Callable[..., list[GeneratedImage]], batch: list[ImageRequest], stop: threading.Event
) -> Generator[Preview, None, list[GeneratedImage]]:
    """Run ``generate(batch)`` in a thread, yielding its step previews; return its results.

    This is the GPU side of a ZeroGPU batch, where previews can only travel as yielded
    items. Closed early, it sets ``stop`` and waits for the backend to finish its current
    step, so no GPU work outlives the caller. Everything yielded and returned pickles.
    """
    previews = EventStream(stop)
    results: list[list[GeneratedImage]] = []

    def work() -> Iterator[Event]:
        def on_step(indices: list[int], step: int, total: int, images: list[Image.Image]) -> None:
            previews.put(Preview(indices[0], step, total, images[0]), droppable=True)

        results.append(generate(batch, on_step=on_step, should_stop=stop.is_set))
        yield from ()

    previews.run("generate", work())
    try:
        yield from previews.drain()
    except Exception as exc:  # the backend promises not to raise; be safe anyway
        return _failed(batch, exc)
    finally:
        previews.close()
    return results[0] if results else _failed(batch, RenderCancelled("stopped"))


def _notes_for(model: ImageModel | None, request: ImageRequest) -> tuple[str, ...]:
    """What ``model`` ignores of ``request`` (a remote service's ``notes_for``), e.g. for a cached scene."""
    notes_for = getattr(model, "notes_for", None)
    return tuple(notes_for(request)) if notes_for is not None else ()


def _failed(batch: list[ImageRequest], exc: BaseException) -> list[GeneratedImage]:
    reason = f"generation failed: {type(exc).__name__}: {exc}"
    return [GeneratedImage(r.scene_index, None, reason) for r in batch]


def _chain_start(plan: RenderPlan, request: ImageRequest) -> ImageRequest:
    """The first request of the chain ``request`` is in (following each one's start image back)."""
    by_id = plan.by_id()
    while request.init is not None and request.init.request_id in by_id:
        request = by_id[request.init.request_id]
    return request


def _gpu_seconds(batch: list[ImageRequest], *args, **kwargs) -> int:
    """ZeroGPU time to ask for one batch (scenes x steps x size), capped."""
    first = batch[0]
    return estimate_gpu_seconds(len(batch), first.steps, first.width, first.height)


def _progress(run: _Run, done: int, kind: str, scene_index: int) -> Progress:
    """``done`` of the run's images exist, the last one of ``kind`` for ``scene_index``; in-between images
    are counted too when the render has any."""
    message = f"{_what(run, kind, scene_index)} ready"
    if run.total != len(run.storyboard.scenes):
        message += f" · {done} of {run.total} images"
    return Progress("keyframes", done / run.total, message)


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise RenderCancelled()
