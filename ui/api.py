"""``/render``: the app's public API function, also its MCP tool ``render``.

No ``from __future__ import annotations`` here: Gradio reads the function's type hints as
real types to describe the endpoint (and the MCP tool's schema).
"""

import gradio as gr
from gradio.data_classes import FileData

from pipeline import Settings

from .handlers import Handlers


def add_render_api(handlers: Handlers, settings: Settings) -> None:
    """``/render`` (and the MCP tool ``render``): a storyboard JSON string in, the MP4 and the report out."""

    def render(storyboard_json: str, audio: FileData | None = None, reference_image: FileData | None = None,
               source_video: FileData | None = None) -> tuple[FileData, dict]:
        """Render a storyboard into an H.264 MP4 video.

        The storyboard is a JSON object: {"scenes": [{"prompt": "a lighthouse at dusk", "duration": 2}, ...]}
        plus optional "quality" (draft 480p, standard 720p, high 1080p, premium 1080p30), "transition"
        (cut, crossfade, fade, wipe, slide), "transition_duration" (seconds), "fps", "use_ai" (false: labelled
        placeholder frames), "steps", "guidance_scale", "model", a soundtrack's "audio_start", "audio_volume",
        "fit" (scenes, audio) and "cut_on_beats", and a look: "style", "style_negative", "look" (independent,
        chained), "look_strength" and "reference_scenes" (first, every). Each scene may also give "seed",
        "negative_prompt" and "motion" (none, zoom_in, zoom_out, pan_left, pan_right). To restyle a video,
        send it as source_video and give scenes "source_start" and "source_end" (seconds of the video; the
        scene lasts the span and redraws its frames), with "coherence" (flow, none) and "keyframe_interval";
        the video's sound plays unless audio is sent. A bad field gives one error naming the scene and the field.

        Args:
            storyboard_json: the storyboard as a JSON string, e.g. {"scenes": [{"prompt": "waves on rocks", "duration": 2}], "quality": "draft"}
            audio: optional soundtrack as an uploaded audio file (never a path inside the JSON)
            reference_image: optional picture the scenes start from, as an uploaded image file (never a path inside the JSON)
            source_video: optional video that scenes with source_start/source_end restyle, as an uploaded file (never a path inside the JSON)
        Returns:
            the MP4 file, and the render report: {width, height, fps, frames, duration, scenes: [{index, source, reason}], model, device, seconds_taken}; source is ai, cache or placeholder
        """
        yield from handlers.render_api(storyboard_json, _path(audio), _path(reference_image), _path(source_video))

    gr.api(render, api_name="render", concurrency_id="gpu", concurrency_limit=settings.max_concurrent_renders)


def _path(file: FileData | dict | str | None) -> str | None:
    """The server path of an uploaded file (Gradio passes FileData, or its dict form)."""
    if file is None or isinstance(file, str):
        return file or None
    return file.get("path") if isinstance(file, dict) else file.path
