"""Wiring shared by the app and the CLI: settings -> model, cache and renderer."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

from .contract.settings import Settings
from .images.cache import KeyframeCache
from .renderer import Renderer

_MAX_RENDERERS = 8  # renderers kept for recently picked models (the registry caps loaded weights)


def build_renderer(settings: Settings, output_dir: Path | None = None) -> Renderer:
    """A Renderer for the configured model (loaded now with ``preload``), writing to ``output_dir``."""
    if output_dir is not None:
        settings = replace(settings, output_dir=output_dir)
    pool = RendererPool(settings)
    if settings.preload:
        pool.preload()
    return pool.get()


class RendererPool:
    """One Renderer per model id, all sharing one keyframe cache and output folder.

    Models come from the process's registry (``pipeline.images.registry``), which loads
    each once and keeps at most ``settings.max_loaded_models`` loaded per device.
    """

    def __init__(self, settings: Settings):
        from .images.registry import REGISTRY

        self.settings = settings
        self.cache = KeyframeCache(settings.cache_dir, max_bytes=settings.cache_max_mb * 1024 * 1024)
        REGISTRY.max_resident = settings.max_loaded_models
        self._renderers: OrderedDict[str, Renderer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_id: str | None = None) -> Renderer:
        """The renderer for ``model_id`` (the configured model when None or when changes are off)."""
        if not model_id or not self.settings.allow_model_change:
            model_id = self.settings.model
        with self._lock:  # a background warm-up and a first request may both get here
            return self._renderer_for(model_id)

    def _renderer_for(self, model_id: str) -> Renderer:
        from .images.registry import get_image_model

        if model_id not in self._renderers:
            # batch_size None (the default) is auto: the stage hands the model large groups and
            # each manager sizes its batches from free GPU memory; a number caps both.
            model = get_image_model(model_id, device=self.settings.device, batch_size=self.settings.batch_size)
            self._renderers[model_id] = Renderer(
                self.settings.output_dir, model=model, cache=self.cache, batch_size=self.settings.batch_size,
                output_max_age_hours=self.settings.output_max_age_hours, controlnet=self.settings.controlnet_model,
            )
            while len(self._renderers) > _MAX_RENDERERS:
                self._renderers.popitem(last=False)
        self._renderers.move_to_end(model_id)
        return self._renderers[model_id]

    def warm_up(self) -> threading.Thread:
        """Load the configured model in a background thread, so the first Generate does not wait for it.

        Call it once the page is served: start-up stays fast, and a click during the load
        simply waits for it (the model's own lock). A failed load is remembered and
        reported per scene, as on first use.
        """
        thread = threading.Thread(target=self.preload, name="scene2video-warm-up", daemon=True)
        thread.start()
        return thread

    def preload(self) -> None:
        """Load the configured model now (``--preload``, ZeroGPU) instead of on first use. Never raises."""
        try:
            model = self.get().model
        except Exception as exc:  # torch missing or broken: the first render reports it per scene
            logging.getLogger(__name__).warning("Could not prepare the model: %s", exc)
            return
        if model is not None:
            model.load()
