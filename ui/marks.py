"""The page marks what a refused storyboard got wrong: the bad cells of the scene table and the bad
storyboard fields, from ``StoryboardError.problems`` (each with a 1-based scene or None, a field name
and a message). The marks are a style sheet in one HTML element, so the table's value never changes."""

from __future__ import annotations

from typing import Any, Iterable

from .table import COLUMNS, scene_rows

# Widgets whose element id is not ``field-<name>`` (the soundtrack's own).
ELEM_IDS = {"audio": "audio", "cut_on_beats": "cut-on-beats", "scenes": "scenes"}
CELL = "box-shadow: inset 0 0 0 2px var(--color-red-500, #ef4444); background: var(--color-red-50, #fef2f2)"
FIELD = "outline: 2px solid var(--color-red-500, #ef4444); outline-offset: -2px; border-radius: 4px"


def problems_of(exc: BaseException) -> list[Any]:
    """The error's problems (objects with ``scene``, ``field``, ``message``); none for a plain one."""
    return list(getattr(exc, "problems", None) or [])


def marks_css(problems: Iterable[Any], rows: list[list[Any]] | None) -> str:
    """A ``<style>`` element marking each problem's table cell (scene and column) or board field.

    Scene numbers count the scenes the table holds, so they are mapped to its rows (blank rows are
    not scenes); a problem with no cell or widget to point at (a scene-level one) marks its row."""
    row_of = scene_rows(rows or [])
    rules = []
    for problem in problems:
        scene, field = getattr(problem, "scene", None), str(getattr(problem, "field", "") or "")
        if scene is not None:
            index = int(scene) - 1
            if not 0 <= index < len(row_of):
                continue
            cells = f'[data-col="{COLUMNS.index(field)}"]' if field in COLUMNS else ""
            rules.append(f'#scenes [data-row="{row_of[index]}"]{cells}')
        elif field and field.replace("_", "").isalnum():
            rules.append(f"#{ELEM_IDS.get(field, f'field-{field}')}")
    if not rules:
        return ""
    cells = ", ".join(rule for rule in rules if rule.startswith("#scenes ["))
    fields = ", ".join(rule for rule in rules if not rule.startswith("#scenes ["))
    sheet = (f"{cells} {{{CELL}}}" if cells else "") + (f"{fields} {{{FIELD}}}" if fields else "")
    return f"<style>{sheet}</style>"
