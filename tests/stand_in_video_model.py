"""A test stand-in for ``pipeline.images.clip_generation.VideoModel``: deterministic moving frames with numpy.

It honours the request as a video model must: the clip has ``num_frames`` frames of
``width`` x ``height``; a scene clip starts exactly on its start picture (the keyframe) and
slides it sideways, ``shift`` pixels a frame (wrapping around, so every frame shows the whole
picture); a generated transition starts exactly on its start picture and ends exactly on its
end picture, dissolving from one into the other. Each denoising step takes ``step_s``
seconds and is reported with a preview; a stop is honoured at the next step. ``fail`` makes
every clip fail with that reason (or, with ``fail_on``, only clips whose prompt contains it);
``blank`` makes it one flat colour.

:class:`SlidingClips` is a batch's model source (``pipeline.batch.models.ModelSource``) with
these clips beside tests/stand_in_model.py's FixedTimeModel keyframes.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.contract.footage import FootageWriter
from pipeline.images.clip_generation import ClipRequest, FrameRules, GeneratedClip
from pipeline.images.generation import ModelInfo
from stand_in_model import FixedTimeModels

RULES = FrameRules(fps=24.0, frame_step=8, side_multiple=32, native_pixels=128 * 96, max_frames=257)


class SlidingClipModel:
    """Always loaded; makes every clip in ``steps`` steps of ``step_s`` seconds."""

    model_id = "stand-in-video"
    default_steps = 3
    default_guidance = 1.0

    def __init__(self, step_s: float = 0.0, shift: int = 3, fail: str = "", blank: bool = False,
                 loads: bool = True, fail_on: str = "", batch: int = 1, calls_in: Path | None = None) -> None:
        self.step_s, self.shift, self.fail, self.blank, self.loads = step_s, shift, fail, blank, loads
        self.fail_on, self.batch, self.calls_in = fail_on, batch, calls_in
        self.calls: list[ClipRequest] = []

    def clip_batch_size(self, request: ClipRequest) -> int:
        return self.batch

    def generate_clips(self, requests: list[ClipRequest], folders: list[Path], on_step=None,
                       should_stop=None) -> list[GeneratedClip]:
        """Several clips in one call (each as :meth:`generate_clip` makes it); with ``calls_in``, a file there
        names the process and the clips of each such call."""
        if self.calls_in is not None:
            self.calls_in.mkdir(parents=True, exist_ok=True)
            ids = "+".join(request.id for request in requests)
            (self.calls_in / f"{os.getpid()}@{ids}@{uuid.uuid4().hex[:8]}").touch()
        return [self.generate_clip(request, folder, on_step, should_stop) for request, folder in zip(requests, folders)]

    def load(self) -> bool:
        return self.loads

    def info(self) -> ModelInfo:
        if not self.loads:
            return ModelInfo(self.model_id, "cpu", "failed", reason="out of memory (stand-in)")
        return ModelInfo(self.model_id, "cpu", "loaded")

    def frame_rules(self) -> FrameRules:
        return RULES

    def generate_clip(self, request: ClipRequest, folder: Path, on_step=None, should_stop=None) -> GeneratedClip:
        self.calls.append(request)
        for step in range(1, request.steps + 1):
            if should_stop is not None and should_stop():
                return GeneratedClip(request.scene_index, None, "stopped")
            time.sleep(self.step_s)
            if on_step is not None:
                on_step(request, step, request.steps, Image.new("RGB", (16, 16), (30 * step % 256, 80, 120)))
        if self.fail and (not self.fail_on or self.fail_on in request.prompt):
            return GeneratedClip(request.scene_index, None, self.fail)
        start = np.asarray(request.pictures.start.convert("RGB"))
        end = np.asarray(request.pictures.end.convert("RGB")) if request.pictures.end is not None else None
        writer = FootageWriter(folder, request.fps, model=self.model_id)
        for i in range(request.num_frames):
            writer.write(self._frame(request, start, end, i))
        footage = writer.finish()
        return GeneratedClip(request.scene_index, folder, frames=len(footage))

    def _frame(self, request: ClipRequest, start: np.ndarray, end: np.ndarray | None, i: int) -> np.ndarray:
        if self.blank:
            return np.full((request.height, request.width, 3), 128, np.uint8)
        if end is None:
            return np.ascontiguousarray(np.roll(start, i * self.shift, axis=1))
        # A dissolve from the start picture to the end picture (exact at both ends).
        u = i / (request.num_frames - 1)
        mixed = (1.0 - u) * start.astype(np.float32) + u * end.astype(np.float32)
        return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


class SlidingClips(FixedTimeModels):
    """A batch's models: FixedTimeModel keyframes (``seconds`` per image) and SlidingClipModel clips (failing
    with ``fail`` for prompts containing ``fail_on``), made at ``clip_size``. Plain data, so each Ray actor
    makes its own. Every video model it makes leaves a file named for its process in ``made_in`` (a
    test's folder on this machine), so a test counts them across processes; ``made`` lists this process's."""

    def __init__(self, seconds: float, made_in: Path, clip_size: tuple[int, int] | None = None,
                 fail: str = "", fail_on: str = "", clip_batch: int = 1) -> None:
        super().__init__(seconds)
        self.made_in, self.clip_size, self.fail, self.fail_on = Path(made_in), clip_size, fail, fail_on
        self.clip_batch = clip_batch
        self.made: list[SlidingClipModel] = []

    def __getstate__(self) -> dict:
        return {**self.__dict__, "made": []}

    def video_model(self, model_id):
        model = SlidingClipModel(fail=self.fail, fail_on=self.fail_on, batch=self.clip_batch,
                                 calls_in=self.batched_calls_in)
        self.made.append(model)
        self.made_in.mkdir(parents=True, exist_ok=True)
        (self.made_in / f"{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
        return model, ""

    @property
    def batched_calls_in(self) -> Path:
        """Where each call of several clips leaves a file: ``<pid>@<clip ids joined by +>@<random>``."""
        return self.made_in.with_name(self.made_in.name + "-batched")

    def batched_calls(self) -> list[tuple[int, str]]:
        """(process id, the clip ids joined by +) of each call that made several clips, in any process."""
        folder = self.batched_calls_in
        return sorted((int(p.name.split("@")[0]), p.name.split("@")[1]) for p in folder.iterdir()) if folder.exists() else []

    def made_by(self) -> list[int]:
        """The process id behind each video model made so far (in any process)."""
        return sorted(int(path.name.split("-")[0]) for path in self.made_in.iterdir()) if self.made_in.exists() else []
