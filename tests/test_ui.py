"""The page without a browser: table and widgets <-> storyboard by field name, row editing, imports and
exports, the model rule, no system ffmpeg, and what each room imports."""

import json
import os
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import ui.layout
from pipeline import Scene, Storyboard, StoryboardError
from pipeline.contract.fields import BOARD_FIELDS, SCENE_FIELDS
from pipeline.service import RendererPool
from server import app_settings
from ui.table import (
    HEADERS, add_row, delete_row, move_row, read_shown, rows_to_storyboard, set_cell, shown_values, storyboard_to_rows,
)

ROWS = [["a fox", 2, "", "", "zoom_in"], ["a bear", "1.5", 7, "blurry", None], ["", None, "", "", ""]]


def test_table_becomes_a_storyboard_and_back():
    sb = rows_to_storyboard(ROWS, {"quality": "draft", "transition": "wipe"})
    assert [(s.prompt, s.duration, s.seed, s.motion) for s in sb.scenes] == [
        ("a fox", 2.0, None, "zoom_in"), ("a bear", 1.5, 7, "none")]
    assert sb.fps is None and sb.steps is None and sb.transition == "wipe"
    assert storyboard_to_rows(sb) == [["a fox", 2.0, "", "", "zoom_in", "", "", "", ""],
                                      ["a bear", 1.5, 7, "blurry", "none", "", "", "", ""]]
    assert HEADERS == [spec.label for spec in SCENE_FIELDS]  # the columns are the scene fields, in order


def test_every_scene_column_has_a_width_that_fits_at_1280_px():
    """A new scene field needs its own width: the browser test measures that all columns fit at 1280 px,
    and this says which field lacks one where no browser runs."""
    widths = ui.layout.SCENE_COLUMN_WIDTHS
    assert list(widths) == [spec.name for spec in SCENE_FIELDS]
    assert max(widths, key=widths.get) == "prompt"  # the prompt keeps the most width
    assert 48 + sum(widths.values()) <= 700  # the table's 718 px at 1280 px, less room for a scrollbar


def test_animate_column_reads_yes_no_and_blank():
    rows = [["a fox", 2, "", "", "none", "yes", "it runs"], ["a bear", 1, "", "", "none", " No ", ""],
            ["a cat", 1, "", "", "none", "", ""]]
    sb = rows_to_storyboard(rows, {"animate": True})
    assert [s.animate for s in sb.scenes] == [True, False, None]
    assert [sb.animated(i) for i in range(3)] == [True, False, True]  # blank: the storyboard's
    assert sb.scenes[0].motion_prompt == "it runs"
    assert [row[5] for row in storyboard_to_rows(sb)] == ["yes", "no", ""]
    with pytest.raises(StoryboardError, match="Scene 1: animate must be true or false"):
        rows_to_storyboard([["a", 1, "", "", "none", "maybe", ""]])


def test_bad_row_names_the_row_the_user_sees():
    with pytest.raises(StoryboardError, match="Scene 2: duration must be a number"):
        rows_to_storyboard([["a", 1, "", "", ""], ["b", "soon", "", "", ""]])
    with pytest.raises(StoryboardError, match="Scene 1: duration is missing"):
        rows_to_storyboard([["a", None, "", "", ""]])
    with pytest.raises(StoryboardError, match="Scene 1: seed must be a number"):
        rows_to_storyboard([["a", 1, "abc", "", ""]])
    with pytest.raises(StoryboardError, match="table is empty"):
        rows_to_storyboard([["", None, "", "", ""]])
    with pytest.raises(StoryboardError, match="table is empty"):  # every row deleted: one untouched new row
        rows_to_storyboard(delete_row([["a", 1, "", "", "none"]], 1))


def test_row_moves_keep_the_moved_row_selected_and_deletes_keep_one_row():
    rows = [["a"], ["b"], ["c"]]
    assert move_row(rows, 2, -1) == ([["b"], ["a"], ["c"]], 1)
    assert move_row(rows, 3, 1) == (rows, 3)  # out of range: nothing changes
    assert delete_row(rows, 2) == [["a"], ["c"]]
    assert len(delete_row([["a"]], 1)) == 1  # never an empty table
    assert add_row(rows)[-1][0] == ""
    assert set_cell([["a", 1, "", "", "none"]], 1, "motion", "pan_left")[0][4] == "pan_left"


def test_the_motion_dropdown_writes_the_table_only_when_the_user_changed_it(page):
    """Gradio's dropdown sends "input" whenever it loses focus; unchanged, it must write nothing (its
    rows would race a row tool's), nor copy a value it showed for another scene or before an edit."""
    from ui.handlers import Handlers
    from ui.table import read_shown, shown_values

    _, handlers = page
    rows = [["a", 1, "", "", "zoom_in"], ["b", 1, "", "", "spin"]]
    choices, shown = {"motion": "dropdown"}, "shown"
    updates = handlers.scene_values(rows, 1, choices, shown)
    assert updates == {"dropdown": "zoom_in", "shown": shown_values(1, {"motion": "zoom_in"})}
    assert handlers.scene_values(rows, 2, choices, shown)["dropdown"] is None  # "spin" is no choice: blank
    assert read_shown(updates["shown"]) == (1, {"motion": "zoom_in"}) and read_shown("?") == (0, {})
    was = updates["shown"]
    skip = Handlers.set_scene_value(rows, 1, was, "motion", "zoom_in")  # focus lost, nothing changed
    assert isinstance(skip, dict) and skip.get("__type__") == "update" and len(skip) == 1
    assert Handlers.set_scene_value(rows, 1, was, "motion", "pan_left")[0][4] == "pan_left"  # the user's pick
    typed = [["a", 1, "", "", "zoom_out"], rows[1]]  # typed into the table; the dropdown still says zoom_in
    assert Handlers.set_scene_value(typed, 1, was, "motion", "zoom_in") == skip
    assert Handlers.set_scene_value(rows, 2, was, "motion", "zoom_in") == skip  # it still shows scene 1
    assert Handlers.set_scene_value(rows, 3, shown_values(3, {"motion": None}), "motion", "none") == skip


@pytest.fixture
def page(tmp_path):
    demo, handlers = ui.layout.build_page(RendererPool(app_settings(tmp_path)))
    return demo, handlers


def test_every_storyboard_field_has_a_widget_by_name_and_the_page_round_trips_examples(page, tmp_path):
    from ui.examples import example_names, load_example

    demo, handlers = page
    assert set(handlers.form.widgets) == {"scenes"} | {spec.name for spec in BOARD_FIELDS}
    assert {f.name for f in fields(Storyboard)} == set(handlers.form.widgets)  # a new field shows up by itself
    assert {f.name for f in fields(Scene)} == {spec.name for spec in SCENE_FIELDS}
    server_model = handlers.pool.settings.model
    for name in example_names():
        shown = handlers.load_example(name)  # {component: value}: the table rows and every control
        expected = load_example(name).with_changes(model=server_model)  # the page names its model
        assert handlers.storyboard(shown) == expected
        exported = Path(handlers.export({**shown, handlers.title: name})[handlers.outputs["export_file"]])
        assert exported.name == f"{name.replace('_', '-')}.json"  # named after the storyboard
        assert json.loads(exported.read_text(encoding="utf-8")) == expected.to_dict()
        imported = handlers.import_file(str(exported))
        assert handlers.storyboard(imported) == expected and imported[handlers.title] == exported.stem


def test_a_bad_import_says_what_is_wrong_in_the_notice_and_changes_nothing(page, tmp_path):
    _, handlers = page
    notice = handlers.outputs["notice"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scenes": [{"prompt": "ok", "duration": 1}, {"prompt": "", "duration": 1}]}))
    assert list(handlers.import_file(str(bad))) == [notice]  # nothing but the message changes
    assert "Scene 2: prompt is empty" in handlers.import_file(str(bad))[notice]
    binary = tmp_path / "picture.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert "not UTF-8 text" in handlers.import_file(str(binary))[notice]


def test_without_model_change_a_storyboard_naming_another_model_gets_one_clear_message(tmp_path):
    pool = RendererPool(replace(app_settings(tmp_path), allow_model_change=False))
    board = rows_to_storyboard([["a", 1, "", "", ""]], {"model": "evil/weights"})
    with pytest.raises(StoryboardError, match="model 'evil/weights' cannot be used on this server"):
        pool.check(board)
    with pytest.raises(StoryboardError, match="cannot be used on this server"):
        pool.get("evil/weights")
    assert pool.get(pool.settings.model) is pool.get(None)  # naming the server's own model is fine
    _, handlers = ui.layout.build_page(pool)
    bad = tmp_path / "other-model.json"
    bad.write_text(board.to_json())
    assert "cannot be used on this server" in handlers.import_file(str(bad))[handlers.outputs["notice"]]


def test_a_turbo_model_at_guidance_0_says_negative_prompts_have_no_effect(page):
    _, handlers = page  # the default model, sd-turbo: guidance 0 unless the storyboard says otherwise
    with_negative = rows_to_storyboard([["a", 1, "", "", ""], ["b", 1, "", "blurry", ""]])
    note, scenes = handlers.note(with_negative)
    assert "Negative prompts have no effect" in note and scenes == {1}  # about scene 2, the one with one
    assert handlers.note(with_negative.with_changes(guidance_scale=5.0))[0] == ""
    assert handlers.note(with_negative.with_changes(use_ai=False))[0] == ""
    assert handlers.note(rows_to_storyboard([["a", 1, "", "", ""]]))[0] == ""


def test_advice_comes_below_the_result_and_only_when_the_model_made_a_picture_it_is_about(tmp_path):
    """Issue 26: "Negative prompts have no effect" showed on every default render, above the result,
    even when every scene was a placeholder (no model loaded)."""
    from pipeline import Done, RenderReport, SceneReport
    from ui.render_view import OUTPUT_NAMES, PageRender

    advice = "ℹ️ Negative prompts have no effect at guidance 0"
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")

    def notice(*sources):
        report = RenderReport(854, 480, 24, 48, 2.0, tuple(SceneReport(i, source, "offline" if source == "placeholder"
                                                                       else "") for i, source in enumerate(sources)))
        view = PageRender({name: name for name in OUTPUT_NAMES}, False, note=advice, note_scenes=frozenset({1}))
        (update,) = list(view.updates(event for event in [Done(video, report)]))
        return update["notice"]

    made = notice("placeholder", "ai")
    assert made.startswith("**Done**") and made.index("placeholder") < made.index(advice)  # result first
    assert advice not in notice("ai", "placeholder")  # the scene with the negative prompt is a placeholder
    assert advice in notice("placeholder", "cache")  # a cached AI picture was made by the model too


def test_the_model_line_says_loaded_loading_or_failed():
    from ui.handlers import model_line_text

    assert model_line_text({"model": "m", "state": "loaded", "device": "cuda", "dtype": "float16"}) == (
        "**Model:** `m` · loaded (cuda, float16)")
    assert "loading" in model_line_text({"model": "m", "state": "loading"})
    assert "failed (offline)" in model_line_text({"model": "m", "state": "failed: offline"})


def test_without_system_ffmpeg_the_page_says_so_and_shows_only_the_final_video(monkeypatch, tmp_path):
    monkeypatch.setattr(ui.layout.shutil, "which", lambda name: None)
    demo = ui.layout.build_demo(RendererPool(app_settings(tmp_path)))
    config = demo.get_config_file()
    texts = [c["props"].get("value") or "" for c in config["components"] if c["type"] == "markdown"]
    assert any("no system ffmpeg/ffprobe" in text for text in texts)
    live = next(c for c in config["components"] if c["props"].get("elem_id") == "live")
    assert live["props"]["visible"] is False


ROOT = Path(__file__).resolve().parent.parent
# Every module of the package, not only what its __init__ exposes.
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, {package}
for module in pkgutil.walk_packages({package}.__path__, "{package}."):
    if not module.name.endswith("__main__"):  # running the CLI is not importing it
        importlib.import_module(module.name)
"""


def top_level_modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running ``code``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE", "SCENE2VIDEO_"))}  # not on a Space
    probe = code + "\nimport sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_pipeline_imports_no_gradio_and_no_torch_until_a_model_is_used():
    loaded = top_level_modules_after(IMPORT_EVERY_MODULE.format(package="pipeline"))
    assert "pipeline" in loaded
    assert not loaded & {"gradio", "gradio_client"}, "pipeline/ must not know Gradio"
    assert not loaded & {"torch", "diffusers", "transformers"}, "torch/diffusers load lazily, when a model is used"


def test_ui_imports_no_torch():
    loaded = top_level_modules_after(IMPORT_EVERY_MODULE.format(package="ui"))
    assert "gradio" in loaded
    assert not loaded & {"torch", "diffusers", "transformers"}, "ui/ must never import torch"


def test_the_notice_says_each_placeholder_reason_once_with_its_scenes():
    from pipeline import RenderReport, SceneReport
    from ui.render_view import report_notice

    offline = "Model 'x' could not be loaded (offline or not found): no model_index.json"
    scenes = (SceneReport(0, "placeholder", offline), SceneReport(1, "ai"), SceneReport(2, "placeholder", offline),
              SceneReport(3, "placeholder", "the model returned a blank (NaN or all-black) image"))
    notice = report_notice(RenderReport(854, 480, 24, 96, 4.0, scenes, seconds_taken=1.0))
    assert "3 of 4 scenes use a **placeholder** frame" in notice
    assert notice.count(offline) == 1 and f"- Scenes 1, 3: {offline}" in notice
    assert "- Scene 4: the model returned a blank (NaN or all-black) image" in notice


def test_download_names_come_from_the_storyboard():
    from ui.render_view import file_stem

    assert file_stem("A lighthouse in a storm, dramatic clouds at dusk!") == "a-lighthouse-in-a-storm-dramatic"  # six words
    assert file_stem("../../etc/passwd") == "etc-passwd"
    assert file_stem("🎬🎬") == "scene2video" and file_stem("城市 夜景") == "城市-夜景"


def test_the_notice_says_why_a_morph_became_a_crossfade():
    from pipeline import RenderReport, SceneReport, TransitionReport
    from ui.render_view import report_notice

    transitions = (TransitionReport(0, "morph", 12, "generated", 8),
                   TransitionReport(1, "morph", 12, "crossfade", reason="scene 3 is a placeholder (out of GPU memory)"))
    scenes = (SceneReport(0, "ai"), SceneReport(1, "ai"), SceneReport(2, "placeholder", "out of GPU memory"))
    notice = report_notice(RenderReport(854, 480, 24, 96, 4.0, scenes, seconds_taken=1.0, transitions=transitions))
    assert "Morph 2→3: crossfade instead of the morph — scene 3 is a placeholder (out of GPU memory)." in notice
    assert "Morph 1→2" not in notice


def test_fallback_reasons_are_said_once_each_with_the_scenes_and_morphs_they_hit():
    """Issue 26: a model that failed to load repeated its long reason once per morph."""
    from pipeline import RenderReport, SceneReport, TransitionReport
    from pipeline.contract.fallbacks import fallback_groups, numbers_text
    from ui.render_view import report_notice

    offline = "Model 'x' could not be loaded (offline or not found)"
    scenes = tuple(SceneReport(i, "placeholder", offline) for i in range(5)) + (SceneReport(5, "ai"),)
    transitions = tuple(TransitionReport(i, "morph", 6, "crossfade", reason=f"{offline}.") for i in range(3)) + (
        TransitionReport(3, "morph", 6, "crossfade", reason="scene 5 is a placeholder"),
        TransitionReport(4, "morph", 6, "generated", 6))
    report = RenderReport(854, 480, 24, 144, 6.0, scenes, seconds_taken=1.0, transitions=transitions)
    assert [(g.label(), g.reason) for g in fallback_groups(report)] == [
        ("Scenes 1–5", offline), ("Morphs 1→2, 2→3, 3→4", offline), ("Morph 4→5", "scene 5 is a placeholder")]
    notice = report_notice(report)
    assert notice.count(offline) == 2, notice  # once for the scenes, once for the morphs
    assert f"- Scenes 1–5: {offline}" in notice
    assert f"Morphs 1→2, 2→3, 3→4: crossfade instead of the morph — {offline}." in notice
    assert numbers_text([1, 2, 4, 5, 6, 9]) == "1, 2, 4–6, 9"


def test_row_tools_on_a_scene_that_is_not_there_say_so_and_change_nothing(page):
    """Issue 26: Scene # 99, then Delete, did nothing and said nothing."""
    _, handlers = page
    table, number, notice = handlers.form.widgets["scenes"], handlers.outputs["row_number"], handlers.outputs["notice"]
    rows = [["a", 1, "", "", "none"], ["b", 1, "", "", "none"]]
    for refused in (handlers.delete(rows, 99), handlers.move(rows, 99, -1), handlers.delete(rows, 0),
                    handlers.delete(rows, None), handlers.move(rows, 1.5, 1)):
        assert list(refused) == [notice] and "the table has 2 rows: pick 1 to 2" in refused[notice]
    assert handlers.move(rows, 1, -1) == {notice: "Scene 1 is already the first one."}
    deleted = handlers.delete(rows, 2)
    assert deleted[table] == rows[:1] and deleted[number] == 1  # the last one gone: the new last one selected
    added = handlers.add(rows)
    assert len(added[table]) == 3 and added[number] == 3  # the new scene is the selected one


def test_a_refused_storyboard_marks_its_bad_cells_and_fields(page):
    """The page part of issue 26's point 8: each problem's cell (scene and column) or board field gets a
    mark; scenes count the scenes, not blank rows; a row tool that moves rows takes the marks away."""
    from types import SimpleNamespace

    _, handlers = page
    rows = [["a", 1, "abc", "", "none"], ["", None, "", "", ""], ["", 500, "", "", "none"]]
    exc = StoryboardError("Scene 1: seed must be a number (got 'abc'); Scene 2: prompt is empty; and 2 more")
    exc.problems = [SimpleNamespace(scene=1, field="seed", message="seed must be a number"),
                    SimpleNamespace(scene=2, field="prompt", message="prompt is empty"),
                    SimpleNamespace(scene=2, field="duration", message="duration must be between 0.5 and 60"),
                    SimpleNamespace(scene=None, field="transition_duration", message="too long"),
                    SimpleNamespace(scene=9, field="seed", message="no such scene: no mark")]
    updates = handlers.refused({handlers.form.widgets["scenes"]: rows}, exc)
    assert updates[handlers.outputs["notice"]] == f"❌ **Please fix the storyboard:** {exc}"  # the one line
    css = updates[handlers.outputs["bad_cells"]]
    assert '#scenes [data-row="0"][data-col="2"]' in css  # scene 1's seed
    assert '#scenes [data-row="2"][data-col="0"]' in css and '#scenes [data-row="2"][data-col="1"]' in css
    assert "#field-transition_duration" in css and 'data-row="1"' not in css and 'data-row="8"' not in css
    assert handlers.refused({}, StoryboardError("plain"))[handlers.outputs["bad_cells"]] == ""  # no problems: no marks
    assert handlers.move(rows, 3, -1)[handlers.outputs["bad_cells"]] == ""


def test_a_bad_scene_below_a_blank_row_is_named_by_its_scene_and_the_row_the_table_shows():
    """Scenes are counted without blank rows and the table numbers its rows: "Scene 2" in row 3 once
    left the user looking at row 2."""
    from ui.table import new_row, rows_to_storyboard

    good, bad = ["a calm sea", 2, "", "", "none"], ["a storm", 500, "", "", "none"]
    with pytest.raises(StoryboardError) as below_blank:
        rows_to_storyboard([good, new_row(), bad])
    assert str(below_blank.value).startswith("Scene 2 (row 3): duration must be between 0.5 and 60 seconds")
    assert [(p.scene, p.field) for p in below_blank.value.problems] == [(2, "duration")]  # marks map it to row 3
    with pytest.raises(StoryboardError) as no_blank:
        rows_to_storyboard([good, bad])
    assert str(no_blank.value).startswith("Scene 2: duration")  # the numbers agree: said once


def test_the_first_screen_says_when_no_ai_picture_can_be_made_and_only_then(tmp_path, tiny_model_dir):
    """Issue 26: nothing on the first screen said that no model could run, nor what to do."""
    pool = RendererPool(app_settings(tmp_path, model=str(tmp_path / "no-such-model")))
    _, handlers = ui.layout.build_page(pool)
    line, _timer, notice = handlers.model_state(None, None, True)
    assert notice.visible is False, "not loaded yet: nothing known, nothing said"
    pool.get().model.load()
    line, _timer, notice = handlers.model_state(None, None, True)
    assert "failed" in line and notice.visible is True
    assert "No AI pictures here" in notice.value and "--model" in notice.value
    assert "OPENAI_API_KEY" in notice.value and "HF_TOKEN" in notice.value and "<summary>Why?</summary>" in notice.value
    assert handlers.model_state(None, None, False)[2].visible is False  # AI switched off on purpose
    pool = RendererPool(app_settings(tmp_path, model=str(tiny_model_dir)))
    pool.get().model.load()
    line, _timer, notice = ui.layout.build_page(pool)[1].model_state(None, None, True)
    assert "loaded" in line and notice.visible is False  # a model that loads: no notice


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@given(st.one_of(st.none(), st.text(max_size=200), JSON_VALUES.map(json.dumps),
                 st.fixed_dictionaries({"scene": JSON_VALUES, "values": JSON_VALUES}).map(json.dumps)))
@example('{"scene": Infinity, "values": {}}')
@settings(max_examples=300, deadline=None)
def test_what_the_row_dropdowns_show_is_read_back_or_ignored_never_raises(text):
    """The hidden text comes back from the browser: anything there is read as (scene, values) or as
    nothing, and what shown_values wrote reads back the same."""
    scene, values = read_shown(text)
    assert isinstance(scene, int) and isinstance(values, dict)
    assert read_shown(shown_values(3, {"motion": "pan_left"})) == (3, {"motion": "pan_left"})


@settings(max_examples=300, derandomize=True, deadline=None)
@given(text=st.text(max_size=12))
def test_any_animate_cell_is_yes_no_blank_or_one_message(text):
    try:
        sb = rows_to_storyboard([["a", 1, "", "", "none", text, ""]])
    except StoryboardError as exc:
        assert str(exc).startswith("Scene 1: animate must be true or false") and len(str(exc)) <= 300
        return
    word = text.strip().lower()
    assert sb.scenes[0].animate is (None if not word else word in {"yes", "true", "on", "1"})
