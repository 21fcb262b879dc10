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
    allow_pickle: bool = False,
) -> ModelManager:
    """The process-wide ModelManager for these arguments (same arguments, same instance).

    Nothing is loaded here; the model loads on first use or on ``load()``. ``allow_pickle``:
    see :class:`ModelManager` (safetensors only by default).
    """
    key = (_normalise_model_id(model_id), device, local_files_only, batch_size, allow_pickle)
    with _REGISTRY_LOCK:
        manager = _MANAGERS.get(key)
        if manager is None:
            manager = ModelManager(key[0], device, local_files_only=local_files_only, batch_size=batch_size,
                                   allow_pickle=allow_pickle)
            _MANAGERS[key] = manager
        return manager


def get_image_model(
    model_id: str | None = None,
    device: str | None = None,
    *,
    local_files_only: bool = False,
    batch_size: int | None = None,
    allow_pickle: bool = False,
) -> ImageModel:
    """The shared model to render with: a MultiDeviceModel over all GPUs when there are
    several and no device is forced, else the ModelManager from :func:`get_model_manager`.
    """
    if device is None:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count > 1:
            key = (_normalise_model_id(model_id), count, local_files_only, batch_size, allow_pickle)
            with _REGISTRY_LOCK:
                multi = _MULTI.get(key)
            if multi is None:
                managers = {
                    f"cuda:{i}": get_model_manager(
                        model_id, f"cuda:{i}", local_files_only=local_files_only, batch_size=batch_size,
                        allow_pickle=allow_pickle,
                    )
                    for i in range(count)
                }
                with _REGISTRY_LOCK:
                    multi = _MULTI.setdefault(key, MultiDeviceModel(managers, batch_size))
            return multi
    return get_model_manager(model_id, device, local_files_only=local_files_only, batch_size=batch_size,
                             allow_pickle=allow_pickle)


def clear_model_managers() -> None:
    """Forget every shared instance (for tests); loaded weights are freed once unreferenced."""
    with _REGISTRY_LOCK:
        _MANAGERS.clear()
        _MULTI.clear()
