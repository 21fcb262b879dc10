"""The Storyboard: the one contract between the UI, the API, the CLI and the renderer.

A storyboard is a JSON document (every field is described once, in
``pipeline.contract.fields``)::

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
from .fields import BOARD_FIELDS, MOTIONS, SCENE_FIELDS, TRANSITIONS, FieldSpec
from .presets import PRESETS, QUALITY_NAMES, Preset

_SCENE_KEYS = {spec.name for spec in SCENE_FIELDS}
_BOARD_KEYS = {"scenes"} | {spec.name for spec in BOARD_FIELDS}
_LONG_VALUE = 40  # characters of a bad value a message repeats


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
    max_model_chars: int = 300
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
    model: str | None = None
    morph_frames: int = 8
    morph_ease: bool = True

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
    """Validate a storyboard given as a dict or a JSON string; raise StoryboardError if it is bad.

    Every field is checked against its :class:`~pipeline.contract.fields.FieldSpec`.
    """
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
    values = {spec.name: _parse_field(spec, data, "Storyboard", limits) for spec in BOARD_FIELDS}
    board = Storyboard(scenes=scenes, **values)
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
    return Scene(**{spec.name: _parse_field(spec, raw, where, limits) for spec in SCENE_FIELDS})


def _parse_field(spec: FieldSpec, raw: dict, where: str, limits: Limits) -> Any:
    """One field's value from ``raw``: checked, converted, or its default when absent."""
    value = raw.get(spec.name)
    if value is None or (isinstance(value, str) and not value.strip() and spec.kind != "text"):
        if spec.required and spec.name not in raw:
            raise StoryboardError(f"{where}: {spec.name} is missing. {spec.help}")
        if not spec.required:
            return spec.default
    if spec.kind == "text":
        return _text(value, spec, where, limits)
    if spec.kind == "choice":
        return _choice(value if value not in (None, "") else spec.default, spec.allowed(limits), where, spec.name)
    if spec.kind == "boolean":
        return _boolean(value, where, spec.name)
    low, high = spec.bounds(limits)
    if spec.kind == "integer":
        return _integer(value, where, spec.name, int(low), int(high))
    return _number(value, where, spec.name, low, high, spec.unit)


def _text(value: Any, spec: FieldSpec, where: str, limits: Limits) -> str | None:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise StoryboardError(f"{where}: {spec.name} must be text.")
    value = value.strip()
    if spec.required and not value:
        raise StoryboardError(f"{where}: {spec.name} is empty; describe what the scene shows.")
    cap = getattr(limits, spec.max_chars) if spec.max_chars else None
    if cap is not None and len(value) > cap:
        raise StoryboardError(f"{where}: {spec.name} is {len(value)} characters; the most allowed is {cap}.")
    return value if value or spec.default is not None else spec.default


def _reject_unknown(raw: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise StoryboardError(
            f"{where}: unknown field '{unknown[0]}'; allowed fields are {', '.join(sorted(allowed))}."
        )


def _choice(value: Any, allowed: tuple[str, ...], where: str, name: str) -> str:
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    raise StoryboardError(f"{where}: {name} '{_shown(value)}' is not allowed; choose one of {', '.join(allowed)}.")


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


def _integer(value: Any, where: str, name: str, low: int, high: int) -> int:
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


def _shown(value: Any) -> str:
    """A bad value as a message may repeat it: one line, cut short."""
    text = " ".join(str(value).split())
    return text if len(text) <= _LONG_VALUE else text[: _LONG_VALUE - 1] + "…"
