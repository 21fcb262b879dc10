"""Wiring shared by the app and the CLI: settings -> model, cache and renderer."""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import replace
from pathlib import Path

from .cache import KeyframeCache
from .renderer import Renderer
from .settings import Settings


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

    Models are loaded lazily by their managers, once per process, and kept.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.cache = KeyframeCache(settings.cache_dir, max_bytes=settings.cache_max_mb * 1024 * 1024)
        self._renderers: dict[str, Renderer] = {}

    def get(self, model_id: str | None = None) -> Renderer:
        """The renderer for ``model_id`` (the configured model when None or when changes are off)."""
        from .model import get_image_model

        if not model_id or not self.settings.allow_model_change:
            model_id = self.settings.model
        if model_id not in self._renderers:
            # batch_size None (the default) is auto: the stage hands the model large groups and
            # each manager sizes its batches from free GPU memory; a number caps both.
            model = get_image_model(model_id, device=self.settings.device, batch_size=self.settings.batch_size)
            self._renderers[model_id] = Renderer(
                self.settings.output_dir, model=model, cache=self.cache, batch_size=self.settings.batch_size,
                output_max_age_hours=self.settings.output_max_age_hours,
            )
        return self._renderers[model_id]

    def warm_up(self) -> threading.Thread:
        """Import torch and diffusers in the background, so the first Generate does not wait for them.

        Start-up stays fast (the page is served at once); no weights are loaded.
        """
        thread = threading.Thread(target=_import_model_libraries, name="scene2video-warm-up", daemon=True)
        thread.start()
        return thread

    def preload(self) -> None:
        """Load the configured model now (``--preload``, ZeroGPU) instead of on first use."""
        model = self.get().model
        if model is not None:
            model.load()


def _import_model_libraries() -> None:
    for name in ("torch", "diffusers"):
        try:
            importlib.import_module(name)
        except Exception as exc:  # the first render reports it properly, per scene
            logging.getLogger(__name__).warning("Could not import %s: %s", name, exc)
