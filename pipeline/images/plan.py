"""The render plan: every image a video needs, as requests, before any is made.

:func:`plan_images` turns a storyboard into a :class:`RenderPlan` for one model:
one keyframe request per scene and, for a ``morph`` transition, the in-between
images of each boundary (kind ``inbetween``, see :func:`morph_frame_counts`), each
depending on the two keyframes it walks between. The storyboard's ``style`` is added
to every prompt (``style_negative`` to every negative prompt). In a ``chained`` look each
scene's keyframe starts from the previous scene's (image-to-image, ``look_strength``) and
depends on it; a reference image is where scene 1 (or every scene) starts; with a
ControlNet model the reference image's edges guide every scene. New request kinds are
added here as further requests with ``depends_on`` naming the requests whose images they need; the image stage
runs a request once its dependencies exist, and the timeline asks for images by
request id, so neither changes for a new kind.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from ..contract.reference import checked_reference
from ..contract.storyboard import Storyboard
from .generation import Between, ControlImage, ImageModel, ImageRequest, InitImage, inbetween_id, keyframe_id

_CACHE_FORMAT = 1


@dataclass(frozen=True)
class GenerationSettings:
    """Steps, guidance and model-side size for a storyboard on a given model."""

    steps: int
    guidance_scale: float
    width: int
    height: int
    decoder: str = "full"  # what turns latents into pixels: "full" (the VAE) or "tiny"


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
    """Preset defaults that suit the model (turbo: few steps, guidance 0), overridden by the storyboard;
    the decoder the model picks for the storyboard's ``decoder`` and quality."""
    preset = storyboard.preset
    distilled = model.is_distilled()
    steps = storyboard.steps or (preset.steps_distilled if distilled else preset.steps_full)
    if storyboard.guidance_scale is not None:
        guidance = storyboard.guidance_scale
    else:
        guidance = 0.0 if distilled else preset.guidance_full
    width, height = model.generation_size(preset.width, preset.height)
    # Optional in a model: one without a latent decoder to choose (a remote API) draws as it draws.
    decoder_for = getattr(model, "decoder_for", None)
    decoder = decoder_for(storyboard.decoder, storyboard.quality) if decoder_for is not None else "full"
    return GenerationSettings(steps, guidance, width, height, decoder)


def plan_images(storyboard: Storyboard, model: ImageModel, controlnet: str = "") -> RenderPlan:
    """Every image ``storyboard`` needs from ``model`` (load the model first: its size and steps count).

    In the order the video needs them: scene 1's keyframe, scene 2's, the morph between
    them (if any), scene 3's, and so on. ``controlnet`` is the server's ControlNet model id
    ("" for none); it guides the layout only when the storyboard has a reference image.
    Raises StoryboardError when the reference image cannot be read.
    """
    settings = generation_settings(storyboard, model)
    morphs = morph_frame_counts(storyboard)
    digest = checked_reference(storyboard.reference_image)[1] if storyboard.reference_image else ""
    control = ControlImage(controlnet, storyboard.reference_image, digest) if digest and controlnet else None
    keyframes = [
        ImageRequest(
            scene_index=index, prompt=joined_prompt(scene.prompt, storyboard.style),
            negative_prompt=joined_prompt(scene.negative_prompt, storyboard.style_negative),
            seed=scene.resolved_seed, steps=settings.steps, guidance_scale=settings.guidance_scale,
            width=settings.width, height=settings.height, id=keyframe_id(index), decoder=settings.decoder,
            depends_on=_chained_to(storyboard, index), init=_init(storyboard, index, digest), control=control,
        )
        for index, scene in enumerate(storyboard.scenes)
    ]
    requests: list[ImageRequest] = []
    for index, keyframe in enumerate(keyframes):
        if storyboard.scenes[index].restyled:  # redrawn from its source frames by the restyle stage
            continue
        requests.append(keyframe)
        if index - 1 in morphs:
            requests += _inbetweens(keyframes[index - 1], keyframe, morphs[index - 1], storyboard.morph_ease)
    return RenderPlan(tuple(requests))


def joined_prompt(text: str, style: str) -> str:
    """A scene's prompt with the storyboard's style text after it."""
    return ", ".join(part for part in (text, style) if part)


def _chained_to(storyboard: Storyboard, index: int) -> tuple[str, ...]:
    if storyboard.look != "chained" or index == 0 or storyboard.scenes[index - 1].restyled:
        return ()
    return (keyframe_id(index - 1),)


def _init(storyboard: Storyboard, index: int, digest: str) -> InitImage | None:
    """Where scene ``index`` starts: the previous scene (chained), the reference image, or noise."""
    if _chained_to(storyboard, index):
        return InitImage(storyboard.look_strength, request_id=keyframe_id(index - 1))
    if digest and (index == 0 or storyboard.reference_scenes == "every"):
        return InitImage(storyboard.look_strength, path=storyboard.reference_image, digest=digest)
    return None


def _inbetweens(start: ImageRequest, end: ImageRequest, count: int, ease: bool) -> list[ImageRequest]:
    """The ``count`` in-between requests of the morph from ``start``'s keyframe to ``end``'s
    (walks between the two prompts and noises: no start picture or control image of their own)."""
    boundary = start.scene_index
    return [
        replace(start, id=inbetween_id(boundary, j), kind="inbetween", depends_on=(start.id, end.id),
                init=None, control=None, between=Between(start, end, morph_position(j, count, ease)))
        for j in range(1, count + 1)
    ]


def morph_frame_counts(storyboard: Storyboard) -> dict[int, int]:
    """For a ``morph`` storyboard: boundary -> how many in-between images the model makes there.

    ``morph_frames``, but never more than the transition has frames between its two
    keyframes (nominally ``round(min(transition, both durations) * fps) - 2``); boundaries
    without any are left out. Depends only on the two scenes of each boundary and the
    board's settings, so editing another scene never changes a morph's images. A boundary next to a
    restyled scene has none (drawn as a crossfade).
    """
    if storyboard.transition != "morph":
        return {}
    scenes, counts = storyboard.scenes, {}
    for k in range(len(scenes) - 1):
        if scenes[k].restyled or scenes[k + 1].restyled:  # a restyled shot has no keyframe to morph from
            continue
        length = min(storyboard.transition_duration, scenes[k].duration, scenes[k + 1].duration)
        count = min(storyboard.morph_frames, round(length * storyboard.output_fps) - 2)
        if count > 0:
            counts[k] = count
    return counts


def morph_position(frame: int, count: int, ease: bool) -> float:
    """Where in-between image ``frame`` (1..count) sits on the walk from one keyframe (0) to the next (1).

    Evenly spaced, or with ``ease`` on a smoothstep (3t² - 2t³): images crowd near both
    keyframes, so the walk starts and stops gently. The timeline shows the images at
    even intervals either way.
    """
    t = frame / (count + 1)
    return t * t * (3.0 - 2.0 * t) if ease else t


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
        "decoder": request.decoder,
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
