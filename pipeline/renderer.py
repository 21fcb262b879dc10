"""Storyboard in, events out: keyframes, then frames composed and encoded one at a time.

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

from .cache import KeyframeCache
from .encoder import EncodeSettings, SegmentedEncoder
from .errors import RenderCancelled, StoryboardError
from .events import Done, Event, Failed, KeyframeReady, Progress, RenderReport, SceneReport
from .generation import ImageModel
from .imaging import fit_cover
from .keyframes import KeyframeStage
from .outputs import remove_old_outputs
from .storyboard import Storyboard
from .timeline import compose_frames, plan_timeline

log = logging.getLogger(__name__)

VIDEO_NAME = "scene2video.mp4"
REPORT_NAME = "report.json"
# Share of the progress bar given to keyframes; the rest is composing and encoding.
_KEYFRAME_SHARE_AI = 0.5
_KEYFRAME_SHARE_PLACEHOLDER = 0.05


class Renderer:
    """Renders storyboards into ``output_root``; safe to share between sessions."""

    def __init__(self, output_root: Path, model: ImageModel | None = None, cache: KeyframeCache | None = None,
                 batch_size: int = 4, segment_seconds: float = 2.0, output_max_age_hours: float | None = None):
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
        try:
            for event in self._render(storyboard, folder, cancel):
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
                cancel.set()  # stops a model still running in its worker thread
                shutil.rmtree(folder, ignore_errors=True)

    def _render(self, storyboard: Storyboard, folder: Path, cancel: threading.Event) -> Iterator[Event]:
        started = time.monotonic()
        clock = _Clock(started)
        share = _KEYFRAME_SHARE_AI if storyboard.use_ai and self.model is not None else _KEYFRAME_SHARE_PLACEHOLDER
        reports: dict[int, SceneReport] = {}
        paths: dict[int, Path] = {}
        for event in self.keyframes.run(storyboard, folder, cancel):
            if isinstance(event, KeyframeReady):
                reports[event.scene_index] = SceneReport(event.scene_index, event.source, event.reason)
                paths[event.scene_index] = event.path
            elif isinstance(event, Progress):
                event = clock.progress(event.stage, event.fraction * share, event.message)
            yield event
        report_scenes = tuple(reports[i] for i in range(len(storyboard.scenes)))
        plan = plan_timeline(storyboard)
        yield from self._encode(storyboard, plan, paths, folder, cancel, clock, share)
        video = folder / VIDEO_NAME
        info = self.model.describe() if self.model is not None and storyboard.use_ai else {}
        report = RenderReport(
            width=storyboard.preset.width, height=storyboard.preset.height, fps=storyboard.output_fps,
            frames=plan.total_frames, duration=plan.total_frames / storyboard.output_fps, scenes=report_scenes,
            model=info.get("model", ""), device=info.get("device", ""),
            seconds_taken=round(time.monotonic() - started, 3),
        )
        report_path = folder / REPORT_NAME
        report_path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        yield clock.progress("encoding", 1.0, "Done")
        yield Done(video, report, report_path)

    def _encode(self, storyboard: Storyboard, plan, paths: dict[int, Path], folder: Path,
                cancel: threading.Event, clock: "_Clock", share: float) -> Iterator[Event]:
        preset = storyboard.preset
        settings = EncodeSettings(preset.width, preset.height, storyboard.output_fps, preset.crf, preset.x264_preset)
        encoder = SegmentedEncoder(settings, folder, self.segment_seconds)

        def load_keyframe(index: int) -> np.ndarray:
            with Image.open(paths[index]) as image:
                return np.asarray(fit_cover(image.convert("RGB"), preset.width, preset.height))

        total = plan.total_frames
        try:
            for number, frame in enumerate(compose_frames(storyboard, plan, load_keyframe), start=1):
                if cancel.is_set():
                    raise RenderCancelled()
                yield from encoder.write(frame)
                scene = plan.stage_at(number - 1).scene + 1
                yield clock.progress("composing", share + (1 - share) * 0.98 * number / total,
                                     f"scene {scene} of {len(storyboard.scenes)} · frame {number} of {total}")
            yield clock.progress("encoding", share + (1 - share) * 0.98, "Writing the MP4")
            last = encoder.finish(folder / VIDEO_NAME)
        except BaseException:
            encoder.abort()
            raise
        yield from last
        # Segments are yielded before they are deleted, so a consumer has read each one.
        for segment in encoder.segments:
            segment.path.unlink(missing_ok=True)


class _Clock:
    """Turns a fraction of the work done into a Progress event with a time-left estimate."""

    def __init__(self, started: float):
        self.started = started

    def progress(self, stage: str, fraction: float, message: str) -> Progress:
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = time.monotonic() - self.started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.02 else None
        return Progress(stage, fraction, message, eta)
