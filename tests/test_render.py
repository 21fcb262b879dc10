"""Storyboard to MP4 through the real renderer and the real ffmpeg, checked like a user would."""

import json
import threading

import numpy as np
import pytest

from media import moov_before_mdat, probe, read_frames
from pipeline import Done, Failed, KeyframeReady, Progress, Renderer, Segment, parse_storyboard


def run(renderer, storyboard, cancel=None):
    return list(renderer.render(storyboard, cancel))


@pytest.fixture
def renderer(tmp_path):
    return Renderer(tmp_path / "outputs")  # no model: placeholder frames


def test_the_reports_duration_is_rounded_to_the_millisecond(renderer):
    """Issue 26: the report said 5.916666666666667 s."""
    sb = parse_storyboard({"scenes": [{"prompt": "a", "duration": 1}, {"prompt": "b", "duration": 0.96}],
                           "quality": "draft", "transition": "cut", "use_ai": False})
    done = run(renderer, sb)[-1]
    assert done.report.frames == 47 and done.report.duration == 1.958
    assert json.loads(done.report_path.read_text())["duration"] == 1.958


def test_draft_render_is_browser_ready_h264(renderer):
    sb = parse_storyboard({"scenes": [{"prompt": "a red fox in snow", "duration": 1.3},
                                      {"prompt": "a snowy forest at night", "duration": 1.2, "motion": "zoom_in"}],
                           "quality": "draft", "transition": "crossfade", "transition_duration": 0.5})
    events = run(renderer, sb)
    done = events[-1]
    assert isinstance(done, Done), events[-1]
    info = probe(done.video_path)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 854, 480)
    assert info.frames == round(2.5 * 24) == done.report.frames
    assert abs(info.duration - 2.5) <= 1 / 24
    assert moov_before_mdat(done.video_path)
    report = json.loads(done.report_path.read_text())
    assert report["width"] == 854 and report["frames"] == 60 and report["fps"] == 24
    assert [s["source"] for s in report["scenes"]] == ["placeholder", "placeholder"]
    assert all(s["reason"] for s in report["scenes"])
    # keyframes arrive before any video, and progress ends at 100 %
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("KeyframeReady") < kinds.index("Segment")
    assert [e.fraction for e in events if isinstance(e, Progress)][-1] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("quality, size, fps", [("standard", (1280, 720), 24), ("high", (1920, 1080), 24),
                                               ("premium", (1920, 1080), 30)])
def test_each_preset_gives_its_exact_size_and_rate_not_1088(renderer, quality, size, fps):
    sb = parse_storyboard({"scenes": [{"prompt": "wide", "duration": 0.5}], "quality": quality})
    done = run(renderer, sb)[-1]
    info = probe(done.video_path)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", *size)
    assert (info.fps, info.frames, done.report.fps) == (fps, round(0.5 * fps), fps)


def test_segments_cover_every_frame_once_and_join_into_the_download(renderer):
    sb = parse_storyboard({"scenes": [{"prompt": f"scene {i}", "duration": 1.7} for i in range(3)],
                           "quality": "draft", "fps": 10, "transition": "wipe"})
    events = run(renderer, sb)
    segments = [e for e in events if isinstance(e, Segment)]
    assert [s.first_frame for s in segments] == [0, 20, 40]
    assert sum(s.frames for s in segments) == round(5.1 * 10) == probe(events[-1].video_path).frames
    assert all(s.frames == 20 for s in segments[:-1])
    # segments are removed once joined; the folder keeps the MP4, the report and the keyframes
    folder = events[-1].video_path.parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "report.json", "scene-1.png", "scene-2.png", "scene-3.png", "scene2video.mp4"]


def test_video_shows_each_scene_and_the_transition_between(renderer):
    sb = parse_storyboard({"scenes": [{"prompt": "first", "duration": 1}, {"prompt": "second", "duration": 1}],
                           "quality": "draft", "fps": 10, "transition": "fade", "transition_duration": 0.6})
    done = run(renderer, sb)[-1]
    frames = read_frames(done.video_path, 854, 480)
    assert len(frames) == 20
    brightness = [float(f.mean()) for f in frames]
    # fade through black is darkest at the boundary, and scenes differ
    assert min(brightness[7:13]) < 0.5 * brightness[0]
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 5


def test_cancel_stops_within_one_frame_and_leaves_nothing(renderer, tmp_path):
    sb = parse_storyboard({"scenes": [{"prompt": "long", "duration": 20}], "quality": "draft"})
    cancel = threading.Event()
    seen = []
    for event in renderer.render(sb, cancel):
        seen.append(event)
        if isinstance(event, Progress) and event.stage == "composing" and "frame 30 " in event.message:
            cancel.set()
    assert isinstance(seen[-1], Failed) and seen[-1].cancelled
    frames_after_cancel = [e for e in seen[seen.index(event):] if isinstance(e, Progress) and e.stage == "composing"]
    assert len(frames_after_cancel) <= 1
    assert list((tmp_path / "outputs").iterdir()) == []


def test_closing_the_generator_kills_ffmpeg_and_removes_files(renderer, tmp_path):
    import psutil

    sb = parse_storyboard({"scenes": [{"prompt": "long", "duration": 20}], "quality": "draft"})
    events = renderer.render(sb)
    for event in events:
        if isinstance(event, Progress) and "frame 60 " in event.message:  # mid-segment
            break
    children = [p for p in psutil.Process().children(recursive=True) if "ffmpeg" in p.name()]
    assert children, "ffmpeg should be running mid-render"
    events.close()
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert list((tmp_path / "outputs").iterdir()) == []


def test_keyframes_are_reported_in_scene_order(renderer):
    sb = parse_storyboard({"scenes": [{"prompt": f"p{i}", "duration": 0.5} for i in range(4)],
                           "quality": "draft", "use_ai": False})
    events = run(renderer, sb)
    ready = [e for e in events if isinstance(e, KeyframeReady)]
    assert [e.scene_index for e in ready] == [0, 1, 2, 3]
    assert all("switched off" in e.reason for e in ready)
    # In the user's words (the field's label), not the field's internal name (issue 26).
    assert all('"Use the AI model" is off' in e.reason and "use_ai" not in e.reason for e in ready)


def test_closing_right_after_done_keeps_the_video(renderer):
    sb = parse_storyboard({"scenes": [{"prompt": "keep me", "duration": 0.5}], "quality": "draft"})
    events = renderer.render(sb)
    done = next(e for e in events if isinstance(e, Done))
    events.close()
    assert done.video_path.exists() and done.report_path.exists()
