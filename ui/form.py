"""The page's storyboard widgets, made from and read by the one description of the fields.

``pipeline.contract.fields`` describes every Storyboard field (kind, label, help,
default, bounds or choices). :func:`field_widget` turns one description into a Gradio
component, and :class:`BoardForm` keeps the components by field name, so event
functions take and return ``{component: value}`` dicts instead of positional lists.
A new Storyboard field appears on the page with no change here unless it wants a
widget of its own (see ``WIDGET_OVERRIDES`` in ``ui.layout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from pipeline import Limits, Storyboard
from pipeline.contract.fields import BOARD_FIELDS, FIELDS_BY_NAME, FieldSpec
from pipeline.contract.reference import with_uploaded_reference

from .table import blank, rows_to_storyboard, storyboard_to_rows

SCENES = "scenes"
"""The form's name for the scene table (the Storyboard's ``scenes`` field)."""


def field_widget(spec: FieldSpec, limits: Limits, value: Any = None, with_help: bool = True,
                 **extra: Any) -> gr.components.Component:
    """The component for one Storyboard field: a dropdown for choices, a checkbox for booleans,
    a slider for bounded numbers with a default, a text box for blank-able numbers (blank shows
    blank) and for text.

    ``value`` None shows the field's default; ``with_help`` shows the field's help under its label
    (off where space is short); ``extra`` goes to the component (e.g. ``scale``).
    """
    value = spec.default if value is None else value
    info = spec.help or None if with_help else None
    common: dict[str, Any] = dict(label=spec.label, info=info, elem_id=f"field-{spec.name}", **extra)
    if spec.kind == "choice":
        choices = list(spec.allowed(limits))
        return gr.Dropdown(choices, value=value if value in choices else choices[0], **common)
    if spec.kind == "boolean":
        return gr.Checkbox(value=bool(value), **common)
    if spec.kind in ("number", "integer"):
        low, high = spec.bounds(limits)
        step = 1 if spec.kind == "integer" else 0.1
        if spec.default is not None and low is not None and high is not None:
            return gr.Slider(low, high, value=value, step=step, **common)
        # A text box, not gr.Number: a number box shows (and sends) 0 for "not given".
        return gr.Textbox(value="" if value is None else str(value), max_lines=1, placeholder="blank: default",
                          **common)
    if spec.kind == "file":  # an upload: a path on the server means nothing to a visitor
        common.pop("info")
        return gr.File(value=None, type="filepath", height=90, **common)
    return gr.Textbox(value=value or "", max_lines=1, **common)


def _no_change(value: Any) -> bool:
    """Gradio's "no change" marker (what :meth:`BoardForm.show` gives an uploaded file)."""
    return isinstance(value, dict) and value.get("__type__") == "update"


@dataclass
class BoardForm:
    """The components that make up a storyboard, by field name (``scenes`` is the table).

    Use :attr:`inputs` as an event's inputs (Gradio then passes one ``{component: value}``
    dict) and the dicts from :meth:`show` as its outputs.
    """

    widgets: dict[str, gr.components.Component]
    limits: Limits

    @property
    def inputs(self) -> set:
        return set(self.widgets.values())

    @property
    def components(self) -> list:
        return list(self.widgets.values())

    def values(self, data: dict) -> dict[str, Any]:
        """Field name -> the widget's value, for the widgets present in ``data``."""
        return {name: data[widget] for name, widget in self.widgets.items() if widget in data}

    def storyboard(self, data: dict, check: Callable[[Storyboard], None] | None = None) -> Storyboard:
        """The validated storyboard for the page's values; raises StoryboardError naming scene and field.

        ``check`` may refuse what the server does not allow (e.g. another model).
        """
        values = self.values(data)
        board = {name: value for name, value in values.items()
                 if name != SCENES and not blank(value) and not _no_change(value)}
        reference = board.pop("reference_image", None)  # an upload, checked like the API's
        storyboard = with_uploaded_reference(rows_to_storyboard(values.get(SCENES) or [], board, self.limits),
                                             reference)
        if check is not None:
            check(storyboard)
        return storyboard

    def show(self, storyboard: Storyboard, fallback: dict[str, Any] | None = None) -> dict:
        """``{component: value}`` showing ``storyboard``; a None field shows ``fallback``'s value, else blank."""
        fallback = fallback or {}
        updates: dict = {}
        for name, widget in self.widgets.items():
            if name == SCENES:
                updates[widget] = storyboard_to_rows(storyboard)
                continue
            if FIELDS_BY_NAME[name].kind == "file":
                updates[widget] = gr.skip()  # an uploaded file stays as it is (a path here means nothing)
                continue
            value = getattr(storyboard, name)
            value = fallback.get(name) if value is None else value
            updates[widget] = "" if value is None and isinstance(widget, gr.Textbox) else value
        return updates


def board_specs(advanced: bool) -> list[FieldSpec]:
    """The Storyboard-level fields shown in the main area (``advanced`` False) or under Advanced."""
    return [spec for spec in BOARD_FIELDS if spec.advanced == advanced]
