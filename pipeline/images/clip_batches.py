"""Which clips of a render share one video-model call: pure planning, no torch.

A batch is several clip requests denoised together in one pipeline call (a prompt list, one
condition picture per clip at each condition's frame, one generator per clip). That is only
possible when everything that is one value per call agrees: frames, size, rate, steps,
guidance, and the shape of the conditioning (a scene clip: its first frame; a generated
transition: its first and last). A clip longer than one call (several calls, each continuing
the last) is always made alone.

Order and dependencies: the first clip of a render is made alone, so the first scene plays as
soon as possible (streaming); later batches gather compatible clips from further on, and a
transition that starts from a scene's clip waits until that clip is made (it is never in the
clip's own batch). Clips of a batch are delivered in the video's order.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .clip_generation import ClipRequest, FrameRules

GIB = 1024**3
MAX_CLIP_BATCH = 8
# Peak GPU memory per clip voxel (frame x pixel) in half precision, dominated by the VAE decode
# of the whole batch at once (LTX-Video: a 128-channel decoder at full size). A first guess:
# an out-of-memory error makes the clips again one at a time.
_BYTES_PER_VOXEL = 1024
_HEADROOM_BYTES = 2 * GIB


def batch_key(request: ClipRequest) -> tuple:
    """What must be equal for two requests to run in one call."""
    return (request.kind, request.num_frames, request.width, request.height, request.fps, request.steps,
            request.guidance_scale, bool(request.negative_prompt), bool(request.end))


def auto_clip_batch(free_bytes: int, request: ClipRequest) -> int:
    """How many clips like ``request`` fit in ``free_bytes`` of GPU memory at once (1..8)."""
    per_clip = _BYTES_PER_VOXEL * request.num_frames * request.width * request.height
    if request.guidance_scale > 1.0:
        per_clip *= 2  # classifier-free guidance runs the transformer on two copies (the decode does not double)
    usable = free_bytes - _HEADROOM_BYTES
    if usable <= per_clip:
        return 1
    return max(1, min(MAX_CLIP_BATCH, int(usable // per_clip)))


def plan_clip_batches(requests: Sequence[ClipRequest], rules: FrameRules,
                      batch_size: Callable[[ClipRequest], int]) -> list[list[ClipRequest]]:
    """``requests`` (in the video's order) cut into batches, each made by one call (see the module doc).

    ``batch_size(request)``: how many clips like it the model can make at once (1: no batching).
    Every request is in exactly one batch; a batch's requests keep their relative order.
    """
    pending = list(requests)
    batches: list[list[ClipRequest]] = []
    while pending:
        head = pending.pop(0)
        batch = [head]
        limit = 1 if not batches or head.num_frames > rules.max_frames else max(1, batch_size(head))
        for candidate in list(pending):
            if len(batch) >= limit:
                break
            # A clip never depends on itself: what is still unmade is this batch and everything pending.
            unmade = {request.id for request in batch} | {request.id for request in pending}
            if batch_key(candidate) != batch_key(head) or unmade.intersection(candidate.depends_on):
                continue
            batch.append(candidate)
            pending.remove(candidate)
        batches.append(batch)
    return batches
