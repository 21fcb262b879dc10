"""The page without a browser: table <-> storyboard, row editing, and what happens without system ffmpeg."""

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
