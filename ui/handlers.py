"""What the page's buttons do. Each method is a Gradio event function; none touches torch."""

from __future__ import annotations

import json
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterator

import gradio as gr

from pipeline import Storyboard, StoryboardError, parse_storyboard
from pipeline.contract.reference import with_uploaded_reference
from pipeline.contract.json_input import load_json
from pipeline.service import RendererPool

from . import sessions
from .examples import load_example
from .render_view import PageRender, api_updates
from .soundtrack import soundtrack_fields
from .table import Controls, rows_to_storyboard, storyboard_to_controls, storyboard_to_rows

STOPPED = "**Render stopped.** Press Generate to start again."


class Handlers:
    """Event functions bound to one renderer pool and its storyboard limits."""

    def __init__(self, pool: RendererPool, stream: bool):
        self.pool = pool
        self.limits = pool.settings.limits()
        self.stream = stream

    def storyboard(self, rows: list, *controls: Any) -> Storyboard:
        """The validated storyboard for the table and the controls (Controls' field order, then the soundtrack's)."""
        count = len(fields(Controls))
        return rows_to_storyboard(rows, Controls(*controls[:count]), self.limits, soundtrack_fields(controls[count:]))

    def start(self, rows: list, *controls: Any) -> tuple:
        """Instant check before queueing: a bad row gets its message and nothing else changes."""
        try:
            self.storyboard(rows, *controls)
        except StoryboardError as exc:
            gr.Warning(str(exc), title="Please fix the storyboard")
            return gr.skip(), gr.skip(), f"❌ **Please fix the storyboard:** {exc}", "", False
        return gr.Button(interactive=False), gr.Button(interactive=True), "", "", True

    def generate(self, scenes: list, quality: str, transition: str, transition_duration: float, fps: float,
                 use_ai: bool, steps: float, guidance_scale: float | None, audio: str | None = None,
                 audio_start: float = 0.0, audio_volume: float = 1.0, fit: str = "scenes", cut_on_beats: bool = False,
                 model: str | None = None, backend: str | None = None, board_ok: bool = True,
                 request: gr.Request = None) -> Iterator[tuple]:
        """Render the scene table; streams keyframes, step previews, video segments, then the MP4.

        The soundtrack's parameters have defaults, so API callers that send no audio need not name them.
        """
        if not board_ok:  # start() already showed what to fix
            return
        try:
            storyboard = self.storyboard(scenes, quality, transition, transition_duration, fps, use_ai, steps,
                                         guidance_scale, audio, audio_start, audio_volume, fit, cut_on_beats)
        except StoryboardError as exc:
            raise gr.Error(str(exc), title="Please fix the storyboard") from None
        try:
            renderer = self.pool.get(model, backend)
        except StoryboardError as exc:  # a model this server does not allow
            raise gr.Error(str(exc), title="Please pick another model") from None
        cancel = sessions.begin(request.session_hash)
        try:
            yield from PageRender(self.stream).updates(renderer.render(storyboard, cancel))
        finally:
            sessions.end(request.session_hash, cancel)

    @staticmethod
    def stop(request: gr.Request) -> tuple:
        sessions.cancel(request.session_hash)  # the renderer sees it within one frame or step
        return STOPPED, "", gr.Button(interactive=True), gr.Button(interactive=False)

    @staticmethod
    def unlock() -> tuple:
        return gr.Button(interactive=True), gr.Button(interactive=False)

    def render_api(self, storyboard_json: str, audio: str | None = None,
                   reference_image: str | None = None) -> Iterator[tuple]:
        """Render a storyboard (a JSON string, see the README) to an MP4; returns the MP4 and the report.

        ``audio`` is the soundtrack as an uploaded file; a path inside the JSON is refused (it would
        name a file on the server). ``reference_image``: an uploaded picture the scenes start from
        (see the ``reference_image`` and ``reference_scenes`` fields); likewise never a path.
        """
        try:
            storyboard = parse_storyboard(with_uploaded_audio(storyboard_json, audio), self.limits)
            storyboard = with_uploaded_reference(storyboard, reference_image)
        except StoryboardError as exc:
            raise gr.Error(str(exc)) from None
        event_id = sessions.current_event_id()
        cancel = sessions.watch_event(event_id)  # set by the request guard when the client cancels
        try:
            if not cancel.is_set():
                yield from api_updates(self.pool.get().render(storyboard, cancel), cancel)
        finally:
            sessions.forget_event(event_id, cancel)

    @staticmethod
    def show(storyboard: Storyboard) -> tuple:
        """Table rows and control values for a storyboard."""
        c = storyboard_to_controls(storyboard)
        return (storyboard_to_rows(storyboard), c.quality, c.transition, c.transition_duration, c.fps, c.use_ai,
                c.steps, c.guidance_scale, gr.skip(),  # the uploaded audio stays as it is
                storyboard.audio_start, storyboard.audio_volume, storyboard.fit, storyboard.cut_on_beats)

    def load_example(self, name: str) -> tuple:
        return self.show(load_example(name))

    def export(self, rows: list, *controls: Any) -> gr.File:
        try:
            data = self.storyboard(rows, *controls).to_dict()
            data.pop("audio", None)  # the upload's server path means nothing elsewhere
            text = json.dumps(data, indent=2, ensure_ascii=False)
        except StoryboardError as exc:
            raise gr.Error(str(exc), title="Cannot export yet") from None
        path = Path(tempfile.mkdtemp(prefix="scene2video-export-")) / "storyboard.json"
        path.write_text(text, encoding="utf-8")
        return gr.File(value=str(path), visible=True)

    def import_file(self, file: str) -> tuple:
        try:
            storyboard = parse_storyboard(without_audio_path(Path(file).read_bytes()), self.limits)  # UTF-8, size
        except StoryboardError as exc:
            raise gr.Error(str(exc), title="Cannot import") from None
        return self.show(storyboard)

    def clear_cache(self) -> str:
        return f"Removed {self.pool.cache.clear()} keyframe(s) from the cache."

    def model_line(self, model_id: str | None, backend: str | None = None) -> str:
        """Which model, on which device (or remote service, and why auto chose it), whether it is loaded,
        and which backend."""
        try:
            model = self.pool.get(model_id, backend).model
        except StoryboardError as exc:  # a model this server does not allow
            return f"❌ {exc}"
        if model is None:
            return "**Model:** none configured"
        info = model.info()
        state = f"failed: {info.reason}" if info.state == "failed" else info.state
        choice = self.pool.backend_for(backend)
        because = f" ({choice.because})" if choice.because and choice.name == "diffusers" else ""
        return (f"**Model:** `{info.model}` · **device:** {info.device} · **state:** {state} · "
                f"**backend:** {choice.name}{because}" + (f" · **decoder:** {info.decoder}" if info.decoder else ""))


def without_audio_path(raw: str | bytes) -> Any:
    """An imported storyboard without its ``audio`` path (a visitor's path is not a file here; upload it)."""
    data = load_json(raw)  # size, depth and UTF-8 checked: only StoryboardError escapes
    if isinstance(data, dict):
        data.pop("audio", None)
    return data


def with_uploaded_audio(storyboard_json: str, audio: str | None) -> Any:
    """The API's storyboard with its soundtrack taken from the uploaded file, never from a path in the JSON."""
    data = load_json(storyboard_json)  # size, depth and UTF-8 checked: only StoryboardError escapes
    if isinstance(data, dict):
        if data.get("audio"):
            raise StoryboardError("Storyboard: audio must be sent as a file (the audio input of /render), "
                                  "not as a path in the storyboard.")
        data.pop("audio", None)
        if audio:
            data["audio"] = audio
    return data
