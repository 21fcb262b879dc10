"""Guided generation for the diffusers backend: image-to-image and ControlNet, on the resident weights.

A request with an ``init`` (start from a picture) or a ``control`` (ControlNet layout guidance)
runs here instead of the text-to-image call. The pipelines come from diffusers' ``from_pipe``
on the manager's loaded pipeline, so they share its weights (no second load); each is built
once and kept beside the resident pipeline (forgotten with it). A ControlNet model is loaded
once per id, onto the pipeline's device.

Steps: image-to-image runs only ``int(steps * strength)`` of the steps, so steps are raised
until that is at least one (a turbo model at strength 0.5 gets 2 steps, of which 1 runs).
Strength 0 is the start picture itself.

torch and diffusers are imported inside functions only.
"""

from __future__ import annotations

import inspect
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..contract.errors import short_error
from .batching import round8
from .generation import GeneratedImage, ImageRequest, Pictures, StepCallback

if TYPE_CHECKING:
    from .diffusers_backend import ModelManager

log = logging.getLogger(__name__)

# Resident pipeline -> {what: pipeline or ControlNet model}. Weak keys: unloading the model frees them too.
_BUILT: "weakref.WeakKeyDictionary[Any, dict[tuple, Any]]" = weakref.WeakKeyDictionary()
_BUILD_LOCK = threading.Lock()


def run_guided_batch(
    manager: "ModelManager",
    requests: list[ImageRequest],
    chunk: list[int],
    on_step: StepCallback | None,
    should_stop: Callable[[], bool] | None,
) -> dict[int, GeneratedImage]:
    """Generate ``requests`` at positions ``chunk`` (one batch key: same strength and ControlNet).

    Same contract as the manager's text-to-image batch: one answer per position; raises only
    for errors the manager turns into per-scene reasons (out of memory is retried smaller).
    """
    from .diffusers_backend import _BatchState

    batch = [requests[p] for p in chunk]
    first = batch[0]
    strength = first.init.strength if first.init is not None else None
    if strength is not None and strength <= 0.0 and first.control is None:
        return {p: GeneratedImage(r.scene_index, _pictures(r).init) for p, r in zip(chunk, batch)}
    pipe = guided_pipeline(manager, image_to_image=strength is not None,
                           controlnet=first.control.model if first.control is not None else "")
    steps = steps_for_strength(first.steps, strength) if strength is not None else first.steps
    state = _BatchState(scene_indices=[r.scene_index for r in batch], total_steps=steps,
                        xl="XL" in type(pipe).__name__, on_step=on_step, should_stop=should_stop)
    kwargs = _call_arguments(manager, batch, steps, strength)
    if "callback_on_step_end" in inspect.signature(pipe.__call__).parameters:
        kwargs["callback_on_step_end"] = lambda p, step, timestep, tensors: manager._on_step_end(state, p, step, tensors)
        kwargs["callback_on_step_end_tensor_inputs"] = ["latents"]
    with manager._gpu_lock:
        images = np.asarray(pipe(**kwargs).images)
    return manager._collect(requests, chunk, images, state)


def steps_for_strength(steps: int, strength: float) -> int:
    """Steps to ask for so that image-to-image at ``strength`` runs at least one (``int(steps*strength) >= 1``)."""
    steps = max(1, steps)
    while int(steps * strength) < 1:
        steps += 1
    return steps


def _call_arguments(manager: "ModelManager", batch: list[ImageRequest], steps: int,
                    strength: float | None) -> dict[str, Any]:
    first = batch[0]
    kwargs: dict[str, Any] = {
        "prompt": [r.prompt for r in batch],
        "num_inference_steps": steps,
        "guidance_scale": first.guidance_scale,
        "generator": [manager._generator(r.seed) for r in batch],
        "output_type": "np",
    }
    if first.negative_prompt:
        kwargs["negative_prompt"] = [r.negative_prompt for r in batch]
    if strength is not None:
        kwargs["image"] = [_pictures(r).init for r in batch]
        kwargs["strength"] = strength
    if first.control is not None:
        kwargs["control_image" if strength is not None else "image"] = [_pictures(r).control for r in batch]
        kwargs["controlnet_conditioning_scale"] = first.control.scale
    if strength is None or first.control is not None:
        kwargs["width"], kwargs["height"] = round8(first.width), round8(first.height)
    return kwargs


def _pictures(request: ImageRequest) -> Pictures:
    """The request's resolved input pictures; an unresolved one is a bug in the caller."""
    pictures = request.pictures
    if pictures is None or (request.init is not None and pictures.init is None) or (
            request.control is not None and pictures.control is None):
        raise ValueError(f"scene {request.scene_index + 1}: its input pictures were not resolved")
    return pictures


def guided_pipeline(manager: "ModelManager", image_to_image: bool, controlnet: str = "") -> Any:
    """The image-to-image and/or ControlNet pipeline sharing ``manager``'s loaded weights (built once)."""
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    base = manager.pipeline
    if base is None:
        raise RuntimeError("the model is not loaded")
    with _BUILD_LOCK:
        built = _BUILT.setdefault(base, {})
        key = ("pipe", image_to_image, controlnet)
        if key not in built:
            extra = {"controlnet": _controlnet(manager, built, controlnet)} if controlnet else {}
            auto = AutoPipelineForImage2Image if image_to_image else AutoPipelineForText2Image
            pipe = auto.from_pipe(base, **extra)
            if hasattr(pipe, "set_progress_bar_config"):
                pipe.set_progress_bar_config(disable=True)
            built[key] = pipe
            log.info("Built %s from the resident %s", type(pipe).__name__, type(base).__name__)
        return built[key]


def _controlnet(manager: "ModelManager", built: dict[tuple, Any], model_id: str) -> Any:
    key = ("controlnet", model_id)
    if key not in built:
        from pathlib import Path

        from diffusers import ControlNetModel

        source = str(Path(model_id).expanduser()) if Path(model_id).expanduser().is_dir() else model_id
        kwargs: dict[str, Any] = {"dtype": manager._dtype, "local_files_only": manager.local_files_only}
        if not getattr(manager, "allow_pickle", False):
            kwargs["use_safetensors"] = True  # like the model's own weights: no unpickling
        try:
            controlnet = ControlNetModel.from_pretrained(source, **kwargs)
        except Exception as exc:  # noqa: BLE001 - said per scene by the manager
            raise RuntimeError(f"ControlNet '{model_id}' could not be loaded: {short_error(exc)}") from None
        # With CPU offload the base weights move in and out; the ControlNet is small enough to stay.
        built[key] = controlnet.to(manager.device)
    return built[key]
