"""The scene table <-> the Storyboard contract.

One column per scene field of ``pipeline.contract.fields.SCENE_FIELDS``, in that order,
with its label as the header. Fully blank rows are ignored, so a user can leave an
empty row at the end (or one added and left untouched). Where a blank row sits above a bad scene, its
message gives the row the table shows as well ("Scene 2 (row 3): ..."), since scenes are counted without
blank rows and the table numbers its rows.
Optional numbers (the seed) are text columns, so a blank cell stays blank; so are yes/no
fields (a scene's ``animate``: ``yes``, ``no`` or blank for the storyboard's), read back as booleans.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

from pipeline import Limits, Storyboard, StoryboardError, parse_storyboard
from pipeline.contract.fields import SCENE_FIELDS, SCENE_FIELDS_BY_NAME, FieldSpec

COLUMNS: tuple[str, ...] = tuple(spec.name for spec in SCENE_FIELDS)
HEADERS: list[str] = [spec.label for spec in SCENE_FIELDS]


def _datatype(spec: FieldSpec) -> str:
    return "number" if spec.kind in ("number", "integer") and spec.required else "str"


DATATYPES: list[str] = [_datatype(spec) for spec in SCENE_FIELDS]
_YES = frozenset({"yes", "true", "on", "1"})
_NO = frozenset({"no", "false", "off", "0"})
EMPTY_TABLE = "The scene table is empty: add at least one scene with a prompt and a duration."


def blank(value: Any) -> bool:
    """None, NaN or whitespace-only text: "not given"."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _same(value: Any, default: Any) -> bool:
    try:
        return value == default or float(value) == float(default)
    except (TypeError, ValueError):
        return False


def new_row() -> list[Any]:
    """A blank scene: each column's default, blank where there is none."""
    return ["" if spec.default is None or spec.name == "prompt" else spec.default for spec in SCENE_FIELDS]


def scene_rows(rows: list[list[Any]]) -> list[int]:
    """The table row (0-based) of each scene, in order: blank rows, and new rows left as they were
    added, are not scenes."""
    untouched = new_row()

    def kept(row: list[Any]) -> bool:
        return not all(blank(value) or _same(value, untouched[i]) for i, value in enumerate(list(row)[:len(untouched)]))

    return [index for index, row in enumerate(rows or []) if kept(row)]


def rows_to_scenes(rows: list[list[Any]]) -> list[dict[str, Any]]:
    """The scenes of a table as storyboard dicts (not yet validated); blank cells are left out."""
    scenes = []
    for index in scene_rows(rows):
        row = list(rows[index])
        scene = {name: _cell_value(name, row[i]) for i, name in enumerate(COLUMNS)
                 if i < len(row) and not blank(row[i])}
        scene.setdefault("prompt", "")  # the validator says "prompt is empty"
        scenes.append(scene)
    return scenes


def _cell_value(name: str, value: Any) -> Any:
    """A cell as the storyboard reads it: yes/no text of a boolean column as a boolean (other text is
    passed on, and the validator names the scene and the field)."""
    if SCENE_FIELDS_BY_NAME[name].kind == "boolean" and isinstance(value, str):
        word = value.strip().lower()
        return True if word in _YES else False if word in _NO else value
    return value


def _shown_cell(value: Any) -> Any:
    """A scene field's value as its cell shows it: blank for None, yes/no for a boolean."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def rows_to_storyboard(rows: list[list[Any]], board: dict[str, Any] | None = None,
                       limits: Limits | None = None) -> Storyboard:
    """Validate the table plus the storyboard-level ``board`` values; raises StoryboardError naming
    the scene (row) and the field."""
    scenes = rows_to_scenes(rows)
    if not scenes:
        raise StoryboardError(EMPTY_TABLE)
    try:
        return parse_storyboard({**(board or {}), "scenes": scenes}, limits)
    except StoryboardError as exc:
        raise _with_row_numbers(exc, scene_rows(rows)) from None


def _with_row_numbers(exc: StoryboardError, row_of: list[int]) -> StoryboardError:
    """``exc`` with "Scene N" followed by its table row wherever the two numbers differ (blank rows above)."""
    problems = list(exc.problems)
    changed = False
    for i, problem in enumerate(problems):
        scene = problem.scene
        prefix = f"Scene {scene}:"
        if scene is None or not 0 < scene <= len(row_of) or row_of[scene - 1] + 1 == scene:
            continue
        if problem.message.startswith(prefix):
            message = f"Scene {scene} (row {row_of[scene - 1] + 1}):" + problem.message[len(prefix):]
            problems[i] = replace(problem, message=message)
            changed = True
    return StoryboardError(problems=problems) if changed else exc


def storyboard_to_rows(storyboard: Storyboard) -> list[list[Any]]:
    """Table rows for a storyboard (blank where a field is None, e.g. a seed derived from the prompt)."""
    return [[_shown_cell(getattr(scene, name)) for name in COLUMNS] for scene in storyboard.scenes]


def move_row(rows: list[list[Any]], number: int, offset: int) -> tuple[list[list[Any]], int]:
    """Move scene ``number`` (1-based) up (offset -1) or down (+1); returns the rows and the moved
    scene's new number. Out-of-range moves change nothing."""
    rows = [list(row) for row in rows or []]
    index, target = int(number or 0) - 1, int(number or 0) - 1 + offset
    if 0 <= index < len(rows) and 0 <= target < len(rows):
        rows[index], rows[target] = rows[target], rows[index]
        return rows, target + 1
    return rows, int(number or 1)


def delete_row(rows: list[list[Any]], number: int) -> list[list[Any]]:
    """Remove scene ``number`` (1-based); the table keeps at least one (blank) row."""
    rows = [list(row) for row in rows or []]
    if 1 <= int(number or 0) <= len(rows):
        del rows[int(number) - 1]
    return rows or [new_row()]


def add_row(rows: list[list[Any]]) -> list[list[Any]]:
    return [list(row) for row in rows or []] + [new_row()]


def no_such_scene(rows: list[list[Any]], number: float | None) -> str:
    """Why scene ``number`` cannot be acted on ("" when it is a row of the table)."""
    count = len(rows or [])
    if number is not None and 1 <= number <= count and float(number).is_integer():
        return ""
    shown = "nothing" if number is None else f"{number:g}"
    return f"Scene # is {shown}, but the table has {count} row{'s' if count != 1 else ''}: pick 1 to {count}."


def cell(rows: list[list[Any]], number: int, name: str) -> Any:
    """The value of field ``name`` in scene ``number`` (1-based), or None."""
    index, column = int(number or 0) - 1, COLUMNS.index(name)
    if 0 <= index < len(rows or []) and column < len(rows[index]):
        return rows[index][column]
    return None


def set_cell(rows: list[list[Any]], number: int, name: str, value: Any) -> list[list[Any]]:
    """A copy of ``rows`` with field ``name`` of scene ``number`` set to ``value`` (out of range: unchanged)."""
    rows = [list(row) for row in rows or []]
    index, column = int(number or 0) - 1, COLUMNS.index(name)
    if 0 <= index < len(rows):
        rows[index] += [""] * (column + 1 - len(rows[index]))
        rows[index][column] = value
    return rows


def scene_choice(rows: list[list[Any]], number: int, name: str) -> Any:
    """Scene ``number``'s value of choice field ``name``, or None when the cell holds anything else."""
    value = cell(rows, number, name)
    return value if value in SCENE_FIELDS_BY_NAME[name].choices else None


def shown_values(number: int | float | None, values: dict[str, Any]) -> str:
    """What the row dropdowns show: scene ``number`` and its choice ``values`` (text kept in the browser)."""
    return json.dumps({"scene": int(number or 0), "values": values})


def read_shown(text: str | None) -> tuple[int, dict[str, Any]]:
    """The scene number and values written by :func:`shown_values` (0 and none for anything else)."""
    try:
        data = json.loads(text or "")
        return int(data["scene"]), dict(data["values"])
    except (ValueError, TypeError, KeyError, OverflowError):  # the browser sent something else
        return 0, {}
