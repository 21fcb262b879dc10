"""Issue 16, faults: each is survived, followed by a render that works, and leaves no file, folder or process.

ffmpeg killed, a full disk under the output and under the keyframe cache (a real tmpfs), kill -9 of a
rendering process and a restart, a model that raises or gives NaN for one scene inside a batch.
Cancelling ``/render`` at any moment is in test_abuse_and_cancel.py (it needs the server).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from faults import ffmpeg_processes_under, fill_disk, poisoned_unet, small_disk
from media import probe
from pipeline import Done, Failed, KeyframeReady, Renderer, Segment, parse_storyboard
from pipeline.images.cache import KeyframeCache
from pipeline.images.diffusers_backend import ModelManager
from pipeline.images.generation import REASON_BLANK, ImageRequest
from pipeline.outputs import OWNER_FILE, mark_unfinished, remove_unfinished_outputs
from server import app_settings, ffmpeg_children, render_folders, wait_until

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"scenes": [{"prompt": "after the fault", "duration": 1}], "quality": "draft", "fps": 12, "use_ai": False}


@pytest.fixture(scope="module")
def manager(tiny_model_dir: Path) -> ModelManager:
    loaded = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True, batch_size=4)
    assert loaded.load(), loaded.describe()
    return loaded


def request(index: int, prompt: str) -> ImageRequest:
    return ImageRequest(index, prompt, "", 1000 + index, 2, 0.0, 64, 64)


def assert_clean(output_root: Path, before: set[Path] = frozenset()) -> None:
    """No render folder but finished ones, no ffmpeg child, no partial file."""
    wait_until(lambda: not ffmpeg_children(), 10)
    for folder in render_folders(output_root) - set(before):
        names = {path.name for path in folder.iterdir()}
        assert {"scene2video.mp4", "report.json"} <= names, names  # a finished render, with its images
        assert all(n.endswith(".png") for n in names - {"scene2video.mp4", "report.json"}), names


def render_small(renderer: Renderer) -> Done:
    done = list(renderer.render(parse_storyboard(SMALL)))[-1]
    assert isinstance(done, Done), done
    assert probe(done.video_path).frames == 12 and json.loads(done.report_path.read_text())["frames"] == 12
    return done


# --------------------------------------------------------------------------- a model failing inside a batch


@pytest.mark.parametrize("how, reason", [("raise", "generation failed: ValueError: poisoned prompt in a batch of 1"),
                                         ("nan", REASON_BLANK)])
def test_one_bad_scene_in_a_batch_costs_only_its_own_image(manager, how, reason):
    prompts = ["a calm lake", "poisoned scene", "a red kite", "an old tree"]
    requests = [request(i, p) for i, p in enumerate(prompts)]
    reference = [manager.generate([r])[0] for r in requests]
    with poisoned_unet(manager, "poisoned scene", how):
        results = manager.generate(requests)  # one batch of 4 (batch_size=4)
    assert results[1].image is None and results[1].reason == reason
    for index in (0, 2, 3):
        assert results[index].image is not None, results[index].reason
        assert np.array_equal(np.asarray(results[index].image), np.asarray(reference[index].image))


def test_a_render_with_a_bad_scene_in_a_batch_keeps_each_scene_s_own_reason(tmp_path, manager):
    renderer = Renderer(tmp_path / "out", model=manager, batch_size=4)
    scenes = [{"prompt": p, "duration": 0.5, "seed": i} for i, p in
              enumerate(["first alone", "second", "poisoned scene", "fourth", "fifth"])]
    board = parse_storyboard({"scenes": scenes, "quality": "draft", "fps": 12, "steps": 2, "guidance_scale": 0})
    with poisoned_unet(manager, "poisoned scene", "raise"):
        done = list(renderer.render(board))[-1]
    assert isinstance(done, Done), done
    sources = [(s.source, s.reason) for s in done.report.scenes]
    assert sources[2] == ("placeholder", "generation failed: ValueError: poisoned prompt in a batch of 1")
    assert [s for i, s in enumerate(sources) if i != 2] == [("ai", "")] * 4, sources
    assert probe(done.video_path).frames == 30
    render_small(renderer)
    assert_clean(tmp_path / "out")


# --------------------------------------------------------------------------- full disks


def test_a_full_disk_under_the_cache_skips_the_cache_and_the_render_goes_on(tmp_path, manager, caplog):
    with small_disk(tmp_path / "cache", "256k") as cache_dir:
        (cache_dir / "ab").mkdir()  # an entry folder already there, as in a used cache
        filler = fill_disk(cache_dir)
        renderer = Renderer(tmp_path / "out", model=manager, cache=KeyframeCache(cache_dir), batch_size=4)
        board = parse_storyboard({"scenes": [{"prompt": f"cached {i}", "duration": 0.5} for i in range(3)],
                                  "quality": "draft", "fps": 12, "steps": 2})
        with caplog.at_level(logging.WARNING):
            done = list(renderer.render(board))[-1]
        assert isinstance(done, Done), done
        assert [s.source for s in done.report.scenes] == ["ai"] * 3
        assert any("Keyframe cache skipped" in r.getMessage() and "No space left" in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records]
        leftovers = [p for p in cache_dir.rglob("*") if p != filler and p.is_file()]
        assert leftovers == [], leftovers  # no half-written entry or temporary file
        filler.unlink()
        again = list(renderer.render(board))[-1]  # the disk has room again: the cache fills
        assert isinstance(again, Done) and len(list(cache_dir.glob("*/*.png"))) == 3
        assert_clean(tmp_path / "out")


def test_a_full_disk_while_encoding_gives_one_line_without_a_server_path(tmp_path):
    with small_disk(tmp_path / "out", "8m") as output_root:
        renderer = Renderer(output_root)
        board = parse_storyboard({"scenes": [{"prompt": f"long scene {i}", "duration": 6, "motion": "zoom_in"}
                                             for i in range(3)], "quality": "draft", "transition": "wipe"})
        events = []
        filler = None
        for event in renderer.render(board):
            events.append(event)
            if isinstance(event, Segment) and filler is None:
                filler = fill_disk(output_root)
        failed = events[-1]
        assert isinstance(failed, Failed) and not failed.cancelled, failed
        assert failed.message == "The render failed: the server ran out of disk space while writing the video."
        assert str(output_root) not in failed.message and "\n" not in failed.message
        assert not render_folders(output_root), "the failed render's folder was left"
        assert not ffmpeg_children()
        filler.unlink()
        render_small(renderer)
        assert_clean(output_root)


def test_ffmpeg_killed_mid_render_gives_one_line_and_the_next_render_works(tmp_path):
    renderer = Renderer(tmp_path / "out")
    board = parse_storyboard({"scenes": [{"prompt": f"scene {i}", "duration": 5, "motion": "pan_left"}
                                         for i in range(3)], "quality": "draft"})
    events = []
    for event in renderer.render(board):
        events.append(event)
        if isinstance(event, Segment) and len([e for e in events if isinstance(e, Segment)]) == 1:
            for child in ffmpeg_children():
                child.send_signal(signal.SIGKILL)
    failed = events[-1]
    assert isinstance(failed, Failed), failed
    assert failed.message == "The render failed: the video encoder (ffmpeg) was stopped by signal 9 before it finished."
    assert not render_folders(tmp_path / "out")
    render_small(renderer)
    assert_clean(tmp_path / "out")


# --------------------------------------------------------------------------- kill -9 and restart

_RENDER_FOREVER = """
import sys
from pathlib import Path
from pipeline import Renderer, parse_storyboard
board = parse_storyboard({"scenes": [{"prompt": f"killed {i}", "duration": 20, "motion": "zoom_in"} for i in range(3)],
                          "quality": "draft", "use_ai": False})
for event in Renderer(Path(sys.argv[1])).render(board):
    print(type(event).__name__, flush=True)
"""


def test_kill_9_during_a_render_then_a_restart_removes_the_unfinished_folder(tmp_path):
    from pipeline.service import RendererPool

    settings = app_settings(tmp_path)
    output = settings.output_dir
    proc = subprocess.Popen([sys.executable, "-c", _RENDER_FOREVER, str(output)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        for line in proc.stdout:
            if line.strip() == "Segment":  # keyframes written, ffmpeg encoding
                break
        folders = render_folders(output)
        assert len(folders) == 1 and (next(iter(folders)) / OWNER_FILE).is_file()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert render_folders(output) == folders  # the dead process left its folder behind
    # Its ffmpeg sees the end of its input and ends on its own.
    wait_until(lambda: not ffmpeg_processes_under(output), 30)
    live = output / "live-render"
    live.mkdir()
    mark_unfinished(live)  # a render of a process still running (this one) must stay
    pool = RendererPool(settings)  # the restart
    assert render_folders(output) == {live}
    assert remove_unfinished_outputs(output) == 0
    (live / OWNER_FILE).unlink()
    assert pool.settings.output_dir == output
    render_small(Renderer(output))
    assert_clean(output, before={live})


def test_the_cli_on_a_full_output_disk_says_so_in_one_line(tmp_path, capsys):
    from pipeline.cli import main as cli_main

    board = tmp_path / "board.json"
    board.write_text(json.dumps(SMALL))
    with small_disk(tmp_path / "full", "256k") as full:
        filler = fill_disk(full)
        code = cli_main(["render", str(board), "-o", str(full / "out.mp4"), "--quiet",
                         "--cache-dir", str(tmp_path / "cache")])
        err = capsys.readouterr().err
        assert code == 1 and err == "error: could not write the result: No space left on device.\n", err
        assert not (full / "out.mp4").exists()
        filler.unlink()
        assert cli_main(["render", str(board), "-o", str(full / "out.mp4"), "--quiet",
                         "--cache-dir", str(tmp_path / "cache")]) == 0
        assert probe(full / "out.mp4").frames == 12
    assert not ffmpeg_children()
