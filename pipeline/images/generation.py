"""The request and answer types between the keyframe stage and an image model.

Also the small helpers every model implementation shares: the reasons a scene
comes back without an image, :func:`stop_requested` and :func:`failed`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from PIL import Image

from ..contract.errors import RenderCancelled

log = logging.getLogger(__name__)

REASON_STOPPED = "stopped"
REASON_OUT_OF_MEMORY = "out of GPU memory"
REASON_BLANK = "the model returned a blank (NaN or all-black) image"


@dataclass(frozen=True)
class KeyframeRequest:
    """Everything that decides one keyframe (it is also the cache key)."""

    scene_index: int
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance_scale: float
    width: int
    height: int


@dataclass(frozen=True)
class GeneratedImage:
    """One answer: an image, or ``image is None`` and a ``reason`` a user can read.

    ``notes``: what the model could not honour for this scene (e.g. a remote service that
    takes no seed), shown in the report whether or not there is an image.
    """

    scene_index: int
    image: Image.Image | None
    reason: str = ""
    notes: tuple[str, ...] = ()


# Called after every denoising step: (scene indices in the batch, step, total steps, preview images).
StepCallback = Callable[[list[int], int, int, list[Image.Image]], None]


class ImageModel(Protocol):
    """What the keyframe stage needs from a model; ``pipeline.images.diffusers_backend.ModelManager`` is the real one."""

    model_id: str

    def load(self) -> bool:
        """Load the weights if needed; True when ready. Never raises (a failure is remembered)."""

    def describe(self) -> dict[str, str]:
        """Model id, device, dtype and whether it is loaded, for the UI and the report."""

    def is_distilled(self) -> bool:
        """True for few-step models (turbo, LCM, lightning) that want guidance 0. Exact once loaded."""

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        """A size the model handles well with the aspect ratio of ``width``x``height``. Exact once loaded."""

    def generate(
        self,
        requests: list[KeyframeRequest],
        on_step: StepCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[GeneratedImage]:
        """Generate one image per request, in order; never raises for a per-scene failure."""


def stop_requested(should_stop: Callable[[], bool] | None) -> bool:
    """Poll a caller's ``should_stop``; a RenderCancelled from it means stop.

    A broken stop callback must not kill the render: any other error is logged
    and read as "carry on".
    """
    if should_stop is None:
        return False
    try:
        return bool(should_stop())
    except RenderCancelled:
        return True
    except Exception:  # noqa: BLE001 - caller code; log and carry on
        log.exception("should_stop callback failed; ignoring it")
        return False


def failed(positions: Sequence[int], requests: Sequence[KeyframeRequest], reason: str) -> dict[int, GeneratedImage]:
    """An image-less answer with ``reason`` for each of ``requests`` at ``positions``, keyed by position."""
    return {p: GeneratedImage(requests[p].scene_index, None, reason) for p in positions}
