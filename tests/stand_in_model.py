"""A base for the test stand-ins of ``pipeline.images.generation.ImageModel``: loaded, turbo-like, fixed size.

Subclasses set ``model_id`` and ``size`` and write ``generate``; the rest of the protocol is here.
"""

from __future__ import annotations

from pipeline.batch.models import ModelSource
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


class FixedTimeModel(StandInModel):
    """Takes ``seconds`` per image, one call at a time (as one GPU does), and raises for a prompt
    containing ``BREAK`` (a backend that crashes: the render fails). Each image is noise seeded by
    the request's seed and prompt, so equal requests give equal pixels in any process."""

    model_id = "fixed-time-model"
    size = (64, 36)

    def __init__(self, seconds: float) -> None:
        import threading

        self.seconds = seconds
        self.busy_s = 0.0  # seconds spent making images (the "GPU" busy time)
        self.calls: list[tuple[str, float]] = []  # (first prompt, time.monotonic() at the start) of each call
        self._gpu = threading.Lock()

    def generate(self, requests, on_step=None, should_stop=None):
        import time
        import zlib

        import numpy as np
        from PIL import Image

        from pipeline.images.generation import GeneratedImage

        if any("BREAK" in r.prompt for r in requests):
            raise RuntimeError("the stand-in model broke on purpose")
        with self._gpu:
            started = time.monotonic()
            self.calls.append((requests[0].prompt, started))
            time.sleep(self.seconds * len(requests))
            self.busy_s += time.monotonic() - started
        results = []
        for r in requests:
            rng = np.random.default_rng([r.seed, zlib.crc32(r.prompt.encode())])
            pixels = rng.integers(0, 256, (r.height, r.width, 3), dtype=np.uint8)
            results.append(GeneratedImage(r.scene_index, Image.fromarray(pixels)))
        return results


class FixedTimeModels(ModelSource):
    """A batch's model source of FixedTimeModel: plain data, so each Ray actor makes its own (with its
    own lock: one "GPU" each)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def model(self, model_id):
        return FixedTimeModel(self.seconds)
