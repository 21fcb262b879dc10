"""``/render``: the app's public API function, also its MCP tool ``render``.

No ``from __future__ import annotations`` here: Gradio reads the function's type hints as
real types to describe the endpoint (and the MCP tool's schema).
"""

import gradio as gr
from gradio.data_classes import FileData

from pipeline import Limits, Settings
from pipeline.contract.fields import BOARD_FIELDS, SCENE_FIELDS, FieldSpec

from .handlers import Handlers


def add_render_api(handlers: Handlers, settings: Settings) -> None:
    """``/render`` (and the MCP tool ``render``): a storyboard JSON string in, the MP4 and the report out."""

    def render(storyboard_json: str, audio: FileData | None = None, reference_image: FileData | None = None,
               source_video: FileData | None = None) -> tuple[FileData, dict]:
        yield from handlers.render_api(storyboard_json, _path(audio), _path(reference_image), _path(source_video))

    # Written from the field descriptions, so the documented fields and choices are the ones parsed.
    render.__doc__ = render_doc(settings.limits())
    gr.api(render, api_name="render", concurrency_id="gpu", concurrency_limit=settings.max_concurrent_renders)


_ARGS_AND_RETURNS = """
Args:
    storyboard_json: the storyboard as a JSON string, e.g. {"scenes": [{"prompt": "waves on rocks", "duration": 2}], "quality": "draft"}
    audio: optional soundtrack as an uploaded audio file (never a path inside the JSON)
    reference_image: optional picture the scenes start from, as an uploaded image file (never a path inside the JSON)
    source_video: optional video that scenes with source_start/source_end (seconds) restyle, each redrawn from its own frames with the video's sound, as an uploaded file (never a path inside the JSON)
Returns:
    the MP4 file, and the render report: {width, height, fps, frames, duration, scenes: [{index, source, reason, frames, video_model, clip_reason}], model, device, seconds_taken, transitions}; source is ai, cache or placeholder; frames is clip, still or placeholder
"""


def render_doc(limits: Limits) -> str:
    """``/render``'s description (its MCP tool's too): every storyboard field with its choices or bounds."""
    scene = ", ".join(_field_doc(spec, limits) for spec in SCENE_FIELDS)
    board = ", ".join(_field_doc(spec, limits) for spec in BOARD_FIELDS if spec.kind != "file")
    files = " and ".join(f'"{spec.name}"' for spec in BOARD_FIELDS if spec.kind == "file")
    return (
        "Render a storyboard into an H.264 MP4 video.\n\n"
        'The storyboard is a JSON object: {"scenes": [{"prompt": "a lighthouse at dusk", "duration": 2}, ...]}. '
        f"Each scene: {scene}. Optional storyboard fields: {board}. {files} come as uploaded files (the inputs "
        "below), never as paths in the JSON. Blank or left out: the default. A bad field gives one error naming "
        "the scene and the field.\n" + _ARGS_AND_RETURNS)


def _field_doc(spec: FieldSpec, limits: Limits) -> str:
    """``"name"`` and what it takes: its choices, its bounds, true/false; "required" for a scene's must-haves."""
    if spec.kind == "choice":
        takes = ", ".join(spec.allowed(limits))
    elif spec.kind == "boolean":
        takes = "true or false"
    elif spec.kind in ("number", "integer") and None not in spec.bounds(limits):
        low, high = spec.bounds(limits)
        shown = (lambda x: str(int(x))) if spec.kind == "integer" else (lambda x: f"{x:g}")
        takes = f"{shown(low)} to {shown(high)}" + (f" {spec.unit}" if spec.unit else "")
    else:
        takes = "text" if spec.kind == "text" else ""
    parts = [part for part in ("required" if spec.required else "", takes) if part]
    return f'"{spec.name}" ({"; ".join(parts)})' if parts else f'"{spec.name}"'


def _path(file: FileData | dict | str | None) -> str | None:
    """The server path of an uploaded file (Gradio passes FileData, or its dict form)."""
    if file is None or isinstance(file, str):
        return file or None
    return file.get("path") if isinstance(file, dict) else file.path
