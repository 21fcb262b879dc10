"""Wiring shared by the app and the CLI: settings -> model, cache and renderer."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

from .images.cache import KeyframeCache
from .renderer import Renderer
from .contract.errors import StoryboardError
from .contract.settings import Settings
from .contract.storyboard import Storyboard

_SHOWN_CHARS = 60  # of a refused model id an error message repeats


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


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
        self._lock = threading.Lock()

    def check(self, storyboard: Storyboard) -> None:
        """Raise StoryboardError if this server may not render ``storyboard`` (see :meth:`get`)."""
        self.model_id_for(storyboard.model)

    def model_id_for(self, model_id: str | None) -> str:
        """The model a storyboard naming ``model_id`` renders with: the server's when None or the same;
        another one only with ``allow_model_change`` (else StoryboardError, said once, plainly)."""
        wanted = (model_id or "").strip()
        if not wanted or wanted == self.settings.model:
            return self.settings.model
        if not self.settings.allow_model_change:
            raise StoryboardError(
                f"Storyboard: model '{_shown(wanted)}' cannot be used on this server; it renders with "
                f"'{self.settings.model}' only (leave model out of the storyboard to use it)."
            )
        return wanted

    def get(self, model_id: str | None = None) -> Renderer:
        """The renderer for ``model_id`` (None: the configured model). Another model than the configured
        one needs ``allow_model_change``: without it this raises StoryboardError instead of ignoring it."""
        model_id = self.model_id_for(model_id)
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
                output_max_age_hours=self.settings.output_max_age_hours,
            )
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
