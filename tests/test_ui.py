"""The page without a browser: table <-> storyboard, row editing, no system ffmpeg, and what each room imports."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ui.layout
from pipeline import StoryboardError
from pipeline.service import RendererPool
from server import app_settings
from ui.table import Controls, add_row, delete_row, move_row, rows_to_storyboard, storyboard_to_rows

ROWS = [["a fox", 2, "", "", "zoom_in"], ["a bear", "1.5", 7, "blurry", None], ["", None, "", "", ""]]


def test_table_becomes_a_storyboard_and_back():
    sb = rows_to_storyboard(ROWS, Controls(quality="draft", transition="wipe", fps=0, steps=0))
    assert [(s.prompt, s.duration, s.seed, s.motion) for s in sb.scenes] == [
        ("a fox", 2.0, None, "zoom_in"), ("a bear", 1.5, 7, "none")]
    assert sb.fps is None and sb.steps is None and sb.transition == "wipe"
    assert storyboard_to_rows(sb) == [["a fox", 2.0, "", "", "zoom_in"], ["a bear", 1.5, 7, "blurry", "none"]]


def test_bad_row_names_the_row_the_user_sees():
    with pytest.raises(StoryboardError, match="Scene 2: duration must be a number"):
        rows_to_storyboard([["a", 1, "", "", ""], ["b", "soon", "", "", ""]], Controls())
    with pytest.raises(StoryboardError, match="Scene 1: duration is missing"):
        rows_to_storyboard([["a", None, "", "", ""]], Controls())
    with pytest.raises(StoryboardError, match="table is empty"):
        rows_to_storyboard([["", None, "", "", ""]], Controls())


def test_row_moves_and_deletes():
    rows = [["a"], ["b"], ["c"]]
    assert move_row(rows, 2, -1) == [["b"], ["a"], ["c"]]
    assert move_row(rows, 3, 1) == rows  # out of range: nothing changes
    assert delete_row(rows, 2) == [["a"], ["c"]]
    assert len(delete_row([["a"]], 1)) == 1  # never an empty table
    assert add_row(rows)[-1][0] == ""


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
for module in pkgutil.iter_modules({package}.__path__):
    if module.name != "__main__":  # running the CLI is not importing it
        importlib.import_module("{package}." + module.name)
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


def test_examples_load_and_survive_export_then_import(tmp_path):
    from ui.examples import example_names, load_example
    from ui.handlers import Handlers

    handlers = Handlers(RendererPool(app_settings(tmp_path)), stream=False)
    assert len(example_names()) >= 3
    for name in example_names():
        shown = handlers.load_example(name)  # table rows, then quality, transition, length, fps, use_ai, steps, cfg
        assert handlers.storyboard(*shown) == load_example(name)
        exported = Path(handlers.export(*shown).value["path"])  # what the download button offers
        assert json.loads(exported.read_text(encoding="utf-8")) == load_example(name).to_dict()
        assert handlers.import_file(str(exported)) == shown


def test_a_bad_import_says_what_is_wrong_and_changes_nothing(tmp_path):
    import gradio as gr

    from ui.handlers import Handlers

    handlers = Handlers(RendererPool(app_settings(tmp_path)), stream=False)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scenes": [{"prompt": "ok", "duration": 1}, {"prompt": "", "duration": 1}]}))
    with pytest.raises(gr.Error, match="Scene 2: prompt is empty"):
        handlers.import_file(str(bad))
    binary = tmp_path / "picture.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(gr.Error, match="not UTF-8 text"):
        handlers.import_file(str(binary))


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


def test_the_notice_says_why_a_morph_became_a_crossfade():
    from pipeline import RenderReport, SceneReport, TransitionReport
    from ui.render_view import report_notice

    transitions = (TransitionReport(0, "morph", 12, "generated", 8),
                   TransitionReport(1, "morph", 12, "crossfade", reason="scene 3 is a placeholder (out of GPU memory)"))
    scenes = (SceneReport(0, "ai"), SceneReport(1, "ai"), SceneReport(2, "placeholder", "out of GPU memory"))
    notice = report_notice(RenderReport(854, 480, 24, 96, 4.0, scenes, seconds_taken=1.0, transitions=transitions))
    assert "Morph 2→3: drawn as a crossfade — scene 3 is a placeholder (out of GPU memory)." in notice
    assert "Morph 1→2" not in notice
