"""The Scene2Video page: scene table and controls on the left, what is being made on the right."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass

import gradio as gr

from pipeline import TRANSITIONS, Settings, Storyboard
from pipeline.images.backends import BACKENDS  # torch-free
from pipeline.images.model_names import KNOWN_MODELS  # torch-free at import: torch loads only with a model
from pipeline.service import RendererPool

from .examples import example_names, load_example
from .handlers import Handlers
from .render_view import OUTPUT_NAMES
from .soundtrack import build_soundtrack, wire_soundtrack
from .table import DATATYPES, HEADERS, add_row, delete_row, move_row, storyboard_to_rows

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
PRIVATE = dict(api_visibility="private")


def streaming_available() -> bool:
    """Gradio's streaming video needs the system's ffmpeg and ffprobe."""
    return bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


@dataclass
class Editor:
    """The left column: the scene table, its tools and the render controls."""

    table: gr.Dataframe
    row_number: gr.Number
    up: gr.Button
    down: gr.Button
    delete: gr.Button
    add: gr.Button
    controls: list  # in Controls' field order: quality, transition, length, fps, use_ai, steps, guidance
    soundtrack: list  # in ui.soundtrack.SOUNDTRACK_FIELDS order
    model_id: gr.Dropdown
    backend: gr.Dropdown
    model_status: gr.Markdown
    clear_cache: gr.Button
    generate: gr.Button
    stop: gr.Button
    example: gr.Dropdown
    load: gr.Button
    export: gr.Button
    import_: gr.UploadButton
    export_file: gr.File

    @property
    def board_inputs(self) -> list:
        return [self.table, *self.controls, *self.soundtrack]


def build_editor(first: Storyboard, settings: Settings, names: list[str]) -> Editor:
    table = gr.Dataframe(
        value=storyboard_to_rows(first), headers=HEADERS, datatype=DATATYPES, type="array",
        column_count=len(HEADERS), row_count=len(first.scenes), label="Scenes", interactive=True,
        show_row_numbers=True, wrap=True, elem_id="scenes", column_widths=["46%", "12%", "10%", "20%", "12%"],
    )
    with gr.Row():
        row_number = gr.Number(label="Scene #", value=1, precision=0, minimum=1, scale=1)
        up, down = gr.Button("↑ Move up", size="sm"), gr.Button("↓ Move down", size="sm")
        delete, add = gr.Button("✕ Delete", size="sm"), gr.Button("+ Add scene", size="sm")
    with gr.Row():
        allowed = list(settings.limits().allowed_qualities)
        quality = gr.Radio(allowed, value=first.quality if first.quality in allowed else allowed[0], label="Quality",
                           info="draft 480p · standard 720p · high 1080p · premium 1080p30")
        transition = gr.Dropdown(list(TRANSITIONS), value=first.transition, label="Transition")
        length = gr.Slider(0, 2, value=first.transition_duration, step=0.1, label="Transition length (s)")
    soundtrack = build_soundtrack()
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            use_ai = gr.Checkbox(value=True, label="Use the AI model (off: placeholder frames)")
            fps = gr.Number(value=0, precision=0, label="FPS (0 = preset)")
            steps = gr.Number(value=0, precision=0, label="Steps (0 = preset)")
            guidance = gr.Number(value=None, label="Guidance (blank = model default)")
        known = list(KNOWN_MODELS)
        choices = known if settings.model in known else [settings.model, *known]
        model_id = gr.Dropdown(choices, value=settings.model, label="Model (hub id, local folder or .safetensors file)",
                               allow_custom_value=True, interactive=settings.allow_model_change)
        backend = gr.Dropdown(list(BACKENDS), value=settings.backend, label="Image backend",
                              info="auto · diffusers (this machine) · openai · hf-inference (the server's own key)",
                              interactive=settings.allow_backend_change)
        model_status = gr.Markdown()
        clear_cache = gr.Button("Clear keyframe cache", size="sm")
    with gr.Row():
        generate = gr.Button("Generate", variant="primary", elem_id="generate")
        stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop")
    with gr.Row():
        example = gr.Dropdown(names, value=names[0], label="Example storyboards", scale=2)
        load, export = gr.Button("Load example", size="sm"), gr.Button("Export JSON", size="sm")
        import_ = gr.UploadButton("Import JSON", file_types=[".json"], size="sm")
    export_file = gr.File(label="Storyboard JSON", visible=False)
    return Editor(table, row_number, up, down, delete, add, [quality, transition, length, fps, use_ai, steps, guidance],
                  soundtrack, model_id, backend, model_status, clear_cache, generate, stop, example, load, export,
                  import_, export_file)


def build_outputs(stream: bool) -> dict:
    """The right column, keyed by render_view.OUTPUT_NAMES (the buttons are added by the caller)."""
    return dict(
        notice=gr.Markdown(elem_id="notice"),
        progress=gr.HTML(elem_id="progress"),
        preview=gr.Image(label="Now generating", height=200, interactive=False, elem_id="preview"),
        gallery=gr.Gallery(label="Keyframes", columns=4, height=220, elem_id="gallery"),
        live_video=gr.Video(label="Live preview (plays while rendering)", streaming=True, autoplay=True,
                            interactive=False, visible=stream, elem_id="live"),
        video=gr.Video(label="Video", interactive=False, elem_id="video"),
        report=gr.JSON(label="Render report", open=False),
    )


def build_demo(pool: RendererPool, examples_first: str | None = None) -> gr.Blocks:
    """The whole page, wired to ``pool``'s renderers. The table opens with an example loaded."""
    stream = streaming_available()
    if not stream:
        log.warning("ffmpeg/ffprobe not found on PATH: the video is shown when finished, not streamed.")
    names = example_names()
    handlers = Handlers(pool, stream)
    with gr.Blocks(title="Scene2Video", fill_width=True) as demo:
        gr.Markdown(INTRO)
        if not stream:
            gr.Markdown("ℹ️ This server has no system ffmpeg/ffprobe, so the video appears when it is finished "
                        "instead of playing while it renders.")
        with gr.Row():
            with gr.Column(scale=3):
                editor = build_editor(load_example(examples_first or names[0]), pool.settings, names)
            with gr.Column(scale=2):
                outputs = build_outputs(stream)
        outputs.update(generate=editor.generate, stop=editor.stop)
        wire_render(editor, outputs, handlers, pool.settings)
        wire_tools(editor, outputs, handlers)
        wire_soundtrack(editor.soundtrack)
        model_inputs = [editor.model_id, editor.backend]
        demo.load(handlers.model_line, model_inputs, editor.model_status, **PRIVATE)
        # A newly picked model or backend shows its own device and state, not the previous one's.
        editor.model_id.change(handlers.model_line, model_inputs, editor.model_status, queue=False, **PRIVATE)
        editor.backend.change(handlers.model_line, model_inputs, editor.model_status, queue=False, **PRIVATE)
        add_render_api(handlers, pool.settings)
    return demo


def wire_render(editor: Editor, outputs: dict, handlers: Handlers, settings: Settings) -> None:
    """Generate: check at once, lock the buttons, queue the render (one GPU line), unlock. Stop cancels it."""
    board_ok = gr.State(True)
    started = editor.generate.click(
        handlers.start, editor.board_inputs,
        [editor.generate, editor.stop, outputs["notice"], outputs["progress"], board_ok], queue=False, **PRIVATE)
    render_event = started.then(
        handlers.generate, [*editor.board_inputs, editor.model_id, editor.backend, board_ok],
        [outputs[n] for n in OUTPUT_NAMES],
        api_name="generate", concurrency_id="gpu", concurrency_limit=settings.max_concurrent_renders,
        show_progress="minimal", show_progress_on=[outputs["progress"]],
    )
    render_event.then(handlers.unlock, None, [editor.generate, editor.stop], **PRIVATE).then(
        handlers.model_line, [editor.model_id, editor.backend], editor.model_status, **PRIVATE)
    editor.stop.click(handlers.stop, None, [outputs["notice"], outputs["progress"], editor.generate, editor.stop],
                      cancels=[render_event], queue=False, **PRIVATE)


def wire_tools(editor: Editor, outputs: dict, handlers: Handlers) -> None:
    """Row editing, examples, export/import and the cache button."""
    table, number = editor.table, editor.row_number
    editor.up.click(lambda rows, n: move_row(rows, n, -1), [table, number], table, **PRIVATE)
    editor.down.click(lambda rows, n: move_row(rows, n, 1), [table, number], table, **PRIVATE)
    editor.delete.click(delete_row, [table, number], table, **PRIVATE)
    editor.add.click(add_row, table, table, **PRIVATE)
    editor.load.click(handlers.load_example, editor.example, editor.board_inputs, **PRIVATE)
    editor.export.click(handlers.export, editor.board_inputs, editor.export_file, **PRIVATE)
    editor.import_.upload(handlers.import_file, editor.import_, editor.board_inputs, **PRIVATE)
    editor.clear_cache.click(handlers.clear_cache, None, outputs["notice"], **PRIVATE)


def add_render_api(handlers: Handlers, settings: Settings) -> None:
    """The named endpoint /render: a storyboard JSON string (and its audio file, if any) in, the MP4 and the report out."""
    with gr.Row(visible=False):
        storyboard_json = gr.Textbox(label="storyboard_json")
        audio = gr.File(label="audio", file_types=["audio"])
        reference_image = gr.File(label="reference_image", type="filepath", file_types=["image"])
        video, report = gr.File(label="video"), gr.JSON(label="report")
        trigger = gr.Button("render")
    trigger.click(handlers.render_api, [storyboard_json, audio, reference_image], [video, report], api_name="render",
                  concurrency_id="gpu", concurrency_limit=settings.max_concurrent_renders)
