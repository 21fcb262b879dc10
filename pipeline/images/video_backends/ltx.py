"""LTX-Video through diffusers' ``LTXConditionPipeline``: conditions at any frame.

A scene clip is conditioned on its keyframe at frame 0; a generated transition on the
outgoing scene's last frame at frame 0 and the incoming scene's first frame at the last
frame; a continuing call of a long scene on the previous call's last 9 frames (a video
condition at frame 0, which the model then carries on). Frame rules come from the loaded
pipeline: ``8k+1`` frames (the VAE's temporal compression), sides a multiple of 32 (spatial
compression x patch), about 768x512 natively. LTX-Video is told the frame rate (``frame_rate``, the
rate its positions in time are scaled by), so a clip is made at the video's own rate when that is a
common film or video rate (:data:`RATES`), else at the pipeline's default (25) and resampled.
"""

from __future__ import annotations

import inspect
from typing import Any

from PIL import Image

from ..clip_generation import ClipRequest, FrameRules
from .family import CallDefaults, CallInputs, VideoFamily, common_kwargs, decoded_to_image, small_latent

NATIVE_PIXELS = 768 * 512
DEFAULT_FPS = 25.0  # LTXConditionPipeline's own frame_rate default (the rate its positions are scaled by)
# The rates a clip is made at directly: diffusers' LTX-Video docs say it makes 24 fps video (their
# examples save at 24), the pipeline's default is 25, and 30 is the other common video rate. How it
# moves far from those (12 or 60 fps) nobody has shown, so there it makes 25 and the app interpolates.
RATES = (24.0, 30.0)
# Frames per call: ~6.4 s at 25 fps. The model was trained up to 257 frames; longer calls cost
# attention quadratically and VAE memory linearly, so longer scenes continue in further calls.
MAX_FRAMES = 161
# Distilled LTX checkpoints (0.9.6+) decode at a small timestep with a little noise, as Lightricks recommends.
DECODE_TIMESTEP = 0.05
DECODE_NOISE_SCALE = 0.025
# The distilled checkpoints (0.9.7/0.9.8 "-distilled", the app's default) are guidance-distilled and
# step-distilled: diffusers' LTX-Video docs say guidance_scale 1.0 for them, and Lightricks run them in 8
# steps. Any other LTX-Video wants real guidance ("higher, like 5.0", the same docs) and the
# pipeline's own 50 steps.
DISTILLED = CallDefaults(steps=8, guidance=1.0, source="LTX-Video distilled: 8 steps, no guidance")
UNDISTILLED = CallDefaults(steps=50, guidance=5.0, source="LTX-Video (not distilled): 50 steps, guidance 5")


class LTXFamily(VideoFamily):
    name = "LTX-Video"
    pipeline_classes = ("LTXConditionPipeline", "LTXPipeline", "LTXImageToVideoPipeline",
                        "LTXI2VLongMultiPromptPipeline")
    # The condition pipeline encodes each condition's picture with the VAE as a batch and blends it into
    # the batch's latents item by item, so a list of pictures (one per clip) at each condition's frame
    # conditions every clip on its own pictures. Videos (a long clip's continuing calls) are never batched.
    batches_clips = True

    def load(self, model: str, index: dict, kwargs: dict[str, Any]) -> Any:
        from diffusers import LTXConditionPipeline

        # Every LTX-Video checkpoint has the same components; the condition pipeline drives them all.
        return LTXConditionPipeline.from_pretrained(model, **kwargs)

    def frame_rules(self, pipe: Any, model_id: str, max_frames: int | None) -> FrameRules:
        step, side, fps = 8, 32, DEFAULT_FPS
        if pipe is not None:
            step = int(pipe.vae_temporal_compression_ratio)
            side = int(pipe.vae_spatial_compression_ratio) * int(pipe.transformer_spatial_patch_size)
            default = inspect.signature(pipe.__call__).parameters.get("frame_rate")
            if default is not None and isinstance(default.default, (int, float)):
                fps = float(default.default)
        wanted = max_frames or MAX_FRAMES
        longest = max(2 * step + 1, (wanted - 1) // step * step + 1)
        return FrameRules(fps=fps, frame_step=step, side_multiple=side, native_pixels=NATIVE_PIXELS,
                          max_frames=longest, rates=RATES)

    def call_defaults(self, pipe: Any, model_id: str) -> CallDefaults:
        # The weights do not say whether they were distilled; every distilled release names itself so.
        return DISTILLED if "distill" in model_id.lower() else UNDISTILLED

    def overlap(self, rules: FrameRules) -> int:
        return rules.frame_step + 1  # two latent frames of the previous call: motion, not just a picture

    def call_kwargs(self, pipe: Any, request: ClipRequest, rules: FrameRules, inputs: CallInputs) -> dict[str, Any]:
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        conditions = [LTXVideoCondition(**{kind: picture, "frame_index": frame})
                      for kind, picture, frame in _condition_parts(inputs)]
        kwargs: dict[str, Any] = {**common_kwargs(request, inputs), "conditions": conditions or None,
                                  "frame_rate": int(round(request.fps))}
        if request.negative_prompt and request.guidance_scale > 1:
            kwargs["negative_prompt"] = request.negative_prompt
        if getattr(pipe.vae.config, "timestep_conditioning", False):
            kwargs.update(decode_timestep=DECODE_TIMESTEP, decode_noise_scale=DECODE_NOISE_SCALE)
        return kwargs

    def batch_kwargs(self, pipe: Any, requests: list[ClipRequest], rules: FrameRules,
                     inputs: list[CallInputs]) -> dict[str, Any]:
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        parts = [_condition_parts(one) for one in inputs]
        if any(one.context for one in inputs) or len({tuple((k, f) for k, _, f in p) for p in parts}) != 1:
            raise ValueError("clips of one batch must be conditioned alike, on pictures only")
        kwargs = self.call_kwargs(pipe, requests[0], rules, inputs[0])
        kwargs["prompt"] = [request.prompt for request in requests]
        if "negative_prompt" in kwargs:
            kwargs["negative_prompt"] = [request.negative_prompt for request in requests]
        kwargs["conditions"] = [LTXVideoCondition(image=[p[slot][1] for p in parts], frame_index=frame)
                                for slot, (_kind, _picture, frame) in enumerate(parts[0])] or None
        return kwargs

    def preview(self, pipe: Any, latents: Any, request: ClipRequest, frames: int) -> Image.Image | None:
        import torch

        spatial = int(pipe.vae_spatial_compression_ratio)
        patch, patch_t = int(pipe.transformer_spatial_patch_size), int(pipe.transformer_temporal_patch_size)
        latent_frames = (frames - 1) // int(pipe.vae_temporal_compression_ratio) + 1
        height, width = request.height // spatial, request.width // spatial
        tokens = latent_frames * height * width // (patch * patch * patch_t)
        # The packed latents start with the extra conditioning tokens; the clip's own are the last ones.
        video = pipe._unpack_latents(latents[:1, -tokens:], latent_frames, height, width, patch, patch_t)
        middle = video[:, :, latent_frames // 2: latent_frames // 2 + 1]
        vae = pipe.vae
        middle = pipe._denormalize_latents(middle, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
        middle = small_latent(middle).to(vae.dtype)
        timestep = None
        if getattr(vae.config, "timestep_conditioning", False):
            timestep = torch.tensor([DECODE_TIMESTEP], device=middle.device, dtype=middle.dtype)
        return decoded_to_image(vae.decode(middle, timestep, return_dict=False)[0])


def _condition_parts(inputs: CallInputs) -> list[tuple[str, Any, int]]:
    """(``image`` | ``video``, the picture(s), frame index) of every condition of one call."""
    parts: list[tuple[str, Any, int]] = []
    if inputs.start is not None:
        parts.append(("image", inputs.start, 0))
    if inputs.context:
        parts.append(("video", list(inputs.context), 0))
    if inputs.end is not None:
        parts.append(("image", inputs.end, inputs.frames - 1))
    return parts
