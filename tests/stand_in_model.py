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

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        return self.size
