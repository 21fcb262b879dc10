"""A batch on this machine: one image model and one video model for the whole batch, two storyboards overlapping.

Each storyboard is one ``Renderer.render`` in its own thread (its images, clips and composing +
encoding already overlap there). The next storyboard starts as soon as the last one's images
all exist, so the model makes its images while the last one is still composed and encoded; at
most ``overlap`` storyboards are in flight. The renderers share the models (each made once per
batch, and the process's registry loads each once), the keyframe cache and the clip cache. One
storyboard that fails is one failed row; a clip that cannot be made is a still with its reason.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Callable, Iterable

from ..contract.errors import StoryboardError, public_message
from ..contract.storyboard import Storyboard
from ..images.clip_generation import VideoModel
from ..images.clip_stage import NO_VIDEO_MODEL_REASON
from ..renderer import Renderer
from .models import ModelSource
from .render_one import Job, Outcome, render_storyboard

log = logging.getLogger(__name__)

Finished = Callable[[Job, Outcome, int], None]  # the job, its outcome, the attempts it took
Stage = Callable[[Job, str], None]


class LocalBatch:
    """Renders jobs on this machine into render folders under ``work_dir`` (the caller moves the results)."""

    def __init__(self, models: ModelSource, work_dir: Path, overlap: int = 2) -> None:
        self.models = models
        self.work_dir = Path(work_dir)
        self.overlap = max(1, overlap)
        self.where = f"local:{socket.gethostname()}"
        self.cancel = threading.Event()
        self._cancels: set[threading.Event] = set()  # one per render in flight (a render sets its own when it ends)
        self._renderers: dict[tuple[str | None, str | None, bool], Renderer] = {}
        self._images: dict[str | None, object] = {}  # the models, each made once per batch
        self._videos: dict[str | None, tuple[VideoModel | None, str]] = {}
        self._lock = threading.Lock()

    def run(self, jobs: Iterable[Job], finished: Finished, stage: Stage | None = None) -> None:
        """Render every job, calling ``finished`` (from a worker thread) as each ends. Ctrl-C stops them all."""
        slots = threading.Semaphore(self.overlap)
        previous_images = threading.Event()
        previous_images.set()
        threads: list[threading.Thread] = []
        try:
            for job in jobs:
                while not slots.acquire(timeout=0.2):  # short waits: Ctrl-C reaches this thread at once
                    pass
                while not previous_images.wait(timeout=0.2):
                    pass
                images = threading.Event()
                thread = threading.Thread(target=self._one, args=(job, images, slots, finished, stage),
                                          name=f"batch-{job.id}", daemon=True)
                thread.start()
                threads.append(thread)
                previous_images = images
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.2)
        except BaseException:
            self.stop()
            for thread in threads:
                thread.join()
            raise

    def stop(self) -> None:
        """Stop every render in flight (within a step or a frame; each removes its files)."""
        with self._lock:
            self.cancel.set()
            for cancel in self._cancels:
                cancel.set()

    def _one(self, job: Job, images: threading.Event, slots: threading.Semaphore, finished: Finished,
             stage: Stage | None) -> None:
        cancel = threading.Event()
        with self._lock:
            self._cancels.add(cancel)
            if self.cancel.is_set():
                cancel.set()
        try:
            renderer = self._renderer(job.storyboard)
            on_stage = (lambda name: stage(job, name)) if stage is not None else None
            outcome = render_storyboard(renderer, job.storyboard, self.where, on_stage, images.set, cancel)
        except StoryboardError as exc:  # a model this machine may not use
            outcome = Outcome(False, str(exc), where=self.where)
        except Exception as exc:  # noqa: BLE001  (one storyboard's failure never stops the batch)
            log.exception("Storyboard %s failed", job.id)
            outcome = Outcome(False, f"The render failed: {public_message(exc)}", where=self.where)
        finally:
            with self._lock:
                self._cancels.discard(cancel)
            images.set()
            slots.release()
        if not self.cancel.is_set():
            finished(job, outcome, 1)

    def _renderer(self, storyboard: Storyboard) -> Renderer:
        """The renderer for ``storyboard``'s models (a video model only when it animates anything)."""
        wants_clips = storyboard.wants_video_model
        key = (storyboard.model, storyboard.video_model if wants_clips else None, wants_clips)
        with self._lock:  # two storyboards may ask at once; each model is made (not loaded) once
            if key not in self._renderers:
                video, why_not = self._video(storyboard.video_model) if wants_clips else (None, NO_VIDEO_MODEL_REASON)
                self._renderers[key] = Renderer(
                    self.work_dir, model=self._image(storyboard.model), cache=self.models.cache(),
                    batch_size=self.models.batch_size, controlnet=self.models.controlnet, video_model=video,
                    clip_cache=self.models.clip_cache(), clip_size=self.models.clip_size, no_video_model=why_not)
            return self._renderers[key]

    def _image(self, model_id: str | None):
        """The image model for a storyboard's ``model`` ``model_id``, made once per batch (lock held)."""
        if model_id not in self._images:
            self._images[model_id] = self.models.model(model_id)
        return self._images[model_id]

    def _video(self, model_id: str | None) -> tuple[VideoModel | None, str]:
        """The video model for a storyboard's ``video_model`` ``model_id``, made once per batch (lock held)."""
        if model_id not in self._videos:
            self._videos[model_id] = self.models.video_model(model_id)
        return self._videos[model_id]
