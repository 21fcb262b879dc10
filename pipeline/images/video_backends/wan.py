"""Wan 2.1 / 2.2 image-to-video through diffusers' ``WanImageToVideoPipeline``.

A scene clip starts from its keyframe (``image``); a generated transition also gives the
incoming scene's first frame as ``last_image`` (first-last-frame). A continuing call of a long
scene starts from the previous call's last frame. Frame rules from the loaded pipeline:
``4k+1`` frames, sides a multiple of 16 (VAE x patch), 16 fps (Wan 2.1 / 2.2 A14B).

Wan 2.1's plain image-to-video checkpoints (CLIP image embeddings, no second picture's position
embeddings) were not trained on a last frame: ``last_frame=False`` too, with that reason; the
FLF2V checkpoint and Wan 2.2 A14B image-to-video make first-last-frame clips.
TI2V-style checkpoints (Wan 2.2 TI2V-5B: published as ``WanPipeline`` with
``expand_timesteps``) animate a first frame but ignore ``last_image`` in diffusers:
their :class:`FrameRules` say ``last_frame=False`` with the reason, so their transitions stay
crossfades. A text-to-video-only checkpoint (Wan 2.1 T2V) cannot start from a keyframe and is
refused at load with that reason.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from ..clip_generation import ClipRequest, FrameRules
from .family import CallDefaults, CallInputs, VideoFamily, common_kwargs, decoded_to_image, small_latent

NATIVE_PIXELS_480P = 832 * 480
NATIVE_PIXELS_720P = 1280 * 720
NATIVE_PIXELS_TI2V = 1280 * 704
FPS = 16.0  # Wan 2.1 and Wan 2.2 A14B
FPS_TI2V = 24.0  # Wan 2.2 TI2V-5B
MAX_FRAMES = 81  # what Wan is trained on (5 s at 16 fps)
MAX_FRAMES_TI2V = 121
# Steps and guidance: Wan 2.1 (and the TI2V-5B) as diffusers' Wan pipelines default to (50 steps,
# guidance 5.0); Wan 2.2 A14B image-to-video (two experts) as the Wan team's own i2v-A14B settings
# (40 steps, guidance 3.5 for both experts).
WAN21 = CallDefaults(steps=50, guidance=5.0, source="Wan 2.1: 50 steps, guidance 5")
WAN22_A14B = CallDefaults(steps=40, guidance=3.5, source="Wan 2.2 A14B: 40 steps, guidance 3.5")
WAN22_TI2V = CallDefaults(steps=50, guidance=5.0, source="Wan 2.2 TI2V-5B: 50 steps, guidance 5")
IGNORES_LAST_FRAME = ("this Wan checkpoint (TI2V-style, expand_timesteps) animates a first frame but "
                      "ignores a last frame, so it cannot make a transition between two pictures")
NOT_TRAINED_ON_LAST_FRAME = ("this Wan 2.1 image-to-video checkpoint was not trained on a last frame (its "
                             "first-last-frame sibling, Wan2.1-FLF2V, is), so it cannot make a transition")
NOT_IMAGE_TO_VIDEO = ("is a Wan text-to-video checkpoint: it cannot start a clip from a keyframe "
                      "(use a Wan image-to-video one)")


class WanFamily(VideoFamily):
    name = "Wan"
    pipeline_classes = ("WanImageToVideoPipeline", "WanPipeline")
    # Not batched: WanImageToVideoPipeline encodes one start picture and repeats it for every item of the
    # batch (its latents and its CLIP image embedding), so clips of different scenes cannot share a call.
    batches_clips = False

    def load(self, model: str, index: dict, kwargs: dict[str, Any]) -> Any:
        from diffusers import WanImageToVideoPipeline

        if index.get("_class_name") == "WanPipeline" and not index.get("expand_timesteps"):
            raise ValueError(f"'{model}' {NOT_IMAGE_TO_VIDEO}")
        return WanImageToVideoPipeline.from_pretrained(model, **kwargs)

    @staticmethod
    def _ti2v(pipe: Any, model_id: str) -> bool:
        if pipe is not None:
            return bool(getattr(pipe.config, "expand_timesteps", False))
        return "ti2v" in model_id.lower()

    @staticmethod
    def _last_frame_problem(pipe: Any, ti2v: bool) -> str:
        """Why this checkpoint cannot honour a last frame, or "" when it can."""
        if ti2v:
            return IGNORES_LAST_FRAME
        transformer = getattr(pipe, "transformer", None) if pipe is not None else None
        config = getattr(transformer, "config", None)
        # Wan 2.1 image-to-video embeds its start picture with CLIP (image_dim set); only the FLF2V
        # checkpoint also learnt position embeddings for a second, last picture (pos_embed_seq_len).
        if config is not None and config.image_dim is not None and not getattr(config, "pos_embed_seq_len", None):
            return NOT_TRAINED_ON_LAST_FRAME
        return ""

    def frame_rules(self, pipe: Any, model_id: str, max_frames: int | None) -> FrameRules:
        ti2v = self._ti2v(pipe, model_id)
        problem = self._last_frame_problem(pipe, ti2v)
        step, side = 4, 32 if ti2v else 16
        if pipe is not None:
            step = int(pipe.vae_scale_factor_temporal)
            transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
            side = int(pipe.vae_scale_factor_spatial) * int(transformer.config.patch_size[1])
        pixels = NATIVE_PIXELS_TI2V if ti2v else NATIVE_PIXELS_720P if "720p" in model_id.lower() else NATIVE_PIXELS_480P
        wanted = max_frames or (MAX_FRAMES_TI2V if ti2v else MAX_FRAMES)
        longest = max(2 * step + 1, (wanted - 1) // step * step + 1)
        return FrameRules(fps=FPS_TI2V if ti2v else FPS, frame_step=step, side_multiple=side, native_pixels=pixels,
                          max_frames=longest, last_frame=not problem, last_frame_reason=problem)

    def call_defaults(self, pipe: Any, model_id: str) -> CallDefaults:
        if self._ti2v(pipe, model_id):
            return WAN22_TI2V
        if pipe is None:
            return WAN22_A14B if "2.2" in model_id else WAN21
        # Wan 2.1 image-to-video embeds its start picture with CLIP (image_dim set); Wan 2.2 A14B does not
        # (and has a second, low-noise expert).
        transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        return WAN21 if getattr(transformer.config, "image_dim", None) is not None else WAN22_A14B

    def overlap(self, rules: FrameRules) -> int:
        return 1  # Wan image-to-video is conditioned on one picture: the previous call's last frame

    def call_kwargs(self, pipe: Any, request: ClipRequest, rules: FrameRules, inputs: CallInputs) -> dict[str, Any]:
        image = inputs.start if inputs.start is not None else inputs.context[-1] if inputs.context else None
        if image is None:
            raise ValueError("Wan image-to-video needs a first picture")
        kwargs: dict[str, Any] = {**common_kwargs(request, inputs), "image": image}
        if inputs.end is not None and rules.last_frame:
            kwargs["last_image"] = inputs.end
        if request.negative_prompt and request.guidance_scale > 1:
            kwargs["negative_prompt"] = request.negative_prompt
        return kwargs

    def preview(self, pipe: Any, latents: Any, request: ClipRequest, frames: int) -> Image.Image | None:
        import torch

        vae = pipe.vae
        middle = latents[:1, :, latents.shape[2] // 2: latents.shape[2] // 2 + 1]
        middle = small_latent(middle).to(vae.dtype)
        mean = torch.tensor(vae.config.latents_mean, device=middle.device, dtype=middle.dtype).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, device=middle.device, dtype=middle.dtype).view(1, -1, 1, 1, 1)
        return decoded_to_image(vae.decode(middle * std + mean, return_dict=False)[0])
