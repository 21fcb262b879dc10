"""The process-wide registry of image models: one shared instance per model and device.

Every session asks here, so a model's weights are loaded once per process and GPU.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .diffusers_backend import ModelManager
from .generation import ImageModel
from .model_names import default_model_id
from .multi_gpu import MultiDeviceModel

# --------------------------------------------------------------------------- shared instances

_MANAGERS: dict[tuple, ModelManager] = {}
_MULTI: dict[tuple, MultiDeviceModel] = {}
_REGISTRY_LOCK = threading.Lock()


def _normalise_model_id(model_id: str | None) -> str:
    model_id = (model_id or default_model_id()).strip()
    path = Path(model_id).expanduser()
    return str(path.resolve()) if path.exists() else model_id


def get_model_manager(
    model_id: str | None = None,
    device: str | None = None,
    *,
    local_files_only: bool = False,
    batch_size: int | None = None,
) -> ModelManager:
    """The process-wide ModelManager for these arguments (same arguments, same instance).

    Nothing is loaded here; the model loads on first use or on ``load()``.
    """
    key = (_normalise_model_id(model_id), device, local_files_only, batch_size)
    with _REGISTRY_LOCK:
        manager = _MANAGERS.get(key)
        if manager is None:
            manager = ModelManager(key[0], device, local_files_only=local_files_only, batch_size=batch_size)
            _MANAGERS[key] = manager
        return manager


def get_image_model(
    model_id: str | None = None,
    device: str | None = None,
    *,
    local_files_only: bool = False,
    batch_size: int | None = None,
) -> ImageModel:
    """The shared model to render with: a MultiDeviceModel over all GPUs when there are
    several and no device is forced, else the ModelManager from :func:`get_model_manager`.
    """
    if device is None:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count > 1:
            key = (_normalise_model_id(model_id), count, local_files_only, batch_size)
            with _REGISTRY_LOCK:
                multi = _MULTI.get(key)
            if multi is None:
                managers = {
                    f"cuda:{i}": get_model_manager(
                        model_id, f"cuda:{i}", local_files_only=local_files_only, batch_size=batch_size
                    )
                    for i in range(count)
                }
                with _REGISTRY_LOCK:
                    multi = _MULTI.setdefault(key, MultiDeviceModel(managers, batch_size))
            return multi
    return get_model_manager(model_id, device, local_files_only=local_files_only, batch_size=batch_size)


_REMOTE: dict[tuple, ImageModel] = {}


def get_remote_model(backend: str, model: str = "", *, provider: str = "", max_in_flight: int = 4,
                     timeout: float = 120.0, because: str = "") -> ImageModel:
    """The shared remote backend (``openai`` or ``hf-inference``) for these arguments.

    ``model`` "" means the backend's default. No key is read here: each backend reads its
    own from the environment when it loads (see pipeline.images.backends).
    """
    from .backends.hf_inference import DEFAULT_HF_MODEL, DEFAULT_HF_PROVIDER, HFInferenceModel
    from .backends.openai_images import DEFAULT_OPENAI_MODEL, OpenAIImageModel

    key = (backend, model, provider, max_in_flight, timeout, because)
    with _REGISTRY_LOCK:
        found = _REMOTE.get(key)
        if found is None:
            if backend == "openai":
                found = OpenAIImageModel(model or DEFAULT_OPENAI_MODEL, max_in_flight=max_in_flight, timeout=timeout,
                                         chosen_because=because)
            elif backend == "hf-inference":
                found = HFInferenceModel(model or DEFAULT_HF_MODEL, provider=provider or DEFAULT_HF_PROVIDER,
                                         max_in_flight=max_in_flight, timeout=timeout, chosen_because=because)
            else:
                raise ValueError(f"not a remote backend: {backend!r}")
            _REMOTE[key] = found
        return found


def clear_model_managers() -> None:
    """Forget every shared instance (for tests); loaded weights are freed once unreferenced."""
    with _REGISTRY_LOCK:
        _MANAGERS.clear()
        _MULTI.clear()
        _REMOTE.clear()
