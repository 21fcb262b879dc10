"""Scenes that move: clips and generated transitions through the real renderer, the real ffmpeg and the
stand-in video model (tests/stand_in_video_model.py), checked in the decoded video as a user would."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from media import probe, read_frames
from pipeline import Done, Failed, Preview, Progress, Renderer, parse_storyboard
from pipeline.contract.fallbacks import fallback_groups
from pipeline.contract.events import ClipReady
from pipeline.contract.footage import Footage, FootageWriter
from pipeline.images.cache import KeyframeCache
from pipeline.images.clip_cache import ClipCache
from pipeline.images.clip_plan import ClipTiming, plan_clips
from pipeline.images.clip_stage import NO_VIDEO_MODEL_REASON
from pipeline.images.generation import GeneratedImage
from pipeline.video.imaging import fit_cover_array
from pipeline.video.resample import Resampler, interpolate
from pipeline.video.timeline import apply_motion, plan_timeline
from stand_in_model import StandInModel
from stand_in_video_model import RULES, SlidingClipModel

W, H = 854, 480  # draft


def texture(seed: int, width: int = 160, height: int = 96) -> np.ndarray:
    """A smooth random picture (optical flow needs texture)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), (5, 5), 0)


class TexturedModel(StandInModel):
    """Keyframes: a smooth random picture per seed."""

    model_id = "textured"
    size = (160, 96)

    def generate(self, requests, on_step=None, should_stop=None):
        return [GeneratedImage(r.scene_index, Image.fromarray(texture(r.seed, r.width, r.height))) for r in requests]


def board(n=2, fps=12, transition="cut", animate=True, **changes):
    data = {"scenes": [{"prompt": f"scene {i}", "duration": 1, "seed": 10 + i} for i in range(n)],
            "quality": "draft", "fps": fps, "transition": transition, "transition_duration": 0.5,
            "animate": animate}
    data.update(changes)
    return parse_storyboard(data)


def renderer(tmp_path, video=None, cache=True, **kwargs):
    return Renderer(tmp_path / "out", model=TexturedModel(), video_model=video,
                    cache=KeyframeCache(tmp_path / "kf") if cache else None,
                    clip_cache=ClipCache(tmp_path / "clips") if cache else None, **kwargs)


def render(r, sb, cancel=None):
    events = list(r.render(sb, cancel))
    assert isinstance(events[-1], Done), events[-1]
    return events


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def changes(frames) -> list[float]:
    return [float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) for a, b in zip(frames, frames[1:])]


# --------------------------------------------------------------------------- interpolation


def test_interpolation_is_exact_at_both_ends_and_beats_a_blend_on_a_pan():
    picture = texture(1, 320, 128)
    a, b = picture[:, 0:256], picture[:, 8:264]  # the camera pans 8 px right between two frames
    middle = picture[:, 4:260]  # the truth half way
    assert np.array_equal(interpolate(a, b, 0.0), a) and np.array_equal(interpolate(a, b, 1.0), b)
    flowed = psnr(interpolate(a, b, 0.5), middle)
    blended = psnr(cv2.addWeighted(a, 0.5, b, 0.5, 0), middle)
    print(f"PSNR half way on an 8 px pan: interpolated {flowed:.1f} dB, plain blend {blended:.1f} dB")
    assert flowed > blended + 6


def test_resampler_hits_footage_frames_exactly_and_clamps(tmp_path):
    writer = FootageWriter(tmp_path / "f", fps=24)
    frames = [texture(i, 64, 32) for i in range(5)]
    writer.write_all(frames)
    footage = writer.finish()
    resampler = Resampler(footage.frame, len(footage), 24)
    assert all(np.array_equal(resampler.at(i / 24), frames[i]) for i in range(5))
    assert np.array_equal(resampler.at(-1), frames[0]) and np.array_equal(resampler.at(99), frames[4])
    # A time a hair off a footage frame (a rate that is nearly a multiple) is that frame, not a warp.
    assert np.array_equal(resampler.at((2 + 1e-4) / 24), frames[2])
    assert np.array_equal(resampler.at((3 - 1e-4) / 24), frames[3])


@pytest.mark.parametrize("footage_fps, video_fps", [(25, 24), (16, 30)])
def test_frames_made_ahead_in_worker_threads_are_the_frames_made_one_by_one(tmp_path, footage_fps, video_fps):
    """A machine with cores to spare makes a clip's frames a few ahead (pipeline.video.resample_ahead):
    the same frames, also when the timeline starts the footage again at another frame (a morph's end)."""
    from pipeline.video.footage import MovingSource

    picture = texture(3, 400, 96)
    writer = FootageWriter(tmp_path / "pan", fps=footage_fps)
    writer.write_all(np.ascontiguousarray(picture[:, 5 * i:5 * i + 160]) for i in range(40))
    footage = writer.finish()
    asks = [(frame, 0) for frame in range(30)] + [(frame, 4) for frame in range(12, 20)] + [(3, 0), (99, 0)]
    one_by_one = MovingSource(footage, 128, 72, video_fps, workers=0)
    ahead = MovingSource(footage, 128, 72, video_fps, workers=2)
    expected = [one_by_one.frame_on(frame, first) for frame, first in asks]
    made = [ahead.frame_on(frame, first) for frame, first in asks]
    assert all(np.array_equal(a, b) for a, b in zip(expected, made))
    assert all(frame.flags.writeable and frame.shape == (72, 128, 3) for frame in made)  # the caller's own
    assert sum(not np.array_equal(a, b) for a, b in zip(made[:29], made[1:30])) == 29  # it moves


# --------------------------------------------------------------------------- the plan


def test_clip_plan_frames_sizes_and_keys():
    sb = board(3, fps=24, transition="generated", scenes=[
        {"prompt": "a", "duration": 1, "animate": True, "motion_prompt": "waves roll"},
        {"prompt": "b", "duration": 2, "animate": False, "motion": "pan_left"},
        {"prompt": "c", "duration": 1}], animate=True, style="ink")
    plan = plan_timeline(sb)
    from pipeline.renderer import clip_timing

    timing = clip_timing(plan)
    clips = plan_clips(sb, RULES, timing)
    assert [r.id for r in clips.requests] == ["clip-1", "bridge-1", "bridge-2", "clip-3"]
    first = clips.by_id()["clip-1"]
    assert first.prompt == "a, waves roll, ink" and first.depends_on == ("scene-1",)
    assert (first.num_frames - 1) % 8 == 0 and (first.num_frames - 1) / 24 >= timing.scene_seconds[0]
    assert (first.width, first.height) == RULES.size_for(W, H) and first.width % 32 == 0
    assert clips.by_id()["bridge-1"].depends_on == ("clip-1", "scene-2")
    assert clips.by_id()["bridge-2"].depends_on == ("scene-2", "scene-3")
    assert plan_clips(sb, RULES, timing, size=(130, 100)).requests[0].width == 128  # --clip-size, rounded
    keys = clips.cache_keys("m", {"scene-1": "k1", "scene-2": "k2", "scene-3": "k3"})
    again = clips.cache_keys("m", {"scene-1": "k1", "scene-2": "k2", "scene-3": "changed"})
    assert keys["clip-1"] == again["clip-1"] and keys["bridge-1"] == again["bridge-1"]
    assert keys["clip-3"] != again["clip-3"] and keys["bridge-2"] != again["bridge-2"]


# --------------------------------------------------------------------------- in the video


def test_a_clip_moves_a_still_does_not_and_starts_on_its_keyframe(tmp_path):
    sb = board(2, scenes=[{"prompt": "moving", "duration": 1, "seed": 3, "animate": True},
                          {"prompt": "still", "duration": 1, "seed": 4, "animate": False}])
    events = render(renderer(tmp_path, SlidingClipModel()), sb)
    done = events[-1]
    frames = read_frames(done.video_path, W, H)
    assert len(frames) == 24 == probe(done.video_path).frames
    moving, still = frames[:12], frames[12:]
    assert min(changes(moving)) > 3  # every frame of the clip differs from the one before
    assert max(changes(still)) < 1  # motion none: the same picture
    keyframe = fit_cover_array(texture(3), W, H)
    assert psnr(frames[0], keyframe) > 28  # the clip's first frame is the keyframe
    assert psnr(frames[6], keyframe) < psnr(frames[0], keyframe) - 5
    scenes = done.report.scenes
    assert [(s.frames, s.video_model) for s in scenes] == [("clip", "stand-in-video"), ("still", "")]
    ready = [e for e in events if isinstance(e, ClipReady)]
    assert [(e.id, e.source) for e in ready] == [("clip-1", "ai")]
    assert ready[0].frames == RULES.frames_for(1.0)


@pytest.mark.parametrize("fps", [24, 30])
def test_exact_frame_counts_with_clips_and_generated_transitions(tmp_path, fps):
    sb = board(2, fps=fps, transition="generated", scenes=[{"prompt": "a", "duration": 0.7, "seed": 1},
                                                           {"prompt": "b", "duration": 0.9, "seed": 2}])
    done = render(renderer(tmp_path, SlidingClipModel(), cache=False), sb)[-1]
    assert done.report.frames == round(1.6 * fps) == probe(done.video_path).frames
    assert [t.made for t in done.report.transitions] == ["clip"]


def test_generated_transition_joins_the_last_frame_to_the_next_first(tmp_path):
    sb = board(2, transition="generated", animate=False,
               scenes=[{"prompt": "a", "duration": 1, "seed": 1, "motion": "pan_right"},
                       {"prompt": "b", "duration": 1, "seed": 2, "animate": True}])
    r = renderer(tmp_path, SlidingClipModel())
    bridge_ends = {}
    for event in r.render(sb):  # the footage exists while the render runs
        if isinstance(event, ClipReady) and event.kind == "bridge":
            footage = Footage(event.path)
            bridge_ends = {"first": np.array(footage.frame(0)), "last": np.array(footage.frame(len(footage) - 1)),
                           "size": (footage.info.width, footage.info.height)}
        if isinstance(event, Done):
            done = event
    size = bridge_ends["size"]
    keyframe_a = np.asarray(Image.fromarray(texture(1)).resize(size))
    last_of_a = apply_motion(np.asarray(Image.fromarray(texture(1)).resize(size)), "pan_right", 1.0)
    assert psnr(bridge_ends["first"], last_of_a) > 30 > psnr(bridge_ends["first"], keyframe_a)
    assert psnr(bridge_ends["last"], np.asarray(Image.fromarray(texture(2)).resize(size))) > 30
    # In the video: the transition's frames walk from scene 1's last frame to scene 2's first.
    plan = plan_timeline(sb)
    span = plan.transitions[0]
    frames = read_frames(done.video_path, W, H)
    before, after = frames[span.start - 1], frames[span.end]
    assert psnr(frames[span.start], before) > psnr(frames[span.start], after) + 3
    assert psnr(frames[span.end - 1], after) > psnr(frames[span.end - 1], before) + 3
    distances = [psnr(frames[j], before) for j in range(span.start, span.end)]
    assert distances == sorted(distances, reverse=True)  # ever further from scene 1, closer to scene 2
    assert [(t.made, t.model) for t in done.report.transitions] == [("clip", "stand-in-video")]


def test_clips_are_reproducible_and_cached_per_scene(tmp_path):
    sb = board(3, transition="generated")
    first_model = SlidingClipModel()
    r = renderer(tmp_path, first_model)
    one = render(r, sb)
    assert [(e.id, e.source) for e in one if isinstance(e, ClipReady)] == [
        ("clip-1", "ai"), ("bridge-1", "ai"), ("clip-2", "ai"), ("bridge-2", "ai"), ("clip-3", "ai")]
    again = render(renderer(tmp_path / "fresh", SlidingClipModel()), sb)  # no cache: made again, the same
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(one[-1].video_path, W, H),
                                                    read_frames(again[-1].video_path, W, H)))
    edited = board(3, transition="generated", scenes=[{"prompt": "scene 0", "duration": 1, "seed": 10},
                                                      {"prompt": "scene 1", "duration": 1, "seed": 11},
                                                      {"prompt": "scene 3, edited", "duration": 1, "seed": 12}])
    calls = len(first_model.calls)
    events = render(r, edited)
    sources = {e.id: e.source for e in events if isinstance(e, ClipReady)}
    assert sources == {"clip-1": "cache", "bridge-1": "cache", "clip-2": "cache", "bridge-2": "ai", "clip-3": "ai"}
    assert [c.id for c in first_model.calls[calls:]] == ["bridge-2", "clip-3"]
    assert [t.cached for t in events[-1].report.transitions] == [1, 0]


def test_clip_steps_are_previewed_and_counted(tmp_path):
    events = render(renderer(tmp_path, SlidingClipModel(), cache=False), board(1))
    previews = [e for e in events if isinstance(e, Preview) and e.what.startswith("clip")]
    assert [p.step for p in previews] == [1, 2, 3] and previews[0].what == "clip of scene 1 of 1"
    messages = [e.message for e in events if isinstance(e, Progress)]
    assert any("clip of scene 1 of 1 · step 2 of 3" in m for m in messages)
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions == sorted(fractions)


def test_stop_during_a_clip_ends_within_one_step(tmp_path):
    model = SlidingClipModel(step_s=0.3)
    sb = board(2, scenes=[{"prompt": "a", "duration": 1, "seed": 1}, {"prompt": "b", "duration": 1, "seed": 2}])
    r = renderer(tmp_path, model, cache=False)
    cancel = threading.Event()
    stopped_at = None
    last = None
    for event in r.render(sb, cancel):
        if isinstance(event, Preview) and event.what.startswith("clip") and stopped_at is None:
            cancel.set()
            stopped_at = time.monotonic()
        last = event
    assert isinstance(last, Failed) and last.cancelled
    assert time.monotonic() - stopped_at < 0.3 + 0.5  # the step under way, and no further one
    assert len(model.calls) == 1
    assert not list((tmp_path / "out").iterdir())  # nothing left behind


@pytest.mark.parametrize("video, reason", [
    (None, NO_VIDEO_MODEL_REASON),
    (SlidingClipModel(loads=False), "could not be loaded: out of memory (stand-in)"),
    (SlidingClipModel(fail="out of GPU memory"), "out of GPU memory"),
    (SlidingClipModel(blank=True), "the clip came out blank"),
])
def test_fallbacks_are_stills_and_crossfades_with_the_reason(tmp_path, video, reason):
    sb = board(2, transition="generated", scenes=[{"prompt": "a", "duration": 1, "seed": 1, "motion": "zoom_in"},
                                                  {"prompt": "b", "duration": 1, "seed": 2}])
    done = render(renderer(tmp_path, video, cache=False), sb)[-1]
    report = done.report
    assert [s.frames for s in report.scenes] == ["still", "still"]
    assert all(reason in s.clip_reason for s in report.scenes)
    assert report.transitions[0].made == "crossfade" and reason in report.transitions[0].reason
    groups = fallback_groups(report)  # what the page and the CLI say: one line per reason
    assert [(g.what, g.items) for g in groups] == [("still", (0, 1)), ("transition", (0,))]
    frames = read_frames(done.video_path, W, H)
    assert min(changes(frames[:5])) > 0.05  # scene 1's zoom still moves: a still with its camera motion


def test_placeholder_keyframes_are_not_animated(tmp_path):
    model = SlidingClipModel()
    done = render(renderer(tmp_path, model), board(2, use_ai=False, transition="generated"))[-1]
    assert [s.frames for s in done.report.scenes] == ["placeholder", "placeholder"]
    assert model.calls == [] and done.report.transitions[0].made == "crossfade"


def test_timing_excludes_a_generated_transition_from_the_scenes():
    sb = board(2, transition="generated")
    plan = plan_timeline(sb)
    span = plan.transitions[0]
    assert plan.scenes[0].visible_end == span.start and plan.scenes[1].visible_start == span.end
    assert ClipTiming((1.0,)).bridge_seconds == {}


def test_time_left_counts_the_clips_steps(tmp_path):
    """With clips of fixed step times, the estimates after 30% of the render are within 30% of the truth (all but
    a fifth of them: right after the first clip, composing's pace is measured on its first few frames)."""
    model = SlidingClipModel(step_s=0.15)
    sb = board(3, transition="generated")  # 5 clips x 3 steps x 0.15 s: the clips are most of the time
    started, seen = time.monotonic(), []
    for event in renderer(tmp_path, model, cache=False).render(sb):
        if isinstance(event, Progress):
            seen.append((time.monotonic() - started, event.eta_seconds, event.stage))
    total = time.monotonic() - started
    checked = [(at, eta) for at, eta, stage in seen if 0.3 * total <= at <= 0.8 * total and eta is not None]
    assert checked, seen
    off = [(round(at, 2), round(eta, 2), round(total - at, 2)) for at, eta in checked
           if abs(eta - (total - at)) > 0.3 * (total - at) + 0.1]
    assert len(off) <= 0.2 * len(checked), off
    assert any(stage == "clips" for _, _, stage in seen)


# --------------------------------------------------------------------------- the server's video model


def test_video_model_rule_is_the_model_rule(tmp_path):
    from dataclasses import replace

    from pipeline import StoryboardError
    from pipeline.service import RendererPool
    from server import app_settings

    space = RendererPool(replace(app_settings(tmp_path), allow_model_change=False, video_model="org/video"))
    with pytest.raises(StoryboardError, match="video_model 'evil/video' cannot be used on this server; it "
                                              "renders with 'org/video' only"):
        space.check(board(1, video_model="evil/video"))
    space.check(board(1, video_model="org/video"))  # naming the server's own is fine
    assert space.video_model_id_for(None) == "org/video"


def test_on_a_cpu_no_video_model_is_loaded_unless_named(tmp_path, monkeypatch):
    from pipeline import service
    from pipeline.service import RendererPool
    from server import app_settings

    monkeypatch.setattr(service, "_gpu_present", lambda: False)
    pool = RendererPool(app_settings(tmp_path / "a"))
    renderer_for = pool.for_storyboard(board(1, use_ai=False))
    assert renderer_for.video_model is None and pool.video_model_id_for(None) == ""
    monkeypatch.setattr(service, "_gpu_present", lambda: True)
    assert RendererPool(app_settings(tmp_path / "b")).video_model_id_for(None) == service.DEFAULT_VIDEO_MODEL_ID
    done = render(renderer_for, board(1, use_ai=False))[-1]
    assert done.report.scenes[0].frames == "placeholder"


def test_the_page_notice_says_which_scenes_are_stills_and_why(tmp_path):
    from ui.render_view import report_notice

    sb = board(2, transition="generated", scenes=[{"prompt": "a", "duration": 1, "seed": 1},
                                                  {"prompt": "b", "duration": 1, "seed": 2, "animate": False}])
    notice = report_notice(render(renderer(tmp_path, SlidingClipModel(fail="out of GPU memory")), sb)[-1].report)
    assert "Scene 1: a still, not a clip — out of GPU memory" in notice
    assert "Transition 1→2: crossfade instead of the generated transition — out of GPU memory" in notice
    assert "Scene 2" not in notice  # a still on purpose is not a fallback
    fine = report_notice(render(renderer(tmp_path / "ok", SlidingClipModel()), sb)[-1].report)
    assert "Scene 1: a clip from stand-in-video." in fine
    assert "Transition 1→2: made by stand-in-video." in fine


def test_the_cli_counts_the_clips_and_the_generated_transitions(tmp_path, capsys):
    import argparse

    from pipeline.cli import _deliver

    sb = board(3, transition="generated")
    done = render(renderer(tmp_path, SlidingClipModel()), sb)[-1]
    assert _deliver(done, argparse.Namespace(output=tmp_path / "out.mp4", report=None)) == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert summary.endswith(", 3 clip(s), 2 generated transition(s)"), summary


def test_clip_cache_entries_survive_eviction_under_a_render_and_clear(tmp_path):
    writer = FootageWriter(tmp_path / "made", fps=24)
    writer.write_all(texture(i, 64, 32) for i in range(3))
    footage = writer.finish()
    cache = ClipCache(tmp_path / "clips", max_bytes=10**9)
    assert cache.put("ab" * 32, footage)
    shown = cache.get("ab" * 32, tmp_path / "render" / "clip-1")
    assert shown is not None and np.array_equal(shown.frame(2), footage.frame(2))
    assert cache.clear() == 1
    assert np.array_equal(shown.frame(1), footage.frame(1))  # the render's own link keeps its frames
    assert cache.get("ab" * 32, tmp_path / "render" / "again") is None
    (tmp_path / "clips" / "cd").mkdir(parents=True)  # a truncated entry is dropped, never shown
    cache.put("cd" * 32, footage)
    frames = tmp_path / "clips" / "cd" / ("cd" * 32) / "frames.rgb"
    frames.write_bytes(frames.read_bytes()[:100])
    assert cache.get("cd" * 32, tmp_path / "render" / "bad") is None


def test_video_does_not_import_images_nor_the_clip_modules_video():
    """Footage is the contract between them (pipeline/contract/footage.py): video/ never imports images/, and
    the clip modules of images/ never import video/ (the renderer hands them the camera's view)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "pipeline"

    def imports(folder: str, pattern: str = "*.py") -> set[str]:
        found = set()
        for path in (root / folder).rglob(pattern):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    found.add(("." * node.level) + node.module)
        return found

    assert not [name for name in imports("video") if "images" in name]
    assert not [name for name in imports("images", "clip_*.py") if "video." in name or name.endswith("video")]


def test_the_first_scene_streams_while_the_next_clip_is_made(tmp_path):
    from pipeline import Segment

    class SlowSecondClip(SlidingClipModel):
        """Scene 2's clip takes 5 s (in 0.1 s steps of waiting): scene 1 must stream meanwhile."""

        def generate_clip(self, request, folder, on_step=None, should_stop=None):
            for _ in range(50 if request.scene_index == 1 else 0):
                if should_stop():
                    break
                time.sleep(0.1)
            return super().generate_clip(request, folder, on_step, should_stop)

    # Scene 1 outlasts x264's look-ahead, so its first segments can be finished before scene 2 exists.
    sb = board(2, fps=6, scenes=[{"prompt": "a", "duration": 12, "seed": 1}, {"prompt": "b", "duration": 1, "seed": 2}])
    events = render(renderer(tmp_path, SlowSecondClip(), cache=False), sb)
    order = [(type(e).__name__, getattr(e, "id", "")) for e in events if isinstance(e, (Segment, ClipReady))]
    first_segment = order.index(("Segment", ""))
    assert order.index(("ClipReady", "clip-1")) < first_segment < order.index(("ClipReady", "clip-2")), order
