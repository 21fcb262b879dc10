"""The process-wide registry of image backends: one shared instance per backend, model and device.

Every session asks here, so a model's weights are loaded once per process and
device. Backends are made by name from :data:`BACKENDS` (``diffusers`` here; remote
services and test stand-ins register their own). Resident models are capped per
device (default one): when a model is about to load its weights, the least recently
used other models on that device are unloaded first and their memory freed, so
picking model after model in the page never fills the GPU. Backends that hold no
device memory (remote services) are not capped.

Video models (``get_video_model``: LTX-Video, Wan) are shared the same way and capped the same
way, but the cap counts each kind apart: at most ``max_resident`` image models *and* at most
``max_resident`` video models are resident per device. A render that uses both (keyframes,
then clips) so keeps both loaded on a GPU, and renders after it load neither again; loading a
second video model unloads the least recently used video model on that device, never the
image model. (On a GPU too small for both, the weights that do not fit run with CPU offload.)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .diffusers_backend import ModelManager
from .generation import ImageModel
from .model_names import default_model_id, default_video_model_id
from .multi_gpu import MultiDeviceModel
from .video_backends.manager import VideoModelManager

DEFAULT_MAX_RESIDENT = 1
_MAX_KNOWN = 16  # models remembered (not loaded) at most; the oldest unloaded ones are forgotten


@dataclass(frozen=True)
class BackendSpec:
    """How to make one kind of backend, and whether its models occupy device memory."""

    make: Callable[["ModelKey"], ImageModel | VideoModelManager]
    resident: bool = True
    kind: str = "image"  # "image" or "video": the per-device cap counts each kind apart


@dataclass(frozen=True)
class ModelKey:
    """Everything that tells two shared backends apart."""

    backend: str
    model_id: str
    device: str | None
    local_files_only: bool = False
    batch_size: int | None = None
    options: tuple[tuple[str, object], ...] = ()  # a remote backend's settings (provider, in flight, timeout)
    allow_pickle: bool = False  # load pickled (.bin/.ckpt) weights: only when the server's owner opts in
    decoder: str = "auto"  # the server's decoder setting (full, tiny, auto)
    tiny_decoder: str | None = None  # hub id or folder of the tiny autoencoder; None: the family's


def _make_diffusers(key: ModelKey) -> ImageModel:
    return ModelManager(key.model_id, key.device, local_files_only=key.local_files_only, batch_size=key.batch_size,
                        allow_pickle=key.allow_pickle, decoder=key.decoder, tiny_decoder=key.tiny_decoder)


def _make_remote(key: ModelKey) -> ImageModel:
    from .backends.hf_inference import HFInferenceModel
    from .backends.openai_images import OpenAIImageModel

    kind = OpenAIImageModel if key.backend == "openai" else HFInferenceModel
    return kind(key.model_id, **dict(key.options))


def _make_video(key: ModelKey) -> VideoModelManager:
    options = dict(key.options)
    max_frames = options.get("max_frames")
    return VideoModelManager(key.model_id, key.device, local_files_only=key.local_files_only,
                             allow_pickle=key.allow_pickle, max_frames=int(max_frames) if max_frames else None,
                             batch_size=key.batch_size)


VIDEO_BACKEND = "diffusers-video"

BACKENDS: dict[str, BackendSpec] = {
    "diffusers": BackendSpec(_make_diffusers),
    # Video models (LTX-Video, Wan): the family is read from the checkpoint (pipeline.images.video_backends).
    VIDEO_BACKEND: BackendSpec(_make_video, kind="video"),
    # Remote services hold no device memory. Keys come from the environment (pipeline.images.backends).
    "openai": BackendSpec(_make_remote, resident=False),
    "hf-inference": BackendSpec(_make_remote, resident=False),
}
"""Backends by the name the ``backend`` setting uses."""


def register_backend(name: str, spec: BackendSpec) -> None:
    """Make backend ``name`` available to the registry (and to the ``backend`` setting)."""
    BACKENDS[name] = spec


class ModelRegistry:
    """Shared backends, at most ``max_resident`` loaded per device. Thread-safe."""

    def __init__(self, max_resident: int = DEFAULT_MAX_RESIDENT) -> None:
        self.max_resident = max(1, max_resident)
        self._models: OrderedDict[ModelKey, ImageModel] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, model_id: str | None = None, device: str | None = None, *, backend: str = "diffusers",
            local_files_only: bool = False, batch_size: int | None = None,
            options: dict[str, object] | None = None, allow_pickle: bool = False, decoder: str = "auto",
            tiny_decoder: str | None = None) -> ImageModel:
        """The shared backend to render with; nothing is loaded here.

        For ``diffusers`` with no device forced and several CUDA devices, a
        MultiDeviceModel over all of them (one shared manager per device).
        ``options``: keyword arguments for a remote backend (its model id is used as given).
        """
        if backend == "diffusers" and device is None and _cuda_count() > 1:
            return self._multi(model_id, local_files_only, batch_size, allow_pickle, decoder, tiny_decoder)
        if backend != "diffusers":
            extra = tuple(sorted((options or {}).items()))
            return self._entry(ModelKey(backend, model_id or "", device, local_files_only, batch_size, extra))
        return self._entry(ModelKey(backend, normalise_model_id(model_id), device, local_files_only, batch_size,
                                    allow_pickle=allow_pickle, decoder=decoder, tiny_decoder=tiny_decoder))

    def manager(self, model_id: str | None = None, device: str | None = None, *, local_files_only: bool = False,
                batch_size: int | None = None, allow_pickle: bool = False, decoder: str = "auto",
                tiny_decoder: str | None = None) -> ModelManager:
        """The shared diffusers manager for one model on one device."""
        model = self._entry(ModelKey("diffusers", normalise_model_id(model_id), device, local_files_only, batch_size,
                                     allow_pickle=allow_pickle, decoder=decoder, tiny_decoder=tiny_decoder))
        assert isinstance(model, ModelManager)
        return model

    def video(self, model_id: str | None = None, device: str | None = None, *, local_files_only: bool = False,
              allow_pickle: bool = False, max_frames: int | None = None,
              batch_size: int | None = None) -> VideoModelManager:
        """The shared video backend for one model on one device; nothing is loaded here.

        ``max_frames`` caps the frames of one model call (None: the family's own cap);
        ``batch_size`` the clips of one call (None: auto, from free GPU memory).
        """
        model_id = normalise_model_id(model_id or default_video_model_id())
        options = (("max_frames", max_frames),) if max_frames else ()
        model = self._entry(ModelKey(VIDEO_BACKEND, model_id, device, local_files_only, batch_size, options,
                                     allow_pickle=allow_pickle))
        assert isinstance(model, VideoModelManager)
        return model

    def model_ids(self) -> list[str]:
        """The ids of every model the registry holds (loaded or not)."""
        with self._lock:
            return [key.model_id for key in self._models]

    def clear(self) -> None:
        """Forget every shared instance; loaded weights are freed once unreferenced."""
        with self._lock:
            self._models.clear()

    def _entry(self, key: ModelKey) -> ImageModel | VideoModelManager:
        with self._lock:
            model = self._models.get(key)
            if model is None:
                spec = BACKENDS[key.backend]
                model = spec.make(key)
                if spec.resident and isinstance(model, (ModelManager, VideoModelManager)):
                    model.before_load = lambda: self._make_room(key)
                self._models[key] = model
                self._forget_unloaded()
            self._models.move_to_end(key)
            return model

    def _multi(self, model_id: str | None, local_files_only: bool, batch_size: int | None,
               allow_pickle: bool = False, decoder: str = "auto", tiny_decoder: str | None = None) -> MultiDeviceModel:
        key = ModelKey("diffusers-multi", normalise_model_id(model_id), "cuda", local_files_only, batch_size,
                       allow_pickle=allow_pickle, decoder=decoder, tiny_decoder=tiny_decoder)
        with self._lock:
            multi = self._models.get(key)
            if multi is None:
                managers = {
                    f"cuda:{i}": self.manager(model_id, f"cuda:{i}", local_files_only=local_files_only,
                                              batch_size=batch_size, allow_pickle=allow_pickle, decoder=decoder,
                                              tiny_decoder=tiny_decoder)
                    for i in range(_cuda_count())
                }
                multi = self._models[key] = MultiDeviceModel(managers, batch_size)
            self._models.move_to_end(key)
            assert isinstance(multi, MultiDeviceModel)
            return multi

    def _make_room(self, loading: ModelKey) -> None:
        """Unload the least recently used loaded models of ``loading``'s kind on its device beyond the cap."""
        with self._lock:
            self._models.move_to_end(loading)
            kind = _kind(loading.backend)
            others = [model for key, model in self._models.items()
                      if key != loading and key.device == loading.device and _kind(key.backend) == kind
                      and isinstance(model, (ModelManager, VideoModelManager)) and model.loaded]
        for model in others[: max(0, len(others) - (self.max_resident - 1))]:
            model.reset()  # waits for its running batch, then frees the weights

    def _forget_unloaded(self) -> None:
        excess = len(self._models) - _MAX_KNOWN
        for key in [k for k, m in self._models.items() if not getattr(m, "loaded", False)][:max(0, excess)]:
            del self._models[key]


def _kind(backend: str) -> str:
    spec = BACKENDS.get(backend)
    return spec.kind if spec is not None else "image"  # "diffusers-multi" groups image managers


def normalise_model_id(model_id: str | None) -> str:
    """The id as given (or the default), with a local path made absolute so two spellings share one model."""
    model_id = (model_id or default_model_id()).strip()
    path = Path(model_id).expanduser()
    return str(path.resolve()) if path.exists() else model_id


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


REGISTRY = ModelRegistry()
"""The process's registry; ``pipeline.service`` and the app use it."""


def get_image_model(model_id: str | None = None, device: str | None = None, *, backend: str = "diffusers",
                    local_files_only: bool = False, batch_size: int | None = None,
                    options: dict[str, object] | None = None, allow_pickle: bool = False, decoder: str = "auto",
                    tiny_decoder: str | None = None) -> ImageModel:
    """:meth:`ModelRegistry.get` on the process's registry."""
    return REGISTRY.get(model_id, device, backend=backend, local_files_only=local_files_only, batch_size=batch_size,
                        options=options, allow_pickle=allow_pickle, decoder=decoder, tiny_decoder=tiny_decoder)


def get_video_model(model_id: str | None = None, device: str | None = None, *, local_files_only: bool = False,
                    allow_pickle: bool = False, max_frames: int | None = None,
                    batch_size: int | None = None) -> VideoModelManager:
    """:meth:`ModelRegistry.video` on the process's registry: the shared video backend (LTX-Video, Wan)."""
    return REGISTRY.video(model_id, device, local_files_only=local_files_only, allow_pickle=allow_pickle,
                          max_frames=max_frames, batch_size=batch_size)


def get_model_manager(model_id: str | None = None, device: str | None = None, *, local_files_only: bool = False,
                      batch_size: int | None = None, allow_pickle: bool = False) -> ModelManager:
    """:meth:`ModelRegistry.manager` on the process's registry."""
    return REGISTRY.manager(model_id, device, local_files_only=local_files_only, batch_size=batch_size,
                            allow_pickle=allow_pickle)
