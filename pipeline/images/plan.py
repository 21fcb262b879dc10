"""The render plan: every image a video needs, as requests, before any is made.

:func:`plan_images` turns a storyboard into a :class:`RenderPlan` for one model:
one keyframe request per scene. The storyboard's ``style`` is added to every prompt
(``style_negative`` to every negative prompt). In a ``chained`` look each scene's
keyframe starts from the previous scene's (image-to-image, ``look_strength``) and
depends on it; a reference image is where scene 1 (or every scene) starts; with a
ControlNet model the reference image's edges guide every scene. New request kinds (in-between frames of a
morph, scenes chained to the previous one) are added here as further requests
with ``depends_on`` naming the requests whose images they need; the image stage
runs a request once its dependencies exist, and the timeline asks for images by
request id, so neither changes for a new kind.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..contract.reference import read_reference
from ..contract.storyboard import Storyboard
from .generation import ControlImage, ImageModel, ImageRequest, InitImage, keyframe_id

_CACHE_FORMAT = 1


@dataclass(frozen=True)
class GenerationSettings:
    """Steps, guidance and model-side size for a storyboard on a given model."""

    steps: int
    guidance_scale: float
    width: int
    height: int


@dataclass(frozen=True)
class RenderPlan:
    """The requests of one render, each after those it depends on."""

    requests: tuple[ImageRequest, ...]

    def keyframe(self, scene_index: int) -> ImageRequest:
        """Scene ``scene_index``'s keyframe request."""
        return self.by_id()[keyframe_id(scene_index)]

    def by_id(self) -> dict[str, ImageRequest]:
        return {request.id: request for request in self.requests}

    def cache_keys(self, model_id: str) -> dict[str, str]:
        """Each request's cache key: the request, the model, and the keys of what it depends on."""
        keys: dict[str, str] = {}
        for request in self.requests:
            keys[request.id] = cache_key(model_id, request, [keys[d] for d in request.depends_on])
        return keys


def generation_settings(storyboard: Storyboard, model: ImageModel) -> GenerationSettings:
    """Preset defaults that suit the model (turbo: few steps, guidance 0), overridden by the storyboard."""
    preset = storyboard.preset
    distilled = model.is_distilled()
    steps = storyboard.steps or (preset.steps_distilled if distilled else preset.steps_full)
    if storyboard.guidance_scale is not None:
        guidance = storyboard.guidance_scale
    else:
        guidance = 0.0 if distilled else preset.guidance_full
    width, height = model.generation_size(preset.width, preset.height)
    return GenerationSettings(steps, guidance, width, height)


def plan_images(storyboard: Storyboard, model: ImageModel, controlnet: str = "") -> RenderPlan:
    """Every image ``storyboard`` needs from ``model`` (load the model first: its size and steps count).

    ``controlnet`` is the server's ControlNet model id ("" for none); it guides the layout only
    when the storyboard has a reference image. Raises StoryboardError when the reference image
    cannot be read.
    """
    settings = generation_settings(storyboard, model)
    digest = read_reference(storyboard.reference_image)[1] if storyboard.reference_image else ""
    control = ControlImage(controlnet, storyboard.reference_image, digest) if digest and controlnet else None
    keyframes = tuple(
        ImageRequest(
            scene_index=index, prompt=_joined(scene.prompt, storyboard.style),
            negative_prompt=_joined(scene.negative_prompt, storyboard.style_negative),
            seed=scene.resolved_seed, steps=settings.steps, guidance_scale=settings.guidance_scale,
            width=settings.width, height=settings.height, id=keyframe_id(index),
            depends_on=_chained_to(storyboard, index), init=_init(storyboard, index, digest), control=control,
        )
        for index, scene in enumerate(storyboard.scenes)
    )
    return RenderPlan(keyframes)


def _joined(text: str, style: str) -> str:
    """A scene's prompt with the storyboard's style text after it."""
    return ", ".join(part for part in (text, style) if part)


def _chained_to(storyboard: Storyboard, index: int) -> tuple[str, ...]:
    return (keyframe_id(index - 1),) if storyboard.look == "chained" and index > 0 else ()


def _init(storyboard: Storyboard, index: int, digest: str) -> InitImage | None:
    """Where scene ``index`` starts: the previous scene (chained), the reference image, or noise."""
    if _chained_to(storyboard, index):
        return InitImage(storyboard.look_strength, request_id=keyframe_id(index - 1))
    if digest and (index == 0 or storyboard.reference_scenes == "every"):
        return InitImage(storyboard.look_strength, path=storyboard.reference_image, digest=digest)
    return None


def cache_key(model_id: str, request: ImageRequest, depends_on: list[str] | tuple[str, ...] = ()) -> str:
    """The hex key for one image: any change to what decides it (or to what it depends on) changes it.

    The request's id and scene position do not count: the same picture at another place
    in the storyboard is the same image.
    """
    fields: dict[str, object] = {
        "v": _CACHE_FORMAT,
        "model": model_id,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "steps": request.steps,
        "guidance_scale": round(float(request.guidance_scale), 4),
        "width": request.width,
        "height": request.height,
    }
    if request.kind != "keyframe":
        fields["kind"] = request.kind
    if depends_on:
        fields["after"] = list(depends_on)
    if request.init is not None:
        fields["init"] = [round(request.init.strength, 4), request.init.digest]
    if request.control is not None:
        control = request.control
        fields["control"] = [control.model, control.digest, round(control.scale, 4)]
    if request.between is not None:
        ends = request.between
        fields["between"] = [cache_key(model_id, ends.start), cache_key(model_id, ends.end), round(ends.t, 6)]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()
