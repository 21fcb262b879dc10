"""What one video-model family (LTX-Video, Wan) tells the shared manager: how to load its
pipeline, its frame rules, the arguments of one call, and a cheap preview of its latents.

A family is chosen by the checkpoint's pipeline class (``model_index.json``'s ``_class_name``),
see :func:`pipeline.images.video_backends.family_for`. torch and diffusers are imported inside
methods only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..clip_generation import ClipRequest, FrameRules

# A preview decodes one latent frame, shrunk so that its longer side is at most this many latent
# pixels (x8 or x32 in pixels): a small fraction of one full frame's decode, whatever the clip's size.
PREVIEW_LATENT_SIDE = 16


@dataclass(frozen=True)
class CallDefaults:
    """The denoising steps and guidance scale a family's checkpoint is meant to be run with, and where
    the numbers come from (said in the log and the docs)."""

    steps: int
    guidance: float
    source: str


@dataclass(frozen=True)
class CallInputs:
    """What one model call of a clip is conditioned on.

    ``start``: the picture frame 0 must be (first call) or None; ``context``: the previous
    call's last frames, which this call continues (later calls); ``end``: the picture the last
    frame must be (the last call of a transition) or None. All at the request's size.
    """

    frames: int
    start: Image.Image | None = None
    context: tuple[Image.Image, ...] = ()
    end: Image.Image | None = None


class VideoFamily:
    """The family-specific part of a video backend (see the module doc). Subclasses fill it in."""

    name = ""
    pipeline_classes: tuple[str, ...] = ()
    # One call can denoise several clips, each from its own pictures (see :meth:`batch_kwargs`).
    batches_clips = False

    def load(self, model: str, index: dict, kwargs: dict[str, Any]) -> Any:
        """The diffusers pipeline for ``model`` (a hub id or folder; ``index`` its model_index.json, or {})."""
        raise NotImplementedError

    def frame_rules(self, pipe: Any, model_id: str, max_frames: int | None) -> FrameRules:
        """The loaded pipeline's rules; ``max_frames`` (when given) caps the frames of one call."""
        raise NotImplementedError

    def overlap(self, rules: FrameRules) -> int:
        """How many of the previous call's last frames condition a continuing call."""
        raise NotImplementedError

    def call_defaults(self, pipe: Any, model_id: str) -> CallDefaults:
        """The steps and guidance this checkpoint is run with (read from ``pipe`` once loaded, else
        guessed from ``model_id``)."""
        raise NotImplementedError

    def call_kwargs(self, pipe: Any, request: ClipRequest, rules: FrameRules, inputs: CallInputs) -> dict[str, Any]:
        """The pipeline's keyword arguments for one call (without generator and callback)."""
        raise NotImplementedError

    def batch_kwargs(self, pipe: Any, requests: list[ClipRequest], rules: FrameRules,
                     inputs: list[CallInputs]) -> dict[str, Any]:
        """The keyword arguments of one call that makes every clip of ``requests`` (one
        ``inputs`` each, all of one :func:`pipeline.images.clip_batches.batch_key`); only
        for a family whose ``batches_clips`` is true."""
        raise NotImplementedError(f"{self.name} does not make several clips in one call")

    def preview(self, pipe: Any, latents: Any, request: ClipRequest, frames: int) -> Image.Image | None:
        """One frame of the running call's ``latents`` (as the step callback sees them), decoded cheaply."""
        raise NotImplementedError


def common_kwargs(request: ClipRequest, inputs: CallInputs) -> dict[str, Any]:
    """The pipeline arguments every family's call takes the same way (the manager adds how the frames come
    back, ``VideoModelManager.output_type``)."""
    return {"prompt": request.prompt, "width": request.width, "height": request.height,
            "num_frames": inputs.frames, "num_inference_steps": request.steps,
            "guidance_scale": request.guidance_scale}


def small_latent(latent: Any) -> Any:
    """``latent`` (B, C, 1, h, w) shrunk so its longer side is at most :data:`PREVIEW_LATENT_SIDE`."""
    import torch.nn.functional as F

    height, width = latent.shape[-2:]
    scale = PREVIEW_LATENT_SIDE / max(height, width)
    if scale >= 1:
        return latent
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(latent[:, :, 0].float(), size=size, mode="bilinear", align_corners=False)[:, :, None].to(
        latent.dtype
    )


def decoded_to_image(video: Any) -> Image.Image | None:
    """The first frame of a VAE output (B, 3, F, H, W in -1..1) as an RGB picture; None if not finite."""
    frame = video[0, :, 0].float().permute(1, 2, 0).cpu().numpy()
    if not np.isfinite(frame).all():
        return None
    return Image.fromarray((((frame + 1.0) / 2.0).clip(0.0, 1.0) * 255.0).round().astype(np.uint8))


def clip_size_picture(picture: Image.Image, request: ClipRequest) -> Image.Image:
    """``picture`` as RGB at the request's size (the stage hands them over at that size already)."""
    picture = picture.convert("RGB")
    if picture.size != (request.width, request.height):
        picture = picture.resize((request.width, request.height), Image.Resampling.LANCZOS)
    return picture
