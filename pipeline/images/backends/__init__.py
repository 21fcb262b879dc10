"""Image backends besides the local diffusers model, and how ``--backend`` picks one.

``diffusers`` (pipeline.images.diffusers_backend) runs a model on this machine;
``openai`` and ``hf-inference`` ask a web service with the server owner's key.
``auto`` picks: diffusers when there is a GPU, else openai when ``OPENAI_API_KEY`` is set,
else hf-inference when ``HF_TOKEN`` is set, else diffusers on the CPU.
Nothing here imports torch unless it is installed and ``auto`` needs to look for a GPU.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

BACKENDS: tuple[str, ...] = ("auto", "diffusers", "openai", "hf-inference")
REMOTE_BACKENDS: tuple[str, ...] = ("openai", "hf-inference")
# OpenAI's image qualities (GPT image models: low, medium, high; dall-e-3: standard, hd); auto: the service's.
REMOTE_QUALITIES: tuple[str, ...] = ("auto", "low", "medium", "high", "standard", "hd")


@dataclass(frozen=True)
class BackendChoice:
    """The backend to use and, for ``auto``, why it was chosen (shown on the model line)."""

    name: str
    because: str = ""


def gpu_present() -> bool:
    """True when torch is installed and sees a CUDA (or Apple MPS) GPU, or on a ZeroGPU Space."""
    from ..zerogpu import zerogpu_available

    if zerogpu_available():
        return True
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    if torch.cuda.is_available():
        return True
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_backend(requested: str, device: str | None = None, env: dict[str, str] | None = None) -> BackendChoice:
    """``requested`` itself, or for ``auto`` the first that fits this machine and its keys.

    A ``device`` given on purpose (``--device cpu``) means the local model: auto then picks diffusers.
    """
    if requested != "auto":
        return BackendChoice(requested)
    if device:
        return BackendChoice("diffusers", f"auto: --device {device} was given")
    env = os.environ if env is None else env
    if gpu_present():
        return BackendChoice("diffusers", "auto: a GPU is present")
    if env.get("OPENAI_API_KEY", "").strip():
        return BackendChoice("openai", "auto: no GPU, OPENAI_API_KEY is set")
    if env.get("HF_TOKEN", "").strip():
        return BackendChoice("hf-inference", "auto: no GPU, HF_TOKEN is set")
    return BackendChoice("diffusers", "auto: no GPU and no remote key")


def remote_default(backend: str) -> str:
    """The model a remote backend uses when ``--remote-model`` is not given."""
    if backend == "openai":
        from .openai_images import DEFAULT_OPENAI_MODEL

        return DEFAULT_OPENAI_MODEL
    from .hf_inference import DEFAULT_HF_MODEL

    return DEFAULT_HF_MODEL
