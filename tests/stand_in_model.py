"""A base for the test stand-ins of ``pipeline.images.generation.ImageModel``: loaded, turbo-like, fixed size.

Subclasses set ``model_id`` and ``size`` and write ``generate``; the rest of the protocol is here.
"""

from __future__ import annotations

from pipeline.images.generation import ModelInfo


class StandInModel:
    """Always loaded on the CPU, a few-step model, drawing at ``size`` whatever the preset."""

    model_id = "stand-in-model"
    size: tuple[int, int] = (64, 40)

    def load(self) -> bool:
        return True

    def info(self) -> ModelInfo:
        return ModelInfo(self.model_id, "cpu", "loaded")

    def is_distilled(self) -> bool:
        return True

    def decoder_for(self, requested: str | None, quality: str) -> str:
        return "full"

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        return self.size


class FixedStepModel(StandInModel):
    """Takes ``step_s`` per denoising step (a GPU-like sleep) and reports each step with a preview."""

    model_id = "fixed-step-model"
    size = (64, 36)

    def __init__(self, step_s: float) -> None:
        self.step_s = step_s

    def generate(self, requests, on_step=None, should_stop=None):
        import time

        from PIL import Image

        from pipeline.images.generation import GeneratedImage

        steps = requests[0].steps
        for step in range(1, steps + 1):
            if should_stop and should_stop():
                return [GeneratedImage(r.scene_index, None, "stopped") for r in requests]
            time.sleep(self.step_s)
            if on_step:
                on_step([r.scene_index for r in requests], step, steps, [Image.new("RGB", (8, 8))])
        return [GeneratedImage(r.scene_index, Image.new("RGB", (r.width, r.height), (40 * r.scene_index, 90, 160)))
                for r in requests]
