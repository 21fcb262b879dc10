"""Restyling a video, on real footage made by ffmpeg here: panning test sources cut together, with a sine.

Shots found at the cuts; the output keeps the source's length, its cuts (at the storyboard's rate,
also from a source at another rate, and rotated footage upright) and its sound; keyframes carried by
the optical flow flicker at most a quarter as much as every frame redrawn (Lai et al.'s warping error,
with the tiny random model); and every bad input is one line naming the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from media import probe, read_frames
from pipeline import Renderer, StoryboardError, parse_storyboard
from pipeline.audio.probe import ffmpeg_exe
from pipeline.cli import main as cli_main
from pipeline.contract.events import Done, Failed
from pipeline.contract.storyboard import Limits
from pipeline.restyle.coherence import ShotPlan, restyle_shot
from pipeline.restyle.shots import Shot, find_shots, storyboard_from_video
from pipeline.restyle.source import decode_frames, probe_video
from pipeline.restyle.stage import RestyleStage
from pipeline.restyle.warping_error import warping_error
from sound import probe_audio_stream
from source_clips import cut_frames, make_clip

SHOTS = (1.0, 1.5, 0.75)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("restyle") / "three shots.mp4", SHOTS)


def render(storyboard, folder: Path) -> Done:
    events = list(Renderer(folder).render(storyboard))
    assert not isinstance(events[-1], Failed), events[-1]
    return events[-1]


def cuts_in(frames: list[np.ndarray]) -> list[int]:
    """Frames that differ a lot from the one before (a pan moves a few pixels a frame; a cut changes all)."""
    jumps = [float(np.abs(b.astype(np.int16) - a).mean()) for a, b in zip(frames, frames[1:])]
    return [i + 1 for i, jump in enumerate(jumps) if jump > 40]


def test_shots_are_found_at_the_cuts_and_a_clip_without_cuts_is_one_shot(clip, tmp_path):
    assert find_shots(clip, 24) == [Shot(0, 24), Shot(24, 60), Shot(60, 78)]
    single = make_clip(tmp_path / "one.mp4", (1.5,), audio=False)
    assert find_shots(single, 12) == [Shot(0, 18)]


def test_the_restyled_video_keeps_the_sources_length_cuts_and_sound(clip, tmp_path):
    board = storyboard_from_video(clip, "ink drawing", 24, board={"quality": "draft", "use_ai": False})
    storyboard = parse_storyboard(board)
    assert [(s.source_start, s.source_end) for s in storyboard.scenes] == [(0.0, 1.0), (1.0, 2.5), (2.5, 3.25)]
    done = render(storyboard, tmp_path)
    info = probe(done.video_path)
    assert (info.frames, info.fps) == (78, 24)
    frames = read_frames(done.video_path, info.width, info.height)
    assert cuts_in(frames) == cut_frames(SHOTS, 24) == [24, 60]
    audio = probe_audio_stream(done.video_path)
    assert audio is not None and abs(audio.duration - 3.25) < 0.05
    assert [scene.source for scene in done.report.scenes] == ["placeholder"] * 3  # source frames, said so
    assert not list(done.video_path.parent.glob("restyle-*/frames.rgb"))  # the footage went with the render


def test_another_source_rate_is_resampled_and_the_cut_stays_on_its_frame(tmp_path):
    source = make_clip(tmp_path / "thirty.mp4", (1.0, 1.0), fps=30, audio=False)
    storyboard = parse_storyboard(storyboard_from_video(source, "x", 24, board={"quality": "draft",
                                                                                   "use_ai": False}))
    done = render(storyboard, tmp_path / "out")
    info = probe(done.video_path)
    assert info.frames == 48 and cuts_in(read_frames(done.video_path, info.width, info.height)) == [24]


def test_variable_frame_rate_footage_keeps_its_length_and_its_cut(tmp_path):
    steady = make_clip(tmp_path / "steady.mp4", (1.0, 1.0), audio=False)
    uneven = tmp_path / "phone.mp4"  # every other frame 0.4 frame late: timestamps 0, 58, 83, 142 ms ...
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(steady), "-vf", "setpts='(N+0.4*mod(N\\,2))/24/TB'",
                    "-fps_mode", "passthrough", "-enc_time_base:v", "1:1000", "-video_track_timescale", "1000",
                    "-c:v", "libx264", "-preset", "ultrafast", str(uneven)], check=True)
    frames = list(decode_frames(uneven, 24, 128, 72))
    assert len(frames) == 48 and cuts_in(frames) == [24]
    assert find_shots(uneven, 24) == [Shot(0, 24), Shot(24, 48)]


def test_rotation_metadata_is_honoured(tmp_path):
    upright = make_clip(tmp_path / "upright.mp4", (0.5,), audio=False)
    turned = tmp_path / "turned.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-display_rotation", "90", "-i", str(upright), "-c", "copy",
                    str(turned)], check=True)
    info = probe_video(turned)
    assert (info.width, info.height, info.rotation) == (72, 128, 90)
    first = next(decode_frames(upright, 24, 128, 72))
    assert np.array_equal(next(decode_frames(turned, 24, 72, 128)), np.rot90(first))


def test_restyled_and_generated_scenes_mix_and_an_exported_storyboard_renders_the_same(clip, tmp_path):
    data = {"scenes": [{"prompt": "a title card", "duration": 1.0},
                       {"prompt": "ink", "source_start": 1.0, "source_end": 2.5}],
            "quality": "draft", "fps": 24, "transition": "cut", "use_ai": False, "source_video": str(clip)}
    storyboard = parse_storyboard(data)
    assert storyboard.scenes[1].duration == 1.5 and parse_storyboard(storyboard.to_json()) == storyboard
    done = render(storyboard, tmp_path)
    info = probe(done.video_path)
    frames = read_frames(done.video_path, info.width, info.height)
    assert info.frames == 60 and cuts_in(frames) == [24]
    source = list(decode_frames(clip, 24, info.width, info.height, start=1.0, count=36))
    assert np.abs(frames[30].astype(np.int16) - source[6]).mean() < 8  # the span's frames, in order


def test_cli_restyle_writes_the_video_and_a_storyboard_that_renders_again(clip, tmp_path):
    out, board = tmp_path / "out.mp4", tmp_path / "boards" / "made.json"
    board.parent.mkdir()
    clip = Path(shutil.copy(clip, tmp_path / "three shots.mp4"))
    assert cli_main(["restyle", str(clip), "-o", str(out), "--prompt", "ink", "--quality", "draft", "--fps", "12",
                     "--no-ai", "--quiet", "--storyboard-out", str(board)]) == 0
    written = json.loads(board.read_text())
    assert written["source_video"] == "../three shots.mp4" and len(written["scenes"]) == 3
    again = tmp_path / "again.mp4"
    assert cli_main(["render", str(board), "-o", str(again), "--no-ai", "--quiet"]) == 0
    assert probe(again).frames == probe(out).frames == 39


def test_flow_flickers_at_most_a_quarter_as_much_as_every_frame_redrawn(tiny_model_dir, tmp_path):
    from pipeline.images.diffusers_backend import ModelManager

    source = make_clip(tmp_path / "pan.mp4", (1.0,), fps=16, audio=False, sources=("mandelbrot",))
    manager = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    manager.load()
    storyboard = parse_storyboard({"scenes": [{"prompt": "ink", "source_start": 0, "source_end": 1, "seed": 3}],
                                   "source_video": str(source), "quality": "draft", "fps": 16, "steps": 2,
                                   "look_strength": 0.5})
    stage = RestyleStage(manager)
    frames = list(decode_frames(source, 16, 128, 72, count=16))
    errors = {}
    for coherence in ("none", "flow"):
        redraw, shot = stage.redrawer(storyboard, 0)
        out = list(restyle_shot(iter(frames), ShotPlan(16, coherence, 8), redraw))
        assert len(out) == 16 and not shot.reason
        errors[coherence] = warping_error(out, frames)
    assert errors["flow"] <= errors["none"] / 4, errors


@pytest.mark.parametrize("case, message", [
    ("text", "is not a video file ffmpeg can read"),
    ("empty", "is not a video file ffmpeg can read"),
    ("audio only", "has no video stream"),
    ("truncated", "cannot be decoded"),
    ("too long", "the longest video accepted lasts 1 seconds"),
    ("over 4K", "the largest video accepted is 4K"),
    ("odd codec", "uses a codec (none) ffmpeg cannot decode"),
])
def test_a_bad_source_video_is_one_line_naming_the_file(case, message, clip, tmp_path):
    folder = tmp_path / "private server folder"
    folder.mkdir()
    path = folder / "clip.mp4"
    if case == "text":
        path.write_text("not a video at all\n" * 20)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "audio only":
        subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", str(path)], check=True)
    elif case == "truncated":
        whole = make_clip(tmp_path / "whole.mp4", (2.0,), audio=False, extra=("-movflags", "+faststart"))
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    elif case == "too long":
        path = clip
    elif case == "over 4K":
        make_clip(path, (0.2,), width=4352, height=16, audio=False)
    else:
        mjpeg = tmp_path / "mj.avi"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(clip), "-t", "0.5", "-c:v", "mjpeg", "-an",
                        str(mjpeg)], check=True)
        path = folder / "clip.avi"
        path.write_bytes(mjpeg.read_bytes().replace(b"MJPG", b"ZZZZ"))  # a codec no decoder knows
    before = sorted(tmp_path.rglob("*"))
    data = {"scenes": [{"prompt": "x", "source_start": 0, "source_end": 1}], "source_video": str(path)}
    with pytest.raises(StoryboardError) as error:
        parse_storyboard(data, Limits(max_source_seconds=1.0 if case == "too long" else 60.0))
    text = str(error.value)
    assert message in text and path.name in text and "private" not in text and "\n" not in text
    assert len(text) <= 300 and sorted(tmp_path.rglob("*")) == before


def test_spans_are_checked_at_the_door(clip):
    base = {"source_video": str(clip), "quality": "draft"}
    with pytest.raises(StoryboardError, match="Scene 1: source_start and source_end go together"):
        parse_storyboard({**base, "scenes": [{"prompt": "x", "source_start": 1}]})
    with pytest.raises(StoryboardError, match="Scene 1: source_end 9 s is past the end"):
        parse_storyboard({**base, "scenes": [{"prompt": "x", "source_start": 8, "source_end": 9}]})
    with pytest.raises(StoryboardError, match="need a source_video"):
        parse_storyboard({"scenes": [{"prompt": "x", "source_start": 0, "source_end": 1}]})


def test_the_pages_upload_turns_the_video_into_one_scene_per_shot_and_the_api_takes_it_as_a_file(clip, tmp_path):
    import gradio as gr

    import ui.layout
    from pipeline.service import RendererPool
    from ui.table import COLUMNS
    from server import app_settings

    _, handlers = ui.layout.build_page(RendererPool(app_settings(tmp_path)))
    widgets, notice = handlers.form.widgets, handlers.outputs["notice"]
    page = {widget: None for widget in widgets.values()}
    page.update({widgets["scenes"]: [["ink drawing", 3] + [""] * (len(COLUMNS) - 2)], widgets["quality"]: "draft",
                 widgets["fps"]: "12", widgets["source_video"]: str(clip)})
    shown = handlers.import_video(page)
    assert "3 shot(s) found" in shown[notice]
    rows = shown[widgets["scenes"]]
    start, end = COLUMNS.index("source_start"), COLUMNS.index("source_end")
    assert [(row[0], row[start], row[end]) for row in rows] == [("ink drawing", 0.0, 1.0), ("ink drawing", 1.0, 2.5),
                                                           ("ink drawing", 2.5, 3.25)]
    storyboard = handlers.storyboard({**page, **shown})
    assert storyboard.source_video == str(clip) and [s.duration for s in storyboard.scenes] == [1.0, 1.5, 0.75]
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello")
    refused = handlers.import_video({**page, widgets["source_video"]: str(bad)})
    assert "'notes.mp4' is not a video file" in refused[notice] and list(refused) == [notice]
    request = json.dumps({"scenes": [{"prompt": "x", "source_start": 0, "source_end": 1}], "use_ai": False,
                          "quality": "draft", "source_video": str(clip)})
    with pytest.raises(gr.Error, match="source_video must be sent as a file"):
        list(handlers.render_api(request))
    request = json.dumps({"scenes": [{"prompt": "x", "source_start": 0, "source_end": 1}], "use_ai": False,
                          "quality": "draft", "fps": 12})
    updates = list(handlers.render_api(request, source_video=str(clip)))
    video, report = updates[-1]
    assert report["frames"] == 12 and report["audio"]


def test_a_render_with_the_model_redraws_keyframes_guided_by_edges_streams_previews_and_stops_at_once(
        tiny_model_dir, tmp_path):
    import time

    from pipeline.contract.events import KeyframeReady, Preview, Progress
    from pipeline.images.diffusers_backend import ModelManager
    from server import assert_stopped, counting_unet_calls, render_folders
    from tiny_model import build_tiny_controlnet

    source = make_clip(tmp_path / "pan.mp4", (1.0, 1.0), fps=8)
    controlnet = str(build_tiny_controlnet(tmp_path / "controlnet"))
    manager = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    storyboard = parse_storyboard({"scenes": [{"prompt": "ink", "source_start": 0, "source_end": 1, "seed": 1},
                                              {"prompt": "chalk", "source_start": 1, "source_end": 2, "seed": 2}],
                                   "source_video": str(source), "quality": "draft", "fps": 8, "steps": 2,
                                   "transition": "cut", "keyframe_interval": 4})
    renderer = Renderer(tmp_path / "out", model=manager, controlnet=controlnet)
    events = list(renderer.render(storyboard))
    done = events[-1]
    assert isinstance(done, Done), done
    assert [(s.source, s.made_from) for s in done.report.scenes] == [
        ("ai", ("text", "source video", "control image"))] * 2
    keyframes = [e for e in events if isinstance(e, Preview) and "keyframe" in e.what]
    assert len(keyframes) == 6 and keyframes[0].image.size == (640, 180)  # source | redrawn, side by side
    messages = [e.message for e in events if isinstance(e, Progress) and e.stage == "restyling"]
    assert any("3 of 3 keyframes redrawn · frame 8 of 8" in m for m in messages)
    assert probe(done.video_path).frames == 16 and sum(isinstance(e, KeyframeReady) for e in events) == 2

    with counting_unet_calls(manager, step_s=0.05) as calls:
        cancel = threading.Event()
        before = render_folders(tmp_path / "out")
        events = renderer.render(storyboard.with_changes(coherence="none"), cancel)
        for event in events:
            if isinstance(event, Preview):  # the first redrawn frame: Stop
                cancel.set()
                stopped_at = time.monotonic()
                break
        assert isinstance(list(events)[-1], Failed)  # "Render stopped", after the model's current step
        assert_stopped(tmp_path / "out", before, stopped_at, calls)


def test_the_bar_moves_on_and_says_the_time_left_while_shots_are_redrawn_beside_a_generated_scene(
        tiny_model_dir, clip, tmp_path):
    """A board of a generated scene and a restyled shot: the bar once stood still through the whole
    restyle (its fraction was taken for the keyframes'), with no time left shown."""
    from pipeline.contract.events import Progress
    from pipeline.images.diffusers_backend import ModelManager

    manager = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    storyboard = parse_storyboard({"scenes": [{"prompt": "a title card", "duration": 1, "seed": 3},
                                              {"prompt": "ink", "source_start": 0, "source_end": 1, "seed": 1}],
                                   "source_video": str(clip), "quality": "draft", "fps": 8, "steps": 1,
                                   "transition": "cut", "keyframe_interval": 4})
    events = list(Renderer(tmp_path / "out", model=manager).render(storyboard))
    assert isinstance(events[-1], Done), events[-1]
    bar = [e for e in events if isinstance(e, Progress)]
    fractions = [e.fraction for e in bar]
    assert fractions == sorted(fractions)  # never back
    # Composing waits for the shot after scene 1's frames: the message says what is being redrawn.
    restyling = [e for e in bar if "keyframes redrawn" in e.message]
    assert len(restyling) >= 4, [e.message for e in bar]
    moved = [b.fraction - a.fraction for a, b in zip(restyling, restyling[1:])]
    assert all(step > 0.01 for step in moved), moved
    assert restyling[-1].fraction < 0.9  # the frames are still to be composed and encoded
    assert all(e.eta_seconds is not None for e in restyling), [e.eta_seconds for e in restyling]


def test_a_shot_drawn_once_comes_from_the_cache_and_editing_one_scene_redraws_only_it(tiny_model_dir, clip,
                                                                                      tmp_path):
    from pipeline.images.clip_cache import ClipCache
    from pipeline.images.diffusers_backend import ModelManager
    from server import counting_unet_calls

    manager = ModelManager(str(tiny_model_dir), device="cpu", local_files_only=True)
    renderer = Renderer(tmp_path / "out", model=manager, clip_cache=ClipCache(tmp_path / "clips"))
    data = {"scenes": [{"prompt": "ink", "source_start": 0, "source_end": 1, "seed": 1},
                       {"prompt": "chalk", "source_start": 1, "source_end": 2, "seed": 2}],
            "source_video": str(clip), "quality": "draft", "fps": 8, "steps": 1, "transition": "cut",
            "keyframe_interval": 4}

    def rendered(board) -> tuple[Done, int]:
        with counting_unet_calls(manager) as calls:
            events = list(renderer.render(parse_storyboard(board)))
        assert isinstance(events[-1], Done), events[-1]
        return events[-1], calls[0]

    first, drawn = rendered(data)
    again, redrawn = rendered(data)
    assert drawn > 0 and redrawn == 0
    assert [s.source for s in first.report.scenes] == ["ai", "ai"]
    assert [s.source for s in again.report.scenes] == ["cache", "cache"]
    info = probe(again.video_path)
    assert np.array_equal(read_frames(first.video_path, info.width, info.height),
                          read_frames(again.video_path, info.width, info.height))
    edited = {**data, "scenes": [data["scenes"][0], {**data["scenes"][1], "prompt": "charcoal"}]}
    third, edit_drawn = rendered(edited)
    assert [s.source for s in third.report.scenes] == ["cache", "ai"]
    assert 0 < edit_drawn < drawn
    _, other_look = rendered({**data, "look_strength": 0.3})
    assert other_look == drawn  # the look strength decides every redrawn frame


def test_a_model_that_cannot_draw_leaves_the_source_frames_and_says_why(clip, tmp_path):
    from pipeline.images.diffusers_backend import ModelManager

    broken = ModelManager(str(tmp_path / "no model here"), device="cpu", local_files_only=True)
    storyboard = parse_storyboard({"scenes": [{"prompt": "ink", "source_start": 1.0, "source_end": 2.0}],
                                   "source_video": str(clip), "quality": "draft", "fps": 12})
    events = list(Renderer(tmp_path / "out", model=broken).render(storyboard))
    done = events[-1]
    assert isinstance(done, Done), done
    scene = done.report.scenes[0]
    assert scene.source == "placeholder" and "frame 1 could not be redrawn" in scene.reason
    info = probe(done.video_path)
    frames = read_frames(done.video_path, info.width, info.height)
    source = list(decode_frames(clip, 12, info.width, info.height, start=1.0, count=12))
    assert info.frames == 12 and max(np.abs(a.astype(np.int16) - b).mean() for a, b in zip(frames, source)) < 8


def test_the_source_is_read_once_per_version_of_the_file(tmp_path, monkeypatch):
    """The cache key's digest of the source video: the bytes' sha256, read again only when the file changes."""
    import hashlib
    import os

    from pipeline.restyle import shot_cache

    source = tmp_path / "source.mp4"
    source.write_bytes(b"first version " * 1000)
    reads = []
    real_open = open
    monkeypatch.setattr(shot_cache, "open", lambda *a, **k: reads.append(a[0]) or real_open(*a, **k), raising=False)
    first = shot_cache.source_digest(source)
    assert first == hashlib.sha256(source.read_bytes()).hexdigest()
    assert shot_cache.source_digest(str(source)) == first and len(reads) == 1  # the same file: not read again
    source.write_bytes(b"other version " * 1000)  # the same size, new bytes
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a coarse clock still moves on
    assert shot_cache.source_digest(source) == hashlib.sha256(source.read_bytes()).hexdigest() != first
    assert len(reads) == 2
