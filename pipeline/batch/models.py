"""Where a batch's models come from: plain data that pickles, so a Ray actor can make its own.

A :class:`ModelSource` says which image model a storyboard renders with (``model(model_id)``), which
video model makes its clips (``video_model(model_id)``), and how the Renderer around them is set up
(batch size, ControlNet, ``--clip-size``, the keyframe and clip caches). :class:`SettingsModels` is
the command line's: the settings' backend, model and video model, through the process's registry (so
each model is loaded once per process). Tests and benches subclass ModelSource with stand-ins.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from ..contract.settings import Settings
from ..images.cache import KeyframeCache
from ..images.clip_cache import ClipCache
from ..images.clip_generation import VideoModel
from ..images.clip_stage import NO_VIDEO_MODEL_REASON
from ..images.generation import ImageModel


class ModelSource:
    """The models and renderer options of a batch; subclasses say which models (``None``: no model)."""

    batch_size: int | None = None
    controlnet: str = ""
    clip_size: tuple[int, int] | None = None  # the size clips are made at (None: the video model's native size)

    def model(self, model_id: str | None) -> ImageModel | None:
        """The model a storyboard naming ``model_id`` (None: the default) renders with."""
        raise NotImplementedError

    def video_model(self, model_id: str | None) -> tuple[VideoModel | None, str]:
        """The video model that makes the clips of a storyboard naming ``video_model`` ``model_id`` (None:
        the default), or None and the reason there is none (its animated scenes are then stills).
        Raises StoryboardError for a video model this batch may not use."""
        return None, NO_VIDEO_MODEL_REASON

    def cache(self) -> KeyframeCache | None:
        """The keyframe cache for renders on this machine (None: none)."""
        return None

    def clip_cache(self) -> ClipCache | None:
        """The clip cache for renders on this machine (None: none)."""
        return None


class SettingsModels(ModelSource):
    """The settings' models (and any other a storyboard names, where the settings allow model changes)."""

    def __init__(self, settings: Settings) -> None:
        # The pool sweeps its output folder; a batch writes its videos elsewhere, so give it a quiet one.
        self.settings = replace(settings, output_dir=Path(tempfile.gettempdir()) / "scene2video-batch-pool")
        self.batch_size = settings.batch_size
        self.controlnet = settings.controlnet_model
        self.clip_size = settings.clip_size_pair()
        self._pool = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pool": None}  # each process builds its own (the models are its own)

    def _renderers(self):
        from ..service import RendererPool

        if self._pool is None:
            self._pool = RendererPool(self.settings)
        return self._pool

    def model(self, model_id: str | None) -> ImageModel | None:
        return self._renderers().get(model_id).model

    def video_model(self, model_id: str | None) -> tuple[VideoModel | None, str]:
        """``--video-model`` (else the default one where this process has a GPU; none on a CPU), or the
        storyboard's where the settings allow it; the registry shares it, so it is loaded once here."""
        pool = self._renderers()
        return pool.video_backend(pool.video_model_id_for(model_id))

    def cache(self) -> KeyframeCache | None:
        return self._renderers().cache

    def clip_cache(self) -> ClipCache | None:
        return self._renderers().clip_cache
