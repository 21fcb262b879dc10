"""The render plan's clips: a scene's clip from its keyframe, a generated transition from the frames it joins.

:func:`plan_clips` turns a storyboard into the :class:`ClipRequest` objects of its animated
scenes (``clip-3``: depends on ``keyframe-3``) and generated transitions (``bridge-2``: from
scene 2's last frame, which is its clip's last frame when scene 2 is animated and else its
keyframe seen through its camera move at its end, to scene 3's first frame). Frame counts come
from how long each piece is on screen (the timeline says, through :class:`ClipTiming`) and the
model's :class:`FrameRules`; sizes from the preset's aspect at the model's native pixel count,
or the server's ``--clip-size``.

Cache keys follow from each request and the keys of what it depends on, plus how its end
pictures are seen (``views``), so editing scene 3 re-makes neither scene 1's clip nor the
transition from scene 1 to 2. The image stage's keyframe keys are the roots.

:func:`scene_footage_id` is the one place that says which slot holds a scene's footage (the
timeline's loader asks it); a further footage kind (a restyled shot) names its request there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..contract.storyboard import Storyboard
from .clip_generation import ClipRequest, FrameRules, bridge_id, clip_id
from .generation import keyframe_id

_CACHE_FORMAT = 1
DEFAULT_CLIP_STEPS = 8  # a distilled LTX-Video's steps, used when the backend says none
DEFAULT_CLIP_GUIDANCE = 1.0


@dataclass(frozen=True)
class ClipTiming:
    """How long each piece is on screen, from the timeline: ``scene_seconds[k]`` (transition halves
    included, except a generated transition's) and ``bridge_seconds[k]`` for each generated transition
    from scene ``k`` that has frames (a too short one is a cut, and has none)."""

    scene_seconds: tuple[float, ...]
    bridge_seconds: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClipPlan:
    """The clip requests of one render, in the order the video shows them, and how their end pictures
    are seen (request id -> (start view, end view), part of the cache key)."""

    requests: tuple[ClipRequest, ...]
    views: dict[str, tuple[str, str]] = field(default_factory=dict)

    def by_id(self) -> dict[str, ClipRequest]:
        return {request.id: request for request in self.requests}

    def cache_keys(self, model_id: str, image_keys: dict[str, str]) -> dict[str, str]:
        """Each clip's cache key, from the request, the model, its views and its dependencies' keys
        (``image_keys``: the image plan's keys by request id)."""
        keys = dict(image_keys)
        out: dict[str, str] = {}
        for request in self.requests:
            after = [keys.get(d, d) for d in request.depends_on]
            keys[request.id] = out[request.id] = clip_cache_key(model_id, request, after, self.views.get(request.id))
        return out


def restyled_id(scene_index: int) -> str:
    """The slot id of restyled scene ``scene_index``'s footage folder (filled by ``pipeline.restyle``)."""
    return f"restyle-{scene_index + 1}"


def scene_footage_id(storyboard: Storyboard, index: int) -> str | None:
    """The id whose slot holds scene ``index``'s footage (a footage folder: its clip, or its restyled
    shot), or None for a still."""
    if storyboard.scenes[index].restyled:
        return restyled_id(index)
    return clip_id(index) if storyboard.animated(index) else None


def clip_size(storyboard: Storyboard, rules: FrameRules, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The size clips are made at: ``size`` (the server's ``--clip-size``) rounded to the model's rules,
    else the preset's aspect at the model's native pixel count."""
    if size is not None:
        return rules.fit_size(*size)
    preset = storyboard.preset
    return rules.size_for(preset.width, preset.height)


def plan_clips(storyboard: Storyboard, rules: FrameRules, timing: ClipTiming, size: tuple[int, int] | None = None,
               steps: int = DEFAULT_CLIP_STEPS, guidance: float = DEFAULT_CLIP_GUIDANCE) -> ClipPlan:
    """Every clip ``storyboard`` needs, in video order: scene 1's clip, the transition 1→2, scene 2's clip…

    Each is made at the video's frame rate where the model takes one (:meth:`FrameRules.at_rate`).
    """
    rules = rules.at_rate(storyboard.output_fps)
    width, height = clip_size(storyboard, rules, size)
    requests: list[ClipRequest] = []
    views: dict[str, tuple[str, str]] = {}
    for index, scene in enumerate(storyboard.scenes):
        if storyboard.animated(index):
            requests.append(ClipRequest(
                scene_index=index, prompt=_joined(scene.prompt, scene.motion_prompt, storyboard.style),
                negative_prompt=_joined(scene.negative_prompt, storyboard.style_negative), seed=scene.resolved_seed,
                steps=steps, guidance_scale=guidance, width=width, height=height,
                num_frames=rules.frames_for(timing.scene_seconds[index]), fps=rules.fps, id=clip_id(index),
                kind="clip", depends_on=(keyframe_id(index),), start=keyframe_id(index)))
            views[clip_id(index)] = ("keyframe", "")
        if index in timing.bridge_seconds and rules.last_frame and not bridge_refused(storyboard, index):
            request, view = _bridge(storyboard, index, rules, timing.bridge_seconds[index], (width, height),
                                    steps, guidance)
            requests.append(request)
            views[request.id] = view
    return ClipPlan(tuple(requests), views)


RESTYLED_BRIDGE_REASON = "a restyled shot keeps its source's frames, so no clip is generated into or out of it"


def bridge_refused(storyboard: Storyboard, k: int) -> str:
    """Why the generated transition from scene ``k`` to ``k + 1`` cannot be made whatever the model ("" if it can)."""
    scenes = storyboard.scenes
    return RESTYLED_BRIDGE_REASON if scenes[k].restyled or scenes[k + 1].restyled else ""


def _bridge(storyboard: Storyboard, k: int, rules: FrameRules, seconds: float, size: tuple[int, int], steps: int,
            guidance: float) -> tuple[ClipRequest, tuple[str, str]]:
    """The generated transition from scene ``k`` to ``k + 1`` and how its end pictures are seen."""
    a, b = storyboard.scenes[k], storyboard.scenes[k + 1]
    start = clip_id(k) if storyboard.animated(k) else keyframe_id(k)
    end = keyframe_id(k + 1)
    view = ("clip:last" if storyboard.animated(k) else f"still:{a.motion}:end",
            "keyframe" if storyboard.animated(k + 1) else f"still:{b.motion}:start")
    seed = int.from_bytes(hashlib.sha256(f"{a.resolved_seed}:{b.resolved_seed}".encode()).digest()[:4], "big")
    prompt = _joined(f"{a.prompt}, turning into {b.prompt}", b.motion_prompt, storyboard.style)
    request = ClipRequest(
        scene_index=k, prompt=prompt, negative_prompt=_joined(a.negative_prompt, storyboard.style_negative),
        seed=seed, steps=steps, guidance_scale=guidance, width=size[0], height=size[1],
        num_frames=rules.frames_for(seconds), fps=rules.fps, id=bridge_id(k), kind="bridge",
        depends_on=(start, end), start=start, end=end)
    return request, view


def _joined(*parts: str) -> str:
    return ", ".join(part for part in parts if part)


def clip_cache_key(model_id: str, request: ClipRequest, depends_on: list[str], views: tuple[str, str] | None) -> str:
    """The hex key for one clip: any change to what decides it, or to what it depends on, changes it.
    The request's id and place in the storyboard do not count."""
    fields = {
        "v": _CACHE_FORMAT, "model": model_id, "kind": request.kind, "prompt": request.prompt,
        "negative_prompt": request.negative_prompt, "seed": request.seed, "steps": request.steps,
        "guidance_scale": round(float(request.guidance_scale), 4), "width": request.width,
        "height": request.height, "num_frames": request.num_frames, "fps": round(float(request.fps), 4),
        "after": list(depends_on), "views": list(views or ()),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()
