"""What the page's buttons do. Each method is a Gradio event function; none touches torch.

Event functions take the storyboard widgets as one ``{component: value}`` dict (the form's
``inputs``) and return ``{component: update}`` dicts, so nothing depends on positions.
No page event raises: a bad storyboard or a failed render is a message in the notice
beside Generate, never an error badge over the widgets.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from gradio.data_classes import FileData

from pipeline import Storyboard, StoryboardError, parse_storyboard
from pipeline.contract.fields import SCENE_FIELDS_BY_NAME
from pipeline.images.plan import generation_settings
from pipeline.contract.json_input import load_json
from pipeline.contract.presets import PRESETS
from pipeline.contract.reference import with_uploaded_reference
from pipeline.restyle.shots import storyboard_from_video
from pipeline.service import RendererPool

from . import sessions
from .examples import load_example
from .form import SCENES, BoardForm
from .marks import marks_css, problems_of
from .model_notice import cannot_make_pictures, no_ai_notice
from .render_view import PageRender, api_updates, file_stem, render_ended, render_started
from .table import (add_row, cell, delete_row, move_row, no_such_scene, read_shown, scene_choice, set_cell,
                    shown_values, storyboard_to_rows)

log = logging.getLogger(__name__)

FIX = "❌ **Please fix the storyboard:**"
NEGATIVE_IGNORED = ("ℹ️ Negative prompts have no effect at guidance {guidance:g} (few-step models such as "
                    "sd-turbo ignore them); set Guidance above 1 in Advanced to use them.")


def model_facts(model: Any) -> dict[str, str]:
    """A model's description (model, device, dtype, state, reason …) as a plain dict."""
    return dataclasses.asdict(model.info()) if model is not None else {}


def model_line_text(facts: dict[str, str]) -> str:
    """``Model: `id` · loaded (cpu, float32)`` / loading / failed (reason) / not loaded yet."""
    state = str(facts.get("state", "?"))
    if state == "loaded":
        said = f"loaded ({facts.get('device', '?')}, {facts.get('dtype', '?')})"
    elif state.startswith("failed"):
        reason = facts.get("reason") or state.partition(":")[2].strip()
        said = f"failed ({reason})" if reason else "failed"
    elif state == "loading":
        said = "loading…"
    else:
        said = "not loaded yet (loads when needed)"
    where = f" · {facts['device']}" if state != "loaded" and str(facts.get("device", "")).startswith("remote") else ""
    return f"**Model:** `{facts.get('model', '?')}` · {said}{where}"


class Handlers:
    """Event functions bound to one renderer pool, its storyboard form and the render outputs."""

    def __init__(self, pool: RendererPool, stream: bool, form: BoardForm, outputs: dict[str, Any],
                 title: Any = None, backend: Any = None):
        self.pool = pool
        self.stream = stream
        self.form = form
        self.outputs = outputs  # by render_view.OUTPUT_NAMES, plus "row_number", "export_file" and "ai_notice"
        self.title = title  # a gr.State: the storyboard's name for downloads ("" = from the first prompt)
        self.backend = backend  # the page's backend dropdown (not part of the storyboard), if any

    # -- the storyboard -------------------------------------------------------------------------

    def storyboard(self, data: dict) -> Storyboard:
        """The validated storyboard the page shows; StoryboardError names the scene and field."""
        return self.form.storyboard(data, self.pool.check)

    def show(self, storyboard: Storyboard) -> dict:
        """Updates that show ``storyboard`` in the table and controls (a blank model: the server's)."""
        return {**self.form.show(storyboard, fallback={"model": self.pool.settings.model}),
                self.outputs["notice"]: "", self.outputs["bad_cells"]: ""}

    def refused(self, data: dict, exc: StoryboardError, prefix: str = FIX) -> dict:
        """The one-line message beside Generate, and the bad cells and fields marked."""
        rows = data.get(self.form.widgets[SCENES])
        return {self.outputs["notice"]: f"{prefix} {exc}", self.outputs["bad_cells"]: marks_css(problems_of(exc), rows)}

    def load_example(self, name: str) -> dict:
        return {**self.show(load_example(name)), self.title: name}

    def import_file(self, file: str | None) -> dict:
        """A storyboard file in the table; a bad one gets one message and changes nothing else."""
        if not file:
            return {}
        try:
            # UTF-8 and size checked; a visitor's audio path is not a file here (they upload it)
            storyboard = parse_storyboard(without_audio_path(Path(file).read_bytes()), self.pool.settings.limits())
            self.pool.check(storyboard)
        except UnicodeDecodeError:
            return {self.outputs["notice"]: "❌ **Cannot import:** that file is not a text JSON file."}
        except StoryboardError as exc:
            return {self.outputs["notice"]: f"❌ **Cannot import:** {exc}"}
        return {**self.show(storyboard), self.title: Path(file).stem}

    def import_video(self, data: dict) -> dict:
        """An uploaded source video's shots in the table: one scene per shot with its span, each with the
        first scene's prompt (the user then writes one per shot); cuts between them. A bad video: one line."""
        values = self.form.values(data)
        path = values.get("source_video")
        if not isinstance(path, str) or not path:
            return {}
        rows = values.get(SCENES) or []
        prompt = str(rows[0][0]).strip() if rows and rows[0] and rows[0][0] else ""
        limits = self.pool.settings.limits()
        try:
            quality = str(values.get("quality") or "standard")
            fps = int(values["fps"]) if str(values.get("fps") or "").strip() else PRESETS[quality].fps
            board = storyboard_from_video(path, prompt or "describe this shot", fps, limits, {"quality": quality})
            storyboard = parse_storyboard(board, limits)
        except (StoryboardError, KeyError, ValueError) as exc:
            return {self.outputs["notice"]: f"❌ **Cannot use this video:** {exc}"}
        shown = {self.form.widgets[SCENES]: storyboard_to_rows(storyboard)}
        if "transition" in self.form.widgets:
            shown[self.form.widgets["transition"]] = "cut"
        if "fps" in self.form.widgets:
            shown[self.form.widgets["fps"]] = str(fps)
        count = len(storyboard.scenes)
        return {**shown, self.outputs["bad_cells"]: "",
                self.outputs["notice"]: f"🎬 {count} shot(s) found, one scene each: write what each shot should look "
                                        "like, then Generate."}

    def export(self, data: dict) -> dict:
        """The storyboard as a JSON file in the (hidden) download button, which the page then clicks."""
        try:
            storyboard = self.storyboard(data)
        except StoryboardError as exc:  # and nothing to download (the page clicks the button after this)
            return {**self.refused(data, exc, "❌ **Cannot export yet:**"), self.outputs["export_file"]: None}
        path = Path(tempfile.mkdtemp(prefix="scene2video-export-")) / f"{self.name(data, storyboard)}.json"
        data = storyboard.to_dict()
        data.pop("audio", None)  # the uploads' server paths mean nothing elsewhere
        data.pop("reference_image", None)
        data.pop("source_video", None)
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        return {self.outputs["export_file"]: str(path), self.outputs["notice"]: "", self.outputs["bad_cells"]: ""}

    def name(self, data: dict, storyboard: Storyboard) -> str:
        """The file name stem for this storyboard's downloads: its imported name, else its first prompt."""
        title = data.get(self.title) if self.title is not None else None
        return file_stem(title or storyboard.scenes[0].prompt)

    # -- rendering ------------------------------------------------------------------------------

    def start(self, data: dict, request: gr.Request) -> dict:
        """Instant check at the click (not queued): a bad storyboard gets its message and nothing
        else changes; a good one clears the last results, locks Generate and queues the render."""
        try:
            storyboard = self.storyboard(data)
        except StoryboardError as exc:
            return self.refused(data, exc)
        sessions.queued(request.session_hash)
        updates = {self.outputs[name]: value for name, value in render_started(self.stream).items()}
        updates[self.outputs["token"]] = time.time_ns()  # its change queues the render
        return updates

    def note(self, storyboard: Storyboard, backend: str | None = None) -> tuple[str, frozenset[int]]:
        """Advice for after the render (negative prompts the model that will run ignores), and the scenes
        (0-based) it is about: said only if the model made one of them (see ``PageRender``)."""
        scenes = frozenset(i for i, scene in enumerate(storyboard.scenes) if scene.negative_prompt)
        if not storyboard.use_ai or not scenes:
            return "", frozenset()
        try:
            guidance = generation_settings(storyboard, self.pool.get(storyboard.model, backend).model).guidance_scale
        except Exception:  # noqa: BLE001 - a note must never block a render
            return "", frozenset()
        return (NEGATIVE_IGNORED.format(guidance=guidance), scenes) if guidance <= 1 else ("", frozenset())

    def generate(self, data: dict, request: gr.Request) -> Iterator[dict]:
        """Render the page's storyboard; streams keyframes, step previews, video segments, then the MP4."""
        out = self.outputs
        try:
            storyboard = self.storyboard(data)
        except StoryboardError as exc:  # changed between the click and the start: say so, unlock
            yield {**{out[name]: value for name, value in render_ended("").items()}, **self.refused(data, exc)}
            return
        cancel = sessions.begin(request.session_hash)
        backend = data.get(self.backend) if self.backend is not None else None
        note, note_scenes = self.note(storyboard, backend)
        view = PageRender(out, self.stream, f"{self.name(data, storyboard)}.mp4", note=note, note_scenes=note_scenes)
        try:
            backend = data.get(self.backend) if self.backend is not None else None
            yield from view.updates(self.pool.for_storyboard(storyboard, backend).render(storyboard, cancel))
        except Exception as exc:  # noqa: BLE001 - said on the page, never an error badge
            yield {out[name]: value for name, value in render_ended(f"❌ The render failed: {exc}").items()}
        finally:
            sessions.end(request.session_hash, cancel)

    def stop(self, request: gr.Request) -> dict:
        """Ask the session's render to stop; it ends within one frame or step and says "Render stopped."."""
        sessions.cancel(request.session_hash)
        return {self.outputs["stop"]: gr.Button(interactive=False)}

    def render_api(self, storyboard_json: str, audio: str | None = None, reference_image: str | None = None,
                   source_video: str | None = None) -> Iterator[tuple[FileData | None, dict | None]]:
        """Render a storyboard (a JSON string, see the README) to an MP4; returns the MP4 and the report
        (``ui.api.add_render_api`` holds the documented function).

        ``audio`` is the soundtrack as an uploaded file; a path inside the JSON is refused (it would
        name a file on the server). ``reference_image``: an uploaded picture the scenes start from
        (see the ``reference_image`` and ``reference_scenes`` fields); likewise never a path.
        ``source_video``: the uploaded video that scenes with a span restyle; likewise never a path.
        """
        try:
            data = with_uploaded_audio(storyboard_json, audio)
            data = with_uploaded_file(data, "source_video", source_video, "the source_video input of /render")
            storyboard = parse_storyboard(data, self.pool.settings.limits())
            storyboard = with_uploaded_reference(storyboard, reference_image)
            self.pool.check(storyboard)
        except StoryboardError as exc:  # the caller's to fix: one line in the log, the traceback only at debug
            log.info("Refused a /render request: %s", exc)
            log.debug("The refused request's traceback", exc_info=True)
            raise gr.Error(str(exc), print_exception=False) from None
        event_id = sessions.current_event_id()
        cancel = sessions.watch_event(event_id)  # set by the request guard when the client cancels
        try:
            if not cancel.is_set():
                yield from api_updates(self.pool.for_storyboard(storyboard).render(storyboard, cancel), cancel)
        finally:
            sessions.forget_event(event_id, cancel)

    # -- tools ----------------------------------------------------------------------------------

    def move(self, rows: list, number: float | None, offset: int) -> dict:
        """Move a scene up or down; the moved scene stays the selected one. No such scene, or nowhere
        to go: a message, and the table stays as it is."""
        if no_such_scene(rows, number):
            return {self.outputs["notice"]: f"❌ {no_such_scene(rows, number)}"}
        moved, to = move_row(rows, number or 0, offset)
        if to == int(number or 0):
            return {self.outputs["notice"]: f"Scene {to} is already the {'first' if offset < 0 else 'last'} one."}
        return {self.form.widgets[SCENES]: moved, self.outputs["row_number"]: to, **self.unmarked()}

    def delete(self, rows: list, number: float | None) -> dict:
        """Delete the selected scene; the one after it (or the new last one) is selected next."""
        if no_such_scene(rows, number):
            return {self.outputs["notice"]: f"❌ {no_such_scene(rows, number)}"}
        rows = delete_row(rows, number or 0)
        return {self.form.widgets[SCENES]: rows, self.outputs["row_number"]: min(int(number or 1), len(rows)),
                **self.unmarked()}

    def add(self, rows: list) -> dict:
        """A blank scene at the end, selected (the page then scrolls the table to it)."""
        rows = add_row(rows)
        return {self.form.widgets[SCENES]: rows, self.outputs["row_number"]: len(rows), **self.unmarked()}

    def unmarked(self) -> dict:
        """No bad cells marked: the rows moved, the marks would point at other scenes (the message stays)."""
        return {self.outputs["bad_cells"]: ""}

    @staticmethod
    def selected(event: gr.SelectData) -> int:
        """The scene number of a clicked table cell."""
        index = event.index
        return int(index[0] if isinstance(index, (list, tuple)) else index) + 1

    @staticmethod
    def scene_values(rows: list, number: float | None, choices: dict[str, Any], shown: Any) -> dict:
        """Each row dropdown (``choices``, by field name) set to the selected scene's value (blank if its
        cell holds anything else), and ``shown``, which keeps in the browser what the dropdowns show."""
        values = {name: scene_choice(rows, number or 0, name) for name in choices}
        return {**{choices[name]: value for name, value in values.items()}, shown: shown_values(number, values)}

    @staticmethod
    def set_scene_value(rows: list, number: float | None, shown: str | None, name: str, value: Any) -> Any:
        """The rows with scene ``number``'s ``name`` set to the dropdown's ``value``, or no change at all
        (``gr.skip()``) unless the user changed the dropdown from what it shows for this scene (``shown``).

        Gradio's dropdown also sends "input" each time it loses focus, e.g. when the user clicks a row
        tool: those rows, returned, would race the tool's and could undo it. And the dropdown may still
        show an older value (of another scene, or before an edit in the table) that must not be copied.
        """
        scene, values = read_shown(shown)
        if number is None or scene != int(number) or value == values.get(name):
            return gr.skip()
        if value not in SCENE_FIELDS_BY_NAME[name].choices or cell(rows, number, name) in (None, value):
            return gr.skip()  # not a choice, no such scene, or nothing to change
        return set_cell(rows, number, name, value)

    def clear_cache(self) -> str:
        keyframes, clips = self.pool.cache.clear(), self.pool.clip_cache.clear()
        return f"Removed {keyframes} keyframe(s)" + (f" and {clips} clip(s)" if clips else "") + " from the cache."

    def model_line(self, model_id: str | None = None, backend: str | None = None) -> tuple[str, gr.Timer]:
        """The model line (with the backend, and why auto chose it), and the timer that refreshes it
        while the model is loading."""
        try:
            model = self.pool.get(model_id, backend).model
        except StoryboardError as exc:  # a model this server does not allow: say so, the same for every id
            return f"❌ {exc}", gr.Timer(active=False)
        if model is None:
            return "**Model:** none configured", gr.Timer(active=False)
        facts = model_facts(model)
        choice = self.pool.backend_for(backend)
        because = f" ({choice.because})" if choice.because and choice.name == "diffusers" else ""
        settling = facts.get("state") in ("loading", "not loaded")  # the background load may be on its way
        decoder = f" · **decoder:** {facts['decoder']}" if facts.get("decoder") else ""
        return f"{model_line_text(facts)} · **backend:** {choice.name}{because}{decoder}", gr.Timer(active=settling)

    def model_state(self, model_id: str | None = None, backend: str | None = None,
                    use_ai: bool | None = True) -> tuple[str, gr.Timer, Any]:
        """The model line and its timer (see :meth:`model_line`), and the first-screen notice, shown
        only while the model a render would use has failed to load and AI pictures are wanted."""
        line, timer = self.model_line(model_id, backend)
        try:
            facts = model_facts(self.pool.get(model_id, backend).model)
        except StoryboardError:  # a model this server does not allow: the model line says so
            facts = {}
        if not cannot_make_pictures(facts, use_ai):
            return line, timer, gr.HTML(value="", visible=False)
        return line, timer, gr.HTML(value=no_ai_notice(facts), visible=True)


def without_audio_path(raw: str | bytes) -> Any:
    """An imported storyboard without its ``audio`` path (a visitor's path is not a file here; upload it)."""
    data = load_json(raw)  # size, depth and UTF-8 checked: only StoryboardError escapes
    if isinstance(data, dict):
        data.pop("audio", None)
        data.pop("source_video", None)
    return data


def with_uploaded_file(data: Any, name: str, upload: str | None, where: str) -> Any:
    """A storyboard document with file field ``name`` taken from ``upload``; a path in the JSON is refused."""
    if isinstance(data, dict):
        if data.get(name):
            raise StoryboardError(f"Storyboard: {name} must be sent as a file ({where}), not as a path in the "
                                  "storyboard.")
        data.pop(name, None)
        if upload:
            data[name] = upload
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
