"""A test stand-in for ``pipeline.images.clip_generation.VideoModel``: deterministic moving frames with numpy.

It honours the request as a video model must: the clip has ``num_frames`` frames of
``width`` x ``height``; a scene clip starts exactly on its start picture (the keyframe) and
slides it sideways, ``shift`` pixels a frame (wrapping around, so every frame shows the whole
picture); a generated transition starts exactly on its start picture and ends exactly on its
end picture, dissolving from one into the other. Each denoising step takes ``step_s``
seconds and is reported with a preview; a stop is honoured at the next step. ``fail`` makes
every clip fail with that reason; ``blank`` makes it one flat colour.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.contract.footage import FootageWriter
from pipeline.images.clip_generation import ClipRequest, FrameRules, GeneratedClip
from pipeline.images.generation import ModelInfo

RULES = FrameRules(fps=24.0, frame_step=8, side_multiple=32, native_pixels=128 * 96, max_frames=257)


class SlidingClipModel:
    """Always loaded; makes every clip in ``steps`` steps of ``step_s`` seconds."""

    model_id = "stand-in-video"
    default_steps = 3
    default_guidance = 1.0

    def __init__(self, step_s: float = 0.0, shift: int = 3, fail: str = "", blank: bool = False,
                 loads: bool = True) -> None:
        self.step_s, self.shift, self.fail, self.blank, self.loads = step_s, shift, fail, blank, loads
        self.calls: list[ClipRequest] = []

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
        if self.fail:
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
