"""The scene table and the render controls <-> the Storyboard contract.

The table has one row per scene: prompt, duration, seed (blank: derived from the
prompt), negative prompt, motion. Fully blank rows are ignored, so a user can leave
an empty row at the end. Row numbers in error messages match what the user sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipeline import Storyboard, StoryboardError, Limits, parse_storyboard

HEADERS = ["Prompt", "Duration (s)", "Seed", "Negative prompt", "Motion"]
DATATYPES = ["str", "number", "number", "str", "str"]


@dataclass(frozen=True)
class Controls:
    """Everything beside the table that goes into a storyboard."""

    quality: str = "standard"
    transition: str = "crossfade"
    transition_duration: float = 0.5
    fps: float | None = None
    use_ai: bool = True
    steps: float | None = None
    guidance_scale: float | None = None


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _cell(row: list, index: int) -> Any:
    value = row[index] if index < len(row) else None
    return None if _blank(value) else value


def rows_to_dict(rows: list[list[Any]], controls: Controls) -> dict[str, Any]:
    """The storyboard document for a table and its controls (not yet validated)."""
    scenes = []
    for row in rows or []:
        row = list(row)
        if all(_blank(value) for value in row):
            continue
        scene: dict[str, Any] = {"prompt": _cell(row, 0) or "", "duration": _cell(row, 1)}
        if scene["duration"] is None:
            del scene["duration"]  # the validator names the missing field
        for key, index in (("seed", 2), ("negative_prompt", 3), ("motion", 4)):
            if _cell(row, index) is not None:
                scene[key] = _cell(row, index)
        scenes.append(scene)
    board: dict[str, Any] = {
        "scenes": scenes,
        "quality": controls.quality,
        "transition": controls.transition,
        "transition_duration": controls.transition_duration,
        "use_ai": bool(controls.use_ai),
    }
    # 0 or blank in the advanced fields means "the preset's default".
    for key in ("fps", "steps", "guidance_scale"):
        value = getattr(controls, key)
        if not _blank(value) and not (key != "guidance_scale" and _is_zero(value)):
            board[key] = value
    return board


def _is_zero(value: Any) -> bool:
    """True for 0 (or "0"); anything that is not a number goes on to the validator, which names it."""
    try:
        return float(value) == 0
    except (TypeError, ValueError, OverflowError):
        return False


def rows_to_storyboard(rows: list[list[Any]], controls: Controls, limits: Limits | None = None,
                       extra: dict[str, Any] | None = None) -> Storyboard:
    """Validate the table (plus ``extra`` Storyboard fields); raises StoryboardError naming the scene and field."""
    board = rows_to_dict(rows, controls) | (extra or {})
    if not board["scenes"]:
        raise StoryboardError("The scene table is empty: add at least one scene with a prompt and a duration.")
    return parse_storyboard(board, limits)


def storyboard_to_rows(storyboard: Storyboard) -> list[list[Any]]:
    """Table rows for a storyboard (seed blank when it is derived from the prompt)."""
    return [
        [scene.prompt, scene.duration, "" if scene.seed is None else scene.seed, scene.negative_prompt, scene.motion]
        for scene in storyboard.scenes
    ]


def storyboard_to_controls(storyboard: Storyboard) -> Controls:
    return Controls(
        quality=storyboard.quality, transition=storyboard.transition,
        transition_duration=storyboard.transition_duration, fps=storyboard.fps or 0,
        use_ai=storyboard.use_ai, steps=storyboard.steps or 0, guidance_scale=storyboard.guidance_scale,
    )


def move_row(rows: list[list[Any]], number: int, offset: int) -> list[list[Any]]:
    """Move scene ``number`` (1-based) up (offset -1) or down (+1); out-of-range moves change nothing."""
    rows = [list(row) for row in rows or []]
    index, target = int(number) - 1, int(number) - 1 + offset
    if 0 <= index < len(rows) and 0 <= target < len(rows):
        rows[index], rows[target] = rows[target], rows[index]
    return rows


def delete_row(rows: list[list[Any]], number: int) -> list[list[Any]]:
    """Remove scene ``number`` (1-based); the table keeps at least one (blank) row."""
    rows = [list(row) for row in rows or []]
    if 1 <= int(number) <= len(rows):
        del rows[int(number) - 1]
    return rows or [["", 3, "", "", "none"]]


def add_row(rows: list[list[Any]]) -> list[list[Any]]:
    return [list(row) for row in rows or []] + [["", 3, "", "", "none"]]
