"""The Storyboard: the one contract between the UI, the API, the CLI and the renderer.

A storyboard is a JSON document (every field is described once, in
``pipeline.contract.fields``)::

    {"scenes": [{"prompt": "a red fox in snow", "duration": 3, "seed": 7,
                 "negative_prompt": "blurry", "motion": "zoom_in"}],
     "quality": "standard", "transition": "crossfade", "transition_duration": 0.5,
     "fps": 24, "use_ai": true, "steps": 2, "guidance_scale": 0.0}

A soundtrack adds ``"audio": "song.mp3"`` (a path; relative to the storyboard
file on the CLI), ``audio_start``, ``audio_volume``, ``fit`` (``scenes`` or
``audio``) and ``cut_on_beats``; the file is probed here, at the door.

Only ``scenes`` is required. It is validated once, here, at the door: any bad
field raises one :class:`StoryboardError` whose message names the scene and the
field and says what is allowed. Everything downstream trusts a Storyboard.

What a number is: a JSON number (an int or float in Python, never a bool), or a
string in the strict decimal form the page's table may send (``"2"``, ``"-1.5"``:
optional minus, digits, optional fraction; no spaces, ``_``, exponent, ``inf`` or
``nan``). Integers of any size are compared exactly (never through a float), so
``1`` followed by 400 zeros is out of range, not an OverflowError. Text must be
valid Unicode (a lone surrogate such as ``"\\ud800"`` is refused). Every scene
must last at least one frame at the output frame rate.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

from .errors import Problem, StoryboardError
from .fields import BOARD_FIELDS, MOTIONS, SCENE_FIELDS, TRANSITIONS, FieldSpec
from .json_input import HugeNumber, load_json
from .presets import PRESETS, QUALITY_NAMES, Preset

_SCENE_KEYS = {spec.name for spec in SCENE_FIELDS}
_BOARD_KEYS = {"scenes"} | {spec.name for spec in BOARD_FIELDS}
_LONG_VALUE = 40  # characters of a bad value a message repeats
# A number written as text: what the page's table sends, and nothing looser (see the module doc).
_NUMERIC_TEXT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    max_path_chars: int = 1000
    max_audio_seconds: float = 3600.0  # longest audio file accepted (only what the video needs is decoded)
    max_source_seconds: float = 600.0  # longest source video accepted for restyling
    allowed_qualities: tuple[str, ...] = QUALITY_NAMES


@dataclass(frozen=True)
class Scene:
    """One shot: a prompt held on screen for ``duration`` seconds."""

    prompt: str
    duration: float
    seed: int | None = None
    negative_prompt: str = ""
    motion: str = "none"
    animate: bool | None = None  # None: the storyboard's ``animate``
    motion_prompt: str = ""
    source_start: float | None = None  # seconds into the storyboard's source video; with source_end: restyled
    source_end: float | None = None

    @property
    def restyled(self) -> bool:
        """True when the scene redraws a span of the source video (its duration is the span's)."""
        return self.source_start is not None and self.source_end is not None

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
    audio: str | None = None
    audio_start: float = 0.0
    audio_volume: float = 1.0
    fit: str = "scenes"
    cut_on_beats: bool = False
    decoder: str | None = None  # "auto", "full", "tiny"; None: the server's setting
    style: str = ""
    style_negative: str = ""
    look: str = "independent"
    look_strength: float = 0.6
    reference_image: str | None = None
    animate: bool = False
    video_model: str | None = None
    reference_scenes: str = "first"
    source_video: str | None = None
    coherence: str = "flow"
    keyframe_interval: int = 8

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

    def animated(self, index: int) -> bool:
        """Whether scene ``index`` asks to be a clip (its own ``animate``, else the storyboard's); a restyled
        scene never is (its frames are its source's, redrawn)."""
        scene = self.scenes[index]
        if scene.restyled:
            return False
        return self.animate if scene.animate is None else scene.animate

    @property
    def wants_video_model(self) -> bool:
        """True when some scene is animated or the transition is generated."""
        return self.transition == "generated" or any(self.animated(i) for i in range(len(self.scenes)))

    def with_changes(self, **changes: Any) -> "Storyboard":
        """A copy with some top-level fields replaced, validated again by the caller if needed."""
        return replace(self, **changes)


def parse_storyboard(data: Any, limits: Limits | None = None) -> Storyboard:
    """Validate a storyboard given as a dict or a JSON string; raise StoryboardError if it is bad.

    Every field is checked against its :class:`~pipeline.contract.fields.FieldSpec`, and every bad
    field is reported at once: the error's ``problems`` lists each (scene, field, message), its
    message joins the first few. Checks of the whole (total length, the audio, a frame per scene)
    run once every field is good.
    """
    limits = limits or Limits()
    if isinstance(data, (str, bytes, bytearray)):
        data = load_json(data)  # size, depth, UTF-8 and huge numbers checked: only StoryboardError escapes
    if not isinstance(data, dict):
        raise StoryboardError("The storyboard must be a JSON object with a 'scenes' list.")
    problems: list[Problem] = []
    _collect(problems, None, None, lambda: _reject_unknown(data, _BOARD_KEYS, "Storyboard"))
    scenes = _collect(problems, None, "scenes", lambda: _parse_scenes(data.get("scenes"), limits, problems))
    values = {spec.name: _collect(problems, None, spec.name, lambda spec=spec: _parse_field(spec, data, "Storyboard",
                                                                                            limits))
              for spec in BOARD_FIELDS}
    if problems:
        raise StoryboardError(problems=problems)
    board = Storyboard(scenes=scenes, **values)
    _check_source(board, limits)
    _check_audio(board, limits)
    if board.total_seconds > limits.max_total_seconds + 1e-9 and not (board.audio and board.fit == "audio"):
        raise StoryboardError(
            f"Storyboard: the scenes add up to {board.total_seconds:g} seconds; "
            f"the most allowed is {limits.max_total_seconds:g} seconds.", field="scenes")
    _check_frames(board)
    return board


def _collect(problems: list[Problem], scene: int | None, field: str | None, check: Callable[[], Any]) -> Any:
    """``check()``'s value; or None, with its StoryboardError's problems added to ``problems`` (placed at
    ``scene``/``field`` when the error did not say where)."""
    try:
        return check()
    except StoryboardError as exc:
        for problem in exc.problems:
            if problem.scene is None and problem.field is None:
                problem = Problem(scene, field, problem.message)
            problems.append(problem)
        return None


def scene_frame_bounds(durations: list[float], fps: int) -> list[int]:
    """Each scene's first frame, then the total: cumulative times rounded, so errors never add up.

    ``pipeline.video.timeline`` lays scenes out with exactly these bounds.
    """
    bounds, elapsed = [0], 0.0
    for duration in durations:
        elapsed += duration
        bounds.append(round(elapsed * fps))
    bounds[-1] = round(sum(durations) * fps)
    return bounds


def _check_frames(board: Storyboard) -> None:
    """Every scene must be on screen for at least one frame at the output frame rate."""
    fps = board.output_fps
    bounds = scene_frame_bounds([scene.duration for scene in board.scenes], fps)
    problems = [
        Problem(number, "duration", f"Scene {number}: duration {board.scenes[number - 1].duration:g} seconds gives "
                                    f"no frame at {fps} fps; make the scene longer or raise fps.")
        for number, (start, end) in enumerate(zip(bounds, bounds[1:]), start=1) if end <= start]
    if problems:
        raise StoryboardError(problems=problems)


def _parse_scenes(raw: Any, limits: Limits, problems: list[Problem]) -> tuple[Scene, ...] | None:
    """The scenes; None when any is bad (each bad field added to ``problems``)."""
    if not isinstance(raw, list) or not raw:
        raise StoryboardError("Storyboard: 'scenes' must be a non-empty list of scenes.")
    if len(raw) > limits.max_scenes:
        raise StoryboardError(f"Storyboard: {len(raw)} scenes given; the most allowed is {limits.max_scenes}.")
    before = len(problems)
    scenes = tuple(_parse_scene(item, number, limits, problems) for number, item in enumerate(raw, start=1))
    return scenes if len(problems) == before else None


def _parse_scene(raw: Any, number: int, limits: Limits, problems: list[Problem]) -> Scene | None:
    where = f"Scene {number}"
    if not isinstance(raw, dict):
        problems.append(Problem(number, None, f"{where}: must be an object with at least 'prompt' and 'duration'."))
        return None
    before = len(problems)
    _collect(problems, number, None, lambda: _reject_unknown(raw, _SCENE_KEYS, where))
    spanned = not (_blank(raw.get("source_start")) and _blank(raw.get("source_end")))
    # A restyled scene's duration is its span's (a duration given beside a span is not read).
    values = {spec.name: _collect(problems, number, spec.name, lambda spec=spec: _parse_field(spec, raw, where, limits))
              for spec in SCENE_FIELDS if not (spanned and spec.name == "duration")}
    if spanned and len(problems) == before:
        values["duration"] = _collect(problems, number, "source_end", lambda: _span_length(values, where, limits))
    return Scene(**values) if len(problems) == before else None


def _span_length(values: dict[str, Any], where: str, limits: Limits) -> float:
    """A restyled scene's duration: its span of the source video, which must be one scene long."""
    start, end = values["source_start"], values["source_end"]
    if start is None or end is None:
        raise StoryboardError(f"{where}: source_start and source_end go together (a span of the source video); "
                              "give both, or neither.")
    length = end - start
    if not limits.min_scene_seconds - 1e-9 <= length <= limits.max_scene_seconds + 1e-9:
        raise StoryboardError(f"{where}: source_end must be {limits.min_scene_seconds:g} to "
                              f"{limits.max_scene_seconds:g} seconds after source_start (got {length:g}).")
    return round(length, 9)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_source(board: Storyboard, limits: Limits) -> None:
    """The source video at the door: scenes with a span need it; it must be a video they fit in."""
    spans = [(number, scene) for number, scene in enumerate(board.scenes, start=1) if scene.restyled]
    if not board.source_video:
        if spans:
            raise StoryboardError(f"Scene {spans[0][0]}: source_start and source_end need a source_video.")
        return
    if spans and (board.fit == "audio" or board.cut_on_beats):
        raise StoryboardError("Storyboard: fit 'audio' and cut_on_beats would retime restyled scenes, which keep "
                              "the source's timing; turn them off.")
    from ..restyle.source import probe_video  # runs the bundled ffmpeg; imported only with a source video

    info = probe_video(board.source_video, limits.max_source_seconds)
    slack = 1.0 / board.output_fps
    for number, scene in spans:
        if scene.source_end > info.duration + slack:
            raise StoryboardError(f"Scene {number}: source_end {scene.source_end:g} s is past the end of the "
                                  f"source video ({info.duration:.2f} s).")


def _parse_field(spec: FieldSpec, raw: dict, where: str, limits: Limits) -> Any:
    """One field's value from ``raw``: checked, converted, or its default when absent."""
    value = raw.get(spec.name)
    if value is None or (isinstance(value, str) and not value.strip() and spec.kind != "text"):
        if spec.required and spec.name not in raw:
            raise StoryboardError(f"{where}: {spec.name} is missing ({spec.help[:1].lower()}{spec.help[1:].rstrip('.')}).")
        if not spec.required:
            return spec.default
    if spec.kind in ("text", "file"):
        return _text(value, spec, where, limits) or spec.default
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
        raise StoryboardError(f"{where}: {spec.name} must be text (got {_kind(value)}).")
    if _SURROGATE.search(value):
        raise StoryboardError(f"{where}: {spec.name} is not valid Unicode text (it holds a lone surrogate).")
    value = value.strip()
    if spec.required and not value:
        raise StoryboardError(f"{where}: {spec.name} is empty; describe what the scene shows.")
    cap = getattr(limits, spec.max_chars) if spec.max_chars else None
    if cap is not None and len(value) > cap:
        raise StoryboardError(f"{where}: {spec.name} is {len(value)} characters; the most allowed is {cap}.")
    return value if value or spec.default is not None else spec.default


def _check_audio(board: Storyboard, limits: Limits) -> None:
    """The soundtrack at the door: a readable audio file, and long enough for what is asked of it."""
    if not board.audio:
        if board.fit == "audio" or board.cut_on_beats:
            option = "fit 'audio'" if board.fit == "audio" else "cut_on_beats"
            raise StoryboardError(f"Storyboard: {option} needs an audio file; add one or turn it off.",
                                  field="fit" if board.fit == "audio" else "cut_on_beats")
        return
    from ..audio.probe import probe_audio  # runs the bundled ffmpeg; imported only when there is audio

    info = probe_audio(board.audio)
    if info.duration > limits.max_audio_seconds + 1e-9:
        raise StoryboardError(f"Storyboard: audio lasts {info.duration:.0f} seconds; the longest file allowed "
                              f"lasts {limits.max_audio_seconds:g} seconds.", field="audio")
    left = info.duration - board.audio_start
    if left <= 0:
        raise StoryboardError(f"Storyboard: audio_start is {board.audio_start:g} seconds, but the audio lasts "
                              f"only {info.duration:.2f} seconds.", field="audio_start")
    if board.fit != "audio":
        return
    if left > limits.max_total_seconds + 1e-9:
        raise StoryboardError(f"Storyboard: with fit 'audio' the video would last {left:.1f} seconds (the audio "
                              f"from audio_start); the most allowed is {limits.max_total_seconds:g} seconds.",
                              field="fit")
    count, low, high = len(board.scenes), limits.min_scene_seconds, limits.max_scene_seconds
    if not count * low <= left <= count * high:
        raise StoryboardError(f"Storyboard: with fit 'audio' the video would last {left:.1f} seconds, but "
                              f"{count} scene(s) of {low:g} to {high:g} seconds can fill only "
                              f"{count * low:g} to {count * high:g} seconds.", field="fit")


def _reject_unknown(raw: dict, allowed: set[str], where: str) -> None:
    # Keys of a dict given to the library may be of any type: sorted by their text, shown cut short.
    unknown = sorted((key for key in raw if not (isinstance(key, str) and key in allowed)), key=_shown)
    if unknown:
        raise StoryboardError(
            f"{where}: unknown field '{_shown(unknown[0])}'; allowed fields are {', '.join(sorted(allowed))}."
        )


def _choice(value: Any, allowed: tuple[str, ...], where: str, name: str) -> str:
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    raise StoryboardError(f"{where}: {name} '{_shown(value)}' is not allowed; choose one of {', '.join(allowed)}.")


def _to_number(value: Any, where: str, name: str) -> int | float:
    """A JSON number, or text in the strict decimal form; ints stay ints (exact, any size)."""
    if isinstance(value, bool):
        raise StoryboardError(f"{where}: {name} must be a number, not {_shown(value)}.")
    if isinstance(value, HugeNumber):
        raise StoryboardError(f"{where}: {name} is far too large (got {value}).")
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        value = float(value) if "." in value else int(value)
    if isinstance(value, int):
        return value
    if not isinstance(value, float):
        raise StoryboardError(f"{where}: {name} must be a number (got {_kind(value)}).")
    if not math.isfinite(value):
        raise StoryboardError(f"{where}: {name} must be a finite number (got {_shown(value)}).")
    return value


def _number(value: Any, where: str, name: str, low: float, high: float, unit: str = "") -> float:
    number = _to_number(value, where, name)
    if not low <= number <= high:  # exact for ints of any size: Python compares int and float exactly
        suffix = f" {unit}" if unit else ""
        raise StoryboardError(f"{where}: {name} must be between {low:g} and {high:g}{suffix} (got {_shown(number)}).")
    return float(number)


def _integer(value: Any, where: str, name: str, low: int, high: int) -> int:
    number = _to_number(value, where, name)
    if isinstance(number, float) and not number.is_integer():
        raise StoryboardError(f"{where}: {name} must be a whole number (got {_shown(number)}).")
    if not low <= number <= high:
        raise StoryboardError(f"{where}: {name} must be between {low} and {high} (got {_shown(number)}).")
    return int(number)


def _boolean(value: Any, where: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise StoryboardError(f"{where}: {name} must be true or false (got {_shown(value)}).")


def _kind(value: Any) -> str:
    """What a value is, for a message: the value itself when it is short and simple."""
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"'{_shown(value)}'" if isinstance(value, str) else _shown(value)


def _shown(value: Any) -> str:
    """A bad value as a message may repeat it: one printable line, cut short, never recursing.

    Lists and objects are named, not printed (they may nest thousands deep); huge integers
    say their length (``str()`` of one over 4,300 digits raises); JSON spelling for
    null/true/false; anything unprintable (control characters, lone surrogates) becomes a space.
    """
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int) and abs(value) >= 10**_LONG_VALUE:
        return f"a number with more than {_LONG_VALUE} digits"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, dict, set)):
        return _kind(value) if not isinstance(value, set) else "a set"
    if not isinstance(value, (str, int)):
        return type(value).__name__
    text = value if isinstance(value, str) else str(value)
    text = text[: _LONG_VALUE * 4]
    text = re.sub(r"\s+", " ", "".join(ch if ch.isprintable() else " " for ch in text))
    return text if len(text) <= _LONG_VALUE else text[: _LONG_VALUE - 1] + "…"
