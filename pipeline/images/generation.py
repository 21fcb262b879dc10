"""The backend interface: image requests in, images (or reasons) out, and typed model info.

A render plans every image its video needs as :class:`ImageRequest` objects
(``pipeline.images.plan``); a backend (:class:`ImageModel`: the diffusers one, a
remote service, a test stand-in) turns a batch of them into :class:`GeneratedImage`
answers. Also the small helpers every backend shares: the reasons a scene comes
back without an image, :func:`stop_requested` and :func:`failed`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol, Sequence

from PIL import Image

from ..contract.errors import RenderCancelled

log = logging.getLogger(__name__)

REASON_STOPPED = "stopped"
REASON_OUT_OF_MEMORY = "out of GPU memory"
REASON_BLANK = "the model returned a blank (NaN or all-black) image"


@dataclass(frozen=True)
class InitImage:
    """Start from a picture instead of pure noise (image-to-image), changing it by ``strength`` (0..1).

    The picture is another request's image (``request_id``, also listed in the request's
    ``depends_on``) or a file (``path``, with ``digest``, the SHA-256 of its bytes, for the cache key).
    """

    strength: float
    request_id: str = ""
    path: str = ""
    digest: str = ""


@dataclass(frozen=True)
class ControlImage:
    """Layout guidance: ControlNet ``model`` conditioned on the Canny edges of the picture at ``path``.

    ``digest`` is the SHA-256 of the picture's bytes (for the cache key); ``scale`` is how strongly
    the edges steer the composition.
    """

    model: str
    path: str
    digest: str
    scale: float = 1.0


@dataclass(frozen=True)
class Pictures:
    """A request's input pictures themselves, filled in by the image stage just before the backend runs it.

    ``init`` is the picture image-to-image starts from (at the request's size), ``control`` the
    ControlNet's control image (Canny edges, same size). They pickle (ZeroGPU) and are never part
    of the cache key: the request's ``init``/``control`` digests and dependencies are.
    """

    init: Image.Image | None = None
    control: Image.Image | None = None


@dataclass(frozen=True)
class ImageRequest:
    """Everything that decides one image. Plain data: it pickles (ZeroGPU) and keys the cache.

    ``id`` names the request within its render plan (``scene-3`` is scene 3's keyframe,
    ``morph-2-5`` the fifth in-between image of the morph from scene 2 to scene 3);
    ``kind`` says what the image is for (``keyframe``, ``inbetween``; chained scenes
    are a further kind). ``depends_on`` lists the ids whose images must exist
    before this one can be made. Optional inputs: ``init`` (image-to-image) and
    ``between`` (an in-between image), ``control`` (ControlNet layout guidance); ``pictures`` carries
    the resolved input pictures to the backend. A backend that cannot make a request answers with a reason.
    """

    scene_index: int
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance_scale: float
    width: int
    height: int
    id: str = ""
    kind: str = "keyframe"
    depends_on: tuple[str, ...] = ()
    init: InitImage | None = None
    between: Between | None = None
    control: ControlImage | None = None
    pictures: Pictures | None = field(default=None, compare=False, repr=False)

    @property
    def guided(self) -> bool:
        """True when the request starts from a picture or is steered by a control image."""
        return self.init is not None or self.control is not None

    def made_from(self) -> tuple[str, ...]:
        """What the image is made from, for the report: text, previous scene, reference image, control image."""
        parts = ["text"]
        if self.init is not None:
            parts.append("previous scene" if self.init.request_id else "reference image")
        if self.control is not None:
            parts.append("control image")
        return tuple(parts)


@dataclass(frozen=True)
class Between:
    """Interpolation endpoints: the image ``t`` (0..1) of the way from request ``start`` to ``end``.

    The prompt embeddings are interpolated linearly and the two seeded noises spherically.
    """

    start: ImageRequest
    end: ImageRequest
    t: float


def keyframe_id(scene_index: int) -> str:
    """The plan id of scene ``scene_index``'s keyframe."""
    return f"scene-{scene_index + 1}"


def inbetween_id(boundary: int, frame: int) -> str:
    """The plan id of in-between image ``frame`` (1-based) of the morph from scene ``boundary`` (0-based)
    to the next one: ``morph-2-5`` is the fifth image between scenes 2 and 3 (as numbered for people)."""
    return f"morph-{boundary + 1}-{frame}"


ModelState = Literal["not loaded", "loading", "loaded", "failed"]


@dataclass(frozen=True)
class ModelInfo:
    """What a backend says about itself, for the page's model line and the render report."""

    model: str
    device: str
    state: ModelState
    dtype: str = ""
    reason: str = ""  # why it failed to load
    offload: bool = False  # weights live on the CPU between uses

    @property
    def loaded(self) -> bool:
        return self.state == "loaded"


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
    """A backend: what the image stage needs from a model.

    ``pipeline.images.diffusers_backend.ModelManager`` is the local one; the registry
    (``pipeline.images.registry``) makes and shares them.
    """

    model_id: str

    def load(self) -> bool:
        """Load the weights if needed; True when ready. Never raises (a failure is remembered)."""

    def info(self) -> ModelInfo:
        """Model id, device, dtype and whether it is loaded, for the UI and the report."""

    def is_distilled(self) -> bool:
        """True for few-step models (turbo, LCM, lightning) that want guidance 0. Exact once loaded."""

    def generation_size(self, width: int, height: int) -> tuple[int, int]:
        """A size the model handles well with the aspect ratio of ``width``x``height``. Exact once loaded."""

    def generate(
        self,
        requests: list[ImageRequest],
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


def failed(positions: Sequence[int], requests: Sequence[ImageRequest], reason: str) -> dict[int, GeneratedImage]:
    """An image-less answer with ``reason`` for each of ``requests`` at ``positions``, keyed by position."""
    return {p: GeneratedImage(requests[p].scene_index, None, reason) for p in positions}
