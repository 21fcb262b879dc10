"""The Storyboard: the one contract between the UI, the API, the CLI and the renderer.

A storyboard is a JSON document::

    {"scenes": [{"prompt": "a red fox in snow", "duration": 3, "seed": 7,
                 "negative_prompt": "blurry", "motion": "zoom_in"}],
     "quality": "standard", "transition": "crossfade", "transition_duration": 0.5,
     "fps": 24, "use_ai": true, "steps": 2, "guidance_scale": 0.0}

Only ``scenes`` is required. It is validated once, here, at the door: any bad
field raises one :class:`StoryboardError` whose message names the scene and the
field and says what is allowed. Everything downstream trusts a Storyboard.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import StoryboardError
from .presets import PRESETS, QUALITY_NAMES, Preset

TRANSITIONS: tuple[str, ...] = ("cut", "crossfade", "fade", "wipe", "slide")
MOTIONS: tuple[str, ...] = ("none", "zoom_in", "zoom_out", "pan_left", "pan_right")

_SCENE_KEYS = {"prompt", "duration", "seed", "negative_prompt", "motion"}
_BOARD_KEYS = {
    "scenes", "quality", "transition", "transition_duration", "fps",
    "use_ai", "steps", "guidance_scale",
}
_MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Limits:
    """What a storyboard may ask for. Defaults suit a single-user machine.

    A public deployment lowers them (see ``pipeline.contract.settings``); going over one
    gives a StoryboardError that says the limit.
    """

    max_scenes: int = 100
    max_prompt_chars: int = 500
    min_scene_seconds: float = 0.5
    max_scene_seconds: float = 60.0
    max_total_seconds: float = 600.0
    max_transition_seconds: float = 5.0
    min_fps: int = 1
    max_fps: int = 60
    max_steps: int = 100
    allowed_qualities: tuple[str, ...] = QUALITY_NAMES


@dataclass(frozen=True)
class Scene:
    """One shot: a prompt held on screen for ``duration`` seconds."""

    prompt: str
    duration: float
    seed: int | None = None
    negative_prompt: str = ""
    motion: str = "none"

    @property
    def resolved_seed(self) -> int:
        """The seed given, or one derived from the prompt (same prompt, same seed)."""
        if self.seed is not None:
            return self.seed
        digest = hashlib.sha256(self.prompt.encode("utf-8")).digest()
        return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Storyboard:
    """A validated list of scenes plus how to render them. Build it with :func:`parse_storyboard`."""

    scenes: tuple[Scene, ...]
    quality: str = "standard"
    transition: str = "crossfade"
    transition_duration: float = 0.5
    fps: int | None = None
    use_ai: bool = True
    steps: int | None = None
    guidance_scale: float | None = None

    @property
    def preset(self) -> Preset:
        return PRESETS[self.quality]

    @property
    def output_fps(self) -> int:
        """The frame rate of the video: the storyboard's, else the preset's."""
        return self.fps if self.fps is not None else self.preset.fps

    @property
    def total_seconds(self) -> float:
        return sum(scene.duration for scene in self.scenes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form; ``parse_storyboard(sb.to_dict()) == sb``."""
        data = asdict(self)
        data["scenes"] = [asdict(scene) for scene in self.scenes]
        return {key: value for key, value in data.items() if value is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def with_changes(self, **changes: Any) -> "Storyboard":
        """A copy with some top-level fields replaced, validated again by the caller if needed."""
        return replace(self, **changes)


def parse_storyboard(data: Any, limits: Limits | None = None) -> Storyboard:
    """Validate a storyboard given as a dict or a JSON string; raise StoryboardError if it is bad."""
    limits = limits or Limits()
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise StoryboardError(f"The storyboard is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    if not isinstance(data, dict):
        raise StoryboardError("The storyboard must be a JSON object with a 'scenes' list.")
    _reject_unknown(data, _BOARD_KEYS, "Storyboard")
    scenes = _parse_scenes(data.get("scenes"), limits)
    quality = _choice(data.get("quality", "standard"), limits.allowed_qualities, "Storyboard", "quality")
    transition = _choice(data.get("transition", "crossfade"), TRANSITIONS, "Storyboard", "transition")
    board = Storyboard(
        scenes=scenes,
        quality=quality,
        transition=transition,
        transition_duration=_number(
            data.get("transition_duration", 0.5), "Storyboard", "transition_duration",
            0.0, limits.max_transition_seconds, "seconds",
        ),
        fps=_optional_int(data.get("fps"), "Storyboard", "fps", limits.min_fps, limits.max_fps),
        use_ai=_boolean(data.get("use_ai", True), "Storyboard", "use_ai"),
        steps=_optional_int(data.get("steps"), "Storyboard", "steps", 1, limits.max_steps),
        guidance_scale=_optional_number(data.get("guidance_scale"), "Storyboard", "guidance_scale", 0.0, 30.0),
    )
    if board.total_seconds > limits.max_total_seconds + 1e-9:
        raise StoryboardError(
            f"Storyboard: the scenes add up to {board.total_seconds:g} seconds; "
            f"the most allowed is {limits.max_total_seconds:g} seconds."
        )
    return board


def _parse_scenes(raw: Any, limits: Limits) -> tuple[Scene, ...]:
    if not isinstance(raw, list) or not raw:
        raise StoryboardError("Storyboard: 'scenes' must be a non-empty list of scenes.")
    if len(raw) > limits.max_scenes:
        raise StoryboardError(f"Storyboard: {len(raw)} scenes given; the most allowed is {limits.max_scenes}.")
    return tuple(_parse_scene(item, number, limits) for number, item in enumerate(raw, start=1))


def _parse_scene(raw: Any, number: int, limits: Limits) -> Scene:
    where = f"Scene {number}"
    if not isinstance(raw, dict):
        raise StoryboardError(f"{where}: must be an object with at least 'prompt' and 'duration'.")
    _reject_unknown(raw, _SCENE_KEYS, where)
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise StoryboardError(f"{where}: prompt is empty; describe what the scene shows.")
    prompt = prompt.strip()
    if len(prompt) > limits.max_prompt_chars:
        raise StoryboardError(
            f"{where}: prompt is {len(prompt)} characters; the most allowed is {limits.max_prompt_chars}."
        )
    if "duration" not in raw:
        raise StoryboardError(f"{where}: duration is missing; give the scene's length in seconds.")
    negative = raw.get("negative_prompt") or ""
    if not isinstance(negative, str):
        raise StoryboardError(f"{where}: negative_prompt must be text.")
    if len(negative) > limits.max_prompt_chars:
        raise StoryboardError(
            f"{where}: negative_prompt is {len(negative)} characters; the most allowed is {limits.max_prompt_chars}."
        )
    return Scene(
        prompt=prompt,
        duration=_number(raw["duration"], where, "duration", limits.min_scene_seconds, limits.max_scene_seconds, "seconds"),
        seed=_optional_int(raw.get("seed"), where, "seed", 0, _MAX_SEED),
        negative_prompt=negative.strip(),
        motion=_choice(raw.get("motion") or "none", MOTIONS, where, "motion"),
    )


def _reject_unknown(raw: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise StoryboardError(
            f"{where}: unknown field '{unknown[0]}'; allowed fields are {', '.join(sorted(allowed))}."
        )


def _choice(value: Any, allowed: tuple[str, ...], where: str, name: str) -> str:
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    raise StoryboardError(f"{where}: {name} '{value}' is not allowed; choose one of {', '.join(allowed)}.")


def _to_float(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool):
        raise StoryboardError(f"{where}: {name} must be a number, not {str(value).lower()}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StoryboardError(f"{where}: {name} must be a number (got '{value}').") from None
    if not math.isfinite(number):
        raise StoryboardError(f"{where}: {name} must be a finite number (got '{value}').")
    return number


def _number(value: Any, where: str, name: str, low: float, high: float, unit: str = "") -> float:
    number = _to_float(value, where, name)
    if not low <= number <= high:
        suffix = f" {unit}" if unit else ""
        raise StoryboardError(f"{where}: {name} must be between {low:g} and {high:g}{suffix} (got {number:g}).")
    return number


def _optional_number(value: Any, where: str, name: str, low: float, high: float) -> float | None:
    if value is None or value == "":
        return None
    return _number(value, where, name, low, high)


def _optional_int(value: Any, where: str, name: str, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    number = _to_float(value, where, name)
    if number != int(number):
        raise StoryboardError(f"{where}: {name} must be a whole number (got {value}).")
    if not low <= number <= high:
        raise StoryboardError(f"{where}: {name} must be between {low} and {high} (got {int(number)}).")
    return int(number)


def _boolean(value: Any, where: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise StoryboardError(f"{where}: {name} must be true or false (got '{value}').")
