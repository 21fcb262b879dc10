"""How keyframe requests are sized and grouped into batches: pure arithmetic, no torch.

:func:`fit_generation_size` picks the size a model generates at,
:func:`needs_cpu_offload` and :func:`auto_batch_size` turn free GPU memory into
a placement and a batch size, :func:`auto_group_size` says how many scenes to hand
the model at once when it sizes batches itself, and :func:`group_requests`, :func:`plan_batches`
and :func:`assign_batches` split requests into batches (over several devices).
"""

from __future__ import annotations

import math
from typing import Sequence

from .generation import ImageRequest

CPU_BATCH_SIZE = 4
MPS_BATCH_SIZE = 2
MAX_AUTO_BATCH_SIZE = 8
# Scenes handed to the model per call when the batch size is auto: enough for two full
# memory-sized batches on one GPU, or one each on two GPUs (see auto_group_size).
AUTO_GROUP_SIZE = 2 * MAX_AUTO_BATCH_SIZE
GIB = 1024**3
# Rough peak activation memory per generated megapixel in half precision (UNet with SDPA,
# VAE decode sliced per image). Only a first guess: an out-of-memory error halves the batch.
_ACTIVATION_BYTES_PER_MEGAPIXEL = int(1.5 * GIB)
# Kept free beside the weights: one sliced VAE decode, the allocator's slack, other processes.
_HEADROOM_BYTES = int(1.5 * GIB)


def round8(value: float) -> int:
    """``value`` rounded to the nearest multiple of 8 (at least 8), as diffusers wants sizes."""
    return max(8, int(round(value / 8.0)) * 8)


def fit_generation_size(width: int, height: int, native: int) -> tuple[int, int]:
    """Multiples of 8 with the aspect ratio of ``width``x``height`` and an area near ``native``².

    Never larger than the output needs: a small output is generated at its own size.
    """
    width, height = max(1, int(width)), max(1, int(height))
    scale = min(1.0, native / math.sqrt(width * height))
    gen_w, gen_h = round8(width * scale), round8(height * scale)
    # Rounding to 8 may overshoot the output by a few pixels; step down instead.
    if gen_w > width and width >= 8:
        gen_w = width // 8 * 8
    if gen_h > height and height >= 8:
        gen_h = height // 8 * 8
    return gen_w, gen_h


def needs_cpu_offload(weights_bytes: int, free_bytes: int) -> bool:
    """True when the GPU's free memory cannot hold the weights plus working headroom."""
    headroom = max(_HEADROOM_BYTES, weights_bytes // 4)
    return free_bytes < weights_bytes + headroom


def auto_batch_size(free_bytes: int, width: int, height: int, guidance_scale: float) -> int:
    """How many images of this size fit in ``free_bytes`` of GPU memory at once (1..8)."""
    per_image = _ACTIVATION_BYTES_PER_MEGAPIXEL * (width * height / 1e6)
    if guidance_scale > 1.0:
        per_image *= 2  # classifier-free guidance runs the UNet on two copies
    usable = free_bytes - _HEADROOM_BYTES
    if per_image <= 0 or usable <= per_image:
        return 1
    return max(1, min(MAX_AUTO_BATCH_SIZE, int(usable // per_image)))


def auto_group_size(device_count: int = 1) -> int:
    """Scenes per model call when the batch size is auto: :data:`AUTO_GROUP_SIZE`, or one
    full batch per device when there are more GPUs than that covers. The model (each
    device's manager) then cuts the group into batches that fit its free memory."""
    return max(AUTO_GROUP_SIZE, max(1, device_count) * MAX_AUTO_BATCH_SIZE)


def _batch_key(request: ImageRequest) -> tuple:
    # Only requests that share every pipeline-wide argument can run as one batch. Empty vs
    # non-empty negative prompts are kept apart because SDXL encodes "no negative" as zeros.
    # Kinds are kept apart too: a morph's in-between images are called with embeddings and latents.
    # Image-to-image and ControlNet requests run on their own pipelines, one strength per call.
    guide = (request.init.strength if request.init is not None else None,
             request.control.model if request.control is not None else None)
    return (request.width, request.height, request.steps, request.guidance_scale, bool(request.negative_prompt),
            request.kind, guide)


def group_requests(requests: Sequence[ImageRequest]) -> list[list[int]]:
    """Positions of requests that can share a batch, groups in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for position, request in enumerate(requests):
        groups.setdefault(_batch_key(request), []).append(position)
    return list(groups.values())


def plan_batches(requests: Sequence[ImageRequest], device_count: int, batch_size: int | None) -> list[list[list[int]]]:
    """Positions of ``requests`` split into batches per device (see :func:`assign_batches`)."""
    device_count = max(1, device_count)
    plan: list[list[list[int]]] = [[] for _ in range(device_count)]
    load = [0] * device_count
    for group in group_requests(requests):
        # Split each group so every device gets a share, then cap at the batch size.
        size = math.ceil(len(group) / device_count)
        if batch_size:
            size = min(size, max(1, batch_size))
        for start in range(0, len(group), size):
            chunk = group[start:start + size]
            target = load.index(min(load))  # least-loaded device; ties go to the first
            plan[target].append(chunk)
            load[target] += len(chunk)
    return plan


def assign_batches(
    requests: Sequence[ImageRequest], devices: Sequence[str], batch_size: int | None = None
) -> dict[str, list[list[ImageRequest]]]:
    """Spread ``requests`` over ``devices`` as batches of compatible requests.

    Batches never mix sizes, steps or guidance, hold at most ``batch_size``
    requests (``None``: no cap; each device's manager then batches by memory),
    are balanced by image count, and keep request order within each device.
    """
    plan = plan_batches(requests, len(devices), batch_size)
    return {
        device: [[requests[position] for position in batch] for batch in batches]
        for device, batches in zip(devices, plan)
    }
