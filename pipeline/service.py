"""Wiring shared by the app and the CLI: settings -> model, cache and renderer."""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

from .contract.errors import StoryboardError, public_message
from .contract.settings import Settings
from .contract.storyboard import Storyboard
from .images.backends import BACKENDS, REMOTE_BACKENDS, BackendChoice, choose_backend, remote_default
from .images.cache import KeyframeCache
from .images.clip_cache import ClipCache
from .images.clip_stage import NO_VIDEO_MODEL_REASON
from .images.model_names import DEFAULT_VIDEO_MODEL_ID, check_model_id
from .outputs import remove_unfinished_outputs
from .renderer import Renderer

_SHOWN_CHARS = 60  # of a refused model id an error message repeats
_MAX_RENDERERS = 8  # renderers kept for recently picked models (the registry caps loaded weights)


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


@functools.lru_cache(maxsize=1)
def _gpu_present() -> bool:
    """Asked once per process (it may import torch)."""
    from .images.backends import gpu_present

    return gpu_present()


def build_renderer(settings: Settings, output_dir: Path | None = None,
                   storyboard: Storyboard | None = None) -> Renderer:
    """A Renderer for the configured model (loaded now with ``preload``), writing to ``output_dir``; with
    ``storyboard``, also for its video model when it animates anything."""
    if output_dir is not None:
        settings = replace(settings, output_dir=output_dir)
    pool = RendererPool(settings)
    if settings.preload:
        pool.preload()
    return pool.for_storyboard(storyboard) if storyboard is not None else pool.get()


class RendererPool:
    """One Renderer per model id, all sharing one keyframe cache and output folder.

    Models come from the process's registry (``pipeline.images.registry``), which loads
    each once and keeps at most ``settings.max_loaded_models`` loaded per device.
    """

    def __init__(self, settings: Settings):
        from .images.registry import REGISTRY

        self.settings = settings
        # A restart after kill -9 removes that process's unfinished render folders now, not in 24 hours.
        remove_unfinished_outputs(settings.output_dir)
        self.cache = KeyframeCache(settings.cache_dir, max_bytes=settings.cache_max_mb * 1024 * 1024)
        self.clip_cache = ClipCache(settings.cache_dir / "clips", max_bytes=settings.cache_max_mb * 1024 * 1024)
        REGISTRY.max_resident = settings.max_loaded_models
        self._renderers: OrderedDict[tuple[str, str], Renderer] = OrderedDict()
        self._choices: dict[str, BackendChoice] = {}
        self._lock = threading.Lock()

    def check(self, storyboard: Storyboard) -> None:
        """Raise StoryboardError if this server may not render ``storyboard`` (see :meth:`get`)."""
        self._checked_model_id(storyboard.model)
        self.video_model_id_for(storyboard.video_model)

    def video_model_id_for(self, model_id: str | None) -> str:
        """The video model a storyboard naming ``model_id`` renders with ("" for none): the server's when
        None or the same; another one only with ``allow_model_change`` (else StoryboardError, as for ``model``).

        The server's is ``--video-model``, else the default one where a GPU is present; none on a CPU."""
        server = self.settings.video_model or (DEFAULT_VIDEO_MODEL_ID if _gpu_present() else "")
        wanted = (model_id or "").strip()
        if not wanted or wanted == server:
            return server
        if not self.settings.allow_model_change:
            shown = f"'{server}'" if server else "no video model"
            raise StoryboardError(
                f"Storyboard: video_model '{_shown(wanted)}' cannot be used on this server; it renders with "
                f"{shown} only (leave video_model out of the storyboard to use it)."
            )
        return check_model_id(wanted, self.settings.model_root_paths(), default=server or None)

    def _checked_model_id(self, model_id: str | None) -> str:
        model_id = self.model_id_for(model_id)
        if model_id != self.settings.model:  # a visitor's choice: a hub id or a model under the model roots
            model_id = check_model_id(model_id, self.settings.model_root_paths(), default=self.settings.model)
        return model_id

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

    def for_storyboard(self, storyboard: Storyboard, backend: str | None = None) -> Renderer:
        """The renderer for ``storyboard``'s image model and, when it animates anything, its video model."""
        video = self.video_model_id_for(storyboard.video_model) if storyboard.wants_video_model else ""
        return self.get(storyboard.model, backend, video_model=video)

    def get(self, model_id: str | None = None, backend: str | None = None, video_model: str = "") -> Renderer:
        """The renderer for ``backend`` and ``model_id`` (a diffusers model; the configured one when None;
        another one only with ``allow_model_change``, else StoryboardError instead of ignoring it). A remote
        backend always uses the configured remote model: a visitor never names what the server's key is spent on.

        Raises StoryboardError (one message for every refusal) for a model a visitor may not load:
        see :func:`pipeline.images.model_names.check_model_id`.
        """
        backend = self._allowed_backend(backend)
        model_id = self._checked_model_id(model_id)
        with self._lock:  # a background warm-up and a first request may both get here
            choice = self._choice(backend)
            if choice.name in REMOTE_BACKENDS:
                model_id = self.settings.remote_model
            return self._renderer_for(choice, model_id, video_model)

    def backend_for(self, backend: str | None = None) -> BackendChoice:
        """The backend a render asking for ``backend`` gets, and why (for the model line)."""
        with self._lock:
            return self._choice(self._allowed_backend(backend))

    def _allowed_backend(self, backend: str | None) -> str:
        if not backend or not self.settings.allow_backend_change or backend not in BACKENDS:
            return self.settings.backend
        return backend

    def _choice(self, backend: str) -> BackendChoice:
        """The backend ``backend`` names (``auto`` is decided once per pool: it may import torch)."""
        if backend not in self._choices:
            self._choices[backend] = choose_backend(backend, self.settings.device)
        return self._choices[backend]

    def _renderer_for(self, choice: BackendChoice, model_id: str, video_model: str = "") -> Renderer:
        from .images.registry import get_image_model

        key = (choice.name, model_id, video_model)
        if key not in self._renderers:
            if choice.name in REMOTE_BACKENDS:
                s = self.settings
                options = dict(max_in_flight=s.max_requests_in_flight, timeout=s.remote_timeout,
                               chosen_because=choice.because)
                if choice.name == "hf-inference":
                    options["provider"] = s.remote_provider
                else:
                    options["quality"] = s.remote_quality
                model = get_image_model(model_id or remote_default(choice.name), backend=choice.name, options=options)
            else:
                # batch_size None (the default) is auto: the stage hands the model large groups and
                # each manager sizes its batches from free GPU memory; a number caps both.
                model = get_image_model(model_id, device=self.settings.device, batch_size=self.settings.batch_size,
                                        allow_pickle=self.settings.allow_pickle_weights,
                                        decoder=self.settings.decoder, tiny_decoder=self.settings.tiny_decoder)
            video, why_not = self.video_backend(video_model)
            self._renderers[key] = Renderer(
                self.settings.output_dir, model=model, cache=self.cache, batch_size=self.settings.batch_size,
                output_max_age_hours=self.settings.output_max_age_hours, controlnet=self.settings.controlnet_model,
                video_model=video, clip_cache=self.clip_cache, clip_size=self.settings.clip_size_pair(),
                no_video_model=why_not,
            )
            while len(self._renderers) > _MAX_RENDERERS:
                self._renderers.popitem(last=False)
        self._renderers.move_to_end(key)
        return self._renderers[key]

    def video_backend(self, model_id: str):
        """The shared video backend for ``model_id`` (a checked id from :meth:`video_model_id_for`; "": none),
        or None and why not when there is none."""
        if not model_id:
            return None, NO_VIDEO_MODEL_REASON
        from .images import registry

        get_video_model = getattr(registry, "get_video_model", None)  # the video backends' registry entry
        if get_video_model is None:
            return None, "this build has no video backend"
        try:
            return get_video_model(model_id, device=self.settings.device, batch_size=self.settings.batch_size,
                                   allow_pickle=self.settings.allow_pickle_weights), ""
        except Exception as exc:  # torch missing or broken: every clip falls back with the reason
            return None, f"the video model {_shown(model_id)} is not available: {public_message(exc)}"

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
