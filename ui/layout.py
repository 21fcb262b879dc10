"""The Scene2Video page: scene table and controls on the left, what is being made on the right."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import gradio as gr

from pipeline import MOTIONS, QUALITY_NAMES, TRANSITIONS, StoryboardError, parse_storyboard
from pipeline.service import RendererPool

from . import sessions
from .examples import example_names, load_example
from .render_view import OUTPUT_NAMES, PageRender, api_updates
from .table import (
    DATATYPES, HEADERS, Controls, add_row, delete_row, move_row, rows_to_dict, rows_to_storyboard,
    storyboard_to_controls, storyboard_to_rows,
)

log = logging.getLogger(__name__)

CSS = """
.s2v-progress {padding: 4px 0}
.s2v-bar {height: 10px; border-radius: 5px; background: var(--neutral-200); overflow: hidden}
.s2v-fill {height: 100%; background: var(--color-accent); transition: width .2s}
.s2v-text {font-size: 0.9em; margin-top: 4px}
"""
INTRO = (
    "# Scene2Video\n"
    "Write one scene per row (prompt and seconds on screen), pick a quality and a transition, "
    "then press **Generate**. Keyframes appear as they are made and the video plays below."
)
KNOWN_MODELS = ["stabilityai/sd-turbo", "stabilityai/sdxl-turbo", "stable-diffusion-v1-5/stable-diffusion-v1-5"]


def streaming_available() -> bool:
    """Gradio's streaming video needs the system's ffmpeg and ffprobe."""
    return bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


def build_demo(pool: RendererPool, examples_first: str | None = None) -> gr.Blocks:
    """The whole page, wired to ``pool``'s renderers. The table opens with an example loaded."""
    settings = pool.settings
    limits = settings.limits()
    stream = streaming_available()
    if not stream:
        log.warning("ffmpeg/ffprobe not found on PATH: the video is shown when finished, not streamed.")
    names = example_names()
    first = load_example(examples_first or names[0])

    with gr.Blocks(title="Scene2Video", fill_width=True) as demo:
        gr.Markdown(INTRO)
        if not stream:
            gr.Markdown("ℹ️ This server has no system ffmpeg/ffprobe, so the video appears when it is finished "
                        "instead of playing while it renders.")
        with gr.Row():
            with gr.Column(scale=3):
                table = gr.Dataframe(
                    value=storyboard_to_rows(first), headers=HEADERS, datatype=DATATYPES, type="array",
                    column_count=len(HEADERS), row_count=len(first.scenes), label="Scenes", interactive=True,
                    show_row_numbers=True, wrap=True, elem_id="scenes", column_widths=["46%", "12%", "10%", "20%", "12%"],
                )
                with gr.Row():
                    row_number = gr.Number(label="Scene #", value=1, precision=0, minimum=1, scale=1)
                    up_btn = gr.Button("↑ Move up", size="sm")
                    down_btn = gr.Button("↓ Move down", size="sm")
                    delete_btn = gr.Button("✕ Delete", size="sm")
                    add_btn = gr.Button("+ Add scene", size="sm")
                with gr.Row():
                    allowed = [q for q in QUALITY_NAMES if q in limits.allowed_qualities]
                    quality = gr.Radio(allowed, value=first.quality if first.quality in allowed else allowed[0],
                                       label="Quality", info="draft 480p · standard 720p · high 1080p · premium 1080p30")
                    transition = gr.Dropdown(list(TRANSITIONS), value=first.transition, label="Transition")
                    transition_duration = gr.Slider(0, 2, value=first.transition_duration, step=0.1,
                                                    label="Transition length (s)")
                with gr.Accordion("Advanced", open=False):
                    with gr.Row():
                        use_ai = gr.Checkbox(value=True, label="Use the AI model (off: placeholder frames)")
                        fps = gr.Number(value=0, precision=0, label="FPS (0 = preset)")
                        steps = gr.Number(value=0, precision=0, label="Steps (0 = preset)")
                        guidance = gr.Number(value=None, label="Guidance (blank = model default)")
                    model_id = gr.Dropdown(
                        KNOWN_MODELS if settings.model in KNOWN_MODELS else [settings.model, *KNOWN_MODELS],
                        value=settings.model, label="Model (hub id, local folder or .safetensors file)",
                        allow_custom_value=True, interactive=settings.allow_model_change,
                    )
                    model_status = gr.Markdown()
                    clear_cache_btn = gr.Button("Clear keyframe cache", size="sm")
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    stop_btn = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop")
                with gr.Row():
                    example = gr.Dropdown(names, value=names[0], label="Example storyboards", scale=2)
                    load_btn = gr.Button("Load example", size="sm")
                    export_btn = gr.Button("Export JSON", size="sm")
                    import_btn = gr.UploadButton("Import JSON", file_types=[".json"], size="sm")
                export_file = gr.File(label="Storyboard JSON", visible=False)
            with gr.Column(scale=2):
                notice = gr.Markdown(elem_id="notice")
                progress = gr.HTML(elem_id="progress")
                preview = gr.Image(label="Now generating", height=200, interactive=False, elem_id="preview")
                gallery = gr.Gallery(label="Keyframes", columns=4, height=220, elem_id="gallery")
                live_video = gr.Video(label="Live preview (plays while rendering)", streaming=True, autoplay=True,
                                      interactive=False, visible=stream, elem_id="live")
                video = gr.Video(label="Video", interactive=False, elem_id="video")
                report = gr.JSON(label="Render report", open=False)

        controls = [quality, transition, transition_duration, fps, use_ai, steps, guidance]
        board_inputs = [table, *controls]

        def to_storyboard(rows, *values):
            return rows_to_storyboard(rows, Controls(*values), limits)

        def generate(scenes, quality, transition, transition_duration, fps, use_ai, steps, guidance_scale, model,
                     board_ok, request: gr.Request):
            """Render the scene table; streams keyframes, step previews, video segments, then the MP4."""
            if not board_ok:  # the page already showed what to fix
                return
            try:
                storyboard = to_storyboard(scenes, quality, transition, transition_duration, fps, use_ai, steps,
                                           guidance_scale)
            except StoryboardError as exc:
                raise gr.Error(str(exc), title="Please fix the storyboard") from None
            renderer = pool.get(model)
            cancel = sessions.begin(request.session_hash)
            try:
                yield from PageRender(stream).updates(renderer.render(storyboard, cancel))
            finally:
                sessions.end(request.session_hash, cancel)

        def start(*values):
            try:
                to_storyboard(*values)
            except StoryboardError as exc:
                gr.Warning(str(exc), title="Please fix the storyboard")
                return gr.skip(), gr.skip(), f"❌ **Please fix the storyboard:** {exc}", "", False
            return gr.Button(interactive=False), gr.Button(interactive=True), "", "", True

        def stop(request: gr.Request):
            sessions.cancel(request.session_hash)
            return ("**Render stopped.** Press Generate to start again.", "",
                    gr.Button(interactive=True), gr.Button(interactive=False))

        def unlock():
            return gr.Button(interactive=True), gr.Button(interactive=False)

        outputs = dict(gallery=gallery, preview=preview, progress=progress, live_video=live_video, video=video,
                       report=report, notice=notice, generate=generate_btn, stop=stop_btn)
        # Check the table first (instant, no queue). A bad row gets a message; the table is left as it is.
        board_ok = gr.State(True)
        locked = generate_btn.click(start, board_inputs, [generate_btn, stop_btn, notice, progress, board_ok],
                                    queue=False, api_visibility="private")
        render_event = locked.then(
            generate, [*board_inputs, model_id, board_ok], [outputs[name] for name in OUTPUT_NAMES],
            api_name="generate", concurrency_id="gpu", concurrency_limit=settings.max_concurrent_renders,
            show_progress="minimal", show_progress_on=[progress],
        )
        render_event.then(unlock, None, [generate_btn, stop_btn], api_visibility="private").then(
            lambda m: model_line(pool, m), model_id, model_status, api_visibility="private")
        stop_btn.click(stop, None, [notice, progress, generate_btn, stop_btn], cancels=[render_event],
                       queue=False, api_visibility="private")

        # Table editing helpers.
        up_btn.click(lambda rows, n: move_row(rows, n, -1), [table, row_number], table, api_visibility="private")
        down_btn.click(lambda rows, n: move_row(rows, n, 1), [table, row_number], table, api_visibility="private")
        delete_btn.click(delete_row, [table, row_number], table, api_visibility="private")
        add_btn.click(add_row, table, table, api_visibility="private")

        # Examples, export and import.
        def show(storyboard):
            c = storyboard_to_controls(storyboard)
            return (storyboard_to_rows(storyboard), c.quality, c.transition, c.transition_duration, c.fps,
                    c.use_ai, c.steps, c.guidance_scale)

        load_btn.click(lambda name: show(load_example(name)), example, board_inputs, api_visibility="private")

        def export(rows, *values):
            try:
                text = to_storyboard(rows, *values).to_json()
            except StoryboardError as exc:
                raise gr.Error(str(exc), title="Cannot export yet") from None
            path = Path(tempfile.mkdtemp(prefix="scene2video-export-")) / "storyboard.json"
            path.write_text(text, encoding="utf-8")
            return gr.File(value=str(path), visible=True)

        export_btn.click(export, board_inputs, export_file, api_visibility="private")

        def import_file(file):
            try:
                storyboard = parse_storyboard(Path(file).read_text(encoding="utf-8"), limits)
            except UnicodeDecodeError:
                raise gr.Error("That file is not a text JSON file.", title="Cannot import") from None
            except StoryboardError as exc:
                raise gr.Error(str(exc), title="Cannot import") from None
            return show(storyboard)

        import_btn.upload(import_file, import_btn, board_inputs, api_visibility="private")

        def clear_cache():
            removed = pool.cache.clear()
            return f"Removed {removed} keyframe(s) from the cache."

        clear_cache_btn.click(clear_cache, None, notice, api_visibility="private")
        demo.load(lambda m: model_line(pool, m), model_id, model_status, api_visibility="private")

        # The named API endpoint: a storyboard JSON string in, the MP4 and the report out.
        with gr.Row(visible=False):
            api_storyboard = gr.Textbox(label="storyboard_json")
            api_video = gr.File(label="video")
            api_report = gr.JSON(label="report")
            api_trigger = gr.Button("render")

        def render(storyboard_json: str):
            """Render a storyboard (a JSON string, see the README) to an MP4; returns the MP4 and the report."""
            try:
                storyboard = parse_storyboard(storyboard_json, limits)
            except StoryboardError as exc:
                raise gr.Error(str(exc)) from None
            yield from api_updates(pool.get().render(storyboard))

        api_trigger.click(render, api_storyboard, [api_video, api_report], api_name="render",
                          concurrency_id="gpu", concurrency_limit=settings.max_concurrent_renders)
    return demo


def model_line(pool: RendererPool, model_id: str | None) -> str:
    """One line for the UI: which model, on which device, and whether it is loaded."""
    renderer = pool.get(model_id)
    info = renderer.model.describe() if renderer.model is not None else {}
    return (f"**Model:** `{info.get('model', '?')}` · **device:** {info.get('device', '?')} · "
            f"**state:** {info.get('state', '?')}")


def storyboard_json_for(rows, controls: Controls) -> str:
    """The JSON document the table and controls describe (used by tests and export)."""
    return json.dumps(rows_to_dict(rows, controls), ensure_ascii=False)
