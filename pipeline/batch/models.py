"""Where a batch's image model comes from: plain data that pickles, so a Ray actor can make its own.

A :class:`ModelSource` says which model a storyboard renders with (``model(model_id)``) and how the
Renderer around it is set up (batch size, ControlNet, keyframe cache). :class:`SettingsModels` is
the command line's: the settings' backend and model, through the process's registry (so each model
is loaded once per process). Tests and benches subclass ModelSource with a stand-in model.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from ..contract.settings import Settings
from ..images.cache import KeyframeCache
from ..images.generation import ImageModel


class ModelSource:
    """The model and renderer options of a batch; subclasses say which model (``None``: no model)."""

    batch_size: int | None = None
    controlnet: str = ""

    def model(self, model_id: str | None) -> ImageModel | None:
        """The model a storyboard naming ``model_id`` (None: the default) renders with."""
        raise NotImplementedError

    def cache(self) -> KeyframeCache | None:
        """The keyframe cache for renders on this machine (None: none)."""
        return None


class SettingsModels(ModelSource):
    """The settings' model (and any other a storyboard names, where the settings allow model changes)."""

    def __init__(self, settings: Settings) -> None:
        # The pool sweeps its output folder; a batch writes its videos elsewhere, so give it a quiet one.
        self.settings = replace(settings, output_dir=Path(tempfile.gettempdir()) / "scene2video-batch-pool")
        self.batch_size = settings.batch_size
        self.controlnet = settings.controlnet_model
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

    def cache(self) -> KeyframeCache | None:
        return self._renderers().cache
