"""The Scene2Video page: the storyboard (scene table and controls) and Generate on the left, with the
status beside Generate; one result area on the right (the player, the step preview, the keyframes).

Every storyboard widget is made from its field description (``pipeline.contract.fields``) by
``ui.form.field_widget`` and kept by field name in a ``BoardForm``; a new Storyboard field shows up
here without code, in the main row or under Advanced (its ``advanced`` flag).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from pipeline import Limits, Settings, Storyboard
from pipeline.contract.fields import FIELDS_BY_NAME, SCENE_FIELDS, FieldSpec
from pipeline.images.backends import BACKENDS  # torch-free
from pipeline.images.model_names import KNOWN_MODELS  # torch-free at import: torch loads only with a model
from pipeline.service import RendererPool

from .examples import example_names, load_example
from .form import SCENES, BoardForm, board_specs, field_widget
from .api import add_render_api
from .handlers import Handlers
from .render_view import OUTPUT_NAMES
from .soundtrack import SOUNDTRACK_FIELDS, build_soundtrack, wire_soundtrack
from .table import DATATYPES, HEADERS, shown_values, storyboard_to_rows

log = logging.getLogger(__name__)

CSS = """
.s2v-progress {padding: 2px 0}
.s2v-bar {height: 10px; border-radius: 5px; background: var(--neutral-200); overflow: hidden}
.s2v-fill {height: 100%; background: var(--color-accent); transition: width .2s}
.s2v-text {font-size: 0.9em; margin-top: 4px}
#intro h1 {font-size: 1.5em; margin: 0 0 2px 0}
#intro p {margin: 0}
#row-tools button {align-self: end; max-height: 2.6em}
/* the four row tools wrap together, never one alone on a line */
#row-buttons {flex-wrap: nowrap; align-self: end; min-width: min(100%, 300px)}
#scenes thead .header.text {white-space: normal}  /* cells keep one line; a header may take two */
#row-buttons button {white-space: nowrap; padding-left: 6px; padding-right: 6px}
.s2v-no-ai {padding: 6px 12px; border-radius: 6px; background: var(--color-yellow-50, #fefce8);
  border: 1px solid var(--color-yellow-300, #fde047)}
#ai-notice .html-container {padding: 0}  /* the notice is its own box */
.s2v-no-ai details {display: inline}
.s2v-no-ai summary {display: inline; cursor: pointer; text-decoration: underline}
.s2v-no-ai details[open] {display: block; margin-top: 4px; font-size: 0.9em}
#bad-cells {display: none}  /* only a style sheet: it applies from out of sight */
#gallery .caption-label {font-size: 11px; padding-left: 6px; padding-right: 6px; white-space: normal; text-align: center}  /* captions fit their thumbnail */
"""
INTRO = ("# 🎬 Scene2Video\nOne scene per row: a prompt and its seconds on screen. Pick a quality and a "
         "transition, press **Generate**: keyframes appear as they are made and the video plays while it renders.")
PRIVATE = dict(api_visibility="private")
# Browser-side steps after an event: the table's own scroller shows its last row (a scene just added), and
# Export's file, once written into the hidden download button, downloads in the same click.
SCROLL_TO_LAST_ROW = """() => { const show = () => {
  const v = document.querySelector('#scenes .virtual-table-viewport'); if (v) v.scrollTop = v.scrollHeight; };
  show(); setTimeout(show, 100); setTimeout(show, 400); }"""
CLICK_DOWNLOAD = """() => { const b = document.querySelector('#export-file');
  if (b) setTimeout(() => b.click(), 50); }"""
# One line a row (a long prompt is cut; double-click shows it whole): five rows fit at 1280×720 above Generate.
SCENE_TABLE_HEIGHT = 255
# The main row's fields share one line at 1280 px; the look's choices are its longest words.
MAIN_MIN_WIDTHS = {"quality": 110, "transition_duration": 150, "style": 100, "look": 170}
# Fixed widths (px) that fit the left column at 1280 px; narrower screens scroll the table, not the page.
SCENE_COLUMN_WIDTHS = {"prompt": 250, "duration": 88, "seed": 96, "negative_prompt": 130, "motion": 100, "animate": 80,
                       "motion_prompt": 160}


def streaming_available() -> bool:
    """Gradio's streaming video needs the system's ffmpeg and ffprobe."""
    return bool(shutil.which("ffmpeg") and shutil.which("ffprobe"))


def model_widget(spec: FieldSpec, limits: Limits, value: Any, settings: Settings) -> gr.Dropdown:
    """The model field: the server's model first, a short list of known ones, any id typed in
    (only where visitors may change the model)."""
    known = list(KNOWN_MODELS)
    choices = known if settings.model in known else [settings.model, *known]
    return gr.Dropdown(choices, value=value or settings.model, label=spec.label, info=spec.help,
                       allow_custom_value=True, interactive=settings.allow_model_change, elem_id="field-model")


def video_model_widget(spec: FieldSpec, limits: Limits, value: Any, settings: Settings) -> gr.Textbox:
    """The video model field: blank is the server's (shown as the placeholder); editable only where visitors
    may change models."""
    server = settings.video_model or "the default on a GPU, none on a CPU"
    return gr.Textbox(value=value or "", max_lines=1, label=spec.label, info=spec.help,
                      placeholder=f"blank: {server}", interactive=settings.allow_model_change,
                      elem_id="field-video_model")


# Fields that want a widget of their own: name -> (spec, limits, value, settings) -> component.
WIDGET_OVERRIDES: dict[str, Callable[..., gr.components.Component]] = {"model": model_widget,
                                                                       "video_model": video_model_widget}


def board_widget(spec: FieldSpec, first: Storyboard, settings: Settings) -> gr.components.Component:
    limits = settings.limits()
    value = getattr(first, spec.name)
    if spec.name in WIDGET_OVERRIDES:
        return WIDGET_OVERRIDES[spec.name](spec, limits, value, settings)
    min_width = 150 if spec.advanced else MAIN_MIN_WIDTHS.get(spec.name, 120)
    return field_widget(spec, limits, value, with_help=spec.advanced, min_width=min_width)


def scene_table(first: Storyboard) -> gr.Dataframe:
    widths = [SCENE_COLUMN_WIDTHS.get(spec.name, 100) for spec in SCENE_FIELDS]
    return gr.Dataframe(
        value=storyboard_to_rows(first), headers=HEADERS, datatype=DATATYPES, type="array",
        column_count=len(HEADERS), label="Scenes (double-click a cell to edit)", interactive=True,
        show_row_numbers=True, elem_id="scenes", column_widths=widths, max_height=SCENE_TABLE_HEIGHT,
    )


@dataclass
class Editor:
    """The left column: the storyboard form, the row tools, Generate/Stop and the file tools."""

    form: BoardForm
    row_number: gr.Number
    row_choices: dict[str, gr.Dropdown]  # a dropdown per choice column, for the selected scene
    row_shown: gr.Textbox  # hidden: the scene and values those dropdowns show (see Handlers.set_scene_value)
    up: gr.Button
    down: gr.Button
    delete: gr.Button
    add: gr.Button
    backend: gr.Dropdown  # where images are made: a server choice, not part of the storyboard
    model_status: gr.Markdown
    model_timer: gr.Timer
    clear_cache: gr.Button
    generate: gr.Button
    stop: gr.Button
    example: gr.Dropdown
    load: gr.Button
    export: gr.Button
    import_: gr.UploadButton
    export_file: gr.DownloadButton  # kept out of sight: Export writes the file into it and clicks it


RESTYLE_FIELDS = ("source_video", "coherence", "keyframe_interval")
"""The fields of the "Restyle a video" accordion (an upload there becomes one scene per shot)."""


def page_specs(advanced: bool) -> list:
    """The fields given a widget in the main row or under Advanced (the soundtrack and restyling have their own)."""
    return [spec for spec in board_specs(advanced) if spec.name not in (*SOUNDTRACK_FIELDS, *RESTYLE_FIELDS)]


def build_row_tools(first: Storyboard) -> tuple[gr.Number, dict[str, gr.Dropdown], gr.Textbox, list[gr.Button]]:
    with gr.Row(elem_id="row-tools"):
        row_number = gr.Number(label="Scene #", value=1, precision=0, minimum=1, min_width=80, scale=1,
                               elem_id="row-number")
        choices = {spec.name: gr.Dropdown(list(spec.choices), value=getattr(first.scenes[0], spec.name),
                                          label=f"{spec.label} of scene #", min_width=120, scale=2,
                                          elem_id=f"row-{spec.name}")
                   for spec in SCENE_FIELDS if spec.kind == "choice"}
        with gr.Row(elem_id="row-buttons", scale=4):
            buttons = [gr.Button(text, size="sm", min_width=60, scale=1, elem_id=f"row-{name}")
                       for text, name in (("↑ Up", "up"), ("↓ Down", "down"), ("✕ Delete", "delete"),
                                          ("+ Add scene", "add"))]
    shown = gr.Textbox(shown_values(1, {name: dropdown.value for name, dropdown in choices.items()}),
                       visible=False)  # kept in the browser with the dropdowns' values (outside the row's layout)
    return row_number, choices, shown, buttons


def build_editor(first: Storyboard, settings: Settings, names: list[str], outputs: dict) -> Editor:
    """The storyboard form and tools; ``outputs`` receives the notice and progress (beside Generate)."""
    widgets: dict[str, Any] = {SCENES: scene_table(first)}
    row_number, row_choices, row_shown, (up, down, delete, add) = build_row_tools(first)
    with gr.Row():
        for spec in page_specs(advanced=False):
            widgets[spec.name] = board_widget(spec, first, settings)
    with gr.Row(equal_height=True, elem_id="actions"):
        with gr.Column(scale=1, min_width=200):
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="generate", min_width=90)
                stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop", min_width=70)
        with gr.Column(scale=2, min_width=240, elem_id="status"):
            outputs["notice"] = gr.Markdown(elem_id="notice")
            outputs["progress"] = gr.HTML(elem_id="progress")
            outputs["bad_cells"] = gr.HTML("", elem_id="bad-cells", padding=False)  # a style sheet marking them
    widgets.update(zip(SOUNDTRACK_FIELDS, build_soundtrack()))  # the soundtrack's own widgets, by field name
    with gr.Accordion("Restyle a video", open=False, elem_id="restyle"):
        gr.Markdown("Upload a video: its shots become scenes (From/To in the table), each redrawn in the style "
                    "of its prompt, with the video's motion, cuts and sound.")
        with gr.Row():
            for name in RESTYLE_FIELDS:
                widgets[name] = board_widget(FIELDS_BY_NAME[name], first, settings)
    with gr.Accordion("Advanced", open=False):
        with gr.Row():
            for spec in page_specs(advanced=True):
                widgets[spec.name] = board_widget(spec, first, settings)
        backend = gr.Dropdown(list(BACKENDS), value=settings.backend, label="Image backend",
                              info="auto · diffusers (this machine) · openai · hf-inference (the server's own key)",
                              interactive=settings.allow_backend_change, elem_id="backend")
        model_status = gr.Markdown(elem_id="model-line")
        model_timer = gr.Timer(2.0, active=False)
        clear_cache = gr.Button("Clear keyframe cache", size="sm")
    with gr.Accordion("Storyboard files and examples", open=False, elem_id="files"):
        with gr.Row(equal_height=True):
            example = gr.Dropdown(names, value=names[0], label="Example storyboards", scale=2, min_width=160)
            load, export = gr.Button("Load example", size="sm"), gr.Button("Export JSON", size="sm")
            import_ = gr.UploadButton("Import JSON", file_types=[".json"], size="sm", elem_id="import")
        export_file = gr.DownloadButton("Storyboard JSON", visible="hidden", elem_id="export-file")
    return Editor(BoardForm(widgets, settings.limits()), row_number, row_choices, row_shown, up, down, delete, add,
                  backend, model_status, model_timer, clear_cache, generate, stop, example, load, export, import_,
                  export_file)


def build_results(stream: bool, outputs: dict) -> None:
    """The right column: one player (the live stream while rendering, then the MP4 in its place),
    the step preview and the keyframes. Each is hidden until it has something to show."""
    outputs["live_video"] = gr.Video(label="Live preview (plays while rendering)", streaming=True, autoplay=True,
                                     interactive=False, visible=False, elem_id="live")
    outputs["video"] = gr.Video(label="Video", interactive=False, visible=False, elem_id="video")
    outputs["preview"] = gr.Image(label="Now generating", height=200, interactive=False, visible=False,
                                  elem_id="preview")
    outputs["gallery"] = gr.Gallery(label="Keyframes", columns=4, height="auto", visible=False, elem_id="gallery",
                                    object_fit="contain")
    outputs["report"] = gr.JSON(label="Render report", open=False, visible=False, elem_id="report")
    outputs["hint"] = gr.Markdown("The video appears here. Keyframes and a live preview show while it renders.",
                                  elem_id="results-hint")


def build_demo(pool: RendererPool, examples_first: str | None = None) -> gr.Blocks:
    """The whole page, wired to ``pool``'s renderers. The table opens with an example loaded."""
    return build_page(pool, examples_first)[0]


def build_page(pool: RendererPool, examples_first: str | None = None) -> tuple[gr.Blocks, Handlers]:
    """The page and the event functions bound to its widgets (tests call them directly)."""
    stream = streaming_available()
    if not stream:
        log.warning("ffmpeg/ffprobe not found on PATH: the video is shown when finished, not streamed.")
    names = example_names()
    first = load_example(examples_first or names[0])
    outputs: dict[str, Any] = {}
    with gr.Blocks(title="Scene2Video", fill_width=True) as demo:
        gr.Markdown(INTRO, elem_id="intro")
        outputs["ai_notice"] = gr.HTML(visible=False, elem_id="ai-notice", padding=False)
        if not stream:
            gr.Markdown("ℹ️ This server has no system ffmpeg/ffprobe, so the video appears when it is finished "
                        "instead of playing while it renders.")
        with gr.Row():
            with gr.Column(scale=3, min_width=320):
                editor = build_editor(first, pool.settings, names, outputs)
            with gr.Column(scale=2, min_width=320):
                build_results(stream, outputs)
        outputs.update(generate=editor.generate, stop=editor.stop, row_number=editor.row_number,
                       export_file=editor.export_file, token=gr.State(0))
        title = gr.State("")  # the first prompt names the download until a file or example is loaded
        handlers = Handlers(pool, stream, editor.form, outputs, title, editor.backend)
        wire_render(editor, outputs, handlers, pool.settings, title)
        wire_tools(editor, outputs, handlers, title)
        wire_model_line(demo, editor, handlers, outputs)
        wire_soundtrack([editor.form.widgets[name] for name in SOUNDTRACK_FIELDS])
        add_render_api(handlers, pool.settings)
    return demo, handlers


def wire_render(editor: Editor, outputs: dict, handlers: Handlers, settings: Settings, title: gr.State) -> None:
    """Generate: check at once (a bad storyboard gets its message and no render), else queue the render
    (one GPU line) through the token's change. Stop sets the render's cancel flag (no Gradio cancel)."""
    board = {*editor.form.inputs, title, editor.backend}
    result_outputs = [outputs[name] for name in OUTPUT_NAMES]
    # Queued (so the token change reaches the page) but never waits: no concurrency limit.
    editor.generate.click(handlers.start, board, [*result_outputs, outputs["token"]], concurrency_limit=None,
                          show_progress="hidden", **PRIVATE)
    outputs["token"].change(
        handlers.generate, board, result_outputs, concurrency_id="gpu",
        concurrency_limit=settings.max_concurrent_renders, show_progress="minimal",
        show_progress_on=[outputs["progress"]], **PRIVATE,
    ).then(handlers.model_state, model_inputs(editor), model_outputs(editor, outputs), **PRIVATE)
    editor.stop.click(handlers.stop, None, editor.stop, queue=False, **PRIVATE)


def wire_tools(editor: Editor, outputs: dict, handlers: Handlers, title: gr.State) -> None:
    """Row editing, examples, export/import and the cache button."""
    table, number, notice = editor.form.widgets[SCENES], editor.row_number, outputs["notice"]
    board = editor.form.components
    changed = [table, number, notice, outputs["bad_cells"]]
    editor.up.click(lambda rows, n: handlers.move(rows, n, -1), [table, number], changed, queue=False, **PRIVATE)
    editor.down.click(lambda rows, n: handlers.move(rows, n, 1), [table, number], changed, queue=False, **PRIVATE)
    editor.delete.click(handlers.delete, [table, number], changed, queue=False, **PRIVATE)
    editor.add.click(handlers.add, table, changed, queue=False, **PRIVATE).then(None, js=SCROLL_TO_LAST_ROW, **PRIVATE)
    table.select(handlers.selected, None, number, queue=False, **PRIVATE)
    # The dropdowns follow the selected scene and the table (an edit, a row tool, an import), and the
    # page keeps what they show; a dropdown writes its scene's cell only when the user changed it.
    choices, shown = editor.row_choices, editor.row_shown
    gr.on([number.change, table.change], lambda rows, n: handlers.scene_values(rows, n, choices, shown),
          [table, number], [*choices.values(), shown], queue=False, show_progress="hidden", **PRIVATE)
    for name, dropdown in editor.row_choices.items():
        dropdown.input(lambda rows, n, was, value, name=name: handlers.set_scene_value(rows, n, was, name, value),
                       [table, number, shown, dropdown], table, queue=False, **PRIVATE)
    editor.load.click(handlers.load_example, editor.example, [*board, notice, outputs["bad_cells"], title], **PRIVATE)
    exported = [editor.export_file, notice, outputs["bad_cells"]]
    editor.export.click(handlers.export, {*editor.form.inputs, title}, exported, **PRIVATE).then(
        None, js=CLICK_DOWNLOAD, **PRIVATE)
    editor.import_.upload(handlers.import_file, editor.import_, [*board, notice, outputs["bad_cells"], title],
                          **PRIVATE)
    source = editor.form.widgets.get("source_video")
    if source is not None:  # an uploaded video becomes one scene per shot in the table
        source.upload(handlers.import_video, editor.form.inputs, [*board, notice, outputs["bad_cells"]], **PRIVATE)
    editor.clear_cache.click(handlers.clear_cache, None, notice, **PRIVATE)


def wire_model_line(demo: gr.Blocks, editor: Editor, handlers: Handlers, outputs: dict) -> None:
    """The model line says loading / loaded (device, dtype) / failed (reason), and follows the dropdown;
    the first-screen notice says when no AI picture can be made here (and what to do)."""
    targets = model_outputs(editor, outputs)
    gr.on([demo.load, editor.model_timer.tick], handlers.model_state, model_inputs(editor), targets, queue=False,
          **PRIVATE)
    # A newly picked model or backend shows its own device and state, not the previous one's; AI switched
    # off on purpose needs no notice.
    for picker in (editor.form.widgets.get("model"), editor.backend, editor.form.widgets.get("use_ai")):
        if picker is not None:
            picker.change(handlers.model_state, model_inputs(editor), targets, queue=False, **PRIVATE)


def model_inputs(editor: Editor) -> list:
    """The model line's inputs: the model field (the server's model when the form has none), the backend,
    and whether AI pictures are wanted."""
    model, use_ai = editor.form.widgets.get("model"), editor.form.widgets.get("use_ai")
    return [model if model is not None else gr.State(None), editor.backend,
            use_ai if use_ai is not None else gr.State(True)]


def model_outputs(editor: Editor, outputs: dict) -> list:
    """What :meth:`Handlers.model_state` updates: the model line, its timer and the first-screen notice."""
    return [editor.model_status, editor.model_timer, outputs["ai_notice"]]
