"""What every locally loaded diffusers pipeline shares: device and dtype choice, one load at a time, state.

:class:`ResidentPipeline` is the lifecycle of one pipeline on one device, loaded once and
shared by every session: ``load`` (never raises; a failure is remembered until ``reset``),
``reset`` (frees the weights once the running call ends), ``info``'s state and device, and
the registry's ``before_load`` hook. The image backend (``diffusers_backend.ModelManager``)
and the video backend (``video_backends.manager.VideoModelManager``) subclass it and supply
``_load_once`` (and what else they forget on reset).

torch is imported inside functions only.
"""

from __future__ import annotations

import gc
import threading
from typing import Any, Callable

from ..contract.errors import short_error
from .generation import ModelState

LOADING = threading.Lock()
"""One load at a time in the process: diffusers and transformers import their classes lazily,
and two threads importing them at once can see half-made modules."""


def pick_device() -> str:
    """``cuda`` when present, else Apple's ``mps``, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str) -> Any:
    """bf16 on a CUDA device that has it (else fp16), fp16 on MPS, fp32 on the CPU."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def weights_bytes(pipe: Any) -> int:
    """The bytes of every torch module's parameters in ``pipe``'s components."""
    import torch

    total = 0
    for component in getattr(pipe, "components", {}).values():
        if isinstance(component, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in component.parameters())
    return total


def empty_device_cache(device: str) -> None:
    """Give the device's cached free memory back (after a failed attempt or an unload)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        gc.collect()  # cycles may still hold tensors from the failed attempt
        torch.cuda.empty_cache()
    elif device.startswith("mps") and hasattr(torch, "mps"):
        gc.collect()
        torch.mps.empty_cache()


class ResidentPipeline:
    """One pipeline on one device: loaded once under a lock, its failure remembered, freed on reset.

    Subclasses implement ``_load_once`` (set ``self._pipe`` or ``self._load_error``) and may
    extend ``_forget`` (called under both locks by :meth:`reset`). All device work of a
    subclass runs under ``self._gpu_lock``.
    """

    def __init__(self, model_id: str, device: str | None) -> None:
        self.model_id = model_id
        self._requested_device = device
        self._device: str | None = None
        self._dtype: Any = None
        self._pipe: Any = None
        self._offloaded = False
        self._load_error: str | None = None
        self._loading = False
        self._load_lock = threading.Lock()
        self._gpu_lock = threading.Lock()
        # Called just before the weights load: the registry frees the device for them.
        self.before_load: Callable[[], None] | None = None

    @property
    def pipeline(self) -> Any:
        """The loaded diffusers pipeline, or None before loading / after a failure."""
        return self._pipe

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    @property
    def load_error(self) -> str | None:
        """The remembered load failure (short text), or None."""
        return self._load_error

    @property
    def device(self) -> str:
        """The device the model runs on (chosen automatically unless given)."""
        if self._device is None:
            self._device = self._requested_device or pick_device()
        return self._device

    def load(self) -> bool:
        """Load the pipeline now if needed; True when it is ready. Never raises.

        A failure is remembered and not retried until :meth:`reset`.
        """
        if self._pipe is not None:
            return True
        if self._load_error is not None:
            return False
        with self._load_lock:
            if self._pipe is None and self._load_error is None:
                self._loading = True
                try:
                    if self.before_load is not None:
                        self.before_load()
                    with LOADING:
                        self._load_once()
                finally:
                    self._loading = False
        return self._pipe is not None

    def reset(self) -> None:
        """Forget the loaded pipeline (freeing its memory, once a running call ends) and any
        remembered failure; the next use loads again."""
        with self._load_lock, self._gpu_lock:
            device = self._device
            self._pipe, self._load_error, self._offloaded = None, None, False
            self._forget()
        if device is not None:
            empty_device_cache(device)

    def _forget(self) -> None:
        """What else a reset forgets (called under both locks)."""

    def _load_once(self) -> None:
        raise NotImplementedError

    def _state(self) -> tuple[ModelState, str, str, str]:
        """(state, reason, device, dtype) for ``info``; works even where torch cannot be imported."""
        if self._load_error is not None:
            state, reason = "failed", self._load_error
        else:
            state, reason = ("loaded" if self._pipe is not None else "loading" if self._loading else "not loaded"), ""
        try:
            device = self.device
            dtype = str(self._dtype or pick_dtype(device)).replace("torch.", "")
        except Exception as exc:  # noqa: BLE001 - info must work even without torch
            device, dtype = self._requested_device or "unknown", f"unknown ({short_error(exc)})"
        return state, reason, device, dtype
