"""Clips through the real tiny random LTX-Video (tests/tiny_video_model.py) loaded by the app's registry,
in real renders: the clip moves in the video and starts on its keyframe, a generated transition joins
the two scenes, the clip cache serves an edited storyboard, Stop ends within a step."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from media import probe, read_frames
from pipeline import Done, Failed, Preview, Renderer, parse_storyboard
from pipeline.contract.events import ClipReady
from pipeline.contract.footage import Footage
from pipeline.images.cache import KeyframeCache
from pipeline.images.clip_cache import ClipCache
from pipeline.images.registry import get_video_model
from pipeline.video.imaging import fit_cover_array
from pipeline.video.timeline import plan_timeline
from test_clips import TexturedModel, changes, psnr

W, H = 854, 480
CLIP_SIZE = (128, 64)  # --clip-size: tiny, rounded to LTX's multiples of 32


@pytest.fixture(scope="module")
def ltx(tiny_ltx_dir):
    model = get_video_model(str(tiny_ltx_dir), device="cpu", local_files_only=True)
    assert model.load(), model.info()
    return model


def board(**changes):
    data = {"scenes": [{"prompt": "a fox runs", "duration": 0.5, "seed": 3, "motion_prompt": "it runs left"},
                       {"prompt": "a quiet lake", "duration": 0.5, "seed": 4}],
            "quality": "draft", "fps": 12, "transition": "generated", "transition_duration": 0.25,
            "animate": True}
    data.update(changes)
    return parse_storyboard(data)


def renderer(tmp_path, ltx):
    return Renderer(tmp_path / "out", model=TexturedModel(), video_model=ltx, cache=KeyframeCache(tmp_path / "kf"),
                    clip_cache=ClipCache(tmp_path / "clips"), clip_size=CLIP_SIZE)


def test_ltx_clips_move_start_on_the_keyframe_and_join_scenes(ltx, tmp_path):
    r = renderer(tmp_path, ltx)
    ends = {}
    for event in r.render(board()):
        if isinstance(event, ClipReady) and event.source != "fallback":
            footage = Footage(event.path)
            ends[event.id] = (np.array(footage.frame(0)), np.array(footage.frame(len(footage) - 1)))
        done = event
    assert isinstance(done, Done), done
    report = done.report
    assert [s.frames for s in report.scenes] == ["clip", "clip"], [s.clip_reason for s in report.scenes]
    assert report.transitions[0].made == "clip" and report.scenes[0].video_model == ltx.model_id
    # The transition starts on scene 1's clip's last frame and ends on scene 2's first (its keyframe).
    assert psnr(ends["bridge-1"][0], ends["clip-1"][1]) > 30
    assert psnr(ends["bridge-1"][1], ends["clip-2"][0]) > 30
    frames = read_frames(done.video_path, W, H)
    assert len(frames) == report.frames == probe(done.video_path).frames == 12
    span = plan_timeline(board()).transitions[0]
    assert max(changes(frames[:span.start])) > 0.5  # scene 1's own frames move: its clip
    assert max(changes(frames[span.end:])) > 0.5  # and scene 2's
    keyframe = fit_cover_array(np.asarray(ends["clip-1"][0]), W, H)
    assert psnr(frames[0], keyframe) > 28  # its first frame is the keyframe (through the clip size)


def test_at_24_fps_the_clip_is_made_at_24_and_every_video_frame_is_a_clip_frame(ltx, tmp_path):
    one = board(fps=24, transition="cut", scenes=[{"prompt": "a fox runs", "duration": 0.5, "seed": 3}])
    events = list(renderer(tmp_path, ltx).render(one))
    done, clip = events[-1], next(e for e in events if isinstance(e, ClipReady))
    assert isinstance(done, Done), done
    footage = Footage(clip.path)
    assert (footage.info.fps, len(footage)) == (24.0, 17)  # 12 video frames need 17 (8k+1), not 25 at 25 fps
    frames = read_frames(done.video_path, W, H)
    assert len(frames) == 12
    fitted = [fit_cover_array(np.array(footage.frame(j)), W, H) for j in range(len(footage))]
    for i, frame in enumerate(frames):  # the clip's own frame i, fitted: not a blend of two of them
        match = [psnr(frame, clip_frame) for clip_frame in fitted]
        assert match[i] > 25 and match[i] > max(match[:i] + match[i + 1:]) + 5, (i, match)


def test_ltx_clips_come_from_the_cache_for_an_edited_storyboard(ltx, tmp_path):
    r = renderer(tmp_path, ltx)
    first = list(r.render(board()))
    assert isinstance(first[-1], Done)
    edited = board(scenes=[{"prompt": "a fox runs", "duration": 0.5, "seed": 3, "motion_prompt": "it runs left"},
                           {"prompt": "a quiet lake at night", "duration": 0.5, "seed": 4}])
    events = list(r.render(edited))
    sources = {e.id: e.source for e in events if isinstance(e, ClipReady)}
    assert sources == {"clip-1": "cache", "bridge-1": "ai", "clip-2": "ai"}
    again = list(r.render(board()))  # the first storyboard again: every clip cached, the same video
    assert all(e.source == "cache" for e in again if isinstance(e, ClipReady))
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(first[-1].video_path, W, H),
                                                    read_frames(again[-1].video_path, W, H)))


def test_stop_during_an_ltx_clip_ends_within_a_step(ltx, tmp_path):
    cancel = threading.Event()
    stopped_at, last = None, None
    for event in renderer(tmp_path, ltx).render(board(), cancel):
        if isinstance(event, Preview) and event.what.startswith("clip") and stopped_at is None:
            cancel.set()
            stopped_at = time.monotonic()
        last = event
    assert isinstance(last, Failed) and last.cancelled
    assert time.monotonic() - stopped_at < 2.0
