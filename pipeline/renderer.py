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
from functools import partial
from pathlib import Path
from typing import Callable, Generator, Iterator

import numpy as np
from PIL import Image

from .audio.soundtrack import Soundtrack, prepare_soundtrack
from .contract.errors import RenderCancelled, StoryboardError, public_message
from .contract.events import (ClipReady, Done, Event, Failed, KeyframeReady, MorphReady, Progress, RenderReport,
                              SceneReport)
from .contract.footage import Footage
from .contract.storyboard import Storyboard
from .event_stream import EventStream
from .images.cache import KeyframeCache
from .images.clip_cache import ClipCache
from .images.clip_generation import VideoModel, bridge_id
from .images.clip_plan import ClipTiming, restyled_id, scene_footage_id
from .images.clip_stage import NO_VIDEO_MODEL_REASON, ClipStage
from .images.generation import ImageModel, inbetween_id, keyframe_id
from .images.plan import morph_frame_counts
from .images.slots import ImageSlots
from .images.stage import ImageStage
from .outputs import mark_finished, mark_unfinished, remove_old_outputs, remove_unfinished_outputs
from .progress import RenderProgress
from .restyle.sound import with_source_sound
from .restyle.stage import RestyleStage
from .video.encoder import EncodeSettings, SegmentedEncoder
from .video.imaging import fit_cover
from .video.morph import MorphImages, transition_reports
from .video.timeline import (BridgeLoader, KeyframeLoader, MorphLoader, TimelinePlan, apply_motion, compose_frames,
                             plan_timeline)

log = logging.getLogger(__name__)

VIDEO_NAME = "scene2video.mp4"
REPORT_NAME = "report.json"


class Renderer:
    """Renders storyboards into ``output_root``; safe to share between sessions."""

    def __init__(self, output_root: Path, model: ImageModel | None = None, cache: KeyframeCache | None = None,
                 batch_size: int | None = None, segment_seconds: float = 2.0, output_max_age_hours: float | None = None,
                 controlnet: str = "", video_model: VideoModel | None = None, clip_cache: ClipCache | None = None,
                 clip_size: tuple[int, int] | None = None, no_video_model: str = NO_VIDEO_MODEL_REASON):
        """``video_model`` makes animated scenes' clips and generated transitions (None: they fall back,
        for the reason ``no_video_model``); ``clip_size``: the server's ``--clip-size``."""
        self.output_root = Path(output_root)
        self.output_max_age_hours = output_max_age_hours
        self.model = model
        self.video_model = video_model
        self.images = ImageStage(model, cache, batch_size, controlnet)
        self.clips = ClipStage(video_model, clip_cache, clip_size, no_video_model)
        # On ZeroGPU it borrows the GPU too; its finished shots are kept with the clips.
        self.restyle = RestyleStage(model, controlnet, self.images.generate, clip_cache)
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
        clips: dict[str, ClipReady] = {}
        soundtrack = yield from _fitted_to_audio(with_source_sound(storyboard), cancel)
        storyboard = soundtrack.storyboard  # durations fitted to the audio, if any: both stages use these
        plan = plan_timeline(storyboard)
        ai = storyboard.use_ai and self.model is not None
        progress = RenderProgress(storyboard, plan.total_frames, ai=ai,
                                  clips=ai and self.video_model is not None and storyboard.wants_video_model)
        slots = ImageSlots(cancel)
        encoder = SegmentedEncoder(_encode_settings(storyboard), folder, self.segment_seconds,
                                   audio=soundtrack.track(plan.duration))
        stream = EventStream(cancel)
        try:
            stream.run("images", self._images_then_clips(storyboard, plan, folder, slots, cancel,
                                                         partial(stream.put, droppable=True)))
            stream.run("encode", self._encode(storyboard, plan, slots, encoder, stream))
            for event in stream.drain():
                if isinstance(event, KeyframeReady):
                    reports[event.scene_index] = SceneReport(event.scene_index, event.source, event.reason,
                                                             event.notes, made_from=event.made_from,
                                                             decoder=event.decoder)
                elif isinstance(event, MorphReady):
                    morphs[event.boundary] = event
                elif isinstance(event, ClipReady):
                    clips[event.id] = event
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
                shutil.rmtree(folder / restyled_id(index), ignore_errors=True)
        video = folder / VIDEO_NAME
        info = self.model.info() if self.model is not None and storyboard.use_ai else None
        report = RenderReport(
            width=storyboard.preset.width, height=storyboard.preset.height, fps=storyboard.output_fps,
            frames=plan.total_frames, duration=round(plan.total_frames / storyboard.output_fps, 3),
            scenes=_placed(_with_clips(storyboard, reports, clips), plan),
            model=info.model if info else "", device=info.device if info else "",
            seconds_taken=round(time.monotonic() - started, 3),
            transitions=transition_reports(plan, morphs, {e.index: e for e in clips.values() if e.kind == "bridge"}),
            audio=bool(storyboard.audio), beats=soundtrack.beats_used,
        )
        report_path = folder / REPORT_NAME
        report_path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        mark_finished(folder)
        yield progress.finished()
        yield Done(video, report, report_path)

    def _images_then_clips(self, storyboard: Storyboard, plan: TimelinePlan, folder: Path, slots: ImageSlots,
                           cancel: threading.Event, emit: Callable[[Event], None]) -> Iterator[Event]:
        """The images thread: every keyframe (and morph image), then every restyled shot, then every clip, each
        in the order the video shows them."""
        keyframes: dict[int, tuple[str, str]] = {}
        for event in self.images.run(storyboard, folder, slots, cancel, emit):
            if isinstance(event, KeyframeReady):
                keyframes[event.scene_index] = (event.source, event.reason)
            yield event
        # The restyled shots next: the same image model redraws them, in this one model thread.
        yield from self.restyle.run(storyboard, folder, slots, cancel, emit)
        timing = clip_timing(plan)
        if not self.clips.ids(storyboard, timing):
            return
        yield from self.clips.run(storyboard, folder, slots, cancel, emit, timing, still_view(plan), keyframes,
                                  self.images.cache_keys(storyboard))

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
        frames = compose_frames(storyboard, plan, *image_loaders(storyboard, slots, hand_on_segments))
        try:
            encoder.start()  # ffmpeg loads while the first picture is made, not after it
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


def clip_timing(plan: TimelinePlan) -> ClipTiming:
    """How long each scene and each generated transition is on screen, for the clips' frame counts."""
    return ClipTiming(
        tuple((span.visible_end - span.visible_start) / plan.fps for span in plan.scenes),
        {span.boundary: span.frames / plan.fps for span in plan.transitions if span.kind == "generated"},
    )


def still_view(plan: TimelinePlan) -> Callable[[Image.Image, int, str], Image.Image]:
    """What a still scene shows at its first or last frame: its keyframe through its camera move there."""
    def view(picture: Image.Image, index: int, which: str) -> Image.Image:
        motion = plan.scenes[index].motion
        if motion == "none":
            return picture
        return Image.fromarray(apply_motion(np.asarray(picture.convert("RGB")), motion, 1.0 if which == "last" else 0.0))

    return view


def _with_clips(storyboard: Storyboard, reports: dict[int, SceneReport],
                clips: dict[str, ClipReady]) -> dict[int, SceneReport]:
    """Each scene's report saying how its frames were made: a clip, a still (and why not a clip), a placeholder."""
    out = {}
    for index, report in reports.items():
        event = clips.get(scene_footage_id(storyboard, index) or "")
        if report.source == "placeholder":
            frames, model, reason = "placeholder", "", event.reason if event else ""
        elif event is not None and event.source != "fallback":
            frames, model, reason = "clip", event.model, ""
        else:
            frames, model, reason = "still", "", event.reason if event else ""
        out[index] = replace(report, frames=frames, video_model=model, clip_reason=reason)
    return out


def image_loaders(storyboard: Storyboard, slots: ImageSlots,
                  idle: Callable[[], None] | None = None) -> tuple[KeyframeLoader, MorphLoader, BridgeLoader]:
    """The timeline's ``load_keyframe``, ``load_morph`` and ``load_bridge``: they wait for the images and
    footage in ``slots`` (calling ``idle`` meanwhile); pictures are fitted to the storyboard's frame size.
    A scene whose footage slot (:func:`pipeline.images.clip_plan.scene_footage_id`) holds a footage
    folder is shown as that footage; one that holds None (the clip fell back) as its keyframe."""
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

    def load_scene(index: int) -> np.ndarray | Footage:
        footage_id = scene_footage_id(storyboard, index)
        folder = slots.wait(footage_id, idle=idle) if footage_id else None
        if storyboard.scenes[index].restyled:
            _drop_shown_shots(storyboard, slots, index)
        return Footage(folder) if folder is not None else load_image(keyframe_id(index))

    def load_bridge(boundary: int) -> Footage | None:
        folder = slots.wait(bridge_id(boundary), idle=idle)
        return Footage(folder) if folder is not None else None

    return load_scene, load_morph, load_bridge


def _drop_shown_shots(storyboard: Storyboard, slots: ImageSlots, index: int) -> None:
    """The timeline goes scene by scene: a restyled shot two scenes back is done with (an open map of a
    removed file stays readable), so the render folder holds about two shots' frames at a time."""
    for earlier in range(index - 1):
        folder = slots.wait(restyled_id(earlier)) if storyboard.scenes[earlier].restyled else None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _encode_settings(storyboard: Storyboard) -> EncodeSettings:
    preset = storyboard.preset
    return EncodeSettings(preset.width, preset.height, storyboard.output_fps, preset.crf, preset.x264_preset)
