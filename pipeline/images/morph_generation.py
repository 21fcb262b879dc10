"""A morph's in-between images: the pipeline called with interpolated prompt embeddings and noise.

For an in-between request (``request.between``: endpoints ``start``/``end`` and ``t``),
:func:`inbetween_kwargs` turns the diffusers call the backend built for a batch of
requests into one that walks from one keyframe to the next:

* prompt embeddings: each endpoint's prompt (and negative prompt) is encoded exactly as
  its keyframe's was (``pipe.encode_prompt``), and the two are interpolated linearly;
  SDXL's pooled embeddings likewise;
* initial noise: each endpoint's seeded noise is drawn exactly as the pipeline draws it
  for the keyframe (same generator, device, dtype and shape; the pipeline itself then
  scales what it is given by the scheduler's ``init_noise_sigma``, as it does for noise it
  draws), and the two are interpolated spherically (:func:`slerp`), which keeps the
  noise's statistics where a straight line would shrink it towards zero;
* the scheduler's own randomness (ancestral and LCM schedulers) comes from the start
  keyframe's generator, advanced past its noise as in the keyframe's own call, so
  ``t = 0`` reproduces the start keyframe.

Every image has its own endpoints and generators, so a batch gives the same images as
one request at a time. torch is imported inside the functions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .generation import ImageRequest

# Below this angle between the two noises (cosine above 1 - 1e-6) slerp is a plain lerp:
# sin(theta) -> 0 would divide by (almost) zero, and the two paths agree there anyway.
_PARALLEL_COS = 1.0 - 1e-6


def slerp(v0: Any, v1: Any, t: float) -> Any:
    """Spherical interpolation between tensors ``v0`` and ``v1`` (same shape) at ``t`` in [0, 1].

    Exactly ``v0`` at ``t <= 0`` and ``v1`` at ``t >= 1``. Along the great circle
    between their directions, with the norm interpolated linearly; nearly parallel
    (or antiparallel) inputs fall back to the linear interpolation. Computed in
    float64 and returned in ``v0``'s dtype.
    """
    import torch

    if t <= 0.0:
        return v0.clone()
    if t >= 1.0:
        return v1.clone()
    a, b = v0.double(), v1.double()
    norm_a, norm_b = a.norm(), b.norm()
    if norm_a == 0 or norm_b == 0:
        return torch.lerp(a, b, t).to(v0.dtype)
    cos = float((a.flatten() @ b.flatten()) / (norm_a * norm_b))
    if abs(cos) > _PARALLEL_COS:
        return torch.lerp(a, b, t).to(v0.dtype)
    theta = torch.arccos(torch.tensor(cos, dtype=torch.float64))
    sin = torch.sin(theta)
    w0, w1 = torch.sin((1.0 - t) * theta) / sin, torch.sin(t * theta) / sin
    return (w0 * a + w1 * b).to(v0.dtype)


def lerp_embeddings(start: Any, end: Any, t: float) -> Any:
    """The linear interpolation of two prompt embeddings (None stays None)."""
    if start is None or end is None:
        return None
    if t <= 0.0:
        return start
    if t >= 1.0:
        return end
    return start + (end - start) * t


def inbetween_kwargs(
    pipe: Any, batch: Sequence[ImageRequest], kwargs: dict[str, Any], make_generator: Callable[[int], Any],
    device: Any = None,
) -> dict[str, Any]:
    """The pipeline's keyword arguments for a batch of in-between requests (all with ``between``).

    ``kwargs`` is the call built for plain requests (size, steps, guidance, callbacks);
    its ``prompt``/``negative_prompt``/``generator`` are replaced by ``prompt_embeds``,
    ``negative_prompt_embeds`` (and SDXL's pooled ones), ``latents`` and one advanced
    generator per image. ``make_generator(seed)`` is the backend's seeded generator;
    ``device`` where the pipeline runs (None: ask the pipeline, which is slow).
    Each endpoint is encoded and its noise drawn once per batch.
    """
    import torch

    call = {k: v for k, v in kwargs.items() if k not in ("prompt", "negative_prompt", "generator")}
    endpoints = _Endpoints(pipe, kwargs, make_generator, device)
    parts: list[list[Any]] = []
    latents, generators = [], []
    with torch.no_grad():  # as inside the pipeline's own call: no autograd graph for the text encoder
        for request in batch:
            ends, t = request.between, request.between.t
            start, end = endpoints.get(ends.start), endpoints.get(ends.end)
            parts.append([lerp_embeddings(a, b, t) for a, b in zip(start.embeddings, end.embeddings)])
            latents.append(slerp(start.noise, end.noise, t))
            generator = make_generator(ends.start.seed)
            generator.set_state(start.generator_state)  # advanced past the start keyframe's noise
            generators.append(generator)
    names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
    for position, name in enumerate(names[:len(parts[0])]):
        values = [p[position] for p in parts]
        if all(v is not None for v in values):
            call[name] = torch.cat(values, dim=0)
    call["latents"] = torch.cat(latents, dim=0)
    call["generator"] = generators
    return call


@dataclass
class _Endpoint:
    embeddings: tuple
    noise: Any
    generator_state: Any


class _Endpoints:
    """Each keyframe's embeddings and initial noise, made once per batch."""

    def __init__(self, pipe: Any, kwargs: dict[str, Any], make_generator: Callable[[int], Any], device: Any) -> None:
        self._pipe, self._kwargs, self._make_generator = pipe, kwargs, make_generator
        self._cfg = _uses_guidance(pipe, float(kwargs["guidance_scale"]))
        # The pipeline's own answer walks every module; the backend knows it already.
        self._device = device if device is not None else pipe._execution_device
        self._made: dict[tuple, _Endpoint] = {}

    def get(self, request: ImageRequest) -> _Endpoint:
        key = (request.prompt, request.negative_prompt, request.seed)
        if key not in self._made:
            embeddings = _encode(self._pipe, request, self._cfg, self._device)
            generator = self._make_generator(request.seed)
            noise = _noise(self._pipe, self._kwargs, embeddings[0].dtype, generator, self._device)
            self._made[key] = _Endpoint(embeddings, noise, generator.get_state())
        return self._made[key]


def _uses_guidance(pipe: Any, guidance_scale: float) -> bool:
    """Whether the pipeline will run classifier-free guidance (and so needs negative embeddings)."""
    config = getattr(getattr(pipe, "unet", None), "config", None)
    return guidance_scale > 1.0 and getattr(config, "time_cond_proj_dim", None) is None


def _encode(pipe: Any, request: ImageRequest, cfg: bool, device: Any) -> tuple:
    """``request``'s prompt embeddings exactly as its keyframe's call makes them (SD: 2 tensors, SDXL: 4)."""
    encoded = pipe.encode_prompt(
        prompt=request.prompt, device=device, num_images_per_prompt=1,
        do_classifier_free_guidance=cfg, negative_prompt=request.negative_prompt or None,
    )
    return tuple(encoded)


def _noise(pipe: Any, kwargs: dict[str, Any], dtype: Any, generator: Any, device: Any) -> Any:
    """One image's initial noise from ``generator``, unscaled, as ``pipe.prepare_latents`` draws it."""
    from diffusers.utils.torch_utils import randn_tensor

    scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    shape = (1, pipe.unet.config.in_channels, int(kwargs["height"]) // scale, int(kwargs["width"]) // scale)
    return randn_tensor(shape, generator=generator, device=device, dtype=dtype)
