"""Storyboard in, events out: keyframes, and frames composed and encoded one at a time.

The two stages overlap: the keyframe stage runs in the caller's thread (the model
may need it, e.g. on ZeroGPU), and composing + encoding runs in a second thread
that starts at once and waits for each scene's keyframe only when the timeline
reaches it, so the first segments stream while later scenes are still being made.

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
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .video.background import EventPump, KeyframeSlots
from .images.cache import KeyframeCache
from .video.encoder import EncodeSettings, SegmentedEncoder
from .contract.errors import RenderCancelled, StoryboardError
from .contract.events import Done, Event, Failed, KeyframeReady, Progress, RenderReport, SceneReport
from .images.generation import ImageModel
from .video.imaging import fit_cover
from .images.keyframes import KeyframeStage
from .outputs import remove_old_outputs
from .progress import RenderProgress
from .contract.storyboard import Storyboard
from .video.timeline import TimelinePlan, compose_frames, plan_timeline

log = logging.getLogger(__name__)

VIDEO_NAME = "scene2video.mp4"
REPORT_NAME = "report.json"


class Renderer:
    """Renders storyboards into ``output_root``; safe to share between sessions."""

    def __init__(self, output_root: Path, model: ImageModel | None = None, cache: KeyframeCache | None = None,
                 batch_size: int | None = None, segment_seconds: float = 2.0, output_max_age_hours: float | None = None):
        self.output_root = Path(output_root)
        self.output_max_age_hours = output_max_age_hours
        self.model = model
        self.keyframes = KeyframeStage(model, cache, batch_size)
        self.segment_seconds = segment_seconds

    def new_render_dir(self) -> Path:
        """A fresh folder with an unguessable name for one render's files (old ones are swept first)."""
        if self.output_max_age_hours is not None:
            remove_old_outputs(self.output_root, self.output_max_age_hours)
        folder = self.output_root / secrets.token_urlsafe(16)
        folder.mkdir(parents=True)
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
            yield Failed(f"The render failed: {type(exc).__name__}: {exc}")
        finally:
            if not finished:
                cancel.set()  # stops a model still running in its worker thread, and the encoder
            events.close()  # joins both before the folder goes
            if not finished:
                shutil.rmtree(folder, ignore_errors=True)

    def _render(self, storyboard: Storyboard, folder: Path, cancel: threading.Event) -> Iterator[Event]:
        """Keyframes in this thread; composing and encoding in another as soon as scene 1 exists."""
        started = time.monotonic()
        reports: dict[int, SceneReport] = {}
        plan = plan_timeline(storyboard)
        progress = RenderProgress(storyboard, plan.total_frames, ai=storyboard.use_ai and self.model is not None)
        slots = KeyframeSlots(len(storyboard.scenes), cancel)
        encoder = SegmentedEncoder(_encode_settings(storyboard), folder, self.segment_seconds)
        pump = EventPump(self._encode(storyboard, plan, slots, encoder, cancel), cancel, "scene2video-encode")
        try:
            for event in self.keyframes.run(storyboard, folder, cancel):
                if isinstance(event, KeyframeReady):
                    reports[event.scene_index] = SceneReport(event.scene_index, event.source, event.reason)
                    slots.put(event.scene_index, event.path)
                yield progress.update(event)
                yield from (progress.update(encoded) for encoded in pump.ready())
            yield from (progress.update(encoded) for encoded in pump.rest())
        finally:
            pump.close()
        # Segments are deleted only now, after this thread has yielded each one to its consumer.
        for segment in encoder.segments:
            segment.path.unlink(missing_ok=True)
        video = folder / VIDEO_NAME
        info = self.model.describe() if self.model is not None and storyboard.use_ai else {}
        report = RenderReport(
            width=storyboard.preset.width, height=storyboard.preset.height, fps=storyboard.output_fps,
            frames=plan.total_frames, duration=plan.total_frames / storyboard.output_fps,
            scenes=tuple(reports[i] for i in range(len(storyboard.scenes))),
            model=info.get("model", ""), device=info.get("device", ""),
            seconds_taken=round(time.monotonic() - started, 3),
        )
        report_path = folder / REPORT_NAME
        report_path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        yield progress.finished()
        yield Done(video, report, report_path)

    @staticmethod
    def _encode(storyboard: Storyboard, plan: TimelinePlan, slots: KeyframeSlots, encoder: SegmentedEncoder,
                cancel: threading.Event) -> Iterator[Event]:
        """Compose and encode every frame (runs in the encode thread); Progress fractions are of frames composed."""
        preset = storyboard.preset

        def load_keyframe(index: int) -> np.ndarray:
            with Image.open(slots.wait(index)) as image:
                return np.asarray(fit_cover(image.convert("RGB"), preset.width, preset.height))

        total = plan.total_frames
        try:
            for number, frame in enumerate(compose_frames(storyboard, plan, load_keyframe), start=1):
                if cancel.is_set():
                    raise RenderCancelled()
                yield from encoder.write(frame)
                scene = plan.stage_at(number - 1).scene + 1
                yield Progress("composing", number / total,
                               f"scene {scene} of {len(storyboard.scenes)} · frame {number} of {total}")
            yield Progress("encoding", 1.0, "Writing the MP4")
            yield from encoder.finish(encoder.work_dir / VIDEO_NAME)
        except BaseException:
            encoder.abort()
            raise


def _encode_settings(storyboard: Storyboard) -> EncodeSettings:
    preset = storyboard.preset
    return EncodeSettings(preset.width, preset.height, storyboard.output_fps, preset.crf, preset.x264_preset)
