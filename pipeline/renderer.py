"""Storyboard in, events out: images, and frames composed and encoded one at a time.

The two stages overlap, each in its own thread feeding the render's one event
stream (``pipeline.event_stream``): the image stage makes the images of the render
plan, and composing + encoding starts at once and waits for an image only when
the timeline reaches it, so the first segments stream while later scenes are
still being made. The caller gets every event as soon as it exists. A storyboard
with a soundtrack is first fitted to it (``pipeline.audio.soundtrack``: scaled to
its length, cuts moved onto its beats); both stages then use the fitted durations.

``Renderer.render`` is a generator. Each render gets its own unguessable folder
under the output root; the finished MP4 and report.json stay there, everything
else is removed. If the render is cancelled (the ``cancel`` event is set) or the
generator is closed early (a browser Stop), ffmpeg is killed and the folder is
deleted before the generator returns.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import threading
import time
from dataclasses import replace
from itertools import chain
from functools import partial
from pathlib import Path
from typing import Callable, Generator, Iterator

import numpy as np
from PIL import Image

from .audio.soundtrack import Soundtrack, prepare_soundtrack
from .contract.errors import RenderCancelled, StoryboardError, public_message
from .contract.footage import Footage
from .contract.events import Done, Event, Failed, KeyframeReady, MorphReady, Progress, RenderReport, SceneReport
from .contract.storyboard import Storyboard
from .event_stream import EventStream
from .images.cache import KeyframeCache
from .images.generation import ImageModel, inbetween_id, keyframe_id
from .images.plan import morph_frame_counts
from .images.slots import ImageSlots
from .images.stage import ImageStage
from .outputs import mark_finished, mark_unfinished, remove_old_outputs, remove_unfinished_outputs
from .progress import RenderProgress
from .restyle.sound import with_source_sound
from .restyle.stage import RestyleStage, footage_id
from .video.encoder import EncodeSettings, SegmentedEncoder
from .video.imaging import fit_cover
from .video.morph import MorphImages, transition_reports
from .video.timeline import FootageLoader, KeyframeLoader, MorphLoader, TimelinePlan, compose_frames, plan_timeline

log = logging.getLogger(__name__)

VIDEO_NAME = "scene2video.mp4"
REPORT_NAME = "report.json"


class Renderer:
    """Renders storyboards into ``output_root``; safe to share between sessions."""

    def __init__(self, output_root: Path, model: ImageModel | None = None, cache: KeyframeCache | None = None,
                 batch_size: int | None = None, segment_seconds: float = 2.0, output_max_age_hours: float | None = None,
                 controlnet: str = ""):
        self.output_root = Path(output_root)
        self.output_max_age_hours = output_max_age_hours
        self.model = model
        self.images = ImageStage(model, cache, batch_size, controlnet)
        self.restyle = RestyleStage(model, controlnet)
        self.segment_seconds = segment_seconds

    def new_render_dir(self) -> Path:
        """A fresh folder with an unguessable name for one render's files (old ones are swept first)."""
        if self.output_max_age_hours is not None:
            remove_old_outputs(self.output_root, self.output_max_age_hours)
        remove_unfinished_outputs(self.output_root)  # those of a process that died (kill -9, a crash)
        folder = self.output_root / secrets.token_urlsafe(16)
        folder.mkdir(parents=True)
        mark_unfinished(folder)  # until Done: a restart after a crash knows it was never finished
        return folder

    def render(self, storyboard: Storyboard, cancel: threading.Event | None = None) -> Iterator[Event]:
        """Yield events for one render, ending with exactly one Done or Failed."""
        cancel = cancel or threading.Event()
        folder = self.new_render_dir()
        finished = False
        events = self._render(storyboard, folder, cancel)
        try:
            for event in events:
                # Finished once Done exists: a caller may close the generator as soon as it has it.
                finished = finished or isinstance(event, Done)
                yield event
        except RenderCancelled:
            yield Failed("Render stopped. Nothing was saved; press Generate to start again.", cancelled=True)
        except StoryboardError as exc:
            yield Failed(str(exc))
        except Exception as exc:  # shown to the user as a message; the traceback goes to the log
            log.exception("Render failed")
            yield Failed(f"The render failed: {public_message(exc)}")  # one line, no server path
        finally:
            if not finished:
                cancel.set()  # stops a model still running in its worker thread, and the encoder
            events.close()  # joins both before the folder goes
            if not finished:
                shutil.rmtree(folder, ignore_errors=True)

    def _render(self, storyboard: Storyboard, folder: Path, cancel: threading.Event) -> Iterator[Event]:
        """Both stages feed one event stream; this thread drains it, then writes the report."""
        started = time.monotonic()
        reports: dict[int, SceneReport] = {}
        morphs: dict[int, MorphReady] = {}
        soundtrack = yield from _fitted_to_audio(with_source_sound(storyboard), cancel)
        storyboard = soundtrack.storyboard  # durations fitted to the audio, if any: both stages use these
        plan = plan_timeline(storyboard)
        progress = RenderProgress(storyboard, plan.total_frames, ai=storyboard.use_ai and self.model is not None)
        slots = ImageSlots(cancel)
        encoder = SegmentedEncoder(_encode_settings(storyboard), folder, self.segment_seconds,
                                   audio=soundtrack.track(plan.duration))
        stream = EventStream(cancel)
        try:
            droppable = partial(stream.put, droppable=True)
            # One thread for the model: the generated keyframes first, then the restyled shots.
            stream.run("images", chain(self.images.run(storyboard, folder, slots, cancel, droppable),
                                       self.restyle.run(storyboard, folder, slots, cancel, droppable)))
            stream.run("encode", self._encode(storyboard, plan, slots, encoder, stream))
            for event in stream.drain():
                if isinstance(event, KeyframeReady):
                    reports[event.scene_index] = SceneReport(event.scene_index, event.source, event.reason,
                                                             event.notes, made_from=event.made_from,
                                                             decoder=event.decoder)
                elif isinstance(event, MorphReady):
                    morphs[event.boundary] = event
                yield progress.update(event)
        finally:
            stream.close()
        if cancel.is_set():
            raise RenderCancelled()
        # Segments are deleted only now, after this thread has yielded each one to its consumer.
        for segment in encoder.segments:
            segment.path.unlink(missing_ok=True)
        for index, scene in enumerate(storyboard.scenes):  # restyled frames: encoded, no longer needed
            if scene.restyled:
                shutil.rmtree(folder / footage_id(index), ignore_errors=True)
        video = folder / VIDEO_NAME
        info = self.model.info() if self.model is not None and storyboard.use_ai else None
        report = RenderReport(
            width=storyboard.preset.width, height=storyboard.preset.height, fps=storyboard.output_fps,
            frames=plan.total_frames, duration=round(plan.total_frames / storyboard.output_fps, 3),
            scenes=_placed(reports, plan),
            model=info.model if info else "", device=info.device if info else "",
            seconds_taken=round(time.monotonic() - started, 3), transitions=transition_reports(plan, morphs),
            audio=bool(storyboard.audio), beats=soundtrack.beats_used,
        )
        report_path = folder / REPORT_NAME
        report_path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        mark_finished(folder)
        yield progress.finished()
        yield Done(video, report, report_path)

    @staticmethod
    def _encode(storyboard: Storyboard, plan: TimelinePlan, slots: ImageSlots, encoder: SegmentedEncoder,
                stream: EventStream) -> Iterator[Event]:
        """Compose and encode every frame (runs in the encode thread); Progress fractions are of frames composed."""
        cancel = stream.cancel

        def hand_on_segments() -> None:
            # While the timeline waits for an image, ffmpeg may finish segments: they go out at once.
            for segment in encoder.poll():
                stream.put(segment)

        total = plan.total_frames
        frames = compose_frames(storyboard, plan, *image_loaders(storyboard, slots, hand_on_segments),
                                load_footage=footage_loader(storyboard, slots, hand_on_segments))
        try:
            for number, frame in enumerate(frames, start=1):
                if cancel.is_set():
                    raise RenderCancelled()
                yield from encoder.write(frame)
                scene = plan.stage_at(number - 1).scene + 1
                stream.put(Progress("composing", number / total,
                                    f"scene {scene} of {len(storyboard.scenes)} · frame {number} of {total}"),
                           droppable=True)  # the next frame's progress replaces it
            yield Progress("encoding", 1.0, "Writing the MP4")
            yield from encoder.finish(encoder.work_dir / VIDEO_NAME)
        except BaseException:
            encoder.abort()
            raise


FIT_TICK_S = 0.5  # how often the fitting step says how long it has taken


def _fitted_to_audio(storyboard: Storyboard, cancel: threading.Event) -> Generator[Progress, None, Soundtrack]:
    """The storyboard fitted to its soundtrack (``prepare_soundtrack``), with a Progress every
    :data:`FIT_TICK_S` saying how long it has taken: finding the beats can take seconds (a long song),
    or half a minute while the beat tracker is first compiled in a fresh environment."""
    if not storyboard.audio:
        return prepare_soundtrack(storyboard)
    what = "Fitting the scenes to the audio" + (" (finding the beats)" if storyboard.cut_on_beats else "")
    yield Progress("loading", 0.0, what)
    outcome: dict[str, object] = {}

    def fit() -> None:
        try:
            outcome["result"] = prepare_soundtrack(storyboard, check=partial(_raise_if_set, cancel))
        except BaseException as exc:  # handed to the render's thread, which raises it
            outcome["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=fit, name="scene2video-fit", daemon=True)
    worker.start()
    worker.join(FIT_TICK_S)
    while worker.is_alive():
        yield Progress("loading", 0.0, f"{what} · {time.monotonic() - started:.0f} s")
        worker.join(FIT_TICK_S)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _raise_if_set(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise RenderCancelled()


def _placed(reports: dict[int, SceneReport], plan: TimelinePlan) -> tuple[SceneReport, ...]:
    """Each scene's report with its final start and length in the video (whole frames, in seconds)."""
    return tuple(
        replace(reports[span.index], start=round(span.start / plan.fps, 4),
                length=round((span.end - span.start) / plan.fps, 4))
        for span in plan.scenes
    )


def image_loaders(storyboard: Storyboard, slots: ImageSlots,
                  idle: Callable[[], None] | None = None) -> tuple[KeyframeLoader, MorphLoader]:
    """The timeline's ``load_keyframe`` and ``load_morph``: they wait for the images in ``slots``
    (calling ``idle`` meanwhile) and fit them to the storyboard's frame size."""
    preset = storyboard.preset
    morph_counts = morph_frame_counts(storyboard)

    def load_image(request_id: str) -> np.ndarray:
        with Image.open(slots.wait(request_id, idle=idle)) as image:
            return np.asarray(fit_cover(image.convert("RGB"), preset.width, preset.height))

    def load_morph(boundary: int) -> MorphImages | None:
        # A morph's images are settled together: the first slot says whether it was made.
        ids = [inbetween_id(boundary, j) for j in range(1, morph_counts.get(boundary, 0) + 1)]
        if not ids or slots.wait(ids[0], idle=idle) is None:
            return None  # drawn as a crossfade; the report says why
        return MorphImages(len(ids), lambda j: load_image(ids[j]))

    return (lambda index: load_image(keyframe_id(index))), load_morph


def footage_loader(storyboard: Storyboard, slots: ImageSlots, idle: Callable[[], None] | None = None) -> FootageLoader:
    """The timeline's ``load_footage``: it waits for a restyled scene's footage folder in ``slots``
    (calling ``idle`` meanwhile)."""

    def load_footage(index: int) -> Footage:
        footage = Footage(slots.wait(footage_id(index), idle=idle))
        # The timeline goes scene by scene: footage two scenes back is done with (an open map of a
        # removed file stays readable), so the render folder holds about two shots' frames at a time.
        for earlier in range(index - 1):
            if storyboard.scenes[earlier].restyled:
                shutil.rmtree(footage.folder.parent / footage_id(earlier), ignore_errors=True)
        return footage

    return load_footage


def _encode_settings(storyboard: Storyboard) -> EncodeSettings:
    preset = storyboard.preset
    return EncodeSettings(preset.width, preset.height, storyboard.output_fps, preset.crf, preset.x264_preset)
