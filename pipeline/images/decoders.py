"""Which decoder turns a keyframe's latents into pixels, and the tiny autoencoder beside a model.

A diffusion model's full VAE decode costs more than one UNet step (SD-Turbo at 512²: 2.5 TFLOP
against 0.8), so one-step keyframes on a CPU spend most of their time decoding. diffusers'
``AutoencoderTiny`` (TAESD by madebyollin, 2.4 M parameters) decodes the same latents with
0.14 TFLOP, a little softer. :func:`wanted_decoder` says which one a render asks for;
:class:`TinyDecoder` loads the tiny one once beside a pipeline and decodes final latents and
step previews with it.

torch and diffusers are imported inside functions only (this module is cheap to import).
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..contract.errors import short_error
from .model_names import known_tiny_decoder
from .previews import latents_to_previews

log = logging.getLogger(__name__)

FULL = "full"
TINY = "tiny"
AUTO = "auto"
DRAFT_QUALITY = "draft"
# Step previews decode latents average-pooled by at least 2 and down to at most this side (a 192 px
# picture): a full-size tiny decode costs ~18 % of one SD-Turbo UNet step (0.14 against 0.80 TFLOP
# at 512², and both grow with the pixels), a pooled one a ninth of that at 512² (pooled by 3; at 2
# the CPU bench saw up to 13 % on a loaded machine).
PREVIEW_LATENT_SIDE = 24
PREVIEW_MIN_POOL = 2


def wanted_decoder(choice: str, quality: str, device: str) -> str:
    """``"tiny"`` or ``"full"`` as ``choice`` asks; ``auto`` is tiny for draft quality and on a CPU.

    This is the wish; the decoder used is the full VAE when the tiny one cannot be loaded.
    """
    choice = (choice or AUTO).strip().lower()
    if choice in (FULL, TINY):
        return choice
    return TINY if quality == DRAFT_QUALITY or device.startswith("cpu") else FULL


class TinyDecoder:
    """The tiny autoencoder of one pipeline: loaded at most once; a failure is remembered and said.

    ``setting`` is a hub id or a local folder of an ``AutoencoderTiny``; None picks the known
    one for the pipeline's family (:data:`pipeline.images.model_names.TINY_DECODERS`).
    """

    def __init__(self, setting: str | None = None, local_files_only: bool = False, allow_pickle: bool = False) -> None:
        self.setting = (setting or "").strip() or None
        self.local_files_only = local_files_only
        self.allow_pickle = allow_pickle  # pickled (.bin) weights can run code: safetensors unless opted in
        self.source: str | None = self.setting
        self.vae: Any = None
        self.error: str | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self.vae is not None

    def describe(self) -> str:
        """One line for the model line: the loaded id, "not loaded", or why it is unavailable."""
        if self.vae is not None:
            return f"tiny decoder {self.source}"
        if self.error is not None:
            return f"full VAE only: {self.error}"
        return "tiny decoder not loaded"

    def load(self, pipe: Any, device: str, dtype: Any) -> bool:
        """Load the tiny decoder for ``pipe`` onto ``device`` once; True when it is ready. Never raises."""
        with self._lock:
            if self.vae is None and self.error is None:
                try:
                    self.vae = self._load(pipe, device, dtype)
                    log.info("Tiny decoder %s loaded on %s", self.source, device)
                except Exception as exc:  # noqa: BLE001 - remembered; the full VAE is used instead
                    self.error = self._describe_error(exc)
                    log.warning("%s", self.error)
        return self.vae is not None

    def _load(self, pipe: Any, device: str, dtype: Any) -> Any:
        from diffusers import AutoencoderTiny

        if self.source is None:
            self.source = known_tiny_decoder(type(pipe).__name__)
            if self.source is None:
                raise LookupError(f"no tiny decoder is known for {type(pipe).__name__}; set one by id or folder")
        folder = Path(self.source).expanduser()
        source = str(folder) if folder.is_dir() else self.source
        vae = AutoencoderTiny.from_pretrained(source, dtype=dtype, local_files_only=self.local_files_only,
                                              use_safetensors=None if self.allow_pickle else True)
        wanted = getattr(getattr(getattr(pipe, "vae", None), "config", None), "latent_channels", None)
        if wanted is not None and vae.config.latent_channels != wanted:
            raise LookupError(f"tiny decoder {self.source} takes {vae.config.latent_channels} latent channels, "
                              f"the model makes {wanted}")
        return vae.to(device).eval().requires_grad_(False)

    def _describe_error(self, exc: BaseException) -> str:
        if isinstance(exc, LookupError):
            return str(exc)
        if isinstance(exc, (OSError, ValueError)):
            return f"tiny decoder '{self.source}' could not be loaded (offline or not found)"
        return f"tiny decoder '{self.source}' could not be loaded: {short_error(exc, with_type=True)}"

    def decode(self, latents: Any) -> np.ndarray:
        """(B, C, h, w) latents as the pipeline returns them -> (B, 8h, 8w, 3) float pixels in 0..1.

        One image at a time, so a batch decodes exactly as its images would alone. NaN stays NaN
        (the blank-image check sees it).
        """
        import torch

        with torch.no_grad():
            images = [self.vae.decode(one.to(self.vae.dtype)).sample for one in latents.split(1)]
        return _to_pixels(torch.cat(images))

    def previews(self, latents: Any) -> list[Image.Image]:
        """Real pictures of (B, C, h, w) step latents at half the image's side or less: decoded from
        latents pooled by 2 or more, to :data:`PREVIEW_LATENT_SIDE` at most, so a preview costs a
        quarter of a decode or less (a ninth at 512²)."""
        import torch

        pool = max(PREVIEW_MIN_POOL, math.ceil(max(latents.shape[-2:]) / PREVIEW_LATENT_SIDE))
        factor = min(pool, *latents.shape[-2:])
        with torch.no_grad():
            small = latents.to(self.vae.dtype)
            if factor > 1:
                small = torch.nn.functional.avg_pool2d(small, factor)
            pixels = _to_pixels(self.vae.decode(small).sample)
        frames = (np.nan_to_num(pixels) * 255.0).round().astype(np.uint8)
        return [Image.fromarray(frame) for frame in frames]


def step_previews(tiny: TinyDecoder, latents: Any, xl: bool) -> list[Image.Image]:
    """Previews of one step's latents: through the tiny decoder when it is loaded, else the
    linear latent->RGB approximation (latent-sized)."""
    if tiny.loaded:
        return tiny.previews(latents)
    return latents_to_previews(latents.float().cpu().numpy(), xl)


def _to_pixels(images: Any) -> np.ndarray:
    """Decoder output in -1..1, (B, 3, H, W) -> (B, H, W, 3) float32 numpy in 0..1."""
    return (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
