"""Hypothesis strategies for storyboards: mostly valid ones, and ones broken in every way a user or an
attacker might (wrong types, huge numbers, NaN, lone surrogates, unknown and non-text keys, deep
nesting, bad UTF-8, truncated JSON)."""

from __future__ import annotations

import json
import re

from hypothesis import strategies as st

from pipeline.contract.fields import BOARD_FIELDS, MOTIONS, SCENE_FIELDS, TRANSITIONS
from pipeline.contract.presets import QUALITY_NAMES

SCENE_NAMES = [spec.name for spec in SCENE_FIELDS]
BOARD_NAMES = [spec.name for spec in BOARD_FIELDS]
# What a refusal must start with: the scene or the storyboard, then the field it is about
# (or, for the document as a whole, "The storyboard ...").
_FIELD_MESSAGE = re.compile(
    r"(Scene \d+: (must be an object|unknown field|(" + "|".join(SCENE_NAMES) + r")\b)"
    r"|Storyboard: ('scenes'|\d+ scenes|the scenes|unknown field|(" + "|".join(BOARD_NAMES) + r")\b)"
    r"|The storyboard )")


def names_a_field(message: str) -> bool:
    """One line of at most 300 characters that says which scene/field (or the whole document) is wrong."""
    return "\n" not in message and len(message) <= 300 and bool(_FIELD_MESSAGE.match(message))


# Any character, lone surrogates and control characters included.
any_text = st.text(st.characters(exclude_categories=()), max_size=12)
huge_int = st.integers(min_value=10**15, max_value=10**500) | st.integers(max_value=-(10**15), min_value=-(10**500))
junk = st.one_of(
    st.none(), st.booleans(), huge_int, st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
    any_text, st.sampled_from(["1_0", " 2 ", "1e3", "nan", "inf", "0x10", "", "  ", "\ud800x", "2.5", "-1"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

# Strategies are built once here: building them inside each draw costs more than the draws.
prompt = st.text(st.sampled_from("abcdefgh xyzé世界🌍-,."), min_size=1, max_size=40).filter(str.strip)
_duration = st.sampled_from([0.5, 1, 1.5, 2]) | st.floats(0.5, 3)
_seed = st.integers(0, 2**32 - 1)
_negative = st.text(st.sampled_from("abc blury"), max_size=20)
_motion = st.sampled_from(MOTIONS)
_present = st.booleans()
_animate = st.booleans() | st.none()
_motion_prompt = st.text(st.sampled_from("waves roll in,camera left"), max_size=30)


@st.composite
def valid_scene(draw) -> dict:
    scene = {"prompt": draw(prompt), "duration": draw(_duration)}
    for name, strategy in (("seed", _seed), ("negative_prompt", _negative), ("motion", _motion),
                           ("animate", _animate), ("motion_prompt", _motion_prompt)):
        if draw(_present):
            scene[name] = draw(strategy)
    return scene


_scenes = st.lists(valid_scene(), min_size=1, max_size=3)
_OPTIONAL = {
    "quality": st.sampled_from(QUALITY_NAMES),
    "transition": st.sampled_from(TRANSITIONS),
    "transition_duration": st.floats(0, 2),
    "fps": st.integers(1, 60),
    "use_ai": st.booleans(),
    "steps": st.integers(1, 8),
    "guidance_scale": st.floats(0, 30),
    "animate": st.booleans(),
}
_one_in_three = st.integers(0, 2)


@st.composite
def valid_board(draw) -> dict:
    board: dict = {"scenes": draw(_scenes)}
    for name, strategy in _OPTIONAL.items():
        if draw(_one_in_three) == 0:
            board[name] = draw(strategy)
    return board


_mutations = st.integers(1, 3)
_kinds = st.sampled_from(["board_field", "scene_field", "unknown_key", "drop", "scenes", "whole"])
_board_name = st.sampled_from(BOARD_NAMES)
_scene_name = st.sampled_from(SCENE_NAMES)
_key = any_text | st.integers() | st.none()
_dropped = st.sampled_from(["prompt", "duration"])
_bad_scenes = junk | st.lists(junk, max_size=3) | st.just([])


@st.composite
def broken_board(draw) -> object:
    """A valid storyboard with one to three things broken."""
    board = draw(valid_board())
    for _ in range(draw(_mutations)):
        kind = draw(_kinds)
        scenes = board.get("scenes") if isinstance(board, dict) else None
        if kind == "board_field" and isinstance(board, dict):
            board[draw(_board_name)] = draw(junk)
        elif kind == "scene_field" and isinstance(scenes, list) and scenes and isinstance(scenes[0], dict):
            scene = scenes[draw(st.integers(0, len(scenes) - 1))] if all(isinstance(s, dict) for s in scenes) \
                else scenes[0]
            scene[draw(_scene_name)] = draw(junk)
        elif kind == "unknown_key" and isinstance(board, dict):
            target = scenes[0] if isinstance(scenes, list) and scenes and isinstance(scenes[0], dict) \
                and draw(st.booleans()) else board
            target[draw(_key)] = draw(junk)
        elif kind == "drop" and isinstance(scenes, list) and scenes and isinstance(scenes[0], dict):
            scenes[0].pop(draw(_dropped), None)
        elif kind == "scenes" and isinstance(board, dict):
            board["scenes"] = draw(_bad_scenes)
        elif kind == "whole":
            board = draw(junk)
    return board


any_board = st.one_of(valid_board(), broken_board())
_one_in_four = st.integers(0, 3)
_short_board = st.fixed_dictionaries(
    {"scenes": st.lists(st.fixed_dictionaries({"prompt": prompt, "duration": st.sampled_from([0.5, 0.75, 1])},
                                              optional={"seed": _seed, "motion": _motion, "negative_prompt": _negative}),
                        min_size=1, max_size=2)},
    optional={"transition": _OPTIONAL["transition"], "transition_duration": _OPTIONAL["transition_duration"],
              "fps": _OPTIONAL["fps"], "use_ai": _OPTIONAL["use_ai"], "steps": _OPTIONAL["steps"],
              "quality": st.just("draft")})


@st.composite
def board_text(draw, as_bytes: bool = True) -> bytes | str:
    """A storyboard document as the CLI or /render gets it: JSON, sometimes mangled on the way."""
    # One in four short and valid (each is rendered by the caller; a refusal costs almost nothing).
    board = draw(_short_board) if draw(_one_in_four) == 0 else draw(broken_board())
    try:
        text = json.dumps(board, ensure_ascii=draw(st.booleans()) or not as_bytes)
    except (TypeError, ValueError):  # a key json cannot write: send a document we can write instead
        text = json.dumps({"scenes": "not a list"})
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "deep", "huge_literal", "bad_utf8"]))
    if damage == "truncate":
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif damage == "deep":
        depth = draw(st.sampled_from([25, 1000, 100_000]))
        text = '{"scenes": ' + "[" * depth + "]" * depth + "}"
    elif damage == "huge_literal":
        text = text.replace("1", "1" + "0" * draw(st.sampled_from([400, 5000])), 1)
    data = text.encode("utf-8", "surrogatepass")
    if damage == "bad_utf8" and as_bytes:
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + b"\xff\xfe" + data[cut:]
    return data if as_bytes else text
