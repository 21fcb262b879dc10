"""Video-model backends on diffusers: one shared manager, one module per model family.

:class:`~.manager.VideoModelManager` implements ``pipeline.images.clip_generation.VideoModel``
(load once, thread-safe, ``info()``, ``frame_rules()``, ``generate_clip()``); the family of a
checkpoint is chosen by its pipeline class (``model_index.json``'s ``_class_name``) from
:data:`FAMILIES`, so the next family is a module with a :class:`~.family.VideoFamily` and one
line here. Get managers from ``pipeline.images.registry.get_video_model`` so every session
shares the loaded weights. torch and diffusers are imported inside functions only.
"""

from __future__ import annotations

from .family import VideoFamily
from .ltx import LTXFamily
from .wan import WanFamily

FAMILIES: tuple[VideoFamily, ...] = (LTXFamily(), WanFamily())


def family_for(pipeline_class: str) -> VideoFamily | None:
    """The family whose pipelines include ``pipeline_class``, or None for a class no family knows."""
    return next((family for family in FAMILIES if pipeline_class in family.pipeline_classes), None)


def family_by_name(model_id: str) -> VideoFamily:
    """A guess from the id alone, before the checkpoint's index can be read: Wan if it says so, else LTX."""
    return FAMILIES[1] if "wan" in model_id.lower().replace("\\", "/").split("/")[-1] else FAMILIES[0]


def known_pipelines() -> tuple[str, ...]:
    """Every pipeline class some family can drive (for messages and docs)."""
    return tuple(name for family in FAMILIES for name in family.pipeline_classes)
